#!/bin/sh
# Descriptors per user: each file the kernel knows and each open costs
# track_fs a descriptor, all from one limit, counted for the user who asked.  With a limit of 512 (a
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

# A lookup counts for whoever asks, not for the file's owner.  On a new
# mount (nothing looked up yet), uid 65534 looks at 400 files of root's:
# its share ends at 300 (the directory and 299 files; ENFILE for the
# rest), and root, and 65533, are not held up by it.  Counted for the
# owner, root's files cost nothing and any user could fill every
# descriptor; another user's files, and that user was locked out.
tfs_umount
mkdir "$BACK/pub2" || fail "mkdir pub2"
i=0
while [ $i -lt 400 ]; do : >"$BACK/pub2/f$i"; i=$((i + 1)); done
tfs_mount -o charge=no,uid_fds=300
cat >"$TEST_TMP/stats.py" <<'PY'
import errno, os, sys
d, ok, refused = sys.argv[1], 0, 0
for i in range(int(sys.argv[2])):
    try:
        os.stat(os.path.join(d, "f%d" % i))
        ok += 1
    except OSError as e:
        if e.errno != errno.ENFILE:
            raise
        refused += 1
print(ok, refused)
PY
r=$(as_nobody "$NOBODY_PY" "$TEST_TMP/stats.py" "$MNT/pub2" 400) || fail "stats as 65534"
expect_eq "root's files 65534 could look up, and not" "$r" "299 101"
r=$(python3 "$TEST_TMP/stats.py" "$MNT/pub2" 50) || fail "stats as root"
expect_eq "root's files root could look up" "$r" "50 0"
n=$(as_other "$NOBODY_PY" "$TEST_TMP/make.py" "$MNT/b" h 10) || fail "make as 65533"
expect_eq "files 65533 made next to 65534 at its share" "$n" 10

# A create costs two (the file and the open), both taken before the file
# is made: on a new mount, 65533, at 1 (its directory), makes 149 files it
# keeps open and stops at 299 of its 300.  (Looked at one by one, the
# open was taken after a check for one, and a user went past its share.)
tfs_umount
tfs_mount -o charge=no,uid_fds=300
cat >"$TEST_TMP/creates.py" <<'PY'
import errno, os, sys
d, fds = sys.argv[1], []
while len(fds) < 1000:
    try:
        fds.append(os.open(os.path.join(d, "c%d" % len(fds)),
                           os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as e:
        if e.errno != errno.ENFILE:
            raise
        break
print(len(fds))
sys.stdout.flush()
sys.stdin.read()	# holds them until the test closes its end
PY
mkfifo "$TEST_TMP/hold" || fail "mkfifo"
as_other "$NOBODY_PY" "$TEST_TMP/creates.py" "$MNT/b" >"$TEST_TMP/made" <"$TEST_TMP/hold" &
creator=$!
exec 9>"$TEST_TMP/hold"
wait_until "the creates to end" test -s "$TEST_TMP/made"
expect_eq "files 65533 made and kept open" "$(cat "$TEST_TMP/made")" 149
holds_299() {
	kill -USR2 "$TFS_PID"
	grep -q "uid 65533: .* 299 descriptors" "$TEST_TMP/track_fs.log"
}
WAIT_LOG="$TEST_TMP/track_fs.log" wait_until "65533 to hold 299 descriptors" holds_299
exec 9>&-
wait "$creator" || fail "creates as 65533"
tfs_umount
echo PASS
