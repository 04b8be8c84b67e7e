#!/bin/sh
# test.sh - the whole test suite: installs missing build dependencies,
# bootstraps, configures and builds, then runs
#   1. make check (every test, real components) on a -Werror build,
#   2. the unit tests under AddressSanitizer + UndefinedBehaviorSanitizer,
#   3. the unit tests under valgrind memcheck,
#   4. a short run of each libFuzzer harness (fuzz/, built with clang;
#      FUZZ_SECONDS each, default 25; bench/fuzz/run.sh runs them longer),
# and ends with one line "N passed, N failed, N skipped".
TOP=$(cd "$(dirname "$0")" && pwd)
. "$TOP/scripts/deps.sh"

install_packages $DEB_BUILD $DEB_TEST $DEB_FUZZ
bootstrap

B=$TOP/build
pass=0 failn=0 skipn=0 status=0

tally() { # tally BUILDDIR: add the counts of its last make check
	for log in $(find "$1" -name test-suite.log 2>/dev/null); do
		p=$(sed -n 's/^# PASS: *//p' "$log" | head -1)
		f=$(sed -n 's/^# FAIL: *//p' "$log" | head -1)
		e=$(sed -n 's/^# ERROR: *//p' "$log" | head -1)
		x=$(sed -n 's/^# XPASS: *//p' "$log" | head -1)
		s=$(sed -n 's/^# SKIP: *//p' "$log" | head -1)
		pass=$((pass + ${p:-0})); failn=$((failn + ${f:-0} + ${e:-0} + ${x:-0})); skipn=$((skipn + ${s:-0}))
	done
}

stage() { # stage NAME BUILDDIR TARGET CONFIGURE-ARGS...
	name=$1 dir=$2 target=$3; shift 3
	echo "== $name"
	build_tree "$dir" --enable-werror "$@" || { echo "$name: build failed"; status=1; return; }
	rm -f "$dir/test-suite.log"
	if ! make -C "$dir" --no-print-directory -j"$(nproc)" "$target" >"$dir/check.out" 2>&1; then
		status=1
		grep -E '^(FAIL|ERROR|XPASS)' "$dir/check.out" || tail -40 "$dir/check.out"
		find "$dir" -name test-suite.log -exec cat {} + | head -300
	fi
	grep -E '^# (TOTAL|PASS|SKIP|FAIL|ERROR)' "$dir/check.out" | tr '\n' ' '; echo
	grep -E '^SKIP' "$dir/check.out" || true
	tally "$dir"
}

stage "make check" "$B/plain" check CFLAGS="-O2 -g"
stage "unit tests under ASan+UBSan" "$B/asan" check-unit \
	CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	LDFLAGS="-fsanitize=address,undefined"
stage "unit tests under valgrind memcheck" "$B/valgrind" check-valgrind CFLAGS="-O1 -g"

# The harnesses only: the rest of the tree is tested above.
echo "== short fuzz runs (libFuzzer, ASan+UBSan, ${FUZZ_SECONDS:-25} s each)"
F=$B/fuzz
mkdir -p "$F"
if [ ! -f "$F/Makefile" ] &&
   ! (cd "$F" && "$TOP/configure" --quiet --enable-werror CC=clang CFLAGS="-O1 -g"); then
	echo "fuzz: configure failed"; status=1
elif ! make -C "$F" --no-print-directory -j"$(nproc)" check-fuzz >"$F/check.out" 2>&1; then
	status=1
	grep -E '^(FAIL|ERROR)' "$F/check.out" || tail -40 "$F/check.out"
	for log in "$F"/fuzz/*.sh.log; do grep -q '^FAIL' "$log" && tail -80 "$log"; done
fi
cat "$F"/fuzz/*.sh.log 2>/dev/null | grep -E '^(fuzz_[a-z]*: PASS|SKIP|FAIL)' || true
grep -E '^# (TOTAL|PASS|SKIP|FAIL|ERROR)' "$F/check.out" | tr '\n' ' '; echo
tally "$F"

echo "tests: $pass passed, $failn failed, $skipn skipped"
[ "$failn" = 0 ] || status=1
exit $status
