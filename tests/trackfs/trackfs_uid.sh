#!/bin/sh
# Per-user limit: with the default uid_limit (50%) of a 32M broker, uid 65534 can neither
# reserve past 16M by growing an open file nor store past it, while root
# still writes; SIGUSR2 logs each user's figure; chown moves a file's cost.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/trackfs/lib_tfs.sh"
tfs_need
tfs_need_nobody
tfs_need_broker 32M
tfs_mount -o step=256K,release_hysteresis=1M
mkdir "$MNT/u" && chown 65534:65534 "$MNT/u" || fail "mkdir u"

cp "$top_srcdir/tests/trackfs/tfs_grow.py" "$TEST_TMP/" || fail "cp"
as_nobody "$NOBODY_PY" "$TEST_TMP/tfs_grow.py" "$MNT/u/grow" $((28 * MiB)) $((8 * MiB)) ||
	fail "growing an open file as uid 65534"
rm "$MNT/u/grow"

as_nobody dd if=/dev/zero of="$MNT/u/fill" bs=256K count=120 status=none 2>/dev/null &&
	fail "uid 65534 wrote 30M with a limit of 16M"
s=$(stat -c %s "$MNT/u/fill")
[ "$s" -le $((16 * MiB)) ] || fail "uid 65534 stored $s bytes over its 16M limit"
[ "$s" -ge $((15 * MiB)) ] || fail "uid 65534 stopped at $s bytes, under its 16M limit"
dd if=/dev/zero of="$MNT/rootfile" bs=1M count=14 status=none ||
	fail "root could not write 14M next to a user at its limit"

# The figures per uid, in the log.
kill -USR2 "$TFS_PID" || fail "SIGUSR2"
i=0
until grep -q "uid 65534: $s bytes" "$TEST_TMP/track_fs.log"; do
	i=$((i + 1))
	[ $i -gt 100 ] && { cat "$TEST_TMP/track_fs.log"; fail "no figure for uid 65534 in the log"; }
	sleep 0.05
done
grep -q "uid 0: $((14 * MiB)) bytes" "$TEST_TMP/track_fs.log" || fail "no figure for root"

# Given to root, the file no longer counts for uid 65534.
rm "$MNT/rootfile"
as_nobody dd if=/dev/zero of="$MNT/u/more" bs=1M count=1 status=none 2>/dev/null &&
	fail "uid 65534 wrote past its limit"
chown 0:0 "$MNT/u/fill" || fail "chown"
as_nobody dd if=/dev/zero of="$MNT/u/more" bs=1M count=8 status=none ||
	fail "uid 65534 could not write after its file went to root"
rm -r "$MNT/u"
expect_eq "end" "$(tfs_used)" 0

# A hole punched in a file open for writing keeps the freed pages charged
# as the file's reserve: the user cannot write them elsewhere and then
# fill the holes again through a shared mapping.  Before, the reserve was
# asked afresh, refused at the limit, and the punch went on without it:
# the writeback into the holes passed uid_limit (21M of 16M here).
mkdir "$MNT/u" && chown 65534:65534 "$MNT/u" || fail "mkdir u again"
cat >"$TEST_TMP/punch.py" <<'PY'
import ctypes, mmap, os, sys
d = sys.argv[1]; M = 1 << 20
libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
def write(p, n):
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    done = 0
    try:
        for i in range(n):
            os.write(fd, b"x" * M)
            done += 1
    except OSError:
        pass
    os.close(fd)
    return done
write(d + "/A", 6); write(d + "/C", 9)
fd = os.open(d + "/A", os.O_RDWR)
m = mmap.mmap(fd, 6 * M, mmap.MAP_SHARED)
if libc.fallocate(fd, 3, 0, 6 * M) != 0:    # PUNCH_HOLE | KEEP_SIZE
    sys.exit("punch: " + os.strerror(ctypes.get_errno()))
print("B", write(d + "/B", 6))
for off in range(0, 6 * M, 4096):
    m[off] = 1
m.flush()
m.close()
os.close(fd)
PY
as_nobody "$NOBODY_PY" "$TEST_TMP/punch.py" "$MNT/u" >"$TEST_TMP/punch.out" 2>&1 ||
	{ cat "$TEST_TMP/punch.out"; fail "punch as uid 65534"; }
kill -USR2 "$TFS_PID" || fail "SIGUSR2"
i=0
until [ "$(grep -c 'uid 65534: ' "$TEST_TMP/track_fs.log")" -ge 2 ]; do
	i=$((i + 1))
	[ $i -gt 100 ] && { cat "$TEST_TMP/track_fs.log"; fail "no second figure for uid 65534"; }
	sleep 0.05
done
got=$(grep 'uid 65534: ' "$TEST_TMP/track_fs.log" | tail -n 1 | sed 's/.*uid 65534: \([0-9]*\) bytes.*/\1/')
cat "$TEST_TMP/punch.out"
[ "$got" -le $((16 * MiB)) ] || fail "uid 65534 holds $got bytes after filling punched holes, over its 16M limit"
rm -r "$MNT/u"
expect_eq "end after the punch" "$(tfs_used)" 0
tfs_umount
echo PASS
