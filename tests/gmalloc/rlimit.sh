#!/bin/sh
# Under an address-space limit (ulimit -v) the heap reserves only part of
# the room the limit leaves (gmalloc(3)), says so in one line, and the
# program keeps room for its other mappings: ls and python3 work where they
# work on glibc.
. "$top_srcdir/tests/gmalloc/gmlib.sh"

AS_KIB=50000        # about 49 MiB of address space in all
PY=/usr/bin/python3
PY_SCRIPT='import json; d = {i: str(i) for i in range(20000)}; print(len(json.dumps(d)))'

limited() { (ulimit -v $AS_KIB && "$@"); }

# The test is only meaningful if glibc manages.
limited ls -la /usr/lib >/dev/null 2>&1 || skip "ls fails under ulimit -v $AS_KIB even on glibc"

limited env LD_PRELOAD="$GMLIB" ls -la /usr/lib >"$TEST_TMP/out" 2>"$TEST_TMP/err" ||
	{ cat "$TEST_TMP/err"; fail "ls under ulimit -v $AS_KIB failed"; }
n=$(grep -c 'reservation cut from .* to .*RLIMIT_AS' "$TEST_TMP/err")
[ "$n" = 1 ] || { cat "$TEST_TMP/err"; fail "$n reservation lines on stderr, expected 1"; }
[ "$(wc -l <"$TEST_TMP/err")" = 1 ] || { cat "$TEST_TMP/err"; fail "ls said more than the reservation line"; }

if [ -x "$PY" ] && limited "$PY" -c "$PY_SCRIPT" >"$TEST_TMP/want" 2>/dev/null; then
	limited env LD_PRELOAD="$GMLIB" "$PY" -c "$PY_SCRIPT" >"$TEST_TMP/out" 2>"$TEST_TMP/err" ||
		{ cat "$TEST_TMP/err"; fail "python3 under ulimit -v $AS_KIB failed"; }
	cmp -s "$TEST_TMP/want" "$TEST_TMP/out" || fail "python3 printed $(cat "$TEST_TMP/out"), glibc $(cat "$TEST_TMP/want")"
else
	echo "python3 not run (missing, or fails on glibc under the limit)"
fi

# The heap still gets its share: with less than 128 MiB of room the rule
# leaves the program half of it, so 16 MiB of blocks must fit.
limited env LD_PRELOAD="$GMLIB" "$FAMILY" fill 200 >"$TEST_TMP/out" 2>"$TEST_TMP/err" ||
	{ cat "$TEST_TMP/err"; fail "fill under ulimit -v failed"; }
read -r _ mib _ _ err <"$TEST_TMP/out"
[ "$mib" -ge 16 ] || { cat "$TEST_TMP/err"; fail "only $mib MiB allocated under ulimit -v $AS_KIB"; }

# Without a limit nothing is said.
env LD_PRELOAD="$GMLIB" ls / >/dev/null 2>"$TEST_TMP/err" || fail "ls without a limit failed"
[ -s "$TEST_TMP/err" ] && { cat "$TEST_TMP/err"; fail "messages without a limit"; }
echo "rlimit ok: $mib MiB of blocks under ulimit -v $AS_KIB"
