# tests/trackfs/lib_tfs.sh - helpers of the track_fs tests (sourced after
# tests/lib.sh).  Each test mounts a private tmpfs as the backing store and
# track_fs over a private mount point, and unmounts both at exit.
TRACK_FS="$top_builddir/track_fs/track_fs"
TFS_BALANCE="$top_builddir/tests/trackfs/tfs_balance"

tfs_need() {
	need_root
	need_fuse
	[ -x "$TRACK_FS" ] || skip "track_fs not built (libfuse3 missing)"
	command -v python3 >/dev/null || skip "needs python3"
	mk_tmpdir
	BACK="$TEST_TMP/backing"
	MNT="$TEST_TMP/mnt"
	mkdir "$BACK" "$MNT" || fail "mkdir"
	mount -t tmpfs -o size=512M tfs_test "$BACK" || skip "cannot mount a tmpfs"
	at_exit "umount -l '$BACK' 2>/dev/null"
}

tfs_need_broker() {
	[ -x "$top_builddir/mbserver/mbserver" ] || skip "mbserver not built"
	[ -x "$TFS_BALANCE" ] || skip "tfs_balance not built"
	start_broker "$@"
}

# tfs_mount [options...]: track_fs in the foreground, in the background of
# this shell; TFS_PID is its pid.  Fails the test if the mount does not come.
# The broker's deadline is 10 s unless the options set it: a request that a
# loaded machine answers after the default 250 ms is refused (ENOSPC), and
# these tests assert quota, not speed (the tests of a stalled broker set
# their own).
tfs_mount() {
	TRACK_FS_BROKER_TIMEOUT=${TRACK_FS_BROKER_TIMEOUT:-10s} \
		"$TRACK_FS" -f --backing "$BACK" "$@" "$MNT" >>"$TEST_TMP/track_fs.log" 2>&1 &
	TFS_PID=$!
	at_exit "tfs_cleanup $TFS_PID"
	i=0
	until grep -q " $MNT fuse.track_fs " /proc/mounts; do
		i=$((i + 1))
		if ! kill -0 "$TFS_PID" 2>/dev/null || [ $i -gt 200 ]; then
			cat "$TEST_TMP/track_fs.log"
			fail "track_fs did not mount"
		fi
		sleep 0.05
	done
}

tfs_cleanup() {
	fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null
	kill "$1" 2>/dev/null
	wait "$1" 2>/dev/null
	true
}

# Unmount and wait for track_fs to exit.
tfs_umount() {
	fusermount3 -u "$MNT" || fail "fusermount3 -u"
	wait "$TFS_PID" || fail "track_fs exited with $?"
}

# Bytes track_fs says are in use (size - free in statfs, page-rounded).
tfs_used() {
	stat -f -c '%b %f %S' "$MNT" | { read -r b f s; echo $(((b - f) * s)); }
}

tfs_total() {
	stat -f -c '%b %S' "$MNT" | { read -r b s; echo $((b * s)); }
}

tfs_balance() {
	"$TFS_BALANCE" "$TFS_PID" || fail "tfs_balance"
}

# expect_eq WHAT GOT WANT
expect_eq() {
	[ "$2" = "$3" ] || fail "$1: got $2, want $3"
}

MiB=1048576

# as_nobody CMD...: run as uid/gid 65534 without supplementary groups.
# tfs_need_nobody sets NOBODY_PY, a python3 that user can run.
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
tfs_need_nobody() {
	command -v setpriv >/dev/null || skip "needs setpriv"
	for py in "$(command -v python3)" /usr/bin/python3; do
		if as_nobody "$py" -c pass 2>/dev/null; then
			NOBODY_PY=$py
			chmod 0755 "$TEST_TMP" || fail "chmod $TEST_TMP"
			return 0
		fi
	done
	skip "no python3 that uid 65534 can run"
}
