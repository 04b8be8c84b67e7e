#!/bin/sh
# A memory cgroup v1 is the device: mbserver runs inside it (and finds it
# by itself), a bidi client keeps a cache there, then a plain process that
# does not know the broker grows in the same cgroup.  The broker sees the
# cgroup pass the notify mark, asks the cache holder to give back, and the
# holder does: the check against its private memory says so, and the
# cgroup's usage comes down.
. "$top_srcdir/tests/lib.sh"
need_root
ROOT=/sys/fs/cgroup/memory
[ -w "$ROOT/cgroup.procs" ] || skip "needs a writable memory cgroup v1 at $ROOT"
MBUTIL="$top_builddir/libmbclient/mbutil"
HOLDER="$top_builddir/anrmalloc/examples/cache_holder"
GROW="$top_builddir/tests/broker/grow"
mk_tmpdir
CG="$ROOT/mbtest-wm-$$"
mkdir "$CG" || skip "cannot create a memory cgroup"
# Leave the cgroup empty before removing it.
at_exit "for p in \$(cat $CG/cgroup.procs 2>/dev/null); do kill \$p 2>/dev/null; done; sleep 0.3; rmdir $CG"
echo $((256 * 1048576)) >"$CG/memory.limit_in_bytes" || skip "cannot set a memory limit"
LOG="$TEST_TMP/mbserver.log"
WAIT_LOG=$LOG
in_cg() { sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$CG" "$@"; }
usage() { echo $(( $(cat "$CG/memory.usage_in_bytes") / 1048576 )); }

MEMBROKER_SOCKET="$TEST_TMP/mb.sock"; export MEMBROKER_SOCKET
in_cg "$top_builddir/mbserver/mbserver" --config /dev/null --socket "$MEMBROKER_SOCKET" \
	--total 200M --log-level info -o device=cgroup -o device_poll=50ms \
	-o notify_high=60% -o notify_low=45% -o deny_high=95% -o deny_low=90% \
	-o share_deadline=2s -o giveback_retry=2s >"$LOG" 2>&1 &
BROKER_PID=$!
at_exit "kill $BROKER_PID 2>/dev/null; wait $BROKER_PID 2>/dev/null"
wait_broker
grep -q "device: memory cgroup $CG\$" "$LOG" || { cat "$LOG"; fail "the broker did not find its cgroup"; }
"$MBUTIL" memstate | grep -q "^device: .* of 268435456 bytes" || fail "device: $("$MBUTIL" memstate)"

in_cg "$HOLDER" --cache 96M --seconds 120 >"$TEST_TMP/holder" 2>&1 &
wait_until "the cache" grep -q "cache filled" "$TEST_TMP/holder"
before=$(usage)
"$MBUTIL" memstate | grep -q "^state: *normal" || fail "notify before the grower: $("$MBUTIL" memstate), usage $before MiB"

# 96 MiB of cache + 80 MiB outside the broker pass 60% of 256 MiB.
in_cg "$GROW" 80M 4M 120 >"$TEST_TMP/grow" 2>&1 &
wait_until "the grower" grep -q grown "$TEST_TMP/grow"
wait_until "the give-back" grep -q "evicted .* for the broker" "$TEST_TMP/holder"
wait_until "the check" grep -q "give-back check: client [0-9]* (cache_holder, pid [0-9]*)" "$LOG"
grep "give-back check: client [0-9]* (cache_holder" "$LOG" | head -1 | grep -q ": honoured$" ||
	{ cat "$LOG"; fail "the cache holder's give-back was not honoured"; }
grep -q "decision: normal -> notify: device uses" "$LOG" || fail "no notify decision"
# Pages are back: the cgroup comes under the notify mark again.
under_notify() { [ "$(usage)" -lt 153 ]; }
wait_until "usage under the notify mark" under_notify
echo "ok: cache and grower at $before+80 MiB; after the give-back the cgroup uses $(usage) MiB"
