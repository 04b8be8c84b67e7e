#!/bin/sh
# A stopped broker holds up only the changes that need more quota than
# track_fs holds.  While a write waits for its REQUEST at a stopped
# broker, an unlink, a truncate and a statfs on the same mount all return
# with the REQUEST still pending; the accounting is right once the broker
# goes on.  The same while a statfs waits for its QUERY.  Before, the write held the quota lock through its call, so
# these waited for the broker's deadline and the REQUEST was gone (timed
# out, the connection dropped) before any of them returned.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/trackfs/lib_tfs.sh"
tfs_need
tfs_need_broker 64M
command -v ss >/dev/null || skip "needs ss(8)"
TRACK_FS_BROKER_TIMEOUT=4s tfs_mount -o step=64K,release_hysteresis=128K
dd if=/dev/zero of="$MNT/keep" bs=1M count=1 status=none || fail "write keep"
dd if=/dev/zero of="$MNT/keep2" bs=1M count=1 status=none || fail "write keep2"

# Bytes unread at the broker's end of a connection whose client is still
# there: a call waiting (a client that gave up has closed its end).
pending() {
	ss -xn | awk -v s="$MEMBROKER_SOCKET" '$5 == s && $3 > 0 && $8 != 0 { n++ }
		END { exit n ? 0 : 1 }'
}
pending && fail "a call is pending before the broker stopped"
kill -STOP "$BROKER_PID"
at_exit "kill -CONT $BROKER_PID 2>/dev/null"
dd if=/dev/zero of="$MNT/w" bs=2M count=1 status=none 2>/dev/null &
writer=$!
WAIT_LOG="$TEST_TMP/track_fs.log" wait_until "the writer's REQUEST at the broker" pending

rm "$MNT/keep" || fail "rm while a write waits for the broker"
truncate -s 0 "$MNT/keep2" || fail "truncate while a write waits for the broker"
used=$(tfs_used) || fail "statfs while a write waits for the broker"
pending || fail "unlink, truncate and statfs waited for the stopped broker's deadline"
expect_eq "used by the files left while the write waits" "$used" 0

kill -CONT "$BROKER_PID"
wait "$writer"
expect_eq "used after the write" "$(tfs_used)" "$(($(stat -c %b "$MNT/w") * 512))"

# The same while a statfs waits for its QUERY at the stopped broker: a
# truncate and another statfs return with that QUERY still pending.  (A
# version that waited out every talk but an ask held them for its
# deadline.)
dd if=/dev/zero of="$MNT/keep" bs=1M count=1 status=none || fail "write keep again"
kill -STOP "$BROKER_PID"
stat -f "$MNT" >/dev/null &
querier=$!
WAIT_LOG="$TEST_TMP/track_fs.log" wait_until "the statfs QUERY at the broker" pending
truncate -s 0 "$MNT/keep" || fail "truncate while a statfs waits for the broker"
stat -f "$MNT" >/dev/null || fail "statfs while another waits for the broker"
pending || fail "truncate and statfs waited for a QUERY at the stopped broker"
kill -CONT "$BROKER_PID"
wait "$querier"
rm "$MNT/w" "$MNT/keep" "$MNT/keep2"
expect_eq "used at the end" "$(tfs_used)" 0

# statfs waits a moment for the FORGET of what was just removed, but not
# for a removed file someone holds, nor for as long as others go on
# removing files: with one held by O_PATH, statfs returns while another
# thread is still creating and removing files.  (A wait that moved its
# end with every removal lasted as long as the removals did.)
python3 - "$MNT" <<'PY' || fail "statfs while files keep being removed"
import os, sys, threading
mnt = sys.argv[1]
held = os.path.join(mnt, "held")
with open(held, "wb") as f:
    f.write(b"h" * 4096)
h = os.open(held, os.O_PATH)
os.unlink(held)
running, stop = threading.Event(), threading.Event()
def churn():
    n = 0
    while not stop.is_set() and n < 200000:
        p = os.path.join(mnt, "c%d" % (n % 16))
        with open(p, "wb") as f:
            f.write(b"c")
        os.unlink(p)
        n += 1
        running.set()
    running.clear()
t = threading.Thread(target=churn)
t.start()
running.wait()
for i in range(5):
    os.statvfs(mnt)
alive = running.is_set()
stop.set()
t.join()
os.close(h)
if not alive:
    sys.exit("statfs returned only once the removals had stopped")
PY
tfs_umount
echo PASS
