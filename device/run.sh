#!/bin/sh
# device/run.sh - a simulated swapless device: a memory cgroup without swap
# running the same spiky workloads twice with the same seed, once with the
# suite (mbserver, gmalloc, an anr_malloc cache, a spool on track_fs) and
# once plain (glibc malloc, plain tmpfs, no broker); then the numbers of
# both runs and a timeline chart.  ./demo.sh builds the tree and runs it.
#
# usage: device/run.sh [options]    (device/run.sh --help lists them)
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)

usage() {
	cat <<EOF
usage: device/run.sh [options]
  --seconds N        length of each run's job schedule (default 60)
  --limit MIB        memory limit of the device (default 256)
  --seed N           random seed of the spikes (default 1)
  --scale F          multiply every workload size by F (default: limit/256)
  --renderer MIN:MAX page buffer sizes, MiB (default 24:72 at 256 MiB)
  --pyjob MIN:MAX    python3 structure sizes, MiB (default 16:56)
  --spool MIN:MAX    spool file sizes, MiB (default 8:40)
  --cache MIB        largest cache of the anr_malloc service (default 96)
  --hog MIB          what the process outside the broker grows to (default 32)
  --reserve MIB      device memory kept outside the broker besides the hog:
                     daemons, page cache, interpreter (default 40)
  --notify HIGH:LOW  the broker's notify watermarks, percent of the limit
                     (default 80:75): above HIGH it asks clients to give back
  --deny HIGH:LOW    deny watermarks (default 90:86): above HIGH it refuses
                     new quota to unprivileged clients
  --headroom MIB     device memory the broker never lends (default 8)
  --no-watermarks    the broker's total alone, no device view
  --user UID         run the broker's clients (renderer, pyjob, cache) as
                     this user in both runs, so that deny applies to them
                     (default 65534 when root; 0: as root, exempt from deny)
  --only suite|plain run one of the two
  --out DIR          keep the runs, numbers and chart in DIR (default: a
                     directory under /tmp, printed at the end)
  --build DIR        build tree (default: build/plain)
  --no-chart         skip the chart
EOF
	exit "${1:-0}"
}

SECONDS_RUN=60 LIMIT=256 SEED=1 SCALE="" ONLY="" OUT="" CHART=1
RENDERER="" PYJOB="" SPOOL="" CACHE="" HOG="" RESERVE=""
WATERMARK_NOTIFY=80:75 WATERMARK_DENY=90:86 HEADROOM="" WATERMARKS=1 RUN_UID=""
B=$TOP/build/plain
while [ $# -gt 0 ]; do
	case $1 in
	--seconds) SECONDS_RUN=$2; shift ;;
	--limit) LIMIT=$2; shift ;;
	--seed) SEED=$2; shift ;;
	--scale) SCALE=$2; shift ;;
	--renderer) RENDERER=$2; shift ;;
	--pyjob) PYJOB=$2; shift ;;
	--spool) SPOOL=$2; shift ;;
	--cache) CACHE=$2; shift ;;
	--hog) HOG=$2; shift ;;
	--reserve) RESERVE=$2; shift ;;
	--notify) WATERMARK_NOTIFY=$2; shift ;;
	--deny) WATERMARK_DENY=$2; shift ;;
	--headroom) HEADROOM=$2; shift ;;
	--no-watermarks) WATERMARKS="" ;;
	--user) RUN_UID=$2; shift ;;
	--only) ONLY=$2; shift ;;
	--out) OUT=$2; shift ;;
	--build) B=$2; shift ;;
	--no-chart) CHART="" ;;
	-h|--help) usage 0 ;;
	*) echo "device/run.sh: unknown option $1" >&2; usage 2 >&2 ;;
	esac
	shift
done

# Sizes are given for a 256 MiB device and follow the limit unless set.
[ -n "$SCALE" ] || SCALE=$(awk "BEGIN { print $LIMIT / 256 }")
sz() { awk -v r="$1" -v s="$SCALE" 'BEGIN { n = split(r, a, ":"); o = "";
	for (i = 1; i <= n; i++) o = o (i > 1 ? ":" : "") int(a[i] * s + 0.5); print o }'; }
