#!/bin/sh
# The broker's ledger survives restarts on both sides.  The broker is
# killed and restarted under an idle mount holding 8 MiB of files: the
# mount reconnects by itself and claims them, so the new broker shows its
# balance before any new write, and a sink asking for everything gets only
# the rest.  Then track_fs is killed: its balance stays out of the pool
# (claim_grace) and a restarted track_fs takes it back.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/trackfs/lib_tfs.sh"
tfs_need
tfs_need_broker 16M
MBUTIL="$top_builddir/libmbclient/mbutil"
[ -x "$MBUTIL" ] || skip "mbutil not built"
PAGES=4096	# 16M of 4K pages

# granted_pages AMOUNT: pages a sink is granted for AMOUNT (then returned).
granted_pages() {
	"$MBUTIL" request "$1" >"$TEST_TMP/sink.log" 2>&1
	sed -n 's/^request: granted \([0-9]*\) of .*/\1/p' "$TEST_TMP/sink.log"
}

# wait_balance PID MIN: the broker counts at least MIN bytes for PID.
wait_balance() {
	i=0
	until [ "$("$TFS_BALANCE" "$1")" -ge "$2" ] 2>/dev/null; do
		i=$((i + 1))
		[ $i -gt 250 ] && { cat "$TEST_TMP/track_fs.log" "$TEST_TMP/mbserver.log"; fail "$3"; }
		sleep 0.02
	done
}

tfs_mount
dd if=/dev/zero of="$MNT/f" bs=1M count=8 status=none || fail "write"
used=$(tfs_used)
[ "$(tfs_balance)" -ge "$used" ] || fail "the broker does not hold what the files use"

# The broker dies and comes back; nothing is written meanwhile.
kill -9 "$BROKER_PID"; wait "$BROKER_PID" 2>/dev/null; rm -f "$MEMBROKER_SOCKET"
start_broker 16M
wait_balance "$TFS_PID" "$used" "the idle mount did not claim its files from the new broker"
grep -q "claims [0-9]* pages: [0-9]* accepted" "$TEST_TMP/mbserver.log" ||
	{ cat "$TEST_TMP/mbserver.log"; fail "no claim logged"; }
g=$(granted_pages 16M)
[ -n "$g" ] || { cat "$TEST_TMP/sink.log"; fail "sink: no answer"; }
[ "$g" -le $((PAGES - used / 4096)) ] ||
	fail "a sink was granted $g pages while the files use $used bytes of 16M"

# track_fs is killed: its files stay, and so does its balance.
kill -9 "$TFS_PID"; wait "$TFS_PID" 2>/dev/null
fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT" || fail "unmount after the kill"
i=0
until grep -q "kept for it" "$TEST_TMP/mbserver.log"; do
	i=$((i + 1)); [ $i -gt 250 ] && { cat "$TEST_TMP/mbserver.log"; fail "balance not kept"; }
	sleep 0.02
done
g=$(granted_pages 16M)
[ "$g" -le $((PAGES - used / 4096)) ] ||
	fail "a sink was granted $g pages of a killed track_fs's kept balance"
tfs_mount
wait_balance "$TFS_PID" "$used" "the restarted track_fs does not hold its files"
grep -q "takes back its [1-9][0-9]* kept pages" "$TEST_TMP/mbserver.log" ||
	{ cat "$TEST_TMP/mbserver.log"; fail "kept balance not taken back"; }
expect_eq "used after restart" "$(tfs_used)" "$used"
tfs_umount

# A RESERVE the broker refuses at its deadline is an answer, not a lost
# broker: the connection (and what the files hold) stays.
# A stopped bidi client holds the broker's answer past the RESERVE's
# deadline (share_deadline 1s > broker_timeout 500ms): TIMEDOUT.
"$MBUTIL" --kind bidi hold 1M >"$TEST_TMP/bidi.out" 2>&1 &
bidi=$!
at_exit "kill -CONT $bidi 2>/dev/null; kill $bidi 2>/dev/null"
i=0
until grep -q holding "$TEST_TMP/bidi.out"; do
	i=$((i + 1)); [ $i -gt 250 ] && fail "bidi holder did not start"; sleep 0.02
done
kill -STOP $bidi
before=$(grep -c "broker unreachable" "$TEST_TMP/track_fs.log")
tfs_mount -o urgency=reserve,broker_timeout=500ms
timeout 20 dd if=/dev/zero of="$MNT/big" bs=1M count=16 status=none 2>/dev/null &&
	fail "a write over the total succeeded"
grep -q "RESERVE deadline passed" "$TEST_TMP/mbserver.log" ||
	{ cat "$TEST_TMP/mbserver.log"; fail "the RESERVE did not reach its deadline"; }
kill -CONT $bidi
[ "$(grep -c "broker unreachable" "$TEST_TMP/track_fs.log")" = "$before" ] ||
	{ cat "$TEST_TMP/track_fs.log"; fail "a refused RESERVE was taken for a lost broker"; }
[ "$(tfs_balance)" -ge "$used" ] || fail "the mount lost its balance after a refused RESERVE"
tfs_umount
echo "PASS"
