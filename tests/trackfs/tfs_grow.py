#!/usr/bin/env python3
# tfs_grow.py FILE REFUSED OK - on a track_fs mount: open FILE for writing,
# check that growing it to REFUSED bytes fails with ENOSPC and that growing
# it to OK bytes reserves exactly OK bytes (statfs) until the close, which
# gives them back.  Exit 1 with the reason otherwise.
import errno
import os
import sys


def used(d):
    s = os.statvfs(d)
    return (s.f_blocks - s.f_bfree) * s.f_frsize


def main():
    p, refused, ok = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    d = os.path.dirname(p)
    base = used(d)
    fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.ftruncate(fd, refused)
        sys.exit("an open file grown to %d bytes past its quota" % refused)
    except OSError as e:
        if e.errno != errno.ENOSPC:
            raise
    os.ftruncate(fd, ok)
    if used(d) - base != ok:
        sys.exit("%d-byte hole of an open file: %d in use" % (ok, used(d) - base))
    os.close(fd)
    if used(d) != base:
        sys.exit("after close: %d in use, %d before" % (used(d), base))


main()
