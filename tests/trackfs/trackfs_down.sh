#!/bin/sh
# Broker unreachable: deny refuses new data with ENOSPC, cap allows up to
# the cap; a stopped broker costs a timeout, never a hang.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/trackfs/lib_tfs.sh"
tfs_need
command -v timeout >/dev/null || skip "needs timeout(1)"
MEMBROKER_SOCKET="$TEST_TMP/nobroker.sock"; export MEMBROKER_SOCKET

# deny
tfs_mount -o on_broker_down=deny,retry_interval=100ms
timeout 20 dd if=/dev/zero of="$MNT/d" bs=4K count=1 status=none 2>"$TEST_TMP/err" &&
	fail "write succeeded without a broker in deny mode"
grep -q "No space left" "$TEST_TMP/err" || { cat "$TEST_TMP/err"; fail "not ENOSPC"; }
echo ok >"$MNT/empty.ok" 2>/dev/null && fail "echo succeeded in deny mode"
touch "$MNT/empty" || fail "creating an empty file"
tfs_umount

# cap
tfs_mount -o on_broker_down=cap,cap=1M
expect_eq "statfs size under the cap" "$(tfs_total)" $MiB
timeout 20 dd if=/dev/zero of="$MNT/c" bs=256K count=3 status=none || fail "write under the cap"
timeout 20 dd if=/dev/zero of="$MNT/c2" bs=512K count=1 status=none 2>/dev/null &&
	fail "write over the cap succeeded"
expect_eq "used under the cap" "$(tfs_used)" $((768 * 1024))
tfs_umount
rm -f "$BACK"/*

# A broker that stops answering, then dies.
if [ -x "$top_builddir/mbserver/mbserver" ]; then
	start_broker 8M
	tfs_mount -o on_broker_down=deny,broker_timeout=300ms,step=64K,release_hysteresis=128K
	dd if=/dev/zero of="$MNT/a" bs=64K count=1 status=none || fail "write with the broker"
	kill -STOP "$BROKER_PID"
	timeout 20 dd if=/dev/zero of="$MNT/b" bs=1M count=2 status=none 2>/dev/null
	rc=$?
	kill -CONT "$BROKER_PID"
	[ $rc = 124 ] && fail "write hung on a stopped broker"
	[ $rc = 0 ] && fail "write over the held quota succeeded with a stopped broker"
	kill -9 "$BROKER_PID"
	wait "$BROKER_PID" 2>/dev/null
	timeout 20 dd if=/dev/zero of="$MNT/c" bs=1M count=2 status=none 2>/dev/null &&
		fail "write succeeded after the broker died (deny)"
	[ $? = 124 ] && fail "write hung on a dead broker"
	[ "$(head -c 65536 "$MNT/a" | wc -c)" = 65536 ] || fail "data lost"

	# The broker comes back: track_fs asks again for what is in use.
	rm -f "$MEMBROKER_SOCKET"
	start_broker 8M
	sleep 1.2	# retry_interval
	dd if=/dev/zero of="$MNT/d" bs=64K count=2 status=none || fail "write after the broker came back"
	used=$(tfs_used)
	expect_eq "used after the broker came back" "$used" $((3 * 65536))
	[ "$(tfs_balance)" -ge "$used" ] || fail "broker does not hold what is in use after coming back"
	tfs_umount
	rm -f "$BACK"/*

	# urgency=reserve: more than the broker has is refused after the deadline.
	tfs_mount -o urgency=reserve,broker_timeout=500ms
	dd if=/dev/zero of="$MNT/r" bs=1M count=4 status=none || fail "write with reserve"
	timeout 20 dd if=/dev/zero of="$MNT/r2" bs=1M count=8 status=none 2>/dev/null
	rc=$?
	[ $rc = 124 ] && fail "RESERVE write hung"
	[ $rc = 0 ] && fail "RESERVE write over the total succeeded"
	expect_eq "used after refused RESERVE" "$(tfs_used)" $(($(stat -c %s "$MNT/r2") + 4 * MiB))
	tfs_umount
	rm -f "$BACK"/*

	# A deadline past the client library's longest (24 h) counts as 24 h:
	# it was passed on as it was, and every connection failed (EINVAL).
	tfs_mount -o on_broker_down=deny,broker_timeout=30h
	dd if=/dev/zero of="$MNT/l" bs=64K count=1 status=none ||
		fail "write refused with broker_timeout=30h (broker taken as unreachable)"
	tfs_umount
fi
echo "PASS"
