#!/bin/sh
# bench/track_fs/syscalls.sh BUILD - the system calls track_fs makes for
# 2,000 random 4 KiB overwrites of a dense 64 MiB file (strace -c), to
# compare builds by count rather than by time.  Needs root and strace.
# track_fs is GPL-2.0 (see COPYING.GPL-2).
set -u
[ $# = 1 ] || { echo "usage: $0 BUILD"; exit 2; }
BUILD=$(cd "$1" && pwd)
T=$(mktemp -d /tmp/tfssc.XXXXXX); mkdir -p $T/back $T/m
mount -t tmpfs -o size=1G tfssc $T/back
$BUILD/mbserver/mbserver --config /dev/null --socket $T/mb.sock --total 512M >/dev/null 2>&1 & BP=$!
sleep 0.5; export MEMBROKER_SOCKET=$T/mb.sock
$BUILD/track_fs/track_fs -f --backing $T/back $T/m >/dev/null 2>&1 & TP=$!
sleep 1
dd if=/dev/zero of=$T/m/f bs=1M count=64 status=none
strace -f -c -o $T/st -p $TP 2>/dev/null & SP=$!
sleep 1
python3 - $T/m/f <<'PY'
import os, random, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
random.seed(1)
for _ in range(2000):
    os.pwrite(fd, b"x" * 4096, random.randrange(0, 64 << 8) * 4096)
PY
sleep 0.5; kill -INT $SP; wait $SP 2>/dev/null
awk 'NR>2 && $NF != "total" && $4 ~ /^[0-9]+$/ {print $NF, $4}' $T/st | sort -k2 -n -r | head -12
fusermount3 -u $T/m; kill $BP; wait 2>/dev/null; umount $T/back; rm -rf $T
