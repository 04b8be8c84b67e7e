#!/bin/sh
# Memory a file uses outside its written pages is charged too:
# - shared-mapping writes stay within the quota: a file mapped for writing
#   has the holes below its size reserved while it is open, so growing it
#   past the quota is refused and what the mapping writes is paid for;
# - extended attributes (name + value) are charged, refused past the quota
#   and given back by removexattr, by replacing with a smaller value and
#   with the file; a non-root user cannot store more than the quota.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/trackfs/lib_tfs.sh"
tfs_need
tfs_need_nobody
tfs_need_broker 16M
tfs_mount -o step=256K,release_hysteresis=1M,uid_limit=0 # the whole quota for one user here

# Backing bytes in use (st_blocks * 512) of the whole backing store.
back_total() { du -s -B1 "$BACK" | cut -f1; }

# A program maps a 48M file on a 16M quota and writes every page.
python3 - "$MNT/map" <<'PY' || fail "mmap"
import errno, mmap, os, sys
p = sys.argv[1]
fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
try:
    os.ftruncate(fd, 48 << 20)
except OSError as e:
    if e.errno != errno.ENOSPC:
        raise
    size = 12 << 20      # what fits: the holes of 12M are reserved
    os.ftruncate(fd, size)
else:
    size = 48 << 20
m = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
for off in range(0, size, 4096):
    m[off:off + 4] = b"page"
m.flush()
m.close()
os.close(fd)
print("mapped", size)
PY
b=$(back_total)
[ "$b" -le $((16 * MiB)) ] || fail "tmpfs holds $b bytes after mapped writes on a 16M quota"
expect_eq "used after mapped writes" "$(tfs_used)" "$b"
bal=$(tfs_balance)
[ "$bal" -ge "$b" ] || fail "broker balance $bal below the $b bytes in use"
rm "$MNT/map"
expect_eq "used after rm" "$(tfs_used)" 0

# xattrs as nobody, in a directory of its own.
mkdir "$MNT/u" && chown 65534:65534 "$MNT/u" || fail "mkdir u"
as_nobody "$NOBODY_PY" - "$MNT/u" <<'PY' || fail "xattrs"
import errno, os, sys
d = sys.argv[1]
def used():
    s = os.statvfs(d)
    return (s.f_blocks - s.f_bfree) * s.f_frsize
val = b"v" * 60000
f = d + "/x"
open(f, "w").close()
os.setxattr(f, "user.a", val)
if used() < 60000:
    sys.exit("a 60000-byte xattr charged %d" % used())
os.setxattr(f, "user.a", b"w" * 10)
if used() > 8192:
    sys.exit("after replacing it by 10 bytes: %d in use" % used())
os.removexattr(f, "user.a")
if used() != 0:
    sys.exit("after removexattr: %d in use" % used())
# Fill: one xattr of 60000 bytes per file until ENOSPC.
n = 0
while True:
    g = "%s/f%d" % (d, n)
    open(g, "w").close()
    try:
        os.setxattr(g, "user.big", val)
    except OSError as e:
        if e.errno != errno.ENOSPC:
            raise
        break
    n += 1
    if n * len(val) > 64 << 20:
        sys.exit("no ENOSPC after %d xattrs" % n)
if n * len(val) > 16 << 20:
    sys.exit("%d bytes of xattrs stored on a 16M quota" % (n * len(val)))
if n * len(val) < 12 << 20:
    sys.exit("ENOSPC after only %d bytes of xattrs" % (n * len(val)))
print("xattrs stored:", n)
PY
[ "$(tfs_used)" -le $((16 * MiB)) ] || fail "used over the quota"
rm -r "$MNT/u"
expect_eq "used after removing the files" "$(tfs_used)" 0

# A directory's xattrs are charged and go with it (rmdir, rename over it).
python3 - "$MNT" <<'PY' || fail "directory xattrs"
import os, sys
d = sys.argv[1]
def used():
    s = os.statvfs(d)
    return (s.f_blocks - s.f_bfree) * s.f_frsize
for n in ("d1", "d2", "d3"):
    os.mkdir(d + "/" + n)
os.setxattr(d + "/d2", "user.z", b"z" * 5000)
os.setxattr(d + "/d3", "user.z", b"z" * 5000)
if used() != 12288:       # 10012 bytes, in whole pages
    sys.exit("two 5006-byte xattrs of directories: %d in use" % used())
os.rename(d + "/d1", d + "/d2")
if used() != 8192:
    sys.exit("after renaming over a directory: %d in use" % used())
os.rmdir(d + "/d3")
if used() != 0:
    sys.exit("after rmdir: %d in use" % used())
os.rmdir(d + "/d2")
PY

# Charges of xattrs survive a remount (measured from the backing store).
touch "$MNT/keep" && setfattr -n user.k -v "$(head -c 3000 /dev/zero | tr '\0' k)" "$MNT/keep" 2>/dev/null ||
	python3 -c "import os,sys; os.setxattr(sys.argv[1], 'user.k', b'k' * 3000)" "$MNT/keep" ||
	fail "setxattr keep"
tfs_umount
tfs_mount -o step=256K,release_hysteresis=1M
expect_eq "xattr charge after remount" "$(tfs_used)" 4096
rm "$MNT/keep"
expect_eq "end" "$(tfs_used)" 0
tfs_umount
echo PASS
