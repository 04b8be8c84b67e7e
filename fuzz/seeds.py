#!/usr/bin/env python3
"""seeds.py - write the seed corpus of every harness into fuzz/corpus/.

Run from anywhere: python3 fuzz/seeds.py.  The seeds are committed; this
script says how they were made and regenerates them after a change of the
input layout of a harness (fuzz/fuzz_*.c describe their layouts).
"""
import hashlib
import os
import struct

TOP = os.path.dirname(os.path.abspath(__file__))
MAGIC, VERSION = 0x4b52424d, 1

# type: number of payload words (common/mb_wire.h)
HELLO, REQUEST, RESERVE, RETURN, CANCEL, QUERY, STATUS, TERMINATE, \
    SUBSCRIBE, SHARE_ANSWER = range(1, 11)
HELLO_ACK, GRANT, RETURN_ACK, CANCEL_ACK, QUERY_REPLY, STATUS_HEAD, \
    STATUS_CLIENT, STATUS_END, TERMINATE_ACK, SUBSCRIBE_ACK, ERROR = range(32, 43)
SHARE_QUERY, REPAY, EVENT = 64, 65, 66
WORDS = {HELLO: 6, REQUEST: 2, RESERVE: 2, RETURN: 1, CANCEL: 0, QUERY: 0,
         STATUS: 0, TERMINATE: 0, SUBSCRIBE: 1, SHARE_ANSWER: 1,
         HELLO_ACK: 6, GRANT: 3, RETURN_ACK: 2, CANCEL_ACK: 1, QUERY_REPLY: 7,
         STATUS_HEAD: 8, STATUS_CLIENT: 15, STATUS_END: 1, TERMINATE_ACK: 2,
         SUBSCRIBE_ACK: 2, ERROR: 2, SHARE_QUERY: 3, REPAY: 2, EVENT: 4}
MAX_PAGES = 1 << 52


def frame(t, seq, *words):
    w = list(words) + [0] * (WORDS[t] - len(words))
    return struct.pack('<IHHII', MAGIC, VERSION, t, seq, 8 * len(w)) + \
        b''.join(struct.pack('<Q', x & (2**64 - 1)) for x in w)


def num(v):
    """A number as fz_num() reads it (fuzz/fz_input.h)."""
    return bytes([v]) if v < 0xf0 else b'\xf8' + struct.pack('<Q', v)


def comm(s):
    b = s.encode().ljust(16, b'\0')
    return struct.unpack('<QQ', b)


def write(target, name, data):
    d = os.path.join(TOP, 'corpus', target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), 'wb') as f:
        f.write(data)


def wire():
    frames = [frame(t, 7, *range(1, n + 1)) for t, n in WORDS.items()]
    for i, f in enumerate(frames):
        write('wire', 'frame-%02d' % i, f)
    write('wire', 'stream', b''.join(frames))
    write('wire', 'truncated', frames[1][:20])
    good = frame(REQUEST, 1, 10, 0)
    write('wire', 'bad-magic', b'XXXX' + good[4:])
    write('wire', 'bad-version', good[:4] + b'\x02\x00' + good[6:])
    write('wire', 'bad-type', good[:6] + b'\x63\x00' + good[8:])
    write('wire', 'bad-len', good[:12] + b'\x18\x00\x00\x00' + good[16:])


def conf():
    for v in ['4096', '512M', '2G', '80%', '12.5%', 'all-except 64M', '64p',
              '2s', '250ms', '1h', 'yes', 'off', '0660', '0x10', '18446744073709551615',
              '1.0 MiB']:
        write('conf', 'value-' + hashlib.sha1(v.encode()).hexdigest()[:8],
              b'\0' + v.encode())
    with open(os.path.join(TOP, '..', 'conf', 'membroker.conf'), 'rb') as f:
        write('conf', 'membroker.conf', b'\1' + f.read())
    write('conf', 'membroker-lists', b'\1' + b'total = all-except 64M\n'
          b'allow_uids = root, 1000,daemon\nallow_gids = 0\nclient_cap = 12.5%\n'
          b'socket = "/tmp/a # b"   # comment\nlog_level = debug\nbogus = 1\nno equals\n')
    write('conf', 'track_fs.conf', b'\2' + b'backing = /srv/x\nstep = 1M\n'
          b'release_hysteresis = 4M\nurgency = reserve\non_broker_down = cap\n'
          b'cap = 64M\nbroker_timeout = 500ms\nsplice = read\ncharge = yes\n')


