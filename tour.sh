#!/bin/sh
# tour.sh - builds the suite, then shows each part at work on a private broker
# socket in a temporary directory: a source lends pages, a bidirectional
# cache holder gives memory back when a sink asks for more than the pool
# holds, an unmodified program runs on gmalloc with broker quota, and
# track_fs answers ENOSPC when the quota is gone (root and /dev/fuse).
TOP=$(cd "$(dirname "$0")" && pwd)
. "$TOP/scripts/deps.sh"

install_packages $DEB_BUILD
bootstrap
B=$TOP/build/plain
echo "Building into $B ..."
build_tree "$B" --enable-werror CFLAGS="-O2 -g"

set +e
T=$(mktemp -d "${TMPDIR:-/tmp}/membroker-tour.XXXXXX")
MEMBROKER_SOCKET=$T/membroker.sock
export MEMBROKER_SOCKET
PIDS=""
MNT=""
BACKING_MOUNTED=""
cleanup() {
	[ -n "$MNT" ] && { fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null; }
	[ -n "$BACKING_MOUNTED" ] && umount -l "$T/backing" 2>/dev/null
	for p in $PIDS; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT INT TERM

MBUTIL=$B/libmbclient/mbutil
MBSTATUS=$B/libmbclient/mbstatus
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
status() { "$MBSTATUS"; }

step "Start mbserver with a 64 MiB pool on $MEMBROKER_SOCKET"
"$B/mbserver/mbserver" --config /dev/null --socket "$MEMBROKER_SOCKET" --total 64M \
	--log-level info >"$T/mbserver.log" 2>&1 &
PIDS="$PIDS $!"
i=0
until "$MBSTATUS" >/dev/null 2>&1; do
	i=$((i + 1)); [ $i -gt 200 ] && { cat "$T/mbserver.log"; echo "mbserver did not start"; exit 1; }
	sleep 0.05
done
status

step "A source declares 32 MiB it owns and can lend (mbutil --source 32M hold)"
"$MBUTIL" --source 32M hold 0 >"$T/source.log" 2>&1 &
PIDS="$PIDS $!"
sleep 0.3

if [ -x "$B/anrmalloc/examples/cache_holder" ]; then
	step "A bidirectional cache holder (libanrmalloc) fills a 40 MiB cache with broker quota"
	"$B/anrmalloc/examples/cache_holder" --cache 40M --seconds 60 >"$T/cache.log" 2>&1 &
else
	step "A bidirectional client holds 40 MiB and gives it back when asked (mbutil --kind bidi)"
	"$MBUTIL" --kind bidi hold 40M >"$T/cache.log" 2>&1 &
fi
PIDS="$PIDS $!"
sleep 1
status

step "A sink reserves 72 MiB: more than pool and source together, so the bidi client is asked to give back"
"$MBUTIL" --reserve hold 72M 3s >"$T/sink.log" 2>&1 &
SINK=$!
sleep 1.5
status
wait $SINK
echo "sink: $(cat "$T/sink.log")"
echo "--- what the bidi client said:"
cat "$T/cache.log"
echo "--- after the sink exited (its 72 MiB went back; sources are repaid first):"
status

if [ -f "$B/gmalloc/.libs/libgmalloc.so" ] && [ -x /usr/bin/python3 ]; then
	step "An unmodified python3 under LD_PRELOAD=libgmalloc.so, getting its quota from the broker"
	LD_PRELOAD=$B/gmalloc/.libs/libgmalloc.so GMALLOC_BROKER=yes GMALLOC_BROKER_SOCKET=$MEMBROKER_SOCKET \
		GMALLOC_LIMIT=256M GMALLOC_REPORT_AT_EXIT=yes \
		/usr/bin/python3 -c 'x = [bytes(1000) for _ in range(20000)]; print("python3 allocated", sum(map(len, x)), "bytes")'
	echo "(the broker's log shows the quota it asked for and gave back:)"
	grep -iE 'gmalloc|python' "$T/mbserver.log" | tail -5
fi

if [ -x "$B/track_fs/track_fs" ] && [ "$(id -u)" = 0 ] && [ -c /dev/fuse ]; then
	step "track_fs over a tmpfs: file data is charged to the broker; ENOSPC when it says no"
	mkdir -p "$T/backing" "$T/mnt"
	mount -t tmpfs -o size=1G tmpfs "$T/backing" && BACKING_MOUNTED=1
	if "$B/track_fs/track_fs" --backing="$T/backing" "$T/mnt" 2>"$T/trackfs.log"; then
		MNT=$T/mnt
		dd if=/dev/zero of="$T/mnt/big" bs=1M count=200 2>&1 | grep -v records
		ls -l "$T/mnt/big"
		df -h "$T/mnt" | tail -1
		status
		rm -f "$T/mnt/big"
		echo "after rm, the quota went back:"
		status
	else
		cat "$T/trackfs.log"
	fi
else
	step "track_fs skipped (needs root, /dev/fuse and libfuse3)"
fi

step "Broker log (last lines)"
tail -15 "$T/mbserver.log"
