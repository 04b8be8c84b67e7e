#!/bin/sh
# 10,000 create/write/unlink cycles: the broker balance of track_fs stays
# within the release hysteresis and is zero once it is unmounted.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/trackfs/lib_tfs.sh"
tfs_need
tfs_need_broker 64M
CYCLES=${TFS_CYCLES:-10000}
tfs_mount -o step=64K,release_hysteresis=512K

python3 - "$MNT" "$CYCLES" <<'PY' || fail "cycles"
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    p = "%s/f%d" % (d, i % 7)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, b"x" * (1 + (i * 37) % 20000))
    os.close(fd)
    os.unlink(p)
PY
expect_eq "used after the cycles" "$(tfs_used)" 0
bal=$(tfs_balance)
[ "$bal" -le $((512 * 1024)) ] || fail "balance $bal over the hysteresis"
pid=$TFS_PID
tfs_umount
expect_eq "balance after unmount" "$("$TFS_BALANCE" "$pid")" 0
echo "PASS"
