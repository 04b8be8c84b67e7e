# bench/alloc/peers.sh - sourced by run.sh, core.sh and suite.sh (needs $here
# set, reads the caller's first argument): the build directory ($build),
# the source tree ($src), libgmalloc.so ($gm), the allocators compared, as
# name:library-to-preload ("glibc:" preloads nothing; a peer that is not
# installed has an empty library), those installed ($present), and median.
build=${1:-${top_builddir:-$here/../../build}}
build=$(cd "$build" && pwd)
src=$(cd "$here/../.." && pwd)
gm="$build/gmalloc/.libs/libgmalloc.so"
[ -f "$gm" ] || { echo "build libgmalloc.so first ($gm)" >&2; exit 1; }
findlib() {
	for d in /usr/lib/x86_64-linux-gnu /usr/lib/aarch64-linux-gnu /usr/lib64 /usr/lib; do
		[ -f "$d/$1" ] && { echo "$d/$1"; return 0; }
	done
	echo ""
}
allocs="glibc: gmalloc:$gm jemalloc:$(findlib libjemalloc.so.2) mimalloc:$(findlib libmimalloc.so.2) tcmalloc:$(findlib libtcmalloc_minimal.so.4)"
present=""
for a in $allocs; do
	case $a in glibc:* | *:?*) present="$present $a" ;; esac
done

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
