#!/bin/sh
# stress-ng's malloc stressor (forked workers, threads) on gmalloc.
. "$top_srcdir/tests/gmalloc/gmlib.sh"
need_cmd stress-ng

pre stress-ng --malloc 2 --malloc-bytes 32M --malloc-pthreads 2 --malloc-touch \
	-t 3s --temp-path "$TEST_TMP" --metrics-brief >"$TEST_TMP/out" 2>&1 ||
	{ cat "$TEST_TMP/out"; fail "stress-ng failed"; }
grep -q 'successful run completed' "$TEST_TMP/out" || { cat "$TEST_TMP/out"; fail "stress-ng did not complete"; }
echo "stress ok"
