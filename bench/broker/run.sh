#!/bin/sh
# bench/broker/run.sh [BUILDDIR] - broker round trips against the ceiling.
#
# Measures, on this machine, against a real mbserver on a private socket:
#   - REQUEST+RETURN round trips per second and p50/p99 latency with 1, 100
#     and 1000 connected clients (the calls go round-robin over all of them);
#   - the give-back round trip: a REQUEST served by a share query to a bidi
#     client that answers from its own thread (poll + mb_dispatch);
#   - a raw Unix-socket ping-pong with the same frame sizes (the ceiling).
# Each figure is the median of RUNS runs (default 5).  Prints the ratios.
# Environment: RUNS, ITERS (round trips per run, default 40000).
set -eu
B=$(cd "${1:-build}" && pwd)
RUNS=${RUNS:-5}
ITERS=${ITERS:-40000}
BENCH="$B/bench/broker/mbbench"
SERVER="$B/mbserver/mbserver"
[ -x "$BENCH" ] || { echo "build first: make -C $B bench/broker/mbbench"; exit 1; }
[ -x "$SERVER" ] || { echo "no $SERVER"; exit 1; }

T=$(mktemp -d "${TMPDIR:-/tmp}/mbbench.XXXXXX")
SPID=
cleanup() { [ -n "$SPID" ] && kill "$SPID" 2>/dev/null; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT INT TERM
ulimit -n 4096 2>/dev/null || true

start_server() { # start_server TOTAL
	"$SERVER" --config /dev/null --socket "$T/mb.sock" --total "$1" \
		--log-level warning >>"$T/server.log" 2>&1 &
	SPID=$!
	i=0
	while [ ! -S "$T/mb.sock" ]; do
		i=$((i + 1)); [ $i -gt 200 ] && { cat "$T/server.log"; exit 1; }; sleep 0.05
	done
}
stop_server() { kill "$SPID"; wait "$SPID" 2>/dev/null || true; SPID=; rm -f "$T/mb.sock"; }

# field LINE NAME -> value of NAME=value (units stripped)
field() { printf '%s\n' "$1" | tr ' ' '\n' | sed -n "s/^$2=\([0-9.]*\).*/\1/p"; }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# run LABEL CMD... : RUNS runs, medians into $RATE $P50 $P99
run() {
	label=$1; shift
	: >"$T/runs"
	r=0
	while [ $r -lt "$RUNS" ]; do
		"$@" >>"$T/runs"
		r=$((r + 1))
	done
	RATE=$(while read -r l; do field "$l" rate; done <"$T/runs" | median)
	P50=$(while read -r l; do field "$l" p50; done <"$T/runs" | median)
	P99=$(while read -r l; do field "$l" p99; done <"$T/runs" | median)
	printf '%-28s %12s %10s %10s\n' "$label" "$RATE" "$P50" "$P99"
}

echo "machine: $(nproc) cpus, $(uname -sr); $RUNS runs of $ITERS round trips, medians"
printf '%-28s %12s %10s %10s\n' "" "round trips/s" "p50 us" "p99 us"

run "raw unix ping-pong" "$BENCH" pingpong "$ITERS"
PP_RATE=$RATE; PP_P50=$P50

start_server 4096p
run "REQUEST+RETURN, 1 client" "$BENCH" rt "$T/mb.sock" 1 "$((ITERS / 2))"
R1=$RATE; P50_1=$P50
run "REQUEST+RETURN, 100 clients" "$BENCH" rt "$T/mb.sock" 100 "$((ITERS / 2))"
run "REQUEST+RETURN, 1000 clients" "$BENCH" rt "$T/mb.sock" 1000 "$((ITERS / 2))"
R1000_P99=$P99
stop_server

GB=$((ITERS / 4))
: >"$T/runs.gb"
r=0
while [ $r -lt "$RUNS" ]; do
	start_server "${GB}p"
	"$BENCH" giveback "$T/mb.sock" "$GB" >>"$T/runs.gb"
	stop_server
	r=$((r + 1))
done
RATE=$(while read -r l; do field "$l" rate; done <"$T/runs.gb" | median)
P50=$(while read -r l; do field "$l" p50; done <"$T/runs.gb" | median)
P99=$(while read -r l; do field "$l" p99; done <"$T/runs.gb" | median)
printf '%-28s %12s %10s %10s\n' "give-back via bidi client" "$RATE" "$P50" "$P99"
GB_P50=$P50

echo
awk -v r1="$R1" -v pp="$PP_RATE" -v p1="$P50_1" -v pp50="$PP_P50" -v p99="$R1000_P99" \
    -v gb="$GB_P50" 'BEGIN {
	printf "1 client / raw ping-pong rate:     %.0f%% (aim >= 50%%)\n", 100 * r1 / pp
	printf "1 client / raw ping-pong p50:      %.2fx\n", p1 / pp50
	printf "p99 with 1000 clients:             %.1f us (aim < 200 us)\n", p99
	printf "give-back p50 / plain request p50: %.2fx\n", gb / p1
}'
