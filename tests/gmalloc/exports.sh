#!/bin/sh
# libgmalloc.so exports the whole malloc family and nothing else but its
# gmalloc_* extensions and pthread_create (where page_return_thread = auto
# starts its thread); and a program it is preloaded into loads no other
# library for it (each cost a process about 0.1 ms at start): the broker
# client and libgcc's unwinder are inside.
. "$top_srcdir/tests/gmalloc/gmlib.sh"
need_cmd nm

nm -D --defined-only "$GMLIB" | awk '$2 ~ /^[TWiV]$/ {print $3}' | sed 's/@.*//' | sort >"$TEST_TMP/exported"
required="malloc free calloc realloc reallocarray posix_memalign aligned_alloc
memalign valloc pvalloc malloc_usable_size malloc_trim mallinfo mallinfo2
mallopt malloc_stats malloc_info cfree __libc_malloc __libc_free __libc_calloc
__libc_realloc __libc_memalign __libc_valloc __libc_pvalloc gmalloc_report
gmalloc_owns gmalloc_stats pthread_create"
for s in $required; do
	grep -qx "$s" "$TEST_TMP/exported" || fail "$s is not exported"
done
extra=$(grep -v -x -e '__libc_mallinfo' -e '__libc_mallopt' $(for s in $required; do printf -- '-e %s ' "$s"; done) "$TEST_TMP/exported" || true)
[ -z "$extra" ] || fail "exported beyond the malloc family: $extra"
echo "exports ok: $(wc -l <"$TEST_TMP/exported") symbols"

LD_PRELOAD=$GMLIB GMALLOC_CONF=/dev/null cat /proc/self/maps >"$TEST_TMP/maps" ||
	fail "cat under LD_PRELOAD failed"
grep -q libgmalloc "$TEST_TMP/maps" || fail "libgmalloc.so is not mapped: $(cat "$TEST_TMP/maps")"
loaded=$(grep -o -e 'libmbclient[^ ]*' -e 'libgcc_s[^ ]*' "$TEST_TMP/maps" | sort -u | tr '\n' ' ')
[ -z "$loaded" ] || fail "a preloaded process loads $loaded"
echo "a preloaded process maps neither libmbclient nor libgcc_s"
