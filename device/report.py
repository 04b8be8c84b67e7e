#!/usr/bin/env python3
"""report.py - sampler and report of the simulated device (device/run.sh).

  report.py sample --out FILE --pids FILE --stop FILE [--usage FILE ...]
      every SAMPLE_S seconds until the stop file appears, one line of
      device memory, OOM kills, the broker's pool and each workload's quota
      and memory (MiB) to FILE.
  report.py report --dir DIR [--chart GNUPLOT_SCRIPT]
      reads DIR/suite and DIR/plain, prints the numbers of both runs, writes
      DIR/summary.txt, DIR/result (key value lines for tests) and the
      timeline chart DIR/timeline.png and .svg.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time

SAMPLE_S = 0.2
MIB = 1 << 20
WORKLOADS = ["renderer", "pyjob", "cache", "spooler", "hog"]
# Workloads whose memory the broker lends (the spool's through track_fs).
QUOTA_CLIENT = {"renderer": "renderer", "pyjob": "pyjob", "cache": "cache", "spooler": "spool"}
RATE_AIM = 0.95
# The broker's watermark states, as the sampler records them.
STATES = {"normal": 0, "notify": 1, "deny": 2}


# ---- sampling ---------------------------------------------------------------

def read_int(path):
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def oom_kills(cgroup, version):
    name = "memory.oom_control" if version == "1" else "memory.events"
    try:
        with open(os.path.join(cgroup, name)) as f:
            for line in f:
                k, _, v = line.partition(" ")
                if k == "oom_kill":
                    return int(v)
    except OSError:
        pass
    return 0


def anon_bytes(pid):
    """Anonymous and shared-memory resident bytes of a process."""
    total = 0
    try:
        with open("/proc/%s/status" % pid) as f:
            for line in f:
                if line.startswith(("RssAnon:", "RssShmem:")):
                    total += int(line.split()[1]) * 1024
    except OSError:
        return None
    return total


def dir_usage(path):
    """Bytes the files of a directory occupy."""
    total = 0
    try:
        with os.scandir(path) as it:
            for e in it:
                try:
                    total += e.stat(follow_symlinks=False).st_blocks * 512
                except OSError:
                    pass
    except OSError:
        return None
    return total


def read_pids(path):
    pids = {}
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2:
                    pids[parts[0]] = parts[1]
    except OSError:
        pass
    return pids


class BrokerWatch:
    """The broker's latest status, from one `mbstatus --json --watch`."""

    def __init__(self, mbstatus, socket):
        self.latest = None
        self.proc = None
        if socket and os.path.exists(socket):
            self.proc = subprocess.Popen([mbstatus, "--socket", socket, "--json",
                                          "--watch=%dms" % (SAMPLE_S * 1000)],
                                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                         text=True)
            threading.Thread(target=self.read, daemon=True).start()

    def read(self):
        for line in self.proc.stdout:
            try:
                self.latest = json.loads(line)
            except ValueError:
                pass

    def stop(self):
        if self.proc:
            self.proc.terminate()
            self.proc.wait()


def unreclaimable(cgroup, version):
    """Anonymous and tmpfs bytes of the device: what reclaim cannot free."""
    keys = ("total_rss", "total_shmem") if version == "1" else ("anon", "shmem")
    total = 0
    try:
        with open(os.path.join(cgroup, "memory.stat")) as f:
            for line in f:
                k, _, v = line.partition(" ")
                if k in keys:
                    total += int(v)
    except (OSError, ValueError):
        return None
    return total


def fmt(v):
    return "NaN" if v is None else "%.2f" % (v / MIB)


