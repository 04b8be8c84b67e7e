#!/bin/sh
# bench/watermarks/run.sh [BUILDDIR] - what the device view costs and how
# fast the watermarks react.
#
#   1. Reaction: CROSSINGS (default 100) crossings of notify_high through a
#      fake meminfo, each timed from the file being rewritten to the
#      give-back query arriving at a bidi client and to its pages being
#      back.  Two brokers run side by side, one at the default poll
#      interval (100 ms), one at 20 ms; the crossings alternate in rounds
#      of 10 between them.  Medians, p90 and maxima.
#   2. Cost: three idle brokers for IDLE seconds (default 60) at the same
#      time, device = none, meminfo (/proc/meminfo) and cgroup (the
#      broker's own memory cgroup, when there is one), at the default
#      poll interval; CPU time from /proc/PID/stat utime+stime, as a
#      percent of one CPU.
set -eu
B=$(cd "${1:-build}" && pwd)
CROSSINGS=${CROSSINGS:-100}
IDLE=${IDLE:-60}
BENCH="$B/bench/watermarks/wmbench"
SERVER="$B/mbserver/mbserver"
[ -x "$BENCH" ] || { echo "build first: make -C $B bench/watermarks/wmbench"; exit 1; }
T=$(mktemp -d "${TMPDIR:-/tmp}/wmbench.XXXXXX")
PIDS=
cleanup() { for p in $PIDS; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT INT TERM

start() { # start NAME OPTIONS...
	name=$1; shift
	"$SERVER" --config /dev/null --socket "$T/$name.sock" --total 256M \
		--log-level warning "$@" >>"$T/$name.log" 2>&1 &
	PIDS="$PIDS $!"
	eval "PID_$name=$!"
	i=0
	while [ ! -S "$T/$name.sock" ]; do
		i=$((i + 1)); [ $i -gt 200 ] && { cat "$T/$name.log"; exit 1; }; sleep 0.05
	done
}
stats() { # stats FILE FIELD -> median p90 max (ms)
	sed -n "s/.*$2=\([0-9]*\).*/\1/p" "$1" | sort -n | awk '
		{ v[NR] = $1 }
		END { printf "median %.1f ms  p90 %.1f ms  max %.1f ms  (n=%d)",
		      v[int((NR + 1) / 2)] / 1000, v[int(NR * 0.9 + 0.5)] / 1000, v[NR] / 1000, NR }'
}

echo "== reaction time over $CROSSINGS crossings (16 MiB held by the bidi client)"
for poll in 100 20; do
	printf 'MemTotal: 1048576 kB\nMemAvailable: 943718 kB\n' >"$T/mi$poll"
	start p$poll -o device=meminfo -o device_meminfo="$T/mi$poll" -o device_poll=${poll}ms \
		-o notify_high=50% -o notify_low=40% -o giveback_retry=60s
done
done_n=0
while [ $done_n -lt "$CROSSINGS" ]; do
	for poll in 100 20; do
		"$BENCH" "$T/p$poll.sock" "$T/mi$poll" 10 16M >>"$T/r$poll" || exit 1
	done
	done_n=$((done_n + 10))
done
for poll in 100 20; do
	echo "device_poll ${poll}ms: query $(stats "$T/r$poll" query_us)"
	echo "device_poll ${poll}ms: back  $(stats "$T/r$poll" back_us)"
done

echo "== CPU of an idle broker over ${IDLE}s at the default poll interval"
start none
start meminfo -o device=meminfo
start cgroup -o device=cgroup
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
a_none=$(ticks "$PID_none"); a_mi=$(ticks "$PID_meminfo"); a_cg=$(ticks "$PID_cgroup")
sleep "$IDLE"
b_none=$(ticks "$PID_none"); b_mi=$(ticks "$PID_meminfo"); b_cg=$(ticks "$PID_cgroup")
pct() { awk -v t="$1" -v hz="$hz" -v s="$IDLE" 'BEGIN { printf "%.3f%% of one CPU (%d ticks)", 100 * t / hz / s, t }'; }
echo "device = none:    $(pct $((b_none - a_none)))"
echo "device = meminfo: $(pct $((b_mi - a_mi)))"
if grep -q "cannot" "$T/cgroup.log"; then
	echo "device = cgroup:  (no memory cgroup found)"
else
	echo "device = cgroup:  $(pct $((b_cg - a_cg)))"
fi
