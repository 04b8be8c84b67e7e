#!/bin/sh
# Descriptors per user: each file the kernel knows and each open costs
# track_fs a descriptor, all from one limit.  With a limit of 512 (a
# reserve of 64 for root and track_fs) and uid_fds=300, uid 65534 makes
# exactly 300 files before ENFILE, uid 65533 then only the 148 left for
# users, root still makes files and opens them; opens count for the opener;
# files removed give their descriptors back.  Before, one user making empty
# files left every user's lookups, creates and opens failing with EMFILE.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/trackfs/lib_tfs.sh"
tfs_need
tfs_need_nobody
as_other() { setpriv --reuid=65533 --regid=65533 --clear-groups "$@"; }
as_other "$NOBODY_PY" -c pass 2>/dev/null || skip "uid 65533 cannot run python3"

cat >"$TEST_TMP/limited" <<EOS
#!/bin/sh
ulimit -n 512 || exit 1
exec "$TRACK_FS" "\$@"
EOS
chmod 0755 "$TEST_TMP/limited"
TRACK_FS="$TEST_TMP/limited"
tfs_mount -o charge=no,uid_fds=300
for u in a:65534 b:65533; do
	mkdir "$MNT/${u%%:*}" && chown "${u#*:}:${u#*:}" "$MNT/${u%%:*}" || fail "mkdir $u"
done

# make DIR PREFIX MOST: mknod empty files until ENFILE; prints how many.
cat >"$TEST_TMP/make.py" <<'PY'
import errno, os, stat, sys
d, prefix, most = sys.argv[1], sys.argv[2], int(sys.argv[3])
n = 0
while n < most:
    try:
        os.mknod(os.path.join(d, "%s%d" % (prefix, n)), stat.S_IFREG | 0o600)
    except OSError as e:
        if e.errno != errno.ENFILE:
            raise
        break
    n += 1
print(n)
PY
# opens PATH MOST: open PATH until ENFILE, holding every descriptor.
cat >"$TEST_TMP/opens.py" <<'PY'
import errno, os, sys
path, most = sys.argv[1], int(sys.argv[2])
fds = []
while len(fds) < most:
    try:
        fds.append(os.open(path, os.O_RDONLY))
    except OSError as e:
        if e.errno != errno.ENFILE:
            raise
        break
print(len(fds))
PY

n=$(as_nobody "$NOBODY_PY" "$TEST_TMP/make.py" "$MNT/a" f 1000) || fail "make as 65534"
expect_eq "files uid 65534 made" "$n" 300
n=$(as_other "$NOBODY_PY" "$TEST_TMP/make.py" "$MNT/b" f 1000) || fail "make as 65533"
expect_eq "files uid 65533 made next to a user at its limit" "$n" 148
n=$(python3 "$TEST_TMP/make.py" "$MNT" root 20) || fail "make as root"
expect_eq "files root made with both users at their limits" "$n" 20
echo x >"$MNT/pub" && chmod 0644 "$MNT/pub" || fail "root could not write a file"
[ "$(cat "$MNT/pub")" = x ] || fail "root could not read its file back"

# Opens count for the opener: 65534, at its limit, opens nothing; after
# its files go, it opens root's file as often as the users' share allows.
n=$(as_nobody "$NOBODY_PY" "$TEST_TMP/opens.py" "$MNT/pub" 1000) || fail "opens as 65534"
expect_eq "opens by a user at its limit" "$n" 0
rm -r "$MNT/a" || fail "rm a"
held() {
	kill -USR2 "$TFS_PID"
	grep -q "$1 of 448 for all users held" "$TEST_TMP/track_fs.log"
}
wait_until "the removed files to be forgotten" held 148
n=$(as_nobody "$NOBODY_PY" "$TEST_TMP/opens.py" "$MNT/pub" 1000) || fail "opens as 65534"
expect_eq "opens by 65534 after its files went" "$n" 300
wait_until "the closed files to be released" held 148
n=$(as_other "$NOBODY_PY" "$TEST_TMP/make.py" "$MNT/b" g 1000) || fail "make as 65533"
expect_eq "files 65533 made once the opens were closed" "$n" 152
ls "$MNT/b" | wc -l | { read -r c; expect_eq "names in b" "$c" 300; }
tfs_umount
echo PASS
