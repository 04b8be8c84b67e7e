# bench/track_fs/common.sh - sourced by the track_fs benchmarks.
# track_fs is GPL-2.0 (see COPYING.GPL-2).

# bench_cleanup TMP PIDS MOUNTPOINT...: unmount the FUSE mounts, stop the
# processes, unmount the tmpfs at TMP/back and remove TMP.
bench_cleanup() {
	t=$1
	pids=$2
	shift 2
	for m in "$@"; do fusermount3 -u "$m" 2>/dev/null || true; done
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	umount -l "$t/back" 2>/dev/null || true
	rm -rf "$t"
}
