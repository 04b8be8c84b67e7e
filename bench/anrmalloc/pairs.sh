#!/bin/sh
# bench/anrmalloc/pairs.sh [BUILDDIR] - instructions and lock operations per
# anr_malloc+anr_free pair (not part of make check).
#
# Instructions: callgrind over pairs.c at N and 2N pairs, (I(2N) - I(N)) / N,
# for 16, 64, 256 and 4096 bytes, with the block records off (plain) and on
# (track, the default), and gmalloc's malloc+free (bench/alloc/pair_loop.c
# preloaded) in the same run.  Lock operations: pthread_mutex_lock, trylock
# and unlock calls per pair, counted by the program itself.
# Environment: N (default 100000).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=${1:-${top_builddir:-$top/build}}
build=$(cd "$build" && pwd)
N=${N:-100000}
lib="$build/anrmalloc/.libs"
gm="$build/gmalloc/.libs/libgmalloc.so"
[ -f "$lib/libanrmalloc.so" ] || { echo "build libanrmalloc.so first ($lib)" >&2; exit 1; }
command -v valgrind >/dev/null || { echo "valgrind is needed (callgrind)" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench-anrp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
rpath="-Wl,-rpath,$lib:$build/libmbclient/.libs"
cc -O2 -I"$top" -o "$tmp/pairs" "$here/pairs.c" -L"$lib" -lanrmalloc $rpath
cc -O2 -DCOUNT_LOCKS -I"$top" -o "$tmp/pairs_locks" "$here/pairs.c" -L"$lib" -lanrmalloc -ldl $rpath
cc -O2 -o "$tmp/pair_loop" "$top/bench/alloc/pair_loop.c" -lpthread

irefs() {
	valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 |
		sed -n 's/.*Collected : *\([0-9]*\).*/\1/p'
}

echo "== instructions per pair (callgrind; (I(2N) - I(N)) / N, N = $N)"
printf '%-14s %8s %8s %8s %8s\n' what 16 64 256 4096
for what in gmalloc anr-plain anr-track; do
	line=$(printf '%-14s' "$what")
	for size in 16 64 256 4096; do
		case $what in
		gmalloc)
			i1=$(GMALLOC_CONF=/dev/null LD_PRELOAD=$gm irefs "$tmp/pair_loop" "$size" "$N")
			i2=$(GMALLOC_CONF=/dev/null LD_PRELOAD=$gm irefs "$tmp/pair_loop" "$size" $((2 * N)));;
		anr-*)
			i1=$(irefs "$tmp/pairs" "$size" "$N" "${what#anr-}")
			i2=$(irefs "$tmp/pairs" "$size" $((2 * N)) "${what#anr-}");;
		esac
		line="$line $(printf '%8d' $(( (i2 - i1) / N )))"
	done
	echo "$line"
done

echo
echo "== lock operations (pthread_mutex_lock/trylock/unlock) per pair"
printf '%-14s %8s %8s %8s %8s\n' what 16 64 256 4096
for mode in plain track; do
	line=$(printf '%-14s' "anr-$mode")
	for size in 16 64 256 4096; do
		line="$line $(printf '%8s' "$("$tmp/pairs_locks" "$size" "$N" "$mode" 2>/dev/null)")"
	done
	echo "$line"
done
