#!/bin/sh
# Per-user limit: with uid_limit=50% of a 32M broker, uid 65534 can neither
# reserve past 16M by growing an open file nor store past it, while root
# still writes; SIGUSR2 logs each user's figure; chown moves a file's cost.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/trackfs/lib_tfs.sh"
tfs_need
tfs_need_nobody
tfs_need_broker 32M
tfs_mount -o step=256K,release_hysteresis=1M,uid_limit=50%
mkdir "$MNT/u" && chown 65534:65534 "$MNT/u" || fail "mkdir u"

as_nobody "$NOBODY_PY" - "$MNT/u/grow" <<'PY' || fail "growing an open file"
import errno, os, sys
p = sys.argv[1]
d = os.path.dirname(p)
def used():
    s = os.statvfs(d)
    return (s.f_blocks - s.f_bfree) * s.f_frsize
fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
try:
    os.ftruncate(fd, 28 << 20)
    sys.exit("an open file grown to 28M by a user limited to 16M")
except OSError as e:
    if e.errno != errno.ENOSPC:
        raise
os.ftruncate(fd, 8 << 20)
if used() != 8 << 20:
    sys.exit("8M hole of an open file: %d in use" % used())
os.close(fd)
if used() != 0:
    sys.exit("after close: %d in use" % used())
PY
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
tfs_umount
echo PASS
