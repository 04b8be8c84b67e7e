#!/bin/sh
# The simulated device, short: the same seeded spikes in a 256 MiB memory
# cgroup without swap, with the suite and without it (device/run.sh).  With
# the suite nothing is OOM-killed, every workload finishes and every client's
# quota is back in the pool at the end; without it the OOM killer fires.
# The broker watches the cgroup with notify and deny watermarks: the device
# crosses notify and a client gives back what it was asked for.
# The page buffers are larger than in the demo so that the plain run meets
# the OOM killer within the short schedule.
. "$top_srcdir/tests/lib.sh"

need_root
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
	grep -qw memory /sys/fs/cgroup/cgroup.controllers || skip "cgroup v2 without the memory controller"
	CG_ROOT=/sys/fs/cgroup
else
	[ -f /sys/fs/cgroup/memory/memory.limit_in_bytes ] || skip "needs a memory cgroup"
	CG_ROOT=/sys/fs/cgroup/memory
fi
mkdir "$CG_ROOT/membroker-test-probe-$$" 2>/dev/null || skip "cannot create a memory cgroup under $CG_ROOT"
rmdir "$CG_ROOT/membroker-test-probe-$$"
[ -x /usr/bin/python3 ] || command -v python3 >/dev/null || skip "needs python3"
[ -x "$top_builddir/device/renderer" ] || skip "the device workloads are not built"

mk_tmpdir
# The broker's clients run as an unprivileged user and write their logs here.
chmod 711 "$TEST_TMP"
OUT=$TEST_TMP/out
"$top_srcdir/device/run.sh" --build "$top_builddir" --seconds 16 --seed 3 \
	--renderer 40:88 --no-chart --out "$OUT" >"$TEST_TMP/run.log" 2>&1 ||
	{ cat "$TEST_TMP/run.log"; fail "device/run.sh failed"; }
cat "$OUT/summary.txt"

value() { awk -v k="$1" '$1 == k { print $2 }' "$OUT/result"; }
[ "$(value suite_oom_kills)" = 0 ] || fail "the device was OOM-killed with the suite"
[ "$(value suite_all_finished)" = 1 ] || fail "a workload did not finish with the suite"
[ "$(value quota_back)" = 1 ] || fail "quota still lent out after the suite run"
[ "$(value plain_oom_kills)" -gt 0 ] || fail "the plain run was not OOM-killed"
# The page buffers' spikes take the device over the notify mark several times
# in this schedule (4 crossings in the runs seen); one suffices here.
[ "$(value wm_notify)" -ge 1 ] || fail "the device never crossed the notify watermark"
[ "$(value wm_asked)" -ge 1 ] || fail "no give-back was asked at the notify watermark"
[ "$(value wm_honoured)" -ge 1 ] || fail "no give-back asked at the notify watermark was honoured"
echo "PASS: device survives with the suite (watermarks crossed and give-backs honoured), plain run OOM-killed"
