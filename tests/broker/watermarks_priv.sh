#!/bin/sh
# Deny refuses unprivileged clients with LOWMEM while root and the
# configured privileged users are still served, and only they may move the
# marks at run time.  Clients run as other users through setpriv.
. "$top_srcdir/tests/lib.sh"
need_root
command -v setpriv >/dev/null || skip "needs setpriv"
MBUTIL="$top_builddir/libmbclient/mbutil"
mk_tmpdir
chmod 755 "$TEST_TMP"
MI="$TEST_TMP/meminfo"
LOG="$TEST_TMP/mbserver.log"
WAIT_LOG=$LOG
as() { u=$1; shift; setpriv --reuid="$u" --regid="$u" --clear-groups "$@"; }

fake_meminfo "$MI" 100
start_broker 64M -o socket_mode=0666 -o device=meminfo -o device_meminfo="$MI" \
	-o device_poll=20ms -o deny_high=80% -o deny_low=70% -o privileged_uids=65533
as 65534 "$MBUTIL" request 1M >/dev/null || fail "uid 65534 refused in normal state"
fake_meminfo "$MI" 900
wait_until "deny" mem_state_is deny

out=$(as 65534 "$MBUTIL" request 1M 2>&1); rc=$?
[ $rc = 1 ] || fail "uid 65534 REQUEST in deny state: exit $rc ($out)"
echo "$out" | grep -q "refused: memory is low" || fail "no LOWMEM reason: $out"
out=$(as 65534 "$MBUTIL" reserve 1M 2>&1); rc=$?
[ $rc = 1 ] || fail "uid 65534 RESERVE in deny state: exit $rc ($out)"
grep -q "decision: deny: REQUEST of 256 pages from client [0-9]* (uid 65534) refused: device uses 900.0 MiB, deny_high 819.1 MiB" \
	"$LOG" || { cat "$LOG"; fail "no decision line for the refusal"; }
as 65533 "$MBUTIL" reserve 1M >/dev/null || fail "privileged uid 65533 refused"
"$MBUTIL" reserve 1M >/dev/null || fail "root refused"

# Marks: only the privileged may move them.
out=$(as 65534 "$MBUTIL" mark deny_high 99% 2>&1) && fail "uid 65534 moved a mark"
echo "$out" | grep -q "not permitted" || fail "mark by uid 65534: $out"
mem_state_is deny || fail "a refused mark change took effect"
as 65533 "$MBUTIL" mark deny_high 99% mark deny_low 95% >/dev/null || fail "uid 65533 cannot move a mark"
wait_until "normal" mem_state_is normal
as 65534 "$MBUTIL" request 1M >/dev/null || fail "uid 65534 refused after deny ended"
echo ok
