#!/bin/sh
# backtrace_depth: each block keeps the call stack of its allocation and
# the report lists live blocks by call site, naming each frame as
# file+address.  The sites of gm_family are known functions: the address
# of frame #0 must fall inside the right one (per nm), with exact counts.
. "$top_srcdir/tests/gmalloc/gmlib.sh"
need_cmd nm

exe=$(readlink -f "$FAMILY")
nm -S --defined-only "$FAMILY" >"$TEST_TMP/syms" || fail "nm $FAMILY"

# site_of ADDR: the function of gm_family holding ADDR (hex, no 0x).
site_of() {
	awk -v a="$1" '
	function hex(s,   i, c, v) { v = 0; s = tolower(s)
		for (i = 1; i <= length(s); i++) { c = index("0123456789abcdef", substr(s, i, 1)) - 1; v = v * 16 + c }
		return v }
	NF == 4 && hex($1) <= hex(a) && hex(a) < hex($1) + hex($2) { sub(/\..*/, "", $4); print $4; exit }' "$TEST_TMP/syms"
}

# check_sites FILE: each known site heads its own entry with exact figures.
check_sites() {
	for want in "100000 bytes in 1000 blocks:site_small" \
		    "500000 bytes in 10 blocks:site_zeroed" \
		    "30000 bytes in 1 blocks:site_grow" \
		    "21000 bytes in 3 blocks:site_aligned"; do
		head=${want%:*}
		fn=${want#*:}
		frame=$(awk -v h="  $head" '$0 == h { getline; print; exit }' "$1")
		[ -n "$frame" ] || { cat "$1"; fail "no entry '$head'"; }
		case $frame in
		"    #0 $exe+0x"*) ;;
		*) cat "$1"; fail "entry '$head': frame #0 is not in $exe: $frame" ;;
		esac
		got=$(site_of "${frame##*+0x}")
		[ "$got" = "$fn" ] || { cat "$1"; fail "entry '$head': frame #0 ${frame##* } is in '$got', not $fn"; }
	done
}

GMALLOC_BACKTRACE_DEPTH=4 pre "$FAMILY" sites >"$TEST_TMP/out" 2>"$TEST_TMP/err" ||
	{ cat "$TEST_TMP/err" "$TEST_TMP/out"; fail "gm_family sites failed"; }
grep -q '^gmalloc: live blocks by call site (backtrace_depth 4): ' "$TEST_TMP/out" ||
	{ cat "$TEST_TMP/out"; fail "no call-site section"; }
check_sites "$TEST_TMP/out"
# No more frames than asked for.
if grep -q '^    #4 ' "$TEST_TMP/out"; then fail "more than 4 frames listed"; fi

# Together with guard words (one trailer holds both).
GMALLOC_BACKTRACE_DEPTH=16 GMALLOC_GUARD=on pre "$FAMILY" sites >"$TEST_TMP/out" 2>"$TEST_TMP/err" ||
	{ cat "$TEST_TMP/err"; fail "gm_family sites failed with guard"; }
check_sites "$TEST_TMP/out"
if GMALLOC_BACKTRACE_DEPTH=8 GMALLOC_GUARD=on pre "$FAMILY" overflow >/dev/null 2>"$TEST_TMP/err"; then
	fail "overflow not detected with guard and backtrace_depth"
fi
grep -q 'guard words of block .* overwritten' "$TEST_TMP/err" || { cat "$TEST_TMP/err"; fail "no guard report"; }

# Off by default: no section, no trailer.
pre "$FAMILY" sites >"$TEST_TMP/out" 2>"$TEST_TMP/err" || fail "gm_family sites failed without backtraces"
if grep -q 'call site' "$TEST_TMP/out"; then fail "call-site section with backtrace_depth 0"; fi

# Every entry point with trailers, threads and fork.
GMALLOC_BACKTRACE_DEPTH=8 pre "$FAMILY" family >"$TEST_TMP/out" 2>"$TEST_TMP/err" ||
	{ cat "$TEST_TMP/err"; fail "gm_family family failed with backtrace_depth 8"; }
grep -qx 'family ok' "$TEST_TMP/out" || fail "no success line (backtrace_depth 8)"

# Bad values: one line naming the variable, and the default or the cap.
GMALLOC_BACKTRACE_DEPTH=17 pre "$FAMILY" sites >"$TEST_TMP/out" 2>"$TEST_TMP/err" || fail "depth 17 failed"
grep -q 'backtrace_depth above 16: using 16' "$TEST_TMP/err" || { cat "$TEST_TMP/err"; fail "no warning for 17"; }
grep -q 'call site (backtrace_depth 16)' "$TEST_TMP/out" || fail "depth 17 not capped to 16"
GMALLOC_BACKTRACE_DEPTH=lots pre "$FAMILY" sites >"$TEST_TMP/out" 2>"$TEST_TMP/err" || fail "bad depth failed"
grep -q 'GMALLOC_BACKTRACE_DEPTH' "$TEST_TMP/err" || { cat "$TEST_TMP/err"; fail "bad value not reported"; }
if grep -q 'call site' "$TEST_TMP/out"; then fail "bad value did not leave the default 0"; fi

# The report from a signal handler while three threads allocate: each of
# the 30 signals gives a report, none deadlocks.
GMALLOC_BACKTRACE_DEPTH=8 GMALLOC_REPORT_SIGNAL=USR2 \
	timeout 120 env LD_PRELOAD="$GMLIB" "$FAMILY" sigreport 30 >"$TEST_TMP/out" 2>"$TEST_TMP/err" ||
	{ tail -20 "$TEST_TMP/err"; fail "sigreport failed or hung (status $?)"; }
grep -qx 'reports done' "$TEST_TMP/out" || fail "no end line"
n=$(grep -c '^gmalloc: pid' "$TEST_TMP/err")
[ "$n" -eq 30 ] || fail "$n reports for 30 signals"
n=$(grep -c '^gmalloc: live blocks by call site' "$TEST_TMP/err")
[ "$n" -eq 30 ] || fail "$n call-site sections for 30 signals"
echo "backtrace ok: $(grep -c 'live blocks by call site (' "$TEST_TMP/err") of 30 signal reports listed sites"
