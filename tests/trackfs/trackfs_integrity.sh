#!/bin/sh
# Random writes, truncates and reads on several files, from two threads,
# checked against an in-memory model; the backing files must match too.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/trackfs/lib_tfs.sh"
tfs_need
tfs_need_broker 256M
tfs_mount -o step=128K,release_hysteresis=1M
OPS=${TFS_OPS:-4000}

python3 - "$MNT" "$BACK" "$OPS" <<'PY' || fail "integrity"
import os, random, sys, threading
mnt, back, nops = sys.argv[1], sys.argv[2], int(sys.argv[3])
errors = []

def worker(tid):
    rnd = random.Random(1000 + tid)
    names = ["t%d_%d" % (tid, k) for k in range(3)]
    model = {n: bytearray() for n in names}
    fds = {n: os.open(os.path.join(mnt, n), os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
           for n in names}
    for i in range(nops):
        n = rnd.choice(names)
        m, fd = model[n], fds[n]
        op = rnd.random()
        if op < 0.55:
            off = rnd.randrange(0, 3 << 20)
            ln = rnd.choice([1, 100, 4096, 5000, 65536, 200000])
            data = rnd.randbytes(ln)
            if os.pwrite(fd, data, off) != ln:
                errors.append("short write"); return
            if len(m) < off:
                m.extend(b"\0" * (off - len(m)))
            m[off:off + ln] = data
        elif op < 0.70:
            size = rnd.randrange(0, 3 << 20)
            os.ftruncate(fd, size)
            if size < len(m):
                del m[size:]
            else:
                m.extend(b"\0" * (size - len(m)))
        else:
            off = rnd.randrange(0, max(1, len(m) + 10000))
            ln = rnd.randrange(1, 300000)
            got = os.pread(fd, ln, off)
            if got != bytes(m[off:off + ln]):
                errors.append("%s: read at %d+%d differs (op %d)" % (n, off, ln, i)); return
    for n in names:
        os.close(fds[n])
        for base in (mnt, back):
            with open(os.path.join(base, n), "rb") as f:
                if f.read() != bytes(model[n]):
                    errors.append("%s differs in %s" % (n, base)); return

ts = [threading.Thread(target=worker, args=(t,)) for t in range(2)]
for t in ts: t.start()
for t in ts: t.join()
if errors:
    sys.exit("; ".join(errors))
# The accounting is what tmpfs really uses.
real = sum(os.lstat(os.path.join(back, n)).st_blocks * 512 for n in os.listdir(back))
s = os.statvfs(mnt)
charged = (s.f_blocks - s.f_bfree) * s.f_frsize
if charged != real:
    sys.exit("charged %d bytes, tmpfs uses %d" % (charged, real))
print("charged = used by tmpfs = %d bytes" % real)
for n in os.listdir(mnt):
    os.unlink(os.path.join(mnt, n))
PY
expect_eq "used at the end" "$(tfs_used)" 0

# A file renamed over while others open it: each open finds the old file
# or the new one, whole.  (A version of track_fs that emptied a replaced
# file at once gave readers whose open was under way an empty file, tens
# of times in a run like this one.)
python3 - "$MNT" <<'PY' || fail "rename over a file being opened"
import os, sys, threading
mnt = sys.argv[1]
target, tmp = os.path.join(mnt, "target"), os.path.join(mnt, "target.tmp")
body = b"r" * 8192
with open(target, "wb") as f:
    f.write(body)
done, bad, opens = threading.Event(), [], [0]
def reader():
    while not done.is_set():
        try:
            with open(target, "rb") as f:
                got = f.read()
        except FileNotFoundError:
            continue
        opens[0] += 1
        if got != body:
            bad.append(len(got))
rs = [threading.Thread(target=reader) for _ in range(2)]
for r in rs: r.start()
for i in range(3000):
    with open(tmp, "wb") as f:
        f.write(body)
    os.rename(tmp, target)
done.set()
for r in rs: r.join()
if bad:
    sys.exit("%d of %d opens read a replaced file wrong (lengths %s)"
             % (len(bad), opens[0], sorted(set(bad))))
os.unlink(target)
PY
expect_eq "used after the renames" "$(tfs_used)" 0
tfs_umount
echo "PASS"
