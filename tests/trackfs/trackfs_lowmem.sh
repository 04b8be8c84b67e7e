#!/bin/sh
# track_fs follows the broker's memory state: in deny state new data gets
# ENOSPC (track_fs runs as root, whom the broker still serves: it refuses
# by itself), data within the quota it holds is kept, and writes work again
# once the device is back to normal.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/trackfs/lib_tfs.sh"
tfs_need
MI="$TEST_TMP/meminfo"
WAIT_LOG="$TEST_TMP/track_fs.log"
fake_meminfo "$MI" 100
tfs_need_broker 64M -o device=meminfo -o device_meminfo="$MI" -o device_poll=20ms \
	-o deny_high=80% -o deny_low=70%
tfs_mount -o step=256K,release_hysteresis=1M
dd if=/dev/zero of="$MNT/a" bs=1M count=2 conv=fsync 2>/dev/null || fail "write in normal state"

fake_meminfo "$MI" 900
wait_until "the deny event" grep -q "memory is low: new data is refused" "$TEST_TMP/track_fs.log"
if dd if=/dev/zero of="$MNT/b" bs=1M count=4 conv=fsync 2>"$TEST_TMP/dd.err"; then
	fail "4 MiB of new data written in deny state"
fi
grep -q "No space left on device" "$TEST_TMP/dd.err" || fail "not ENOSPC: $(cat "$TEST_TMP/dd.err")"
expect_eq "data written before deny" "$(stat -c %s "$MNT/a")" $((2 * MiB))
cmp -s -n $((2 * MiB)) "$MNT/a" /dev/zero || fail "data written before deny differs"

fake_meminfo "$MI" 100
wait_until "the ok event" grep -q "memory is no longer low" "$TEST_TMP/track_fs.log"
rm -f "$MNT/b"
dd if=/dev/zero of="$MNT/b" bs=1M count=4 conv=fsync 2>/dev/null || fail "write after deny ended"
echo ok
