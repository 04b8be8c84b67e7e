#!/bin/sh
# bench/alloc/run.sh [BUILDDIR] - allocator benchmark (not part of make check).
#
# 1. RSS after free: rss_driver (512 MiB in mixed sizes, 99% freed in
#    random order) under glibc, gmalloc, jemalloc, mimalloc and tcmalloc,
#    each preloaded into the same driver; medians of RUNS runs.
# 2. Time of real programs (python3, sqlite3, gcc, git, stress-ng) under
#    gmalloc and glibc, runs interleaved and timed with /usr/bin/time;
#    ratios of the median wall and CPU (user+sys) times.
# 3. Cost of gmalloc's debug settings on the python3 workload (with
#    PYTHONMALLOC=malloc, so that each object is a malloc): guard = on
#    and backtrace_depth = 8 against gmalloc plain, and the extra CPU time
#    per allocation (allocations counted by gmalloc's own reports, summed
#    over every process the command runs); then the cost of one malloc/free
#    pair made three calls deep (pairs.c) at backtrace_depth 0, 4, 8 and 16.
#
# Environment: RUNS (default 3), TIME_RUNS (default 5), RSS_ONLY (1: section
# 1 only).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
. "$here/peers.sh"
RUNS=${RUNS:-3}
TIME_RUNS=${TIME_RUNS:-5}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench-alloc.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cc -O2 -o "$tmp/rss_driver" "$here/rss_driver.c"
cc -O2 -o "$tmp/pairs" "$here/pairs.c"

field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }

echo "== RSS after freeing 99% of 512 MiB (MiB, median of $RUNS; live = data still allocated)"
echo "(base = RSS before allocating; pages = distinct pages under the live blocks;"
echo " floor = base + the driver's own arrays + pages, the least a non-moving allocator can show)"
printf '%-10s %6s %7s %6s %6s %6s %8s %9s %11s\n' allocator base peak live pages floor after after+2s after/live
# rss_row NAME LIB [VAR=VALUE]: one row, the driver run RUNS times.
rss_row() {
	: >"$tmp/r"
	i=0
	while [ $i -lt "$RUNS" ]; do
		if [ -n "$2" ]; then
			env ${3:+"$3"} LD_PRELOAD="$2" "$tmp/rss_driver" >>"$tmp/r"
		else
			"$tmp/rss_driver" >>"$tmp/r"
		fi
		i=$((i + 1))
	done
	base=$(field base <"$tmp/r" | median); pages=$(field pages <"$tmp/r" | median)
	peak=$(field peak <"$tmp/r" | median); live=$(field live <"$tmp/r" | median)
	after=$(field after <"$tmp/r" | median); later=$(field later <"$tmp/r" | median)
	own=$(field own <"$tmp/r" | median)
	floor=$(echo "$base $own $pages" | awk '{printf "%.1f", $1 + $2 + $3}')
	printf '%-10s %6s %7s %6s %6s %6s %8s %9s %11.2f\n' "$1" "$base" "$peak" "$live" "$pages" "$floor" "$after" "$later" \
		"$(echo "$after $live" | awk '{print $1 / $2}')"
}
for a in $allocs; do
	name=${a%%:*}; lib=${a#*:}
	if [ "$name" != glibc ] && [ -z "$lib" ]; then
		printf '%-10s (not installed)\n' "$name"; continue
	fi
	rss_row "$name" "$lib"
	# As in a program with threads (page_return_thread = auto starts
	# gmalloc's thread at the first pthread_create; the driver makes none).
	[ "$name" = gmalloc ] && rss_row gmalloc+t "$lib" GMALLOC_PAGE_RETURN_THREAD=on
done
echo "(aim for gmalloc: after <= floor + free_high (1 MiB by default) + its metadata;"
echo " gmalloc+t: with gmalloc's page-return thread, which gives back after the frees)"
[ "${RSS_ONLY:-0}" = 1 ] && exit 0

[ -x /usr/bin/time ] || { echo "/usr/bin/time not installed: no timings"; exit 0; }
echo
echo "== Real programs: medians of $TIME_RUNS interleaved runs, gmalloc vs glibc"
echo "   (wall = elapsed s; cpu = user+sys s, less sensitive to a busy machine)"
w="$tmp/work"; mkdir -p "$w"
cat >"$w/work.py" <<'PY'
import hashlib, json
d = {i: str(i) * 3 for i in range(300000)}
l = [x * 2 for x in range(500000)]
s = {frozenset((i, i + 1)) for i in range(50000)}
h = hashlib.sha256()
for i in range(0, 300000, 3):
    h.update(d[i].encode())
blob = json.dumps([l[:1000], sorted(d)[:1000]])
l.sort(reverse=True)
print(len(d), sum(l), len(s), h.hexdigest())
PY
cat >"$w/db.sql" <<'SQL'
CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, v INTEGER);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200000)
INSERT INTO t(name, v) SELECT printf('name-%06d', x), (x * 7919) % 1000 FROM c;
CREATE INDEX t_v ON t(v);
SELECT v, count(*), min(name) FROM t GROUP BY v ORDER BY 2 DESC, 1 LIMIT 5;
SQL
cat >"$w/git.sh" <<'SH'
set -e
rm -rf "$1/repo"; git init -q "$1/repo"; cd "$1/repo"
for i in 1 2 3 4 5; do seq 1 $((i * 20000)) >f$i; git add f$i; git -c user.name=b -c user.email=b@x commit -qm c$i; done
git log --oneline >/dev/null; git gc -q
SH
# The interpreter itself, not a wrapper in front of it (pyenv's shim is a
# shell script: its start-up would be timed too).
py=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null || echo python3)
# A C file big enough for the compiler's own allocations to matter.
awk 'BEGIN { print "#include <string.h>\nstruct s { int a[8]; char n[32]; };";
	for (i = 0; i < 800; i++)
		printf "int f%d(struct s *p, int x) { int r = x; for (int i = 0; i < 8; i++) r += p->a[i] * %d; strcpy(p->n, \"f%d\"); return r ^ (int)strlen(p->n); }\n", i, i, i }' >"$w/big.c"
