#!/bin/sh
# libmbclient.so exports exactly the functions declared in mbclient.h.
. "$top_srcdir/tests/lib.sh"
command -v nm >/dev/null || skip "needs nm"
so=$(ls "$top_builddir"/libmbclient/.libs/libmbclient.so.*.*.* 2>/dev/null | head -1)
[ -n "$so" ] || skip "no shared libmbclient built"
mk_tmpdir
nm -D --defined-only "$so" | awk '$2 ~ /^[TDBRVW]$/ { print $3 }' | sed 's/@.*//' | sort -u >"$TEST_TMP/exported"
sed -n 's/^[a-z_0-9 ]*[ *]\(mb_[a-z_]*\)(.*/\1/p' "$top_srcdir/libmbclient/mbclient.h" | sort -u >"$TEST_TMP/declared"
[ -s "$TEST_TMP/declared" ] || fail "found no declarations in mbclient.h"
grep -qx mb_open "$TEST_TMP/declared" || fail "header parse missed mb_open"
if ! cmp -s "$TEST_TMP/exported" "$TEST_TMP/declared"; then
	diff "$TEST_TMP/declared" "$TEST_TMP/exported"
	fail "exported symbols differ from the API (< declared, > exported)"
fi
# The undefined symbols show the library makes no heap or stdio call.
for f in malloc calloc realloc free posix_memalign aligned_alloc printf fprintf \
	 perror puts fputs fwrite fopen snprintf sprintf vsnprintf strdup; do
	if nm -D --undefined-only "$so" | awk '{ print $2 }' | sed 's/@.*//' | grep -qx "$f"; then
		fail "libmbclient.so imports $f"
	fi
done
echo "exports: $(wc -l <"$TEST_TMP/exported") mb_* functions"
