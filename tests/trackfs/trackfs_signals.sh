#!/bin/sh
# SIGTERM (like SIGINT, SIGHUP and SIGQUIT) unmounts: the main thread waits
# for it with sigwait, and no other thread of track_fs may take it.  The
# workers block it; the thread that answers the broker's give-back queries
# (named track_fs-broker) blocks every signal.  Before, that thread had
# SIGTERM open, and a SIGTERM that came while the main thread was not in
# sigwait (writing the usage log, say) ended track_fs at once, mounted and
# holding its quota.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/trackfs/lib_tfs.sh"
tfs_need
tfs_need_broker 8M
tfs_mount
echo data >"$MNT/f" || fail "write"

# The main thread shows an open mask while it is in sigwait; every other
# one must block SIGTERM (signal 15: bit 14 of the low 32 bits of SigBlk).
others=0
for t in /proc/"$TFS_PID"/task/*; do
	tid=${t##*/}
	[ "$tid" = "$TFS_PID" ] && continue
	blk=$(sed -n 's/^SigBlk:[[:space:]]*//p' "$t/status")
	low=${blk#????????}
	[ $((0x$low >> 14 & 1)) -eq 1 ] || fail "thread $tid has SIGTERM open (SigBlk $blk)"
	others=$((others + 1))
done
# at least one worker (it answered the write) and the broker's thread,
# which has a name of its own
[ "$others" -ge 2 ] || fail "expected the workers and the broker's thread, found $others threads"
grep -qx "track_fs-broker" /proc/"$TFS_PID"/task/*/comm || fail "no thread named track_fs-broker"

kill -TERM "$TFS_PID"
rc=0
wait "$TFS_PID" || rc=$?
[ $rc -eq 0 ] || { cat "$TEST_TMP/track_fs.log"; fail "track_fs exited with $rc on SIGTERM"; }
grep -q " $MNT fuse.track_fs " /proc/mounts && fail "still mounted after SIGTERM"
grep -q "signal 15: unmounting" "$TEST_TMP/track_fs.log" || { cat "$TEST_TMP/track_fs.log"; fail "SIGTERM not logged"; }
echo "signals ok"