progs="python:$py $w/work.py
sqlite:rm -f $w/db && sqlite3 $w/db <$w/db.sql
gcc:gcc -O2 -c -o $w/x.o $w/big.c
git:sh $w/git.sh $w
stress-ng:stress-ng --malloc 1 --malloc-ops 200000 --temp-path $w -q"
# one NAME CMD LIB [VAR=VALUE...]: run CMD once (LIB preloaded if set,
# with the variables set), append "wall cpu".
one() {
	if [ -n "$3" ]; then
		env LD_PRELOAD="$3" GMALLOC_CONF=/dev/null ${4:-} /usr/bin/time -f '%e %U %S' -o "$tmp/t" sh -c "$2" >/dev/null 2>&1 || return 1
	else
		/usr/bin/time -f '%e %U %S' -o "$tmp/t" sh -c "$2" >/dev/null 2>&1 || return 1
	fi
	awk '{printf "%s %.3f\n", $1, $2 + $3}' "$tmp/t" >>"$tmp/$1"
}
printf '%-10s %9s %9s %7s %9s %9s %7s\n' program glibc_wall gm_wall ratio glibc_cpu gm_cpu ratio
echo "$progs" | while IFS= read -r line; do
	name=${line%%:*}; cmd=${line#*:}
	: >"$tmp/g"; : >"$tmp/m"
	HOME="$w"; GIT_CONFIG_NOSYSTEM=1; export HOME GIT_CONFIG_NOSYSTEM
	one warm "$cmd" "" && one warm "$cmd" "$gm" || { echo "$name: failed"; continue; }
	i=0
	while [ $i -lt "$TIME_RUNS" ]; do
		one g "$cmd" "" && one m "$cmd" "$gm" || { echo "$name: failed"; break; }
		i=$((i + 1))
	done
	gw=$(cut -d' ' -f1 "$tmp/g" | median); mw=$(cut -d' ' -f1 "$tmp/m" | median)
	gc=$(cut -d' ' -f2 "$tmp/g" | median); mc=$(cut -d' ' -f2 "$tmp/m" | median)
	echo "$name $gw $mw $gc $mc" | awk '{printf "%-10s %9.3f %9.3f %7.2f %9.3f %9.3f %7.2f\n", $1, $2, $3, ($2 > 0 ? $3 / $2 : 0), $4, $5, ($4 > 0 ? $5 / $4 : 0)}'
done

echo
echo "== Debug settings of gmalloc on python3: medians of $TIME_RUNS interleaved runs"
echo "   (PYTHONMALLOC=malloc: every object through malloc, not Python's own small-object pools)"
pym="PYTHONMALLOC=malloc $py"
nallocs=$(env LD_PRELOAD="$gm" GMALLOC_CONF=/dev/null GMALLOC_REPORT_AT_EXIT=on PYTHONMALLOC=malloc "$py" "$w/work.py" 2>&1 >/dev/null |
	sed -n 's/^  allocs \([0-9]*\) .*/\1/p' | awk '{ n += $1 } END { print n }')
: >"$tmp/p"; : >"$tmp/gd"; : >"$tmp/bt"
one warm "$pym $w/work.py" "$gm" "GMALLOC_BACKTRACE_DEPTH=8" || echo "python3: failed"
i=0
while [ $i -lt "$TIME_RUNS" ]; do
	one p "$pym $w/work.py" "$gm" &&
	one gd "$pym $w/work.py" "$gm" "GMALLOC_GUARD=on" &&
	one bt "$pym $w/work.py" "$gm" "GMALLOC_BACKTRACE_DEPTH=8" || { echo "python3: failed"; break; }
	i=$((i + 1))
done
pc=$(cut -d' ' -f2 "$tmp/p" | median)
printf '%-22s %9s %9s %7s %14s\n' setting wall cpu ratio "extra ns/alloc"
for f in p:plain gd:guard=on bt:backtrace_depth=8; do
	k=${f%%:*}
	echo "${f#*:} $(cut -d' ' -f1 "$tmp/$k" | median) $(cut -d' ' -f2 "$tmp/$k" | median) $pc ${nallocs:-0}" |
		awk '{printf "%-22s %9.3f %9.3f %7.2f %14.0f\n", $1, $2, $3, ($4 > 0 ? $3 / $4 : 0), ($5 > 0 ? ($3 - $4) * 1e9 / $5 : 0)}'
done
echo "(allocations in one run: ${nallocs:-unknown})"

echo
echo "== malloc+free pairs three calls deep (pairs.c): ns per pair, median of $RUNS"
pairs_ns() {
	i=0
	while [ $i -lt "$RUNS" ]; do
		env "$@" "$tmp/pairs" 300000
		i=$((i + 1))
	done | median
}
printf '%-26s %8s\n' allocator ns/pair
printf '%-26s %8s\n' glibc "$(pairs_ns X=1)"
for d in 0 4 8 16; do
	printf '%-26s %8s\n' "gmalloc backtrace_depth=$d" \
		"$(pairs_ns LD_PRELOAD="$gm" GMALLOC_CONF=/dev/null GMALLOC_BACKTRACE_DEPTH=$d)"
done
