#!/usr/bin/env python3
# tests/conf/units.py CONFDIR - check the shipped systemd units: every unit
# name they refer to is shipped or a standard systemd unit, mount units are
# named after their mount point, and the ordering among them (with the
# default dependencies systemd adds) has no cycle.  Exit 1 with the reasons.
import glob
import os
import sys

REFS = ("After", "Before", "Requires", "Requisite", "Wants", "BindsTo",
        "PartOf", "Upholds", "Conflicts", "OnFailure", "OnSuccess",
        "WantedBy", "RequiredBy", "Also")

# Units systemd itself provides (systemd.special(7) and the common ones).
STANDARD = set("""
basic.target bluetooth.target cryptsetup.target cryptsetup-pre.target
default.target emergency.target exit.target final.target getty.target
graphical.target halt.target hibernate.target hybrid-sleep.target
initrd.target initrd-fs.target initrd-root-fs.target kexec.target
local-fs.target local-fs-pre.target multi-user.target network.target
network-online.target network-pre.target nss-lookup.target
nss-user-lookup.target paths.target poweroff.target printer.target
reboot.target remote-fs.target remote-fs-pre.target rescue.target
rpcbind.target shutdown.target sigpwr.target sleep.target slices.target
smartcard.target sockets.target sound.target suspend.target swap.target
sysinit.target time-set.target time-sync.target timers.target
umount.target usb-gadget.target
dbus.service dbus.socket syslog.socket systemd-journald.service
systemd-journald.socket systemd-udevd.service systemd-tmpfiles-setup.service
-.mount -.slice system.slice user.slice tmp.mount
""".split())

# Ordering among standard targets that the default dependencies lead to.
STANDARD_ORDER = [
    ("local-fs-pre.target", "local-fs.target"),
    ("local-fs.target", "sysinit.target"),
    ("sysinit.target", "basic.target"),
    ("sockets.target", "basic.target"),
    ("basic.target", "multi-user.target"),
    ("remote-fs-pre.target", "remote-fs.target"),
    ("remote-fs.target", "multi-user.target"),
    ("network.target", "remote-fs-pre.target"),
    ("multi-user.target", "graphical.target"),
    ("shutdown.target", "final.target"),
    ("umount.target", "final.target"),
]


def parse(path):
    """[(section, key, value)] of a unit file (continuations joined)."""
    out, section, pending = [], None, ""
    with open(path) as f:
        for raw in f:
            line = pending + raw.rstrip("\n")
            pending = ""
            if line.endswith("\\"):
                pending = line[:-1] + " "
                continue
            s = line.strip()
            if not s or s[0] in "#;":
                continue
            if s.startswith("[") and s.endswith("]"):
                section = s[1:-1]
                continue
            if "=" not in s:
                out.append((section, s, None))
                continue
            k, v = s.split("=", 1)
            out.append((section, k.strip(), v.strip()))
    return out


def escape_path(p):
    p = p.strip("/")
    if not p:
        return "-"
    r = []
    for i, c in enumerate(p):
        if c == "/":
            r.append("-")
        elif c.isalnum() or c in ":_" or (c == "." and i > 0):
            r.append(c)
        else:
            r.append("\\x%02x" % ord(c))
    return "".join(r)


def template_of(name):
    if "@" not in name:
        return None
    base, rest = name.split("@", 1)
    return base + "@" + rest[rest.rfind("."):]


def main():
    confdir = sys.argv[1]
    units = {}
    for path in sorted(glob.glob(os.path.join(confdir, "*"))):
        name = os.path.basename(path)
        if name.endswith(".in"):
            name = name[:-3]
        if name.rsplit(".", 1)[-1] in ("service", "socket", "mount", "target",
                                       "timer", "path", "automount", "slice"):
            units[name] = parse(path)
    if not units:
        print("no unit files in %s" % confdir)
        return 1
    errors = []

    def known(ref):
        if ref in units or ref in STANDARD:
            return True
        t = template_of(ref)
        return t is not None and t in units

    for name, entries in sorted(units.items()):
        for section, key, value in entries:
            if value is None:
                errors.append("%s: line without '=' in [%s]: %s" % (name, section, key))
                continue
            if key in REFS:
                for ref in value.split():
                    if not known(ref):
                        errors.append("%s: %s=%s: no such unit (neither shipped "
                                      "nor a standard systemd unit)" % (name, key, ref))
        if name.endswith(".mount"):
            where = [v for s, k, v in entries if s == "Mount" and k == "Where"]
            if not where:
                errors.append("%s: no Where=" % name)
            elif escape_path(where[0]) + ".mount" != name:
                errors.append("%s: Where=%s needs the name %s.mount" %
                              (name, where[0], escape_path(where[0])))

    # Ordering graph: an edge a -> b means a starts before b.
    edges = {}

    def before(a, b):
        edges.setdefault(a, set()).add(b)

    for a, b in STANDARD_ORDER:
        before(a, b)
    for name, entries in units.items():
        get = lambda key, sec=None: [x for s, k, v in entries if k == key and
                                     (sec is None or s == sec) for x in v.split()]
        for ref in get("After", "Unit"):
            before(ref, name)
        for ref in get("Before", "Unit"):
            before(name, ref)
        for ref in get("WantedBy", "Install") + get("RequiredBy", "Install"):
            if ref.endswith(".target"):
                before(name, ref)   # a target waits for what it pulls in
        defaults = [v for s, k, v in entries if k == "DefaultDependencies"]
        if defaults and defaults[-1].lower() in ("no", "false", "0", "off"):
            continue
        kind = name.rsplit(".", 1)[-1]
        if kind == "service":
            before("sysinit.target", name)
            before("basic.target", name)
            before(name, "shutdown.target")
        elif kind == "socket":
            before("sysinit.target", name)
            before(name, "sockets.target")
        elif kind == "mount":
            opts = ",".join(get("Options", "Mount")).split(",")
            if "_netdev" in opts:
                before("remote-fs-pre.target", name)
                before("network.target", name)
                if "nofail" not in opts:
                    before(name, "remote-fs.target")
            else:
                before("local-fs-pre.target", name)
                if "nofail" not in opts:
                    before(name, "local-fs.target")
            before(name, "umount.target")

    # Any cycle through the graph (shipped and standard units alike).
    state, stack = {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(edges.get(n, ())):
            if state.get(m) == 1:
                cyc = stack[stack.index(m):] + [m]
                errors.append("ordering cycle: " + " -> ".join(cyc))
            elif m not in state:
                visit(m)
        stack.pop()
        state[n] = 2

    for n in sorted(edges):
        if n not in state:
            visit(n)

    for e in errors:
        print(e)
    print("%d units checked, %d problems" % (len(units), len(errors)))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