def sample(a):
    start = time.monotonic()
    cols = ["t", "device", "oom_kills", "pool"] + ["q_" + w for w in QUOTA_CLIENT] + \
           ["m_" + w for w in WORKLOADS] + ["unreclaimable", "used", "state", "lendable"]
    watch = BrokerWatch(a.mbstatus, a.socket)
    with open(a.out, "w") as out:
        out.write("# " + " ".join(cols) + "\n")
        while not os.path.exists(a.stop):
            t = time.monotonic() - start
            pids = read_pids(a.pids)
            mem = {w: anon_bytes(pids[w]) if w in pids else None for w in WORKLOADS}
            if a.backing:
                mem["spooler"] = dir_usage(a.backing)
            if a.usage:
                device = read_int(a.usage)
                hard = unreclaimable(a.cgroup, a.cgroup_version)
            else:
                device = hard = sum(v for v in mem.values() if v)
            kills = oom_kills(a.cgroup, a.cgroup_version) if a.cgroup else 0
            st = watch.latest
            quota = {w: None for w in QUOTA_CLIENT}
            pool = used = lendable = None
            state = "NaN"
            if st:
                page = st.get("page_size", 4096)
                pool = st["pool"] * page
                by_pid = {str(r["pid"]): r["balance"] * page for r in st.get("rows", [])}
                for w, client in QUOTA_CLIENT.items():
                    pid = pids.get(client if client == "spool" else w)
                    quota[w] = by_pid.get(pid, 0 if pid else None)
                dev = st.get("device")
                if dev:
                    used = dev.get("used")
                    state = str(STATES.get(dev.get("state"), "NaN"))
                    if dev.get("lendable_pages") is not None:
                        lendable = dev["lendable_pages"] * page
            row = ["%.2f" % t, fmt(device), str(kills), fmt(pool)] + \
                  [fmt(quota[w]) for w in QUOTA_CLIENT] + [fmt(mem[w]) for w in WORKLOADS] + [fmt(hard), fmt(used), state, fmt(lendable)]
            out.write(" ".join(row) + "\n")
            out.flush()
            time.sleep(max(0.0, SAMPLE_S - (time.monotonic() - start - t)))
    watch.stop()


# ---- reading a run -----------------------------------------------------------

def read_progress(path):
    """[(seconds, units)], stats, (end seconds, units) or None."""
    points, stats, end = [], {}, None
    try:
        with open(path) as f:
            for line in f:
                p = line.split()
                if len(p) == 2 and p[0] != "end":
                    points.append((float(p[0]) / 1000, int(p[1])))
                elif len(p) == 3 and p[0] == "stat":
                    stats[p[1]] = float(p[2])
                elif len(p) == 3 and p[0] == "end":
                    end = (float(p[1]) / 1000, int(p[2]))
    except (OSError, ValueError):
        pass
    return points, stats, end


def units_by(points, t):
    """Work done by t seconds: the units finished, and the unit under way
    in proportion to the time it took (some units are whole jobs of a few
    seconds, and a unit finished a few ms after t would otherwise count as
    none of it done).  Nothing is counted past the last unit logged."""
    done, before = 0, 0.0
    for when, units in points:
        if when <= t:
            done, before = units, when
        else:
            return done + (units - done) * (t - before) / (when - before)
    return done


def read_samples(path):
    rows, cols = [], []
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("#"):
                    cols = line[1:].split()
                    continue
                rows.append(dict(zip(cols, line.split())))
    except OSError:
        pass
    return rows


REGISTERED = re.compile(r"client (\d+): (\S+) \(pid \d+ uid \d+\) registered as (\w+)")


def client_lines(path, names, kinds):
    """The broker log's lines, less the registrations, which fill names and
    kinds (by client id); None without a log."""
    try:
        with open(path) as f:
            lines = f.readlines()
    except OSError:
        return None
    rest = []
    for line in lines:
        if (m := REGISTERED.search(line)):
            names[m[1]], kinds[m[1]] = m[2], m[3]
        else:
            rest.append(line)
    return rest


