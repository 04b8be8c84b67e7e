#!/bin/sh
# What programs expect of /tmp: symlinks, FIFOs, sockets, xattrs, hard
# links, permissions and ownership for another user, O_TMPFILE, setgid
# directories.  Runs with charging off (no broker needed).
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/trackfs/lib_tfs.sh"
tfs_need
command -v setpriv >/dev/null || skip "needs setpriv"
tfs_mount -o charge=no
chmod 755 "$TEST_TMP" || fail "chmod"
chmod 1777 "$MNT" || fail "chmod 1777"

python3 - "$MNT" <<'PY' || fail "node types"
import errno, os, socket, stat, sys
d = sys.argv[1]
os.symlink("target-of-link", d + "/sl")
if os.readlink(d + "/sl") != "target-of-link":
    sys.exit("readlink")
os.mkfifo(d + "/fifo", 0o640)
if not stat.S_ISFIFO(os.lstat(d + "/fifo").st_mode):
    sys.exit("mkfifo")
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(d + "/sock")
if not stat.S_ISSOCK(os.lstat(d + "/sock").st_mode):
    sys.exit("socket node")
s.close()
open(d + "/x", "w").write("data")
os.setxattr(d + "/x", "user.colour", b"blue")
if os.getxattr(d + "/x", "user.colour") != b"blue":
    sys.exit("getxattr")
if "user.colour" not in os.listxattr(d + "/x"):
    sys.exit("listxattr")
os.removexattr(d + "/x", "user.colour")
os.link(d + "/x", d + "/x2")
if os.stat(d + "/x").st_nlink != 2 or os.stat(d + "/x").st_ino != os.stat(d + "/x2").st_ino:
    sys.exit("hard link")
os.mkdir(d + "/dir")
os.rename(d + "/x2", d + "/dir/x3")
if sorted(os.listdir(d + "/dir")) != ["x3"]:
    sys.exit("listdir")
os.rmdir(d + "/dir") if False else None
try:
    fd = os.open(d, os.O_TMPFILE | os.O_RDWR, 0o600)
    os.write(fd, b"tmp")
    os.close(fd)
    print("O_TMPFILE: supported")
except OSError as e:
    if e.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
        raise
    print("O_TMPFILE: not offered through FUSE here (%s)" % os.strerror(e.errno))
PY

# Another user: owns what it creates, cannot touch root's private file.
echo secret >"$MNT/private" && chmod 600 "$MNT/private"
setpriv --reuid=65534 --regid=65534 --clear-groups sh -c "
	echo mine >'$MNT/nobody.txt' || exit 1
	cat '$MNT/private' 2>/dev/null && exit 2
	echo x >>'$MNT/private' 2>/dev/null && exit 3
	rm -f '$MNT/private' 2>/dev/null && exit 4
	mkdir '$MNT/nd' && ln -s nobody.txt '$MNT/nl' || exit 5
	exit 0" || fail "other user (code $?)"
expect_eq "owner of a file made by nobody" "$(stat -c %u:%g "$MNT/nobody.txt")" 65534:65534
expect_eq "owner in the backing dir" "$(stat -c %u:%g "$BACK/nobody.txt")" 65534:65534
expect_eq "owner of nobody's dir" "$(stat -c %u "$MNT/nd")" 65534
expect_eq "owner of nobody's symlink" "$(stat -c %u "$MNT/nl")" 65534
[ -e "$MNT/private" ] || fail "sticky dir let nobody remove root's file"
umask 002; echo u >"$MNT/umask"; expect_eq "umask" "$(stat -c %a "$MNT/umask")" 664

# setgid directory: new files take its group.
mkdir "$MNT/sg" && chown 0:65534 "$MNT/sg" && chmod 2777 "$MNT/sg"
setpriv --reuid=65534 --regid=65533 --clear-groups sh -c "echo g >'$MNT/sg/f'" || fail "create in setgid dir"
expect_eq "group in a setgid dir" "$(stat -c %g "$MNT/sg/f")" 65534
chmod 640 "$MNT/sg/f" && expect_eq "chmod" "$(stat -c %a "$MNT/sg/f")" 640
touch -d @1000000000 "$MNT/sg/f" && expect_eq "utimes" "$(stat -c %Y "$MNT/sg/f")" 1000000000
tfs_umount

# Mounted over its own backing directory, as "track_fs /tmp" does: the
# files below stay visible and what is written lands in the tmpfs.
"$TRACK_FS" -f -o charge=no "$BACK" >>"$TEST_TMP/track_fs.log" 2>&1 &
SELF_PID=$!
at_exit "fusermount3 -u '$BACK' 2>/dev/null; kill $SELF_PID 2>/dev/null; wait $SELF_PID 2>/dev/null"
i=0
until grep -q " $BACK fuse.track_fs " /proc/mounts; do
	i=$((i + 1)); [ $i -lt 200 ] || fail "no mount over the backing directory"
	sleep 0.05
done
[ -f "$BACK/umask" ] || fail "files under the mount not seen"
echo over >"$BACK/over" || fail "write over itself"
fusermount3 -u "$BACK" || fail "unmount over itself"
wait $SELF_PID || fail "track_fs over itself exited with $?"
expect_eq "file written through a mount over itself" "$(cat "$BACK/over")" over
grep -q " $BACK tmpfs " /proc/mounts || fail "backing tmpfs gone"

# Started in the background: returns once mounted, or fails visibly.
mounted() { grep -q " $MNT fuse.track_fs " /proc/mounts; }
"$TRACK_FS" -o charge=no --backing "$BACK" "$MNT" || fail "background start"
mounted || fail "not mounted after a background start"
[ -f "$MNT/umask" ] || fail "backing files not seen"
fusermount3 -u "$MNT" || fail "unmount"
"$TRACK_FS" -o charge=no --backing "$TEST_TMP/missing" "$MNT" 2>/dev/null &&
	fail "background start over a missing directory succeeded"
mounted && fail "mounted over a missing directory"

# The mount(8) helper for type track_fs, with fstab options.
TRACK_FS="$TRACK_FS" "$top_builddir/track_fs/mount.track_fs" "$BACK" "$MNT" \
	-o charge=no,nofail,x-systemd.automount || fail "mount.track_fs"
mounted || fail "not mounted by mount.track_fs"
fusermount3 -u "$MNT" || fail "unmount"

# fstab type fuse.track_fs: mount(8) hands it to mount.fuse3 (called here
# directly, since mount(8) resets PATH to the system directories).
if command -v mount.fuse3 >/dev/null; then
	PATH="$top_builddir/track_fs:$PATH" mount.fuse3 "$BACK" "$MNT" \
		-t track_fs -o charge=no,rw,nodev || fail "mount.fuse3 -t track_fs"
	mounted || fail "not mounted as fuse.track_fs"
	[ -f "$MNT/umask" ] || fail "backing files not seen through fuse.track_fs"
	umount "$MNT" || fail "umount"
fi
echo "PASS"
