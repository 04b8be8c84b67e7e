#!/bin/sh
# bench/track_fs/ab.sh - two builds of track_fs side by side, turn about:
# sequential write of 512 MiB (1 MiB blocks), 20,000 random 4 KiB
# overwrites of that file, and 5,000 small files each created, written
# (4 KiB), closed and removed, each mount over its own directory of one
# tmpfs, one broker.  Prints one line per run and the medians.
#
#   sudo bench/track_fs/ab.sh BUILD_A BUILD_B   (RUNS=5)
# track_fs is GPL-2.0 (see COPYING.GPL-2).
set -eu
[ $# = 2 ] || { echo "usage: $0 BUILD_A BUILD_B"; exit 2; }
[ "$(id -u)" = 0 ] || { echo "needs root (FUSE mounts)"; exit 1; }
A=$(cd "$1" && pwd)
B=$(cd "$2" && pwd)
RUNS=${RUNS:-5}
T=$(mktemp -d /tmp/tfsab.XXXXXX)
run_pids=
. "$(cd "$(dirname "$0")" && pwd)/common.sh"
cleanup() { bench_cleanup "$T" "$run_pids" "$T/ma" "$T/mb"; }
trap cleanup EXIT INT TERM
mkdir -p "$T/back" "$T/ma" "$T/mb"
mount -t tmpfs -o size=3G tfsab "$T/back"
mkdir "$T/back/a" "$T/back/b"
"$B/mbserver/mbserver" --config /dev/null --socket "$T/mb.sock" --total 2G >/dev/null 2>&1 &
run_pids="$!"
sleep 0.5
MEMBROKER_SOCKET=$T/mb.sock; export MEMBROKER_SOCKET
"$A/track_fs/track_fs" -f --backing "$T/back/a" "$T/ma" >/dev/null 2>&1 &
run_pids="$run_pids $!"
"$B/track_fs/track_fs" -f --backing "$T/back/b" "$T/mb" >/dev/null 2>&1 &
run_pids="$run_pids $!"
sleep 1
r=1
while [ $r -le "$RUNS" ]; do
	for side in a b; do
		m=$T/m$side
		s=$(date +%s.%N)
		dd if=/dev/zero of="$m/f" bs=1M count=512 status=none
		e=$(date +%s.%N)
		echo "seqwrite_MBps $side $(echo "512 / ($e - $s)" | bc -l | cut -d. -f1)"
		python3 - "$m/f" "$side" <<'PY'
import os, random, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY)
buf = b"x" * 4096
random.seed(1)
offs = [random.randrange(0, 512 << 8) * 4096 for _ in range(20000)]
t = time.monotonic()
for o in offs:
    os.pwrite(fd, buf, o)
print("overwrite4k_ops %s %d" % (sys.argv[2], len(offs) / (time.monotonic() - t)))
PY
		rm "$m/f"
		python3 - "$m" "$side" <<'PY'
import os, sys, time
d, buf = sys.argv[1], b"s" * 4096
t = time.monotonic()
for i in range(5000):
    p = os.path.join(d, "s%d" % i)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.write(fd, buf)
    os.close(fd)
    os.unlink(p)
print("smallfiles_ops %s %d" % (sys.argv[2], 5000 / (time.monotonic() - t)))
PY
	done
	r=$((r + 1))
done | tee "$T/out"
echo "medians:"
for w in seqwrite_MBps overwrite4k_ops smallfiles_ops; do
	for side in a b; do
		awk -v w=$w -v s=$side '$1 == w && $2 == s { print $3 }' "$T/out" | sort -n |
			awk -v w=$w -v s=$side '{ v[NR] = $1 } END { print w, s, v[int((NR + 1) / 2)] }'
	done
done
