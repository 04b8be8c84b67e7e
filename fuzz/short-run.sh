#!/bin/sh
# short-run.sh TARGET - one test of make check-fuzz: replay every kept
# crash (fuzz/regress/TARGET) and the seeds (fuzz/corpus/TARGET) through
# fuzz/fuzz_TARGET, then fuzz it for FUZZ_SECONDS (default 25) from the
# seeds.  New inputs go to a temporary directory, never into the source
# tree.  A crash fails the test and leaves the input in
# $top_builddir/fuzz/crash-TARGET-* with the command that replays it.
# Without a fuzzer-capable compiler the test is skipped (exit 77).
: "${top_builddir:?run through make check}"
: "${top_srcdir:?run through make check}"
t=${1:?target}
bin=$top_builddir/fuzz/fuzz_$t
secs=${FUZZ_SECONDS:-25}

if [ ! -x "$bin" ]; then
	echo "SKIP: fuzz_$t not built: configure found no compiler that links"
	echo "      -fsanitize=fuzzer (configure with CC=clang)"
	exit 77
fi
# The track_fs harness charges against a real broker.
FUZZ_MBSERVER=$top_builddir/mbserver/mbserver; export FUZZ_MBSERVER

tmp=$(mktemp -d "${TMPDIR:-/tmp}/fuzz-$t.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/corpus"
# The harnesses' own sockets and directories go there too, even after a crash.
TMPDIR=$tmp; export TMPDIR
# A fixed seed (FUZZ_SEED) makes a run repeatable as far as timing allows.
opts="-timeout=20 -rss_limit_mb=2048 -max_len=4096 -seed=${FUZZ_SEED:-1}"

report_crash() {
	for a in "$tmp"/crash-* "$tmp"/timeout-* "$tmp"/leak-* "$tmp"/oom-*; do
		[ -f "$a" ] || continue
		keep=$top_builddir/fuzz/$(basename "$a" | sed "s/^\([a-z]*\)-/\1-$t-/")
		cp "$a" "$keep"
		echo "FAIL: fuzz_$t: input kept in $keep"
		echo "      replay: $bin $keep"
		od -An -tx1 "$keep" | head -8
	done
}

# 1. Every crash found so far, and the seeds, run once each.
set --
[ -d "$top_srcdir/fuzz/regress/$t" ] && set -- "$top_srcdir/fuzz/regress/$t"/*
[ -e "${1:-}" ] || set --
nreg=$#
for f in "$top_srcdir/fuzz/corpus/$t"/*; do
	[ -f "$f" ] && set -- "$@" "$f"
done
if [ $# -gt 0 ]; then
	if ! "$bin" $opts -artifact_prefix="$tmp/" "$@" >"$tmp/replay.log" 2>&1; then
		tail -40 "$tmp/replay.log"
		report_crash
		echo "FAIL: fuzz_$t: a kept input crashes ($nreg regression inputs, $(( $# - nreg )) seeds)"
		exit 1
	fi
fi
echo "fuzz_$t: $nreg regression inputs and $(( $# - nreg )) seeds replayed"

# 2. A short run from the seeds.
if ! "$bin" $opts -max_total_time="$secs" -print_final_stats=1 \
	-artifact_prefix="$tmp/" "$tmp/corpus" "$top_srcdir/fuzz/corpus/$t" \
	>"$tmp/run.log" 2>&1; then
	grep -v '^#[0-9]' "$tmp/run.log" | tail -60
	report_crash
	exit 1
fi
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$tmp/run.log")
cov=$(grep -E '^#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE)' "$tmp/run.log" | tail -1 |
	sed -n 's/.* cov: \([0-9]*\).*/\1/p')
rate=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$tmp/run.log" | sed -n 's/.*exec\/s: \([0-9]*\).*/\1/p')
echo "fuzz_$t: PASS: ${runs:-?} inputs in ${secs} s (${rate:-?}/s), coverage ${cov:-?} edges, no crash"