def broker():
    # config: initial, cap, request deadline, share deadline, pool_low, who
    cfg = num(100) + num(0) + num(200) + num(50) + num(10) + b'\0'
    # ops (fuzz_broker.c): 0 connect, 1/2 frame, 3 raw, 4 answer, 5 disconnect,
    # 6 time, 7 to the next deadline, 8 reconfigure, 9 event
    def connect(i, kindbyte=0):
        return b'\x00' + bytes([i, kindbyte]) + num(100 + i) + b'\x04' + b'name'

    def msg(i, t, *words):
        types = [HELLO, REQUEST, RESERVE, RETURN, CANCEL, QUERY, STATUS,
                 TERMINATE, SUBSCRIBE, SHARE_ANSWER]
        out = b'\x01' + bytes([i, types.index(t), 0])
        w = list(words) + [0] * (WORDS[t] - len(words))
        out += b''.join(num(x) for x in w)
        if t == HELLO:
            out += b'\x00'
        return out

    hello = lambda i, kind, src=0: msg(i, HELLO, 1, kind, src, 0, 0x7a7a7566)
    s = cfg + connect(0) + hello(0, 0) + msg(0, REQUEST, 60, 0) + \
        msg(0, RETURN, 20) + msg(0, QUERY) + msg(0, STATUS)
    write('broker', 'sink', s)
    s = cfg + connect(0) + hello(0, 1) + msg(0, REQUEST, 90, 0) + \
        connect(1) + hello(1, 0) + msg(1, RESERVE, 50, 100) + \
        b'\x04\x00\x00' + b'\x07' + b'\x06' + num(200) + b'\x05\x01'
    write('broker', 'share', s)
    s = cfg + connect(0) + hello(0, 2, 40) + connect(1) + hello(1, 1) + \
        msg(1, REQUEST, 120, 0) + b'\x04\x00\x00' + msg(1, RETURN, 100) + \
        b'\x08' + num(50) + num(10) + num(100) + num(0) + num(5) + b'\x00' + \
        msg(1, SUBSCRIBE, 63) + b'\x09\x08' + num(1) + b'\x05\x00'
    write('broker', 'source', s)
    s = cfg + connect(0) + b'\x03\x00' + bytes([len(frame(HELLO, 1, 1, 0))]) + \
        frame(HELLO, 1, 1, 0) + b'\x03\x00\x18' + frame(REQUEST, 2, 5, 0)[:24] + \
        b'\x03\x00\x10' + b'XXXXXXXXXXXXXXXX'
    write('broker', 'raw', s)
    s = num(10) + num(0) + num(100) + num(100) + num(0) + b'\x01' + \
        connect(0, 2) + hello(0, 0) + connect(1, 1) + hello(1, 1) + \
        msg(1, REQUEST, 5, 0) + msg(1, CANCEL) + msg(1, TERMINATE)
    write('broker', 'uids', s)


