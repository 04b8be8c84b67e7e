#!/bin/sh
# bench/fuzz/run.sh [TARGET...] - longer runs of the libFuzzer harnesses.
#
# Builds the harnesses in build/fuzz (configured with CC=clang, as test.sh
# does) and runs each TARGET (default: wire broker conf client trackfs) for
# FUZZ_SECONDS (default 300), one after the other, on one core.  Each run starts
# from the committed seeds (fuzz/corpus/TARGET) and the inputs earlier runs
# found (build/fuzz/corpus-TARGET, kept between runs, never in the source
# tree).  Prints one line per harness: executions, executions per second,
# coverage (libFuzzer's cov: edges and ft: features), corpus size, crashes.
# A crash leaves its input in build/fuzz/crash-TARGET-*: to keep it as a
# regression input, copy it to fuzz/regress/TARGET/ with a name saying what
# it broke (short-run.sh replays that directory in every test run).
# Environment: FUZZ_SECONDS, JOBS (parallel fuzzing processes per harness,
# default 1), FUZZ_OPTS (extra libFuzzer options).
set -eu
TOP=$(cd "$(dirname "$0")/../.." && pwd)
B=$TOP/build/fuzz
SECS=${FUZZ_SECONDS:-300}
JOBS=${JOBS:-1}
[ $# -gt 0 ] || set -- wire broker conf client trackfs

if [ ! -f "$B/Makefile" ]; then
	[ -x "$TOP/configure" ] || (cd "$TOP" && autoreconf -fi >/dev/null 2>&1)
	mkdir -p "$B"
	(cd "$B" && "$TOP/configure" --quiet --enable-werror CC=clang CFLAGS="-O1 -g")
fi
make -C "$B" --no-print-directory -j"$(nproc)" mbserver/mbserver \
	$(for t in "$@"; do printf 'fuzz/fuzz_%s ' "$t"; done) >/dev/null
export FUZZ_MBSERVER="$B/mbserver/mbserver"

printf '%-8s %8s %12s %9s %6s %7s %8s %s\n' harness seconds executions exec/s cov ft corpus crashes
for t in "$@"; do
	bin=$B/fuzz/fuzz_$t
	[ -x "$bin" ] || { echo "$t: no $bin (does clang link -fsanitize=fuzzer?)"; exit 1; }
	work=$B/corpus-$t
	mkdir -p "$work"
	log=$B/bench-$t.log
	rc=0
	if [ "$JOBS" -gt 1 ]; then
		(cd "$B" && "$bin" -max_total_time="$SECS" -timeout=20 -rss_limit_mb=2048 \
			-max_len=4096 -jobs="$JOBS" -workers="$JOBS" -print_final_stats=1 \
			-artifact_prefix="$B/crash-$t-" ${FUZZ_OPTS:-} \
			"$work" "$TOP/fuzz/corpus/$t" >"$log" 2>&1) || rc=$?
	else
		"$bin" -max_total_time="$SECS" -timeout=20 -rss_limit_mb=2048 -max_len=4096 \
			-print_final_stats=1 -artifact_prefix="$B/crash-$t-" ${FUZZ_OPTS:-} \
			"$work" "$TOP/fuzz/corpus/$t" >"$log" 2>&1 || rc=$?
	fi
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | awk '{s += $1} END {print s + 0}')
	last=$(grep -E '^#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE)' "$log" | tail -1)
	cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
	ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
	secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
	[ -n "$secs" ] || secs=$SECS
	rate=$(( runs / (secs > 0 ? secs : 1) ))
	ncorp=$(ls "$work" | wc -l)
	crashes=$(ls "$B" | grep -c "^crash-$t-" || true)
	[ "$rc" = 0 ] || crashes="$crashes (exit $rc; see $log)"
	printf '%-8s %8s %12s %9s %6s %7s %8s %s\n' "$t" "$secs" "$runs" "$rate" \
		"${cov:-?}" "${ft:-?}" "$ncorp" "$crashes"
done