[ -n "$RENDERER" ] || RENDERER=$(sz 24:72)
[ -n "$PYJOB" ] || PYJOB=$(sz 16:56)
[ -n "$SPOOL" ] || SPOOL=$(sz 8:40)
[ -n "$CACHE" ] || CACHE=$(sz 96)
[ -n "$HOG" ] || HOG=$(sz 32)
[ -n "$RESERVE" ] || RESERVE=$(sz 40)
[ -n "$HEADROOM" ] || HEADROOM=$(sz 8)

# The broker's total, as ARCHITECTURE.md sizes it for a device: the memory
# of the device less what stays outside the broker (here the hog) and the
# reserve for daemons, page cache and interpreters.
TOTAL=$((LIMIT - HOG - RESERVE))
[ "$TOTAL" -gt 0 ] || { echo "device/run.sh: limit $LIMIT MiB leaves no total after hog $HOG and reserve $RESERVE" >&2; exit 2; }

# Memory watermarks of the broker, as ARCHITECTURE.md sets them up for a
# device: mbserver reads the device's memory cgroup (its limit is the
# device total, its usage less inactive page cache is what the marks are
# compared with) every device_poll.  Above notify_high it asks bidirectional
# clients (the cache) to give back down to notify_low and tells gmalloc
# programs, which return their free pages; above deny_high it refuses new
# quota to unprivileged clients until the device falls under deny_low; the
# pool follows the device, less headroom, as the hog grows.  Marks are
# percents of the limit (WATERMARK_NOTIFY and WATERMARK_DENY, HIGH:LOW, set
# by --notify and --deny); WATERMARK_LEVELS (MiB: notify high and low, deny
# high and low) are what the chart draws.
WATERMARK_OPTIONS=""
WATERMARK_LEVELS=""
device_watermarks() {
	WATERMARK_OPTIONS="" WATERMARK_LEVELS=""
	[ -n "$WATERMARKS" ] && [ -n "$CG" ] || return 0
	WATERMARK_OPTIONS="-o device=cgroup -o device_cgroup=$CG -o device_poll=100ms
		-o notify_high=${WATERMARK_NOTIFY%%:*}% -o notify_low=${WATERMARK_NOTIFY#*:}%
		-o deny_high=${WATERMARK_DENY%%:*}% -o deny_low=${WATERMARK_DENY#*:}% -o headroom=${HEADROOM}M
		-o giveback_retry=1s -o audit_interval=1s"
	WATERMARK_LEVELS=$(echo "$WATERMARK_NOTIFY:$WATERMARK_DENY" | awk -F: -v l="$LIMIT" \
		'{ for (i = 1; i <= 4; i++) printf "%s%.1f", (i > 1 ? " " : ""), $i * l / 100 }')
}

# The broker's clients run as an unprivileged user when the script is root
# (root is exempt from deny); the same user in the plain run.
[ -n "$RUN_UID" ] || { [ "$(id -u)" = 0 ] && RUN_UID=65534 || RUN_UID=$(id -u); }
AS_USER=""
if [ "$RUN_UID" != "$(id -u)" ]; then
	command -v setpriv >/dev/null ||
		{ echo "device/run.sh: setpriv (util-linux) is missing: --user $RUN_UID needs it" >&2; exit 1; }
	AS_USER="setpriv --reuid=$RUN_UID --regid=$RUN_UID --clear-groups"
fi

for f in mbserver/mbserver libmbclient/mbstatus track_fs/track_fs device/renderer \
	device/spooler device/hog device/cache_worker; do
	[ -x "$B/$f" ] || { [ "$f" = track_fs/track_fs ] && continue
		echo "device/run.sh: $B/$f is missing: build first (./demo.sh does)" >&2; exit 1; }
done
GMALLOC=$B/gmalloc/.libs/libgmalloc.so
PYTHON=/usr/bin/python3
[ -x "$PYTHON" ] || PYTHON=$(command -v python3)

[ -n "$OUT" ] || OUT=$(mktemp -d "${TMPDIR:-/tmp}/membroker-device.XXXXXX")
mkdir -p "$OUT"
if [ -n "$AS_USER" ]; then
	# The clients write their progress logs into the run directories.
	chmod a+x "$OUT"
	$AS_USER test -x "$OUT" || { echo "device/run.sh: uid $RUN_UID cannot reach $OUT:" \
		"choose another --out, or --user $(id -u)" >&2; exit 1; }
fi

# ---- the device: a memory cgroup without swap ---------------------------

CG_VERSION=""
CG_ROOT=""
WHY=""
find_cgroups() {
	[ "$(id -u)" = 0 ] || { WHY="not root: no memory cgroup"; return 1; }
	if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
		grep -qw memory /sys/fs/cgroup/cgroup.controllers ||
			{ WHY="cgroup v2 without the memory controller"; return 1; }
		CG_VERSION=2 CG_ROOT=/sys/fs/cgroup
	elif [ -f /sys/fs/cgroup/memory/memory.limit_in_bytes ]; then
		CG_VERSION=1 CG_ROOT=/sys/fs/cgroup/memory
	else
		WHY="no memory cgroup mounted"
		return 1
	fi
	probe=$CG_ROOT/membroker-device-probe-$$
	mkdir "$probe" 2>/dev/null && rmdir "$probe" ||
		{ WHY="cannot create a memory cgroup under $CG_ROOT"; CG_VERSION=""; return 1; }
}
if find_cgroups; then
	DEVICE_NOTE="memory cgroup v$CG_VERSION, limit $LIMIT MiB, no swap"
else
	DEVICE_NOTE="no device limit ($WHY): the broker's total alone bounds the suite"
	echo "device/run.sh: $WHY; running with the broker's total ($TOTAL MiB) alone" >&2
	[ -n "$ONLY" ] || ONLY=suite
fi

CG=""
device_create() {
	CG=$CG_ROOT/membroker-device-$$-$1
	mkdir "$CG" || return 1
	bytes=$((LIMIT * 1024 * 1024))
	if [ "$CG_VERSION" = 1 ]; then
		echo "$bytes" >"$CG/memory.limit_in_bytes"
		[ -f "$CG/memory.memsw.limit_in_bytes" ] && echo "$bytes" >"$CG/memory.memsw.limit_in_bytes"
		echo 0 >"$CG/memory.swappiness" 2>/dev/null
	else
		grep -qw memory "$CG_ROOT/cgroup.subtree_control" || echo +memory >"$CG_ROOT/cgroup.subtree_control"
		echo "$bytes" >"$CG/memory.max"
		[ -f "$CG/memory.swap.max" ] && echo 0 >"$CG/memory.swap.max"
	fi
	return 0
}
device_oom_kills() {
	if [ "$CG_VERSION" = 1 ]; then
		awk '$1 == "oom_kill" { print $2 }' "$CG/memory.oom_control"
	else
		awk '$1 == "oom_kill" { print $2 }' "$CG/memory.events"
	fi
}
device_peak() { # bytes, or nothing when the kernel keeps no peak
	if [ "$CG_VERSION" = 1 ]; then cat "$CG/memory.max_usage_in_bytes"
	elif [ -f "$CG/memory.peak" ]; then cat "$CG/memory.peak"; fi
}
device_usage_file() {
	if [ "$CG_VERSION" = 1 ]; then echo "$CG/memory.usage_in_bytes"; else echo "$CG/memory.current"; fi
}
device_remove() {
	[ -n "$CG" ] || return 0
	for p in $(cat "$CG/cgroup.procs" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
	i=0
	while [ -s "$CG/cgroup.procs" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
	rmdir "$CG" 2>/dev/null
	CG=""
}

# Run a command inside the device (the cgroup), in the background.
in_device() {
	if [ -n "$CG" ]; then
		sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$CG" "$@" &
	else
		"$@" &
	fi
}

# ---- one run --------------------------------------------------------------

RUN_PIDS=""  # daemons, until the run's end
WORK_PIDS="" # the sampler and the workloads, until they are waited for
MOUNTS=""
cleanup_run() {
	for p in $WORK_PIDS $RUN_PIDS; do kill "$p" 2>/dev/null; done
	for m in $MOUNTS; do fusermount3 -u "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
	wait 2>/dev/null
	device_remove
	RUN_PIDS="" WORK_PIDS="" MOUNTS=""
}
trap 'cleanup_run; exit 130' INT TERM
trap 'cleanup_run' EXIT

wait_socket() {
	i=0
	until "$B/libmbclient/mbstatus" --socket "$1" >/dev/null 2>&1; do
		i=$((i + 1)); [ $i -gt 200 ] && return 1
		sleep 0.05
	done
}

# run_one suite|plain
run_one() {
	mode=$1 D=$OUT/$1
	rm -rf "$D"; mkdir -p "$D/spool" "$D/backing"
	: >"$D/pids"
	if [ -n "$AS_USER" ]; then
		chmod a+x "$D"
		for f in renderer pyjob cache; do
			: >"$D/$f.log" && chown "$RUN_UID" "$D/$f.log"
		done
	fi
	if [ -n "$CG_VERSION" ]; then
		device_create "$mode" || { echo "cannot create the cgroup" >&2; return 1; }
	fi
	sock=$D/mb.sock
	if [ "$(id -u)" = 0 ]; then
		mount -t tmpfs -o "size=${LIMIT}m,mode=0755" tmpfs "$D/backing" && MOUNTS="$D/backing"
	fi
	spool=$D/backing
	if [ "$mode" = suite ]; then
		device_watermarks
		# shellcheck disable=SC2086
		in_device "$B/mbserver/mbserver" --config "$TOP/conf/membroker.conf" --socket "$sock" \
			--total "${TOTAL}M" --log-level debug -o log_target=stderr \
			-o socket_mode=0666 $WATERMARK_OPTIONS >"$D/mbserver.log" 2>&1
		RUN_PIDS="$RUN_PIDS $!"
		echo "mbserver $!" >>"$D/pids"
		wait_socket "$sock" || { cat "$D/mbserver.log"; return 1; }
		if [ -x "$B/track_fs/track_fs" ] && [ -c /dev/fuse ]; then
			in_device "$B/track_fs/track_fs" -f --backing="$D/backing" --broker_socket="$sock" \
				--client_name=spool --urgency=reserve "$D/spool" >"$D/track_fs.log" 2>&1
			tfs=$!
			i=0
			until grep -q " $D/spool " /proc/mounts; do
				i=$((i + 1)); sleep 0.05
				if [ $i -gt 100 ] || ! kill -0 $tfs 2>/dev/null; then
					cat "$D/track_fs.log"; break; fi
			done
			if grep -q " $D/spool " /proc/mounts; then
				RUN_PIDS="$RUN_PIDS $tfs" MOUNTS="$D/spool $MOUNTS" spool=$D/spool
				echo "spool $tfs" >>"$D/pids"
			else
				echo "track_fs did not mount: the spool is a plain directory" >&2
			fi
		fi
	fi

	# The sampler stays outside the device.
	"$PYTHON" "$TOP/device/report.py" sample --out "$D/samples.tsv" --pids "$D/pids" \
		--backing "$D/backing" --socket "$sock" --mbstatus "$B/libmbclient/mbstatus" \
		${CG:+--usage "$(device_usage_file)"} ${CG:+--cgroup-version "$CG_VERSION"} \
		${CG:+--cgroup "$CG"} --stop "$D/stop" &
	sampler=$!
	WORK_PIDS="$WORK_PIDS $sampler"

	common="--seed $SEED --seconds $SECONDS_RUN"
	# AS_USER is a command and its options, or nothing.
	# shellcheck disable=SC2086
	if [ "$mode" = suite ]; then
		set -- $AS_USER env MEMBROKER_SOCKET="$sock" LD_PRELOAD="$GMALLOC" GMALLOC_BROKER=yes \
			GMALLOC_BROKER_SOCKET="$sock"
		cache_broker=--broker
	else
		set -- $AS_USER env
		cache_broker=--no-broker
	fi
	workers=""
	# shellcheck disable=SC2086
	in_device "$@" "$B/device/renderer" $common --size "$RENDERER" --report "$D/renderer.log" \
		>"$D/renderer.out" 2>&1
	workers="$workers renderer:$!"
	# shellcheck disable=SC2086
	in_device "$@" PYTHONMALLOC=malloc "$PYTHON" "$TOP/device/pyjob.py" $common --size "$PYJOB" \
		--report "$D/pyjob.log" \
		>"$D/pyjob.out" 2>&1
	workers="$workers pyjob:$!"
	# shellcheck disable=SC2086
	in_device $AS_USER env MEMBROKER_SOCKET="$sock" "$B/device/cache_worker" $common $cache_broker \
		--size "$CACHE" --report "$D/cache.log" \
		>"$D/cache.out" 2>&1
	workers="$workers cache:$!"
	# shellcheck disable=SC2086
	in_device "$B/device/spooler" $common --size "$SPOOL" --dir "$spool" --report "$D/spooler.log" \
		>"$D/spooler.out" 2>&1
	workers="$workers spooler:$!"
	# shellcheck disable=SC2086
	in_device "$B/device/hog" $common --size "$HOG" --report "$D/hog.log" \
		>"$D/hog.out" 2>&1
	workers="$workers hog:$!"
	for w in $workers; do
		echo "${w%%:*} ${w#*:}" >>"$D/pids"
		WORK_PIDS="$WORK_PIDS ${w#*:}"
	done
	if [ "$mode" = suite ]; then
		echo "  suite run: $SECONDS_RUN s of jobs (follow it: mbstatus --watch --socket $sock)"
	else
		echo "  plain run: $SECONDS_RUN s of jobs"
	fi

	: >"$D/status"
	for w in $workers; do
		wait "${w#*:}"
		echo "${w%%:*} $?" >>"$D/status"
	done

	if [ "$mode" = suite ]; then
		# With the workloads gone and the spool unmounted, every page of
		# quota must be back in the pool.
		if [ "$spool" = "$D/spool" ]; then
			fusermount3 -u "$D/spool" 2>/dev/null || umount "$D/spool"
			wait "$tfs"
		fi
		"$B/libmbclient/mbstatus" --socket "$sock" --json >"$D/final.json" 2>&1
	fi
	touch "$D/stop"
	wait "$sampler"
	WORK_PIDS=""
	if [ -n "$CG" ]; then
		echo "oom_kills $(device_oom_kills)" >>"$D/status"
		echo "peak_bytes $(device_peak)" >>"$D/status"
	fi
	cleanup_run
	rm -rf "$D/spool" "$D/backing"
	return 0
}

echo "Simulated device: $DEVICE_NOTE; seed $SEED"
echo "  broker total $TOTAL MiB = limit $LIMIT - hog $HOG - reserve $RESERVE;" \
	"renderer $RENDERER, pyjob $PYJOB, spool $SPOOL MiB, cache $CACHE MiB"
if [ -n "$WATERMARKS" ] && [ -n "$CG_VERSION" ]; then
	WM_NOTE="notify ${WATERMARK_NOTIFY%%:*}%/${WATERMARK_NOTIFY#*:}%, deny ${WATERMARK_DENY%%:*}%/${WATERMARK_DENY#*:}% of the limit, headroom $HEADROOM MiB"
else
	WM_NOTE="none"
fi
echo "  watermarks: $WM_NOTE; the broker's clients run as uid $RUN_UID"
RUNS=""
for mode in suite plain; do
	[ -z "$ONLY" ] || [ "$ONLY" = "$mode" ] || continue
	run_one "$mode" || exit 1
	RUNS="$RUNS $mode"
done

cat >"$OUT/params" <<EOF
limit $LIMIT
total $TOTAL
seed $SEED
seconds $SECONDS_RUN
device $DEVICE_NOTE
watermarks $WATERMARK_LEVELS
watermark_note $WM_NOTE
uid $RUN_UID
EOF
"$PYTHON" "$TOP/device/report.py" report --dir "$OUT" ${CHART:+--chart "$TOP/device/timeline.gp"}
echo "Runs, logs and samples: $OUT"
