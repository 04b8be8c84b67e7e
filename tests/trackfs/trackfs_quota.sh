#!/bin/sh
# Quota on write: fill to the quota (ENOSPC, data kept), free and write
# again, sparse files, hard links, rename over a file, a file kept open
# after unlink, fallocate, shared mmap writes, statfs.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/trackfs/lib_tfs.sh"
tfs_need
tfs_need_broker 8M
tfs_mount -o step=256K,release_hysteresis=1M

expect_eq "statfs size" "$(tfs_total)" $((8 * MiB))
expect_eq "used at start" "$(tfs_used)" 0

n=$(python3 - "$MNT/fill" <<'PY'
import errno, os, sys
path, blk, n, i = sys.argv[1], 65536, 0, 0
fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
while True:
    try:
        n += os.write(fd, bytes([i % 251]) * blk)
    except OSError as e:
        if e.errno != errno.ENOSPC:
            raise
        break
    i += 1
    if n > 64 << 20:
        sys.exit("no ENOSPC after 64 MiB")
os.close(fd)
with open(path, "rb") as f:
    for j in range(n // blk):
        if f.read(blk) != bytes([j % 251]) * blk:
            sys.exit("data differs in block %d" % j)
    if f.read(1):
        sys.exit("file longer than what was written")
print(n)
PY
) || fail "fill"
[ "$n" -ge $((7 * MiB)) ] || fail "ENOSPC after only $n bytes"
[ "$n" -le $((8 * MiB)) ] || fail "wrote $n bytes on an 8 MiB quota"
expect_eq "used when full" "$(tfs_used)" "$n"
[ "$(stat -c %s "$MNT/fill")" = "$n" ] || fail "size after ENOSPC"

rm "$MNT/fill"
expect_eq "used after rm" "$(tfs_used)" 0
dd if=/dev/zero of="$MNT/again" bs=1M count=6 status=none || fail "write after freeing"
expect_eq "used again" "$(tfs_used)" $((6 * MiB))
truncate -s 1M "$MNT/again" || fail "truncate down"
expect_eq "used after truncate" "$(tfs_used)" $((1 * MiB))
: > "$MNT/again"
expect_eq "used after O_TRUNC" "$(tfs_used)" 0
rm "$MNT/again"

# Sparse: charged by pages, not by size (the holes are reserved only while
# the file is open for writing).
truncate -s 4M "$MNT/sparse" || fail "truncate up"
expect_eq "used by a 4M hole" "$(tfs_used)" 0
dd if=/dev/zero of="$MNT/sparse" bs=4K count=1 seek=512 conv=notrunc status=none ||
	fail "write into a hole"
expect_eq "used by one page" "$(tfs_used)" 4096
printf x | dd of="$MNT/sparse2" bs=1 seek=$MiB status=none || fail "write at 1M"
printf y >>"$MNT/sparse2" || fail "append"
expect_eq "sparse2 pages" "$(tfs_used)" 8192
rm "$MNT/sparse" "$MNT/sparse2"
expect_eq "after removing sparse files" "$(tfs_used)" 0

# Hard links are charged once; the last link gives it back.
dd if=/dev/zero of="$MNT/a" bs=1M count=1 status=none || fail "write a"
ln "$MNT/a" "$MNT/b" || fail "ln"
expect_eq "two links" "$(tfs_used)" $MiB
rm "$MNT/a"
expect_eq "one link left" "$(tfs_used)" $MiB
rm "$MNT/b"
expect_eq "no link left" "$(tfs_used)" 0

# Rename over an existing file gives the old one's pages back.
dd if=/dev/zero of="$MNT/a" bs=1M count=1 status=none || fail "write a"
dd if=/dev/zero of="$MNT/b" bs=1M count=2 status=none || fail "write b"
mv "$MNT/a" "$MNT/b" || fail "mv"
expect_eq "after rename over" "$(tfs_used)" $MiB
python3 - "$MNT" <<'PY' || fail "rename flags"
import ctypes, errno, os, sys
d = sys.argv[1]
libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD, NOREPLACE, EXCHANGE = -100, 1, 2
open(d + "/c", "w").write("cc")
def rn(a, b, fl):
    if libc.renameat2(AT_FDCWD, (d + a).encode(), AT_FDCWD, (d + b).encode(), fl):
        return ctypes.get_errno()
    return 0
if rn("/c", "/b", NOREPLACE) != errno.EEXIST:
    sys.exit("RENAME_NOREPLACE did not refuse")
if rn("/c", "/b", EXCHANGE) != 0:
    sys.exit("RENAME_EXCHANGE failed")
if open(d + "/b").read() != "cc" or os.path.getsize(d + "/c") != 1 << 20:
    sys.exit("RENAME_EXCHANGE did not swap")
PY
expect_eq "after exchange" "$(tfs_used)" $((MiB + 4096))
rm "$MNT/b" "$MNT/c"
expect_eq "after rm" "$(tfs_used)" 0

# Unlinked files, in one program (its helpers shared):
# - A file kept open after unlink keeps its charge until the last close.
# - An unlinked file held by an O_PATH descriptor (no OPEN reaches track_fs)
#   and opened again through /proc/self/fd: what is written then is booked
#   and given back at the last close.  Before, the inode stayed "given
#   back": the write booked the whole file and nothing returned it, so
#   each round lost the file's size from the quota until a restart.
# - An unlinked file that only an O_PATH descriptor holds keeps its pages,
#   and its extended attributes, in memory: they stay charged until the
#   descriptor goes and the kernel forgets the file; so do a held symlink
#   and a removed directory held open.  Before, the charge went back at
#   the unlink while the backing store kept everything: a quota's worth
#   per round that no quota paid for.
python3 - "$MNT/held" "$BACK" <<'PY' || fail "unlinked files"
import os, sys, time
p, back = sys.argv[1], sys.argv[2]
d = os.path.dirname(p)
def used(where=d):
    s = os.statvfs(where)
    return (s.f_blocks - s.f_bfree) * s.f_frsize
def settles(want):
    end = time.monotonic() + 10
    while used(d) != want and time.monotonic() < end:
        time.sleep(0.01)
    return used(d) == want
# Kept open after unlink.
fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o600)
os.write(fd, b"z" * (2 << 20))
os.unlink(p)
if used() != 2 << 20:
    sys.exit("charge dropped at unlink: %d" % used())