def broker_figures(path):
    fig = {"granted": 0, "partial": 0, "denied": 0, "latencies": [],
           "asked": 0, "asked_pages": 0, "freed_pages": 0, "clients": {}}
    done = re.compile(r"client (\d+): (REQUEST|RESERVE) (\d+) of (\d+) pages after (\d+) ms \((\w+)\)")
    at_once = re.compile(r"client (\d+): (REQUEST|RESERVE) \d+ pages granted at once")
    names = {}

    def count(cid, what):
        per = fig["clients"].setdefault(names.get(cid, cid), {"granted": 0, "partial": 0, "denied": 0})
        per[what] += 1
        fig[what] += 1
    lines = client_lines(path, names, {})
    if lines is None:
        return None
    for line in lines:
        if (m := at_once.search(line)):
            count(m[1], "granted")
            fig["latencies"].append(0)
        elif (m := done.search(line)):
            got, asked, ms, status = int(m[3]), int(m[4]), int(m[5]), m[6]
            fig["latencies"].append(ms)
            if status == "OK" and got >= asked:
                count(m[1], "granted")
            elif status == "OK" and got > 0:
                count(m[1], "partial")
            else:
                count(m[1], "denied")
        elif (m := re.search(r"to give back (\d+) pages", line)):
            fig["asked"] += 1
            fig["asked_pages"] += int(m[1])
        elif (m := re.search(r"\) gives back (\d+) pages", line)):
            fig["freed_pages"] += int(m[1])
    return fig


UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}


def size_of(text):
    """Bytes of a figure of the broker's log ("14.7 MiB", "512 B")."""
    num, _, unit = text.partition(" ")
    return float(num) * UNITS.get(unit, 1)


def watermark_figures(path):
    """What the broker's memory watermarks did, from its decision: lines."""
    fig = {"notify": 0, "deny": 0, "early": 0, "asked": 0, "asked_pages": 0,
           "honoured": 0, "dishonoured": 0, "gave_none": 0, "freed": 0.0,
           "denied": 0, "denied_by": {}, "lowered": 0, "sink_returned": 0}
    transition = re.compile(r"decision: (\w+) -> (\w+)( \(early\))?:")
    asked = re.compile(r"decision: give-back asked: .* asked (\d+) pages")
    check = re.compile(r"decision: give-back check: .* freed ([\d.]+ \w+): (NOT )?honoured")
    zero = re.compile(r"decision: give-back answered: .* gave 0 of")
    denied = re.compile(r"decision: deny: \w+ of \d+ pages from client (\d+) \(uid \d+\) refused")
    lendable = re.compile(r"decision: lendable (\d+) -> (\d+) pages")
    returns = re.compile(r"client (\d+) returns (\d+) pages")
    names, kinds, state = {}, {}, "normal"
    lines = client_lines(path, names, kinds)
    if lines is None:
        return None
    for line in lines:
        if (m := returns.search(line)):
            # gmalloc programs return free quota when told of notify or deny.
            if state != "normal" and kinds.get(m[1]) == "sink":
                fig["sink_returned"] += int(m[2])
        elif "decision:" not in line:
            continue
        elif (m := transition.search(line)):
            state = m[2]
            if m[2] == "deny":
                fig["deny"] += 1
            elif m[2] == "notify" and m[1] == "normal":
                fig["notify"] += 1
                fig["early"] += bool(m[3])
        elif (m := asked.search(line)):
            fig["asked"] += 1
            fig["asked_pages"] += int(m[1])
        elif (m := check.search(line)):
            fig["dishonoured" if m[2] else "honoured"] += 1
            fig["freed"] += size_of(m[1])
        elif zero.search(line):
            fig["gave_none"] += 1
        elif (m := denied.search(line)):
            fig["denied"] += 1
            who = names.get(m[1], m[1])
            fig["denied_by"][who] = fig["denied_by"].get(who, 0) + 1
        elif (m := lendable.search(line)):
            fig["lowered"] += int(m[2]) < int(m[1])
    return fig


def read_run(d):
    run = {"dir": d, "status": {}, "work": {}}
    try:
        with open(os.path.join(d, "status")) as f:
            for line in f:
                k, _, v = line.strip().partition(" ")
                run["status"][k] = v
    except OSError:
        return None
    for w in WORKLOADS:
        run["work"][w] = read_progress(os.path.join(d, w + ".log"))
    run["samples"] = read_samples(os.path.join(d, "samples.tsv"))
    run["broker"] = broker_figures(os.path.join(d, "mbserver.log"))
    run["marks"] = watermark_figures(os.path.join(d, "mbserver.log"))
    kills = [float(r["t"]) for r in run["samples"] if int(r.get("oom_kills", 0)) > 0]
    run["first_kill"] = kills[0] if kills else None
    run["oom_kills"] = int(run["status"].get("oom_kills") or 0) if "oom_kills" in run["status"] else None
    peak = run["status"].get("peak_bytes")
    if not peak:
        vals = [float(r["device"]) for r in run["samples"] if r.get("device") not in (None, "NaN")]
        peak = max(vals) * MIB if vals else None
    run["peak"] = float(peak) if peak else None
    hard = [float(r["unreclaimable"]) for r in run["samples"] if r.get("unreclaimable", "NaN") != "NaN"]
    run["peak_hard"] = max(hard) if hard else None
    run["final"] = None
    try:
        with open(os.path.join(d, "final.json")) as f:
            run["final"] = json.load(f)
    except (OSError, ValueError):
        pass
    return run


