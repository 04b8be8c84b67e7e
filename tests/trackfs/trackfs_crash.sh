#!/bin/sh
# The accounting comes from the backing directory: a mount over files
# reserves them first (and fails clearly when it cannot), and a restart
# after kill -9 finds the same usage.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/trackfs/lib_tfs.sh"
tfs_need
tfs_need_broker 16M

# Files already there: 3 MiB dense, a sparse file with 2 pages, a hard link.
dd if=/dev/zero of="$BACK/dense" bs=1M count=3 status=none || fail "dd"
truncate -s 1G "$BACK/sparse" || fail "truncate"
printf ab | dd of="$BACK/sparse" bs=1 seek=4096 conv=notrunc status=none
printf cd | dd of="$BACK/sparse" bs=1 seek=$MiB conv=notrunc status=none
ln "$BACK/dense" "$BACK/dense.link" || fail "ln"
mkdir "$BACK/sub" && printf 123 >"$BACK/sub/small" || fail "sub"
want=$((3 * MiB + 3 * 4096))

tfs_mount
expect_eq "used after mount" "$(tfs_used)" $want
[ "$(tfs_balance)" -ge $want ] || fail "broker does not hold the files already there"
dd if=/dev/zero of="$MNT/new" bs=1M count=2 status=none || fail "write"
want=$((want + 2 * MiB))
expect_eq "used before the crash" "$(tfs_used)" $want

kill -9 "$TFS_PID"
wait "$TFS_PID" 2>/dev/null
fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT" || fail "unmount after the crash"
tfs_mount
expect_eq "used after restart" "$(tfs_used)" $want
bal=$(tfs_balance)
[ "$bal" -ge $want ] || fail "broker holds $bal after restart, files use $want"
tfs_umount

# More than the broker can grant: the mount fails with a clear message.
dd if=/dev/zero of="$BACK/huge" bs=1M count=20 status=none || fail "dd huge"
if "$TRACK_FS" -f --backing "$BACK" "$MNT" >"$TEST_TMP/fail.log" 2>&1; then
	fusermount3 -u "$MNT"
	fail "mounted over 25 MiB of files with a 16 MiB quota"
fi
grep -q "cannot mount" "$TEST_TMP/fail.log" || { cat "$TEST_TMP/fail.log"; fail "no clear message"; }
grep -q " $MNT " /proc/mounts && fail "left a mount behind"
cat "$TEST_TMP/fail.log"
echo "PASS"
