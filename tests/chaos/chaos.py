"""Chaos test body, run by chaos.sh (which checks what is needed)."""
import json
import os
import random
import signal
import subprocess
import sys
import time

BUILD = os.environ["top_builddir"]
TMP = os.environ["TEST_TMP"]
SEED = int(os.environ.get("CHAOS_SEED", "20261129"))
SOCK = os.path.join(TMP, "mb.sock")
TOTAL = "64M"
MBSERVER = os.path.join(BUILD, "mbserver/mbserver")
MBSTATUS = os.path.join(BUILD, "libmbclient/mbstatus")
MBUTIL = os.path.join(BUILD, "libmbclient/mbutil")
HOLDER = os.path.join(BUILD, "anrmalloc/examples/cache_holder")
GMLIB = os.path.join(BUILD, "gmalloc/.libs/libgmalloc.so")
WAIT = 30.0  # generous bound of every wait; the test asserts no timing

rnd = random.Random(SEED)
os.environ["MEMBROKER_SOCKET"] = SOCK
procs = []
broker = None


def log(msg):
    print("chaos: " + msg, flush=True)


def fail(msg):
    print("FAIL: " + msg, flush=True)
    for name in sorted(os.listdir(TMP)):
        if name.endswith((".out", ".err", ".log")):
            with open(os.path.join(TMP, name), errors="replace") as f:
                text = "".join(l for l in f if "mbstatus" not in l)
                print("---- " + name + "\n" + text[-3000:])
    cleanup()
    sys.exit(1)


def cleanup():
    for c in procs:
        if c.proc.poll() is None:
            c.proc.kill()
            c.proc.wait()
    if broker and broker.poll() is None:
        broker.kill()
        broker.wait()


def wait_until(pred, what):
    end = time.monotonic() + WAIT
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    fail(what)


def status():
    r = subprocess.run([MBSTATUS, "--json"], capture_output=True, text=True)
    return json.loads(r.stdout) if r.returncode == 0 else None


def start_broker():
    global broker
    if os.path.exists(SOCK):
        os.unlink(SOCK)
    out = open(os.path.join(TMP, "mbserver.log"), "a")
    broker = subprocess.Popen([MBSERVER, "--config", "/dev/null", "--socket", SOCK,
                               "--total", TOTAL, "--log-level", "info"],
                              stdout=out, stderr=subprocess.STDOUT)
    wait_until(status, "mbserver did not start")


class Client:
    def __init__(self, name, kind, argv, env=None, ready=None):
        self.name, self.kind = name, kind
        self.out = os.path.join(TMP, name + ".out")
        self.err = os.path.join(TMP, name + ".err")
        self.ready = ready
        e = dict(os.environ)
        e.update(env or {})
        self.proc = subprocess.Popen(argv, env=e, stdout=open(self.out, "w"),
                                     stderr=open(self.err, "w"))
        self.killed = False
        procs.append(self)

    def text(self):
        with open(self.out, errors="replace") as f:
            return f.read()

    def is_ready(self):
        if self.proc.poll() is not None:
            fail("%s exited early (%s)" % (self.name, self.proc.returncode))
        return self.ready(self)


def said(*words):
    return lambda c: any(w in c.text() for w in words)


def gm_ready(c):
    return os.path.exists(os.path.join(TMP, c.name + ".ready"))


GM_SCRIPT = os.path.join(TMP, "gm.py")
with open(GM_SCRIPT, "w") as f:
    f.write("""import os, sys, time
d, name = sys.argv[1], sys.argv[2]
keep = [bytearray(1 << 20) for _ in range(6)]
open(os.path.join(d, name + ".ready"), "w").close()
quiet = False
while not os.path.exists(os.path.join(d, "stop")):
    if not os.path.exists(os.path.join(d, "quiet")):
        x = [bytearray(1 << 18) for _ in range(8)]
        del x
    elif not quiet:
        quiet = True
        open(os.path.join(d, name + ".quiet"), "w").close()
    time.sleep(0.02)
""")

start_broker()
log("seed %d" % SEED)
clients = []
for i in range(3):
    clients.append(Client("sink%d" % i, "sink", [MBUTIL, "hold", "4M"],
                          ready=said("holding")))
for i in range(2):
    clients.append(Client("bidi%d" % i, "bidi", [MBUTIL, "--kind", "bidi", "hold", "3M"],
                          ready=said("holding")))
clients.append(Client("source", "source", [MBUTIL, "--source", "8M", "hold", "0"],
                      ready=said("holding")))
for i in range(2):
    clients.append(Client("cache%d" % i, "cache",
                          [HOLDER, "--cache", "6M", "--object", "256K", "--seconds", "0",
                           "--name", "cache%d" % i],
                          ready=said("cache filled", "no more quota")))
for i in range(2):
    clients.append(Client("gm%d" % i, "gmalloc",
                          [sys.executable, GM_SCRIPT, TMP, "gm%d" % i],
                          env={"LD_PRELOAD": GMLIB, "GMALLOC_CONF": "/dev/null",
                               "GMALLOC_BROKER": "yes", "GMALLOC_LIMIT": "64M",
                               "GMALLOC_BROKER_TIMEOUT": "10s",
                               "GMALLOC_REPORT_SIGNAL": "USR2"},
                          ready=gm_ready))
