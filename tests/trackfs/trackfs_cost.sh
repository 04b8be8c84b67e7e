#!/bin/sh
# What a write costs track_fs in system calls does not grow with the file:
# overwriting a dense file takes no mincore and at most one lseek (a
# SEEK_HOLE to learn that nothing lies past its end), and overwriting a
# sparse file one mincore per write.  Counted with strace -c (mmap is not
# counted: malloc uses it too).
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/trackfs/lib_tfs.sh"
tfs_need
command -v strace >/dev/null || skip "needs strace"
tfs_need_broker 256M
tfs_mount

# count_calls FILE N: strace -c of track_fs while N random 4K overwrites
# of FILE run; prints "lseek mincore" counts.
count_calls() {
	strace -f -c -o "$TEST_TMP/st" -p "$TFS_PID" 2>"$TEST_TMP/strace.err" &
	sp=$!
	i=0
	until grep -q "attached" "$TEST_TMP/strace.err" 2>/dev/null; do
		i=$((i + 1)); [ $i -gt 100 ] && skip "strace cannot attach"
		sleep 0.05
	done
	python3 - "$1" "$2" <<'PY' || fail "overwrites"
import os, random, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
size = os.fstat(fd).st_size
random.seed(1)
for _ in range(int(sys.argv[2])):
    os.pwrite(fd, b"x" * 4096, random.randrange(0, size >> 12) << 12)
os.close(fd)
PY
	kill -INT $sp
	wait $sp 2>/dev/null
	for c in lseek mincore; do
		awk -v c=$c '$NF == c { n = $4 } END { printf "%d ", n }' "$TEST_TMP/st"
	done
}

dd if=/dev/zero of="$MNT/dense" bs=1M count=64 status=none || fail "dense file"
set -- $(count_calls "$MNT/dense" 500)
[ "$1" -le 1 ] || fail "$1 lseek calls for 500 overwrites of a dense file"
[ "$2" = 0 ] || fail "$2 mincore calls for 500 overwrites of a dense file"

# Sparse: every other MiB written.
for k in 0 2 4 6 8 10 12 14; do
	dd if=/dev/zero of="$MNT/sparse" bs=1M count=1 seek=$k conv=notrunc status=none || fail "sparse file"
done
set -- $(count_calls "$MNT/sparse" 500)
[ "$2" -le 500 ] || fail "$2 mincore calls for 500 overwrites of a sparse file"
[ "$2" -ge 1 ] || fail "no mincore for a sparse file (the count would not show a change)"
echo PASS
