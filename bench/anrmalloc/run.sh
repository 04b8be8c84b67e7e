#!/bin/sh
# bench/anrmalloc/run.sh [BUILDDIR] - cost of the anr_malloc layer (not part
# of make check): the same churn workload with glibc malloc, an anr_malloc
# heap without block records (plain), one with the defaults (records on),
# one with guards, recorder and debug info, and one
# that also keeps 4 frames of call stack per block.  hyperfine runs each RUNS times; the ratios are of the medians.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=${1:-${top_builddir:-$top/build}}
build=$(cd "$build" && pwd)
RUNS=${RUNS:-7}
OPS=${OPS:-4000000}
lib="$build/anrmalloc/.libs"
[ -f "$lib/libanrmalloc.so" ] || { echo "build libanrmalloc.so first ($lib)" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "needs hyperfine" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench-anrm.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cc -O2 -I"$top" -o "$tmp/churn" "$here/churn.c" -L"$lib" -lanrmalloc \
	-Wl,-rpath,"$lib:$build/libmbclient/.libs"

hyperfine --warmup 1 --runs "$RUNS" --export-json "$tmp/r.json" \
	"$tmp/churn libc $OPS" "$tmp/churn plain $OPS" "$tmp/churn anr $OPS" \
	"$tmp/churn debug $OPS" \
	"$tmp/churn stack $OPS" >/dev/null
python3 - "$tmp/r.json" "$OPS" <<'PY'
import json, statistics, sys
res = json.load(open(sys.argv[1]))["results"]
ops = int(sys.argv[2])
med = {r["command"].split()[1]: statistics.median(r["times"]) for r in res}
for name in ("libc", "plain", "anr", "debug", "stack"):
    print("%-6s median %.3f s  %6.1f ns/op  x%.2f of libc"
          % (name, med[name], med[name] / ops * 1e9, med[name] / med["libc"]))
PY
