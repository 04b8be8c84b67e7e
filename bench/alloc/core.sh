#!/bin/sh
# bench/alloc/core.sh [BUILDDIR] - the allocator core against its peers (not
# part of make check; timing belongs here, not in tests).
#
# 1. Instructions per malloc+free pair of 16, 64, 256 and 4096 bytes under
#    callgrind (pair_loop.c run at N and 2N pairs; the difference divided
#    by N, so start-up cancels out) for glibc, gmalloc, jemalloc, mimalloc
#    and tcmalloc, each preloaded into the same program; then the same with
#    64 objects live and the oldest freed before each malloc, so that no
#    free is of the object malloc handed out last.
# 2. Two-thread scaling: pairs per second of a thread-local malloc(64)+free
#    loop with 2 threads / with 1 thread; medians of RUNS runs, the
#    allocators interleaved in each run.
# 3. madvise calls of the core (churn.c linked with libanrcore) over
#    OPS operations: a producer/consumer of 4 KiB blocks on two threads
#    and a mixed workload (sizes to 1 MiB, cross-thread frees, reallocs)
#    on two threads.
# 4. Process start: microseconds to start, malloc and free one block and
#    exit, and to start, malloc, write and free 64 blocks of 16 to 2,347
#    bytes and exit (spawn.c, 300 starts a run), each allocator preloaded;
#    medians of RUNS runs, interleaved, and the differences to glibc.
# 5. One medium block (4..64 KiB: malloc, memset of all of it, free) with
#    the caches warm, after 32 MiB written and after 1 ms asleep (cold.c,
#    2000 rounds a run, 1000 asleep): medians over RUNS interleaved runs of
#    each part's median, ns.
#
# Environment: RUNS (default 5), N (default 100000), OPS (default 10000000),
# ONLY (space-separated sections to run: instr scale madvise start cold;
# default all).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
. "$here/peers.sh"
RUNS=${RUNS:-5}
N=${N:-100000}
OPS=${OPS:-10000000}
ONLY=${ONLY:-instr scale madvise start cold}
want() { case " $ONLY " in *" $1 "*) return 0 ;; esac; return 1; }
command -v valgrind >/dev/null || { echo "valgrind is needed (callgrind)" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench-core.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cc -O2 -o "$tmp/pair_loop" "$here/pair_loop.c" -lpthread
cc -O2 -o "$tmp/spawn" "$here/spawn.c"
cc -O2 -o "$tmp/cold" "$here/cold.c" -lpthread
cc -O2 -I"$src/anrcore" -I"$build" -I"$src/common" -o "$tmp/churn" "$here/churn.c" \
	"$build/anrcore/.libs/libanrcore.a" "$build/common/.libs/libmbcommon.a" -lpthread


# instructions of pair_loop SIZE COUNT [0 LIVE] under callgrind with
# preload $1
irefs() {
	lib=$1; shift
	LD_PRELOAD=$lib GMALLOC_CONF=/dev/null valgrind --tool=callgrind \
		--callgrind-out-file=/dev/null "$tmp/pair_loop" "$@" 2>&1 |
		sed -n 's/.*Collected : *\([0-9]*\).*/\1/p'
}

# one table: instructions per pair for each allocator and size; $@ after
# SIZE COUNT for pair_loop
instr_table() {
	printf '%-10s %8s %8s %8s %8s\n' allocator 16 64 256 4096
	for a in $allocs; do
		name=${a%%:*} lib=${a#*:}
		[ "$name" != glibc ] && [ -z "$lib" ] && { printf '%-10s (not installed)\n' "$name"; continue; }
		line=$(printf '%-10s' "$name")
		for size in 16 64 256 4096; do
			i1=$(irefs "$lib" "$size" "$N" "$@")
			i2=$(irefs "$lib" "$size" $((2 * N)) "$@")
			line="$line $(printf '%8d' $(( (i2 - i1) / N )))"
		done
		echo "$line"
	done
}

if want instr; then
echo "== instructions per malloc+free pair (callgrind; (I(2N) - I(N)) / N, N = $N)"
instr_table
echo
echo "== the same with 64 objects live, the oldest freed before each malloc"
echo "   (no free is of the object malloc handed out last)"
instr_table 0 64
fi

if want scale; then
echo
echo "== two-thread scaling: malloc(64)+free pairs per second, median of $RUNS"
printf '%-10s %12s %12s %7s\n' allocator 1-thread 2-threads ratio
for a in $allocs; do
	name=${a%%:*}
	: > "$tmp/$name.1"
	: > "$tmp/$name.2"
done
for r in $(seq "$RUNS"); do
	for a in $present; do
		name=${a%%:*} lib=${a#*:}
		for t in 1 2; do
			LD_PRELOAD=$lib GMALLOC_CONF=/dev/null "$tmp/pair_loop" 64 3000000 "$t" >> "$tmp/$name.$t"
		done
	done
done
for a in $allocs; do
	name=${a%%:*}
	[ -s "$tmp/$name.1" ] || continue
	one=$(median < "$tmp/$name.1")
	two=$(median < "$tmp/$name.2")
	printf '%-10s %12.0f %12.0f %7.2f\n' "$name" "$one" "$two" "$(awk -v a="$two" -v b="$one" 'BEGIN { print a / b }')"
done

fi

if want madvise; then
echo
echo "== madvise calls of the core over $OPS operations (two threads each)"
"$tmp/churn" "$OPS"
fi

if want start; then
echo
echo "== process start: us to start, malloc+free and exit, median of $RUNS runs of 300"
echo "   (one block; 64 blocks of 16..2347 B, written; more: the difference to glibc)"
printf '%-10s %10s %10s %10s %10s\n' allocator one-block more 64-sizes more
for a in $allocs; do
	: > "$tmp/${a%%:*}.start"
	: > "$tmp/${a%%:*}.sizes"
done
for r in $(seq "$RUNS"); do
	for a in $present; do
		name=${a%%:*} lib=${a#*:}
		LD_PRELOAD=$lib GMALLOC_CONF=/dev/null "$tmp/spawn" 300 "$tmp/spawn" 0 >> "$tmp/$name.start"
		LD_PRELOAD=$lib GMALLOC_CONF=/dev/null "$tmp/spawn" 300 "$tmp/spawn" 0 sizes >> "$tmp/$name.sizes"
	done
done
base=$(median < "$tmp/glibc.start")
base_sizes=$(median < "$tmp/glibc.sizes")
for a in $allocs; do
	name=${a%%:*}
	[ -s "$tmp/$name.start" ] || continue
	us=$(median < "$tmp/$name.start")
	us_sizes=$(median < "$tmp/$name.sizes")
	printf '%-10s %10.1f %10.1f %10.1f %10.1f\n' "$name" "$us" "$(awk -v a="$us" -v b="$base" 'BEGIN { print a - b }')" \
		"$us_sizes" "$(awk -v a="$us_sizes" -v b="$base_sizes" 'BEGIN { print a - b }')"
done
fi

if want cold; then
echo
echo "== one block of 4-64 KiB: malloc, memset, free (ns, medians of $RUNS runs)"
printf '%-10s %-5s %8s %8s %8s\n' allocator cache malloc memset free
for r in $(seq "$RUNS"); do
	for mode in hot cold sleep; do
		rounds=2000
		[ "$mode" = sleep ] && rounds=1000
		for a in $present; do
			name=${a%%:*} lib=${a#*:}
			LD_PRELOAD=$lib GMALLOC_CONF=/dev/null "$tmp/cold" "$mode" "$rounds" >> "$tmp/$name.$mode"
		done
	done
done
for mode in hot cold sleep; do
	for a in $allocs; do
		name=${a%%:*}
		f="$tmp/$name.$mode"
		[ -s "$f" ] || continue
		printf '%-10s %-5s %8s %8s %8s\n' "$name" "$mode" "$(awk '{print $2}' "$f" | median)" \
			"$(awk '{print $5}' "$f" | median)" "$(awk '{print $8}' "$f" | median)"
	done
done
fi
