#!/bin/sh
# track_fs exits at unmount while other clients keep the broker asking it
# for quota back.  Twelve rounds: mount, write 4 MiB, three bidi clients ask
# the broker for more than it has, over and over, unmount; track_fs must
# be gone within 10 s of each unmount.  (Closing its connection under its
# quota lock, it could run the give-back callback of a query that came
# first, which takes that lock: one round in six or so hung for good.)
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/trackfs/lib_tfs.sh"
tfs_need
tfs_need_broker 32M
MBUTIL=$top_builddir/libmbclient/mbutil
[ -x "$MBUTIL" ] || skip "mbutil not built"
# Give-back queries the broker has sent track_fs so far.
asked() { grep -c "asking client [0-9]* (track_fs)" "$TEST_TMP/mbserver.log"; }
hogs=
stop_hogs() {
	[ -n "$hogs" ] || return 0
	for p in $hogs; do kill "$p" 2>/dev/null; done
	wait $hogs 2>/dev/null
	hogs=
}
at_exit "stop_hogs"
round=1
while [ $round -le 12 ]; do
	TRACK_FS_BROKER_TIMEOUT=2s tfs_mount -o step=1M,release_hysteresis=4M
	dd if=/dev/zero of="$MNT/f" bs=1M count=4 status=none || fail "write, round $round"
	for h in 1 2 3; do
		( while :; do "$MBUTIL" -q -t 50 -k bidi request 30M request 30M \
			request 30M >/dev/null 2>&1; done ) &
		hogs="$hogs $!"
	done
	# Let the clients' asks reach track_fs as give-back queries.
	before=$(asked)
	more_asked() { [ "$(asked)" -gt "$before" ]; }
	WAIT_LOG="$TEST_TMP/mbserver.log" wait_until "a give-back query, round $round" more_asked
	fusermount3 -u "$MNT" || fail "fusermount3 -u, round $round"
	exited() { ! kill -0 "$TFS_PID" 2>/dev/null; }
	wait_until "track_fs to exit after the unmount, round $round" exited
	wait "$TFS_PID"
	stop_hogs
	rm -f "$BACK/f"
	round=$((round + 1))
done
echo PASS
