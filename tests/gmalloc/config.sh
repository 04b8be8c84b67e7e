#!/bin/sh
# Config errors in a real program: one clear line naming the file:line or
# the variable, and the program runs on with the default.
. "$top_srcdir/tests/gmalloc/gmlib.sh"

out=$(echo hello | GMALLOC_LIMTI=5M pre cat 2>"$TEST_TMP/err") || fail "echo failed"
[ "$out" = hello ] || fail "echo printed '$out'"
grep -q 'GMALLOC_LIMTI' "$TEST_TMP/err" || { cat "$TEST_TMP/err"; fail "unknown variable not named"; }
[ "$(wc -l <"$TEST_TMP/err")" -eq 1 ] || { cat "$TEST_TMP/err"; fail "expected one line"; }

printf 'limit = 64M\nlimit = plenty\nreport_at_exit = yes\n' >"$TEST_TMP/gm.conf"
out=$(echo hello | GMALLOC_CONF="$TEST_TMP/gm.conf" pre cat 2>"$TEST_TMP/err") || fail "echo failed"
[ "$out" = hello ] || fail "echo printed '$out'"
grep -q "$TEST_TMP/gm.conf:2: limit" "$TEST_TMP/err" || { cat "$TEST_TMP/err"; fail "bad line not named"; }
# The good lines around it still apply.
grep -q 'limit=64.0 MiB' "$TEST_TMP/err" || { cat "$TEST_TMP/err"; fail "limit from line 1 lost"; }

out=$(echo hello | GMALLOC_CONF="$TEST_TMP/nope.conf" pre cat 2>"$TEST_TMP/err") || fail "echo failed"
[ "$out" = hello ] || fail "echo printed '$out'"
grep -q "GMALLOC_CONF=$TEST_TMP/nope.conf" "$TEST_TMP/err" || { cat "$TEST_TMP/err"; fail "missing file not reported"; }

# The report on a signal, from a program that is busy.
GMALLOC_REPORT_SIGNAL=USR2 pre sh -c 'kill -USR2 $$; echo after' >"$TEST_TMP/out" 2>"$TEST_TMP/err" || fail "sh failed"
grep -qx after "$TEST_TMP/out" || fail "program did not go on after the signal"
check_report "$TEST_TMP/err"
echo "config ok"