def client():
    ack = frame(HELLO_ACK, 1, 0, 1, 4096, 1000, 1, 1000)
    # script steps (op, a, b); ops: 0 request 1 reserve 2 return 3 query
    # 4 status 5 subscribe 6 dispatch 7 cancel
    def seed(name, kind, steps, stream):
        body = bytes([kind, len(steps)]) + b''.join(bytes(s) for s in steps)
        write('client', name, body + stream)

    seed('hello', 0, [], ack + frame(TERMINATE_ACK, 2, 0, 0))
    seed('request', 0, [(0, 10, 0), (2, 4, 0)],
         ack + frame(GRANT, 2, 0, 10, 10) + frame(RETURN_ACK, 3, 0, 6) +
         frame(TERMINATE_ACK, 4, 0, 6))
    seed('reserve-denied', 0, [(1, 50, 1)],
         ack + frame(GRANT, 2, 6, 0, 0) + frame(TERMINATE_ACK, 3, 0, 0))
    seed('bidi-share', 1, [(0, 20, 2), (6, 0, 0)],
         ack + frame(SHARE_QUERY, 9, 0, 5, 100) + frame(GRANT, 2, 0, 20, 20) +
         frame(SHARE_QUERY, 10, 1, 30, 100) + frame(TERMINATE_ACK, 3, 0, 0))
    seed('source-repay', 2 | (4 << 2), [(1, 8, 3), (6, 0, 0)],
         ack + frame(GRANT, 2, 0, 8, 8) + frame(REPAY, 11, 5, 13) +
         frame(EVENT, 12, 1, 10, 1000, 0) + frame(TERMINATE_ACK, 3, 0, 0))
    seed('query-status', 3, [(3, 0, 0), (4 | 8, 0, 0)],
         ack + frame(QUERY_REPLY, 2, 0, 900, 1000, 0, 0, 4096, 2) +
         frame(STATUS_HEAD, 3, 0, 900, 1000, 1000, 4096, 1, 0, 5) +
         frame(STATUS_CLIENT, 3, 1, 42, 0, 0, 100, 0, REQUEST, 5, 1, 3, 1, 2, 3,
               *comm('python3')) +
         frame(STATUS_END, 3, 0) + frame(TERMINATE_ACK, 4, 0, 0))
    seed('subscribe-event', 0, [(5, 63, 0), (6, 0, 0)],
         ack + frame(SUBSCRIBE_ACK, 2, 0, 63) + frame(EVENT, 9, 8, 10, 1000, 7) +
         frame(ERROR, 0, 12, 0))
    seed('error', 0, [(0, 10, 0), (3, 0, 0)],
         ack + frame(ERROR, 2, 4, REQUEST) + frame(CANCEL_ACK, 3, 0))
    seed('big-balance', 0, [(0, 1, 0), (6, 0, 0)],
         ack + frame(GRANT, 2, 0, 1, (1 << 63) - 1) + frame(REPAY, 3, MAX_PAGES, 0))


wire()
conf()
broker()
client()


def trackfs():
    # ops (fuzz_trackfs.c): op % 8: 0-2 change, 3 change without inode,
    # 4 remove, 5 trim reserve, 6 outside change, 7 settings; inode (op >> 3) % 8
    def amt(chunks):
        return b'\x00' + num(chunks)

    def change(ino, mode, keep, est, use):
        return bytes([ino << 3 | 0, mode | keep << 2]) + amt(est) + bytes([use])

    write('trackfs', 'writes', change(0, 0, 0, 16, 0xbf) + change(1, 0, 0, 32, 0x60) +
          bytes([0 << 3 | 4]) + change(1, 0, 0, 100, 0xbf))
    write('trackfs', 'reserve', change(2, 2, 1, 64, 0x10) + bytes([2 << 3 | 5]) +
          amt(8) + change(2, 0, 0, 8, 0xbf) + bytes([2 << 3 | 4]))
    write('trackfs', 'writeback', change(3, 1, 0, 200, 0xbf) + bytes([6]) + amt(4) +
          b'\x01' + bytes([3 << 3 | 4]))
    write('trackfs', 'settings', bytes([7, 1, 64, 8]) + amt(100) +
          change(4, 0, 0, 300, 0xbf) + bytes([3]) + b'\x00' + amt(2) + b'\x80' +
          bytes([7, 2, 0, 0]) + amt(0) + change(5, 0, 0, 1, 0xbf))
    write('trackfs', 'huge', change(6, 0, 0, 0, 0) + bytes([6 << 3, 0, 0xe0]) +
          num(1 << 62) + b'\xbf')


trackfs()
