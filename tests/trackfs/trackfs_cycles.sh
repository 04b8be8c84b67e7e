#!/bin/sh
# 10,000 create/write/unlink cycles: the broker balance of track_fs stays
# within the release hysteresis and is zero once it is unmounted.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/trackfs/lib_tfs.sh"
tfs_need
tfs_need_broker 64M
CYCLES=${TFS_CYCLES:-10000}
tfs_mount -o step=64K,release_hysteresis=512K

# Two processes at once, half the cycles each; sizes from 1 byte to 64 KiB,
# some files truncated before they go.
cycles() {
	python3 - "$MNT" "$1" "$2" <<'PY'
import os, sys
d, n, tag = sys.argv[1], int(sys.argv[2]), sys.argv[3]
for i in range(n):
    p = "%s/%s%d" % (d, tag, i % 7)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, b"x" * (1 + (i * 7919) % 65536))
    if i % 5 == 0:
        os.ftruncate(fd, (i * 31) % 8192)
    os.close(fd)
    os.unlink(p)
PY
}
cycles $((CYCLES / 2)) a & p1=$!
cycles $((CYCLES - CYCLES / 2)) b & p2=$!
wait $p1 || fail "cycles a"
wait $p2 || fail "cycles b"
expect_eq "used after the cycles" "$(tfs_used)" 0
bal=$(tfs_balance)
[ "$bal" -le $((512 * 1024)) ] || fail "balance $bal over the hysteresis"
pid=$TFS_PID
tfs_umount
expect_eq "balance after unmount" "$("$TFS_BALANCE" "$pid")" 0
echo "PASS"
