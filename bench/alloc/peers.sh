# bench/alloc/peers.sh - sourced by run.sh and core.sh (needs $gm set):
# the allocators compared, as name:library-to-preload ("glibc:" preloads
# nothing; a peer that is not installed has an empty library), and median.
findlib() {
	for d in /usr/lib/x86_64-linux-gnu /usr/lib/aarch64-linux-gnu /usr/lib64 /usr/lib; do
		[ -f "$d/$1" ] && { echo "$d/$1"; return 0; }
	done
	echo ""
}
allocs="glibc: gmalloc:$gm jemalloc:$(findlib libjemalloc.so.2) mimalloc:$(findlib libmimalloc.so.2) tcmalloc:$(findlib libtcmalloc_minimal.so.4)"

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
