#!/bin/sh
# bench/track_fs/bench.sh - track_fs against the tmpfs under it and
# against the same FUSE server with charging off (charge=no: the bare
# passthrough, the ceiling of FUSE itself), in one run.
#
#   sudo bench/track_fs/bench.sh [BUILD_DIR]   (RUNS=3 SIZE=1G RSIZE=256M SECS=5
#                                               WORKLOADS="seqwrite seqread ...")
#
# Workloads: sequential write and read of a large file with 1 MiB blocks,
# 4 KiB random writes (fio, psync, one job), and create+write 4K+unlink of
# small files per second.  Each cell is the median of RUNS runs, taken in
# turn (tmpfs, passthrough, track_fs) so that noise hits all alike.
# track_fs is GPL-2.0 (see COPYING.GPL-2).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../../build}
build=$(cd "$build" && pwd)
RUNS=${RUNS:-3}
SIZE=${SIZE:-1G}
RSIZE=${RSIZE:-256M}
SECS=${SECS:-5}
TFS_OPTS=${TFS_OPTS:-}
[ "$(id -u)" = 0 ] || { echo "needs root (FUSE mounts)"; exit 1; }
command -v fio >/dev/null || { echo "needs fio"; exit 1; }

tmp=$(mktemp -d /tmp/tfsbench.XXXXXX)
broker_pid= tfs_pids=
. "$here/common.sh"
cleanup() { bench_cleanup "$tmp" "$tfs_pids $broker_pid" "$tmp/pt" "$tmp/tfs"; }
trap cleanup EXIT INT TERM
mkdir -p "$tmp/back" "$tmp/pt" "$tmp/tfs"
mount -t tmpfs -o size=8G tfs_bench "$tmp/back"
mkdir "$tmp/back/plain" "$tmp/back/pt" "$tmp/back/tfs"
cc -O2 -o "$tmp/smallfiles" "$here/smallfiles.c"

sock="$tmp/mb.sock"
"$build/mbserver/mbserver" --config /dev/null --socket "$sock" --total 6G \
	--log-level warning >"$tmp/mbserver.log" 2>&1 &
broker_pid=$!
while [ ! -S "$sock" ]; do sleep 0.05; done
"$build/track_fs/track_fs" -f --backing "$tmp/back/pt" -o charge=no $TFS_OPTS \
	"$tmp/pt" >"$tmp/pt.log" 2>&1 &
tfs_pids="$tfs_pids $!"
"$build/track_fs/track_fs" -f --backing "$tmp/back/tfs" -o broker_socket="$sock" \
	$TFS_OPTS "$tmp/tfs" >"$tmp/tfs.log" 2>&1 &
tfs_pids="$tfs_pids $!"
for m in pt tfs; do
	i=0
	until grep -q " $tmp/$m fuse.track_fs " /proc/mounts; do
		i=$((i + 1)); [ $i -lt 200 ] || { cat "$tmp/$m.log"; exit 1; }
		sleep 0.05
	done
done

dir_of() {
	case $1 in
	tmpfs) echo "$tmp/back/plain" ;;
	passthrough) echo "$tmp/pt" ;;
	track_fs) echo "$tmp/tfs" ;;
	esac
}

# fio_one DIR RW BS SIZE -> MiB/s (write or read bandwidth)
fio_one() {
	out=$(fio --name=b --directory="$1" --filename=data --rw="$2" --bs="$3" \
		--size="$4" --runtime="$SECS" --ioengine=psync --numjobs=1 --invalidate=1 \
		--minimal 2>/dev/null)
	case $2 in
	*read*) echo "$out" | awk -F';' '{ printf "%.1f\n", $7 / 1024 }' ;;
	*) echo "$out" | awk -F';' '{ printf "%.1f\n", $48 / 1024 }' ;;
	esac
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f\n", (b > 0 ? a / b : 0) }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

tests=${WORKLOADS:-seqwrite seqread randwrite smallfiles}
for t in $tests; do
	for fs in tmpfs passthrough track_fs; do : >"$tmp/res.$t.$fs"; done
done
r=1
while [ $r -le "$RUNS" ]; do
	for fs in tmpfs passthrough track_fs; do
		d=$(dir_of $fs)
		for t in $tests; do
			case $t in
			seqwrite) rm -f "$d/data"; fio_one "$d" write 1M "$SIZE" ;;
			seqread)
				[ -f "$d/data" ] || fio_one "$d" write 1M "$SIZE" >/dev/null
				fio_one "$d" read 1M "$SIZE" ;;
			randwrite) rm -f "$d/data"; fio_one "$d" randwrite 4k "$RSIZE" ;;
			smallfiles) "$tmp/smallfiles" "$d" "$SECS" ;;
			esac >>"$tmp/res.$t.$fs"
		done
		rm -f "$d/data"
	done
	r=$((r + 1))
done

printf '%-11s %12s %12s %12s %9s %9s %9s\n' workload tmpfs passthrough track_fs \
	pt/tmpfs tfs/tmpfs tfs/pt
for t in $tests; do
	a=$(median <"$tmp/res.$t.tmpfs")
	b=$(median <"$tmp/res.$t.passthrough")
	c=$(median <"$tmp/res.$t.track_fs")
	unit="MiB/s"; [ "$t" = smallfiles ] && unit="files/s"
	printf '%-11s %12s %12s %12s %9.2f %9.2f %9.2f  (%s, median of %s)\n' \
		"$t" "$a" "$b" "$c" "$(ratio "$b" "$a")" "$(ratio "$c" "$a")" \
		"$(ratio "$c" "$b")" "$unit" "$RUNS"
done
echo "randwrite: 4 KiB blocks, MiB/s (x256 for IOPS); SIZE=$SIZE RSIZE=$RSIZE, at most ${SECS}s per fio job; opts: ${TFS_OPTS:-defaults}"
