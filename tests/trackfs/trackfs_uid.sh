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
tfs_umount
echo PASS