if os.pread(fd, 4, 1 << 20) != b"zzzz":
    sys.exit("data lost after unlink")
os.close(fd)
if used() != 0:
    sys.exit("charge kept after close: %d" % used())
# Held by O_PATH, opened again through /proc and written.
for r in range(3):
    fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o600)
    os.write(fd, b"o" * (1 << 20))
    os.close(fd)
    h = os.open(p, os.O_PATH)
    os.unlink(p)
    w = os.open("/proc/self/fd/%d" % h, os.O_RDWR)
    os.pwrite(w, b"x", 0)
    os.close(w)
    os.close(h)
    if used() != 0:
        sys.exit("round %d: %d bytes booked after the last close" % (r, used()))
# Held by O_PATH only.
before = used(back)
held = []
for r in range(3):
    fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o600)
    os.write(fd, b"h" * (1 << 20))
    os.setxattr(fd, "user.big", b"x" * 60000)
    os.close(fd)
    held.append(os.open(p, os.O_PATH))
    os.unlink(p)
    # pages, plus the xattr's name and value; statfs counts whole pages
    want = -(-(r + 1) * ((1 << 20) + len("user.big") + 60000) // 4096) * 4096
    if used(d) != want:
        sys.exit("round %d: %d bytes charged with the files held, not %d"
                 % (r, used(d), want))
    if used(back) - before < (r + 1) << 20:
        sys.exit("round %d: the backing store let go of held files" % r)
# Opened again through /proc, a held file still has its data.
w = os.open("/proc/self/fd/%d" % held[0], os.O_RDONLY)
if os.pread(w, 4, 4096) != b"hhhh":
    sys.exit("a held file lost its data")
os.close(w)
for h in held:
    os.close(h)
if not settles(0):
    sys.exit("%d bytes charged after the last holder went" % used(d))
# A long symlink's page, the same way.
os.symlink("t" * 3000, p)
h = os.open(p, os.O_PATH | os.O_NOFOLLOW)
os.unlink(p)
if used(d) == 0:
    sys.exit("a held symlink's page went uncharged at the unlink")
os.close(h)
if not settles(0):
    sys.exit("%d bytes still charged after the symlink was forgotten" % used(d))
# A removed directory held open keeps its extended attributes charged
# until the kernel forgets it.  Before, they went back at the rmdir.
os.mkdir(p)
os.setxattr(p, "user.big", b"x" * 60000)
charged = used(d)
if charged < 60000:
    sys.exit("a directory's xattr was not charged: %d" % charged)
fd = os.open(p, os.O_RDONLY | os.O_DIRECTORY)
os.rmdir(p)
if used(d) != charged:
    sys.exit("%d bytes charged after the rmdir, not %d" % (used(d), charged))
os.close(fd)
if not settles(0):
    sys.exit("%d bytes charged after the directory went" % used(d))
PY

# fallocate is charged before it happens.
fallocate -l 2M "$MNT/falloc" || fail "fallocate 2M"
expect_eq "after fallocate" "$(tfs_used)" $((2 * MiB))
fallocate -l 100M "$MNT/falloc2" 2>/dev/null && fail "fallocate over the quota succeeded"
[ "$(stat -c %s "$MNT/falloc2")" = 0 ] || fail "refused fallocate left data behind"
expect_eq "after refused fallocate" "$(tfs_used)" $((2 * MiB))
rm "$MNT/falloc" "$MNT/falloc2"

# Shared writable mappings: written, read back, charged.
python3 - "$MNT/mm" <<'PY' || fail "mmap"
import mmap, os, sys
p, size = sys.argv[1], 1 << 20
fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
os.ftruncate(fd, size)
m = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
for off in range(0, size, 4096):
    m[off:off + 8] = (off // 4096).to_bytes(8, "little")
m.flush()
m.close()
os.close(fd)
with open(p, "rb") as f:
    data = f.read()
for off in range(0, size, 4096):
    if int.from_bytes(data[off:off + 8], "little") != off // 4096:
        sys.exit("mapped write lost at %d" % off)
PY
expect_eq "after mmap writes" "$(tfs_used)" $MiB
rm "$MNT/mm"

# A sparse file open for writing has its holes reserved, so that what a
# shared mapping writes into them is paid for: growing it past the quota
# is refused, growing it within the quota holds the holes until the close.
python3 "$top_srcdir/tests/trackfs/tfs_grow.py" "$MNT/mmbig" $((64 * MiB)) $((4 * MiB)) ||
	fail "growing an open sparse file"
python3 - "$MNT/mmbig" <<'PY' || fail "sparse mmap"
import mmap, os, sys
p = sys.argv[1]
d = os.path.dirname(p)
def used():
    s = os.statvfs(d)
    return (s.f_blocks - s.f_bfree) * s.f_frsize
size = 4 << 20
fd = os.open(p, os.O_RDWR)
if used() != size:
    sys.exit("opened for writing, a 4M hole reserves %d" % used())
m = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
m[0:4] = b"head"
m[size - 4:size] = b"tail"
m.flush()
m.close()
os.close(fd)
if used() != 8192:
    sys.exit("after close: %d in use, want 8192" % used())
ro = os.open(p, os.O_RDONLY)
if used() != 8192:
    sys.exit("a reader reserved the holes: %d" % used())
os.close(ro)
with open(p, "rb") as f:
    if f.read(4) != b"head":
        sys.exit("first page lost")
    f.seek(size - 4)
    if f.read(4) != b"tail":
        sys.exit("last page lost")
PY
expect_eq "after sparse mmap writes" "$(tfs_used)" 8192
rm "$MNT/mmbig"
expect_eq "end" "$(tfs_used)" 0

# The broker may ask for spare quota back (another client reserves): it
# gets everything but the pages files use.
MBUTIL="$top_builddir/libmbclient/mbutil"
if [ -x "$MBUTIL" ]; then
	dd if=/dev/zero of="$MNT/keep" bs=1M count=1 status=none || fail "write keep"
	dd if=/dev/zero of="$MNT/tmp" bs=256K count=3 status=none || fail "write tmp"
	rm "$MNT/tmp"
	[ "$(tfs_balance)" -gt $MiB ] || fail "no spare quota held before the give-back"
	"$MBUTIL" -q -t 2000 reserve 7M || fail "RESERVE of all but the used 1M refused"
	expect_eq "balance after giving back" "$(tfs_balance)" $MiB
	rm "$MNT/keep"
fi
tfs_umount
echo "PASS"
