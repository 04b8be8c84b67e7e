# tests/gmalloc/gmlib.sh - sourced by gmalloc's shell tests.
. "$top_srcdir/tests/lib.sh"

GMLIB="$top_builddir/gmalloc/.libs/libgmalloc.so"
[ -f "$GMLIB" ] || fail "$GMLIB not built"
FAMILY="$top_builddir/tests/gmalloc/gm_family"

# Hermetic: no system config file, no settings from the caller.
for v in $(env | sed -n 's/^\(GMALLOC_[A-Za-z0-9_]*\)=.*/\1/p'); do unset "$v"; done
GMALLOC_CONF=/dev/null; export GMALLOC_CONF
# The broker's deadline is 10 s: a loaded machine may answer after the
# default 250 ms, and gmalloc would then go on under its fixed limit; these
# tests assert quota, not speed (broker_stall.sh sets its own).
GMALLOC_BROKER_TIMEOUT=10s; export GMALLOC_BROKER_TIMEOUT

mk_tmpdir

# pre CMD...: run CMD with libgmalloc.so preloaded.
pre() { LD_PRELOAD="$GMLIB" "$@"; }

need_cmd() { command -v "$1" >/dev/null 2>&1 || skip "$1 is not installed"; }

# The at-exit report proves the program really ran on gmalloc:
# check_report FILE: the report is there and the heap was used.
check_report() {
	grep -q '^gmalloc: pid [0-9]*; config:' "$1" || { cat "$1"; fail "no gmalloc report in $1"; }
}
