#!/bin/sh
# libanrmalloc.so exports the anr_* API and nothing else: neither the
# core's calls (anrc_alloc, anrc_free, ...) nor the shared internals (mb_*).
# anr_free and anr_realloc (the 2013 names) and anr_malloc_free and
# anr_malloc_realloc are exported as one function each.
. "$top_srcdir/tests/lib.sh"

LIB="$top_builddir/anrmalloc/.libs/libanrmalloc.so"
[ -f "$LIB" ] || skip "no shared libanrmalloc.so in this build"
command -v nm >/dev/null || skip "needs nm"
mk_tmpdir
nm -D --defined-only "$LIB" | awk '$2 ~ /^[TDBRVW]$/ { print $3 }' | sort >"$TEST_TMP/syms"
[ -s "$TEST_TMP/syms" ] || fail "no symbols exported"
bad=$(grep -v '^anr_' "$TEST_TMP/syms")
[ -z "$bad" ] || fail "exported outside the API: $bad"
core=$(grep '^anrc_' "$TEST_TMP/syms")
[ -z "$core" ] || fail "core calls are exported: $core"
for api in anr_malloc anr_malloc_if_available anr_free anr_realloc anr_realloc_dbg \
	anr_malloc_free anr_malloc_realloc anr_malloc_realloc_dbg \
	anr_calloc anr_memalign anr_heap_create anr_gc_collect anr_gc_mark \
	anr_broker_fd anr_broker_dispatch anr_verify anr_set_debug_info anr_heap_report; do
	grep -qx "$api" "$TEST_TMP/syms" || fail "$api is not exported"
done
# The same function under both names: one address.
addr() { nm -D --defined-only "$LIB" | awk -v s="$1" '$3 == s { print $1 }'; }
for pair in anr_free:anr_malloc_free anr_realloc:anr_malloc_realloc \
	anr_realloc_dbg:anr_malloc_realloc_dbg; do
	new=${pair%%:*} old=${pair#*:}
	[ "$(addr "$new")" = "$(addr "$old")" ] || fail "$old is not $new"
done
echo "PASS: $(wc -l <"$TEST_TMP/syms") symbols, all public API"
