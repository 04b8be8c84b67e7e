#!/bin/sh
# What the limit counts (gmalloc(3)): every page of every block handed out,
# touched or not, plus the free pages kept; so resident memory never passes
# it.  A 48 MiB table is refused under a 32 MiB limit even if only 8 MiB of
# it would be touched; a 24 MiB one, fully touched, fits.  With
# on_limit=null the first refusal is said in one line on stderr, and only
# the first.
. "$top_srcdir/tests/gmalloc/gmlib.sh"

GMALLOC_LIMIT=32M pre "$FAMILY" table 24 24 >"$TEST_TMP/out" 2>"$TEST_TMP/err" || { cat "$TEST_TMP/err"; fail "table 24 failed"; }
grep -q '^table ok$' "$TEST_TMP/out" || fail "a 24 MiB table under a 32 MiB limit: $(cat "$TEST_TMP/out")"
[ -s "$TEST_TMP/err" ] && { cat "$TEST_TMP/err"; fail "messages without a refusal"; }

GMALLOC_LIMIT=32M pre "$FAMILY" table 48 8 >"$TEST_TMP/out" 2>"$TEST_TMP/err" || { cat "$TEST_TMP/err"; fail "table 48 failed"; }
grep -q '^table refused errno 12 twice$' "$TEST_TMP/out" || fail "48 MiB table, 8 MiB touched, under 32 MiB: $(cat "$TEST_TMP/out")"
n=$(grep -c 'out of memory: .* refused .* malloc returns NULL' "$TEST_TMP/err")
[ "$n" = 1 ] || { cat "$TEST_TMP/err"; fail "$n refusal lines on stderr for two refusals, expected 1"; }
[ "$(wc -l <"$TEST_TMP/err")" = 1 ] || { cat "$TEST_TMP/err"; fail "more than the refusal line on stderr"; }

# The man page says the same.
MAN="$top_srcdir/man/gmalloc.3"
grep -q 'touched or not' "$MAN" || fail "gmalloc(3) does not say that untouched pages count"
echo "limit counts ok: $(cat "$TEST_TMP/err")"