def quota_back(run):
    """Every client gone and the pool back at the total."""
    st = run["final"]
    if not st:
        return False
    holders = [r for r in st.get("rows", []) if r["kind"] != "observer" and r["balance"] != 0]
    return st["pool"] == st["total"] and not holders


# ---- the report ----------------------------------------------------------------

def killed(run, w):
    rc = run["status"].get(w)
    return rc is not None and rc == "137"


def report(a):
    params = {}
    with open(os.path.join(a.dir, "params")) as f:
        for line in f:
            k, _, v = line.strip().partition(" ")
            params[k] = v
    runs = {m: read_run(os.path.join(a.dir, m)) for m in ("suite", "plain")}
    runs = {m: r for m, r in runs.items() if r}
    suite, plain = runs.get("suite"), runs.get("plain")
    # Rates are compared over the same window: the plain run until its first
    # OOM kill (the whole run if there was none); same seed, same arrivals.
    window = None
    if plain:
        window = plain["first_kill"]
        if window is None:
            ends = [e[0] for p, s, e in plain["work"].values() if e]
            window = max(ends) if ends else None

    lines = []
    out = lines.append
    out("Device: %s; broker total %s MiB; seed %s; %s s of jobs" %
        (params.get("device"), params.get("total"), params.get("seed"), params.get("seconds")))
    names = [m for m in ("suite", "plain") if m in runs]
    out("")
    out("%-34s" % "" + "".join("%24s" % ("with the suite" if m == "suite" else "plain")
                                for m in names))

    def row(label, fn):
        out("%-34s" % label + "".join("%24s" % fn(runs[m]) for m in names))

    row("OOM kills", lambda r: "n/a" if r["oom_kills"] is None else
        "%d (first at %.1f s)" % (r["oom_kills"], r["first_kill"]) if r["oom_kills"] else "0")
    row("peak device memory", lambda r: "n/a" if r["peak"] is None else "%.1f MiB" % (r["peak"] / MIB))
    row("  of it anonymous and tmpfs", lambda r: "%.1f MiB" % r["peak_hard"] if r["peak_hard"] else "-")
    for w in WORKLOADS:
        def work(r, w=w):
            points, stats, end = r["work"][w]
            units = end[1] if end else (points[-1][1] if points else 0)
            t = end[0] if end else (points[-1][0] if points else 0)
            tag = "killed" if killed(r, w) else ("done" if end else "unfinished")
            return "%d, %.2f/s, %s" % (units, units / t if t else 0, tag)
        row("work done: " + w, work)
    if window:
        out("rate of work until the plain run's first OOM kill (same window, same seed):")
        for w in WORKLOADS:
            row("  %s per s, first %.1f s" % (w, window),
                lambda r, w=w: "%.2f" % (units_by(r["work"][w][0], window) / window))
    row("quota requests granted/part/denied", lambda r: "%d/%d/%d" % (
        r["broker"]["granted"], r["broker"]["partial"], r["broker"]["denied"]) if r["broker"] else "-")
    clients = sorted({n for r in runs.values() if r["broker"] for n in r["broker"]["clients"]})
    for n in clients:
        row("  by %s" % n, lambda r, n=n: "%(granted)d/%(partial)d/%(denied)d" %
            r["broker"]["clients"][n] if r["broker"] and n in r["broker"]["clients"] else "-")

    def latency(r):
        if not r["broker"] or not r["broker"]["latencies"]:
            return "-"
        lat = sorted(r["broker"]["latencies"])
        return "median %d, max %d ms" % (lat[len(lat) // 2], lat[-1])
    row("  request latency", latency)
    row("all give-backs asked / pages freed", lambda r: "%d / %d" % (
        r["broker"]["asked"], r["broker"]["freed_pages"]) if r["broker"] else "-")
    row("cache give-backs / MiB given", lambda r: "%d / %.0f" % (
        r["work"]["cache"][1].get("give_back_requests", 0), r["work"]["cache"][1].get("given_back_mib", 0)))
    row("renderer refused mallocs / dropped", lambda r: "%d / %d" % (
        r["work"]["renderer"][1].get("refused_mallocs", 0), r["work"]["renderer"][1].get("dropped", 0)))
    row("pyjob MemoryErrors", lambda r: "%d" % r["work"]["pyjob"][1].get("memory_errors", 0))
    row("ENOSPC seen (spooler)", lambda r: "%d" % r["work"]["spooler"][1].get("enospc", 0))
    marked = bool(params.get("watermarks", "").split())
    wm_rows(row, marked, runs.values())

    verdict = {}
    if suite:
        verdict["suite_oom_kills"] = suite["oom_kills"] if suite["oom_kills"] is not None else 0
        verdict["suite_all_finished"] = int(all(suite["work"][w][2] and suite["status"].get(w) == "0"
                                                for w in WORKLOADS))
        verdict["quota_back"] = int(quota_back(suite))
        m = suite["marks"]
        if marked and m:
            verdict.update(wm_notify=m["notify"], wm_deny=m["deny"], wm_asked=m["asked"],
                           wm_honoured=m["honoured"], wm_dishonoured=m["dishonoured"],
                           wm_freed_mib="%.1f" % (m["freed"] / MIB), wm_denied=m["denied"],
                           wm_sink_returned=m["sink_returned"])
    if plain:
        verdict["plain_oom_kills"] = plain["oom_kills"] or 0
    if suite and plain and window:
        worst = None
        for w in WORKLOADS:
            p = units_by(plain["work"][w][0], window)
            s = units_by(suite["work"][w][0], window)
            ratio = s / p if p else 1.0
            worst = ratio if worst is None or ratio < worst else worst
        verdict["worst_rate_ratio"] = "%.3f" % worst
        # The suite's whole run against the plain run before its first kill.
        whole = None
        for w in WORKLOADS:
            end = suite["work"][w][2]
            p = units_by(plain["work"][w][0], window) / window
            s = end[1] / end[0] if end and end[0] else 0.0
            ratio = s / p if p else 1.0
            whole = ratio if whole is None or ratio < whole else whole
        verdict["worst_rate_ratio_whole_run"] = "%.3f" % whole
    out("")
    out(summary(verdict))
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    with open(os.path.join(a.dir, "summary.txt"), "w") as f:
        f.write(text)
    with open(os.path.join(a.dir, "result"), "w") as f:
        for k, v in verdict.items():
            f.write("%s %s\n" % (k, v))
    if a.chart:
        chart(a, params, runs)


def state_seconds(run, state):
    """Seconds the sampler saw the broker in a watermark state."""
    rows = [r for r in run["samples"] if r.get("state", "NaN") != "NaN"]
    n = sum(1 for r in rows if int(r["state"]) == state)
    return n * SAMPLE_S


def wm_rows(row, marked, runs):
    def marks(fn):
        return lambda r: fn(r["marks"]) if marked and r["marks"] else ("none set" if r["marks"] else "-")
    row("watermark crossings notify/deny", marks(lambda m: "%d/%d" % (m["notify"], m["deny"])))
    row("  seconds in notify/deny", lambda r: "%.1f/%.1f" % (state_seconds(r, 1), state_seconds(r, 2))
        if marked and r["marks"] else "-")
    row("    pages gmalloc returned in them", marks(lambda m: "%d" % m["sink_returned"]))
    row("  give-backs asked / pages", marks(lambda m: "%d / %d" % (m["asked"], m["asked_pages"])))
    row("  honoured/not/gave nothing", marks(lambda m: "%d/%d/%d" % (
        m["honoured"], m["dishonoured"], m["gave_none"])))
    row("  private memory freed", marks(lambda m: "%.0f MiB" % (m["freed"] / MIB)))
    row("  pool lowered for the device", marks(lambda m: "%d times" % m["lowered"]))
    row("  requests denied (LOWMEM)", marks(lambda m: "%d" % m["denied"]))
    who = sorted({n for r in runs for n in (r["marks"] or {}).get("denied_by", {})})
    for n in who:
        row("    of %s" % n, marks(lambda m, n=n: "%d" % m["denied_by"].get(n, 0)))


def summary(v):
    parts = []
    if "suite_oom_kills" in v:
        parts.append("With the suite: %d OOM kills, %s, quota %s." % (
            v["suite_oom_kills"],
            "every workload finished" if v["suite_all_finished"] else "NOT every workload finished",
            "back in the pool" if v["quota_back"] else "NOT back in the pool"))
    if "wm_notify" in v:
        parts.append("Watermarks: %d notify and %d deny crossings, %d give-backs asked (%d honoured, "
                     "%s MiB freed), %d requests denied." % (
                         v["wm_notify"], v["wm_deny"], v["wm_asked"], v["wm_honoured"],
                         v["wm_freed_mib"], v["wm_denied"]))
    if "plain_oom_kills" in v:
        parts.append("Plain: %d OOM kills." % v["plain_oom_kills"])
    if "worst_rate_ratio" in v:
        r = float(v["worst_rate_ratio"])
        parts.append("Lowest rate of work with the suite: %.0f%% of the plain run's in the same "
                     "window (aim %.0f%%);" % (100 * r, 100 * RATE_AIM))
        parts.append("  over the suite's whole run against the plain run before its first kill: %.0f%%." %
                     (100 * float(v["worst_rate_ratio_whole_run"])))
    aim = (v.get("suite_oom_kills") == 0 and v.get("suite_all_finished") and
           v.get("plain_oom_kills", 0) > 0 and float(v.get("worst_rate_ratio", 0)) >= RATE_AIM)
    if "plain_oom_kills" in v and "suite_oom_kills" in v:
        parts.append("Aim %s." % ("met" if aim else "NOT met"))
    return "\n".join(parts)


def chart(a, params, runs):
    for m, r in runs.items():
        with open(os.path.join(a.dir, m, "kills.dat"), "w") as f:
            # Marked at the device's memory just before the kill.
            last, before = 0, "NaN"
            for s in r["samples"]:
                k = int(s["oom_kills"])
                if k > last:
                    f.write("%s %s\n" % (s["t"], before))
                last, before = k, s["device"]
    # Notify high and low, deny high and low (MiB), or none.
    marks = (params.get("watermarks", "").split() + ["NaN"] * 4)[:4]
    for term, ext in (('pngcairo size 1200,520 font "DejaVu Sans,9"', "png"), ("svg size 1200,520", "svg")):
        cmd = ["gnuplot", "-e",
               "dir='%s'; outfile='%s'; term='%s'; limit=%s; total=%s; nh=%s; nl=%s; dh=%s; dl=%s; "
               "has_suite=%d; has_plain=%d" % (
                   a.dir, os.path.join(a.dir, "timeline." + ext), term, params.get("limit", 0),
                   params.get("total", 0), *marks, "suite" in runs, "plain" in runs), a.chart]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            sys.stderr.write("gnuplot failed: %s\n" % res.stderr.strip())
            return
    print("Chart: %s (and .svg)" % os.path.join(a.dir, "timeline.png"))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sample")
    s.add_argument("--out", required=True)
    s.add_argument("--pids", required=True)
    s.add_argument("--stop", required=True)
    s.add_argument("--usage")
    s.add_argument("--cgroup")
    s.add_argument("--cgroup-version", default="1")
    s.add_argument("--backing")
    s.add_argument("--socket")
    s.add_argument("--mbstatus", default="mbstatus")
    r = sub.add_parser("report")
    r.add_argument("--dir", required=True)
    r.add_argument("--chart")
    a = ap.parse_args()
    if a.cmd == "sample":
        sample(a)
    else:
        report(a)


if __name__ == "__main__":
    main()