for c in clients:
    wait_until(c.is_ready, "%s did not start" % c.name)
log("%d clients running" % len(clients))

victims = rnd.sample(clients, len(clients) // 3)
log("victims: " + ", ".join(v.name for v in victims))


def kill(c):
    time.sleep(rnd.uniform(0, 0.3))
    c.proc.send_signal(signal.SIGKILL)
    c.proc.wait()
    c.killed = True
    log("killed " + c.name)


kill(victims[0])
time.sleep(rnd.uniform(0, 0.5))
broker.send_signal(signal.SIGKILL)
broker.wait()
log("broker killed")
time.sleep(rnd.uniform(0, 0.5))
start_broker()
log("broker restarted")
for v in victims[1:]:
    kill(v)
alive = [c for c in clients if not c.killed]


def rows():
    s = status()
    return {r["pid"]: r for r in s["rows"]} if s else None


# Every survivor comes back to the new broker by itself.
def all_back():
    r = rows()
    return r if r and all(c.proc.pid in r for c in alive) else None


wait_until(all_back, "not every surviving client reconnected")
wait_until(lambda: not any(c.proc.pid in (rows() or {}) for c in victims),
           "a killed client is still registered")
log("survivors reconnected: " + ", ".join(c.name for c in alive))

# The ledger: quiet the clients, then compare with what each says it holds.
open(os.path.join(TMP, "quiet"), "w").close()
gms = [c for c in alive if c.kind == "gmalloc"]
wait_until(lambda: all(os.path.exists(os.path.join(TMP, c.name + ".quiet")) for c in gms),
           "a gmalloc client did not go quiet")


def reports(c):
    """The lines of a gmalloc client's reports that say what it holds."""
    with open(c.err, errors="replace") as f:
        return [l for l in f if "quota held" in l]


before = {c.name: len(reports(c)) for c in gms}
for c in gms:
    c.proc.send_signal(signal.SIGUSR2)
wait_until(lambda: all(len(reports(c)) > before[c.name] for c in gms),
           "a gmalloc client wrote no report on SIGUSR2")
s = status()
if s is None:
    fail("no status")
byp = {r["pid"]: r for r in s["rows"]}
inflight = sum(r["request"]["acquired"] for r in s["rows"] if r["request"])
if s["pool"] + sum(r["balance"] for r in s["rows"]) + inflight != s["initial"]:
    fail("pool %d + balances + in flight != %d: %s" % (s["pool"], s["initial"], s))
page = s["page_size"]


def fmt_size(b):
    units = ["B", "KiB", "MiB", "GiB"]
    u, whole, rem = 0, b, 0
    while whole >= 1024 and u < 3:
        rem, whole, u = whole % 1024, whole // 1024, u + 1
    return "%d B" % b if u == 0 else "%d.%d %s" % (whole, rem * 10 // 1024, units[u])


claimed = 0
for c in alive:
    bal = byp[c.proc.pid]["balance"]
    if c.kind == "sink":
        held = [l for l in c.text().splitlines() if "holding" in l][-1]
        says = int(held.split("holding ")[1].split()[0])
        if says != bal:
            fail("%s says it holds %d pages, the broker counts %d" % (c.name, says, bal))
    elif c.kind == "gmalloc":
        lines = reports(c)
        if not lines:
            fail("%s wrote no report" % c.name)
        says = lines[-1].split("quota held ")[1].split(";")[0]
        if says != fmt_size(bal * page):
            fail("%s says it holds %s, the broker counts %s" % (c.name, says,
                                                               fmt_size(bal * page)))
    elif c.kind == "source":
        if byp[c.proc.pid]["source_pages"] == 0:
            fail("the source came back without its pages")
    if bal < 0 and c.kind != "source":
        fail("%s has a negative balance" % c.name)
    claimed += max(bal, 0)
log("ledger matches: %d pages held by %d clients, pool %d of %d"
    % (claimed, len(alive), s["pool"], s["total"]))

# Everyone leaves: every page is back.
open(os.path.join(TMP, "stop"), "w").close()
for c in alive:
    if c.kind != "gmalloc":
        c.proc.send_signal(signal.SIGTERM)
for c in alive:
    try:
        c.proc.wait(timeout=WAIT)
    except subprocess.TimeoutExpired:
        fail("%s did not stop" % c.name)
# (mbstatus itself is the one observer left.)
s = wait_until(lambda: (lambda s: s if s and s["pool"] == s["total"] == s["initial"] and
                        all(r["kind"] == "observer" for r in s["rows"]) else None)(status()),
               "pages not back after every client left: %s" % json.dumps(status()))
if broker.poll() is not None:
    fail("the broker died")
with open(os.path.join(TMP, "mbserver.log"), errors="replace") as f:
    text = f.read()
if "invariant broken" in text:
    fail("the broker broke an invariant")
if "claims" not in text:
    fail("no claim reached the new broker")
log("every page back: pool %d of %d" % (s["pool"], s["total"]))
cleanup()
print("PASS")
