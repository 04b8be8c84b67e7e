#!/usr/bin/env python3
"""pyjob - a python3 job that builds large structures and drops them.

Each job (arriving on the same seeded schedule as the C workloads, drawn
with python's own generator) builds an index of documents: a dict from
document number to a record holding its text (a bytes object of a few KiB),
its words and a checksum, until the structure reaches the job's size; it
then walks the index once, keeps it for the hold time and drops it.  A
MemoryError (the allocator had no memory for it) drops what the job built,
waits and starts the job again.  Work: jobs done.  The progress log has the
format of device/workload.h.
"""
import argparse
import gc
import os
import random
import sys
import time

MIB = 1 << 20
RETRY_WAIT = 0.05


def parse_range(text):
    lo, _, hi = text.partition(":")
    return float(lo), float(hi or lo)


class Log:
    def __init__(self, path, start):
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644) if path else -1
        self.start = start

    def ms(self):
        return (time.monotonic() - self.start) * 1000.0

    def line(self, text):
        if self.fd >= 0:
            os.write(self.fd, text.encode())

    def done(self, units):
        self.line("%.0f %d\n" % (self.ms(), units))

    def stat(self, key, value):
        self.line("stat %s %.6g\n" % (key, value))

    def end(self, units):
        self.line("end %.0f %d\n" % (self.ms(), units))


def build(size, rng):
    index, used, n = {}, 0, 0
    while used < size:
        length = rng.randrange(2048, 8192)
        text = bytes([n & 0xFF]) * length
        index[n] = (text, text[:64].split(), hash(text))
        used += length
        n += 1
    return index


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--size", type=parse_range, default=(16, 56))
    ap.add_argument("--gap", type=parse_range, default=(1.0, 3.0))
    ap.add_argument("--hold", type=parse_range, default=(0.5, 1.5))
    ap.add_argument("--report")
    a = ap.parse_args()

    start = time.monotonic()
    log = Log(a.report, start)
    sched = random.Random("pyjob-%d" % a.seed)
    content = random.Random(a.seed)
    arrive, jobs, errors, waited = 0.0, 0, 0, 0.0
    while True:
        arrive += sched.uniform(*a.gap)
        if arrive >= a.seconds:
            break
        size = int(sched.uniform(*a.size) * MIB)
        hold = sched.uniform(*a.hold)
        delay = arrive - (time.monotonic() - start)
        if delay > 0:
            time.sleep(delay)
        asked = time.monotonic()
        while True:
            index = None
            try:
                index = build(size, content)
                total = sum(len(rec[0]) for rec in index.values())
                break
            except MemoryError:
                index = None
                errors += 1
                gc.collect()
                time.sleep(RETRY_WAIT)
        waited += time.monotonic() - asked
        time.sleep(hold)
        del index
        jobs += 1
        log.done(jobs)
        if total < size:
            sys.exit("pyjob: index smaller than asked")
    log.stat("memory_errors", errors)
    log.stat("build_total_s", waited)
    log.end(jobs)
    print("pyjob: %d jobs, %d memory errors" % (jobs, errors))


if __name__ == "__main__":
    main()
