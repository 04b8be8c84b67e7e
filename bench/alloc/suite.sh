#!/bin/sh
# bench/alloc/suite.sh [BUILDDIR] - workloads, real-time thread and worst
# case per call for gmalloc against its peers (not part of make check;
# timing belongs here, not in tests).  The allocators are those of
# peers.sh (glibc, gmalloc, jemalloc, mimalloc, tcmalloc), each preloaded
# into the same programs, interleaved within each round.
#
# 1. Workloads (workloads.c): churn, churn-mt, medium-mt, prodcons, larson, rounds,
#    threads, generations, large, realloc, realloc-mt.  Wall and CPU (user+sys) time and peak RSS from
#    /usr/bin/time, medians of RUNS rounds, ratios to glibc and their
#    geometric mean per allocator.  churn and churn-mt do the same number
#    of operations on one and on two threads: wall(churn) / wall(churn-mt)
#    is the two-thread scaling on thread-local work (core.sh measures it
#    on a malloc(64)+free loop too).
# 2. Real-time thread (rt.c, needs root for SCHED_FIFO; skipped
#    otherwise): a 1 ms periodic thread doing malloc+memset+free of
#    4..64 KiB, with and without a thread churning 1..8 MiB blocks (live
#    set 10..300 MiB), the two threads placed by the scheduler (churn) or
#    on CPUs of their own (apart); p99, p99.9 and max of its wake-up
#    latency and of its malloc+memset+free, p99.99 and max of the churning
#    thread's free(), and the TLB shootdown interrupts taken meanwhile
#    (all CPUs; with apart, the real-time thread's CPU; 0 throughout on a
#    kernel whose remote flushes raise no such interrupt).  gmalloc runs
#    with its defaults (page_return_thread = auto: its thread gives pages
#    back, no madvise in the freeing thread); gm-noprt is gmalloc with
#    page_return_thread = off (the freeing thread calls madvise).  Medians
#    over RT_RUNS runs of RT_SECS seconds (1000 wake-ups a second), the
#    allocators interleaved; then, per mode, in how many runs each
#    allocator's op p99 was at most glibc's in the same round (the runs
#    of a round follow one another, so a burst of noise from the host
#    hits both more often than not).  No mlockall:
#    it lays every page an allocator maps in at once, which makes the
#    wake-ups of every allocator worse under churn (the churning thread
#    holds the address-space lock while its blocks are faulted in), and
#    which gmalloc's reserved address space cannot stand.
# 3. Worst case per call (worst.c): OPS mixed malloc/free/realloc calls,
#    each timed; p99, p99.99, max; and the free of a written 1 GiB block.
#    Then the same calls on the core (steps.c, libanrcore) counted in the
#    steps of its written bound ANR_CALL_STEPS_MAX.
#
# Environment: RUNS (default 5), RT_SECS (default 5), RT_RUNS (default 3), OPS (default
# 10000000), SCALE (workload size, default 2), ONLY (space-separated
# sections to run: work rt worst; default all), RT_MODES (default "quiet
# churn apart") and RT_ALLOCS (names, default every one present and
# gm-noprt) to run fewer real-time cases for more runs of each.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
. "$here/peers.sh"
RUNS=${RUNS:-5}
RT_SECS=${RT_SECS:-5}
RT_RUNS=${RT_RUNS:-3}
RT_MODES=${RT_MODES:-quiet churn apart}
RT_ALLOCS=${RT_ALLOCS:-}
OPS=${OPS:-10000000}
SCALE=${SCALE:-2}
ONLY=${ONLY:-work rt worst}
[ -x /usr/bin/time ] || { echo "/usr/bin/time is needed (Debian package time)" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench-suite.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cc -O2 -o "$tmp/workloads" "$here/workloads.c" -lpthread
cc -O2 -o "$tmp/rt" "$here/rt.c" -lpthread
cc -O2 -o "$tmp/worst" "$here/worst.c"
cc -O2 -I"$src/anrcore" -I"$build" -I"$src/common" -o "$tmp/steps" "$here/steps.c" \
	"$build/anrcore/.libs/libanrcore.a" "$build/common/.libs/libmbcommon.a" -lpthread

for a in $allocs; do
	case " $present " in *" $a "*) ;; *) echo "${a%%:*}: not installed, left out" ;; esac
done
# run LIB CMD...: CMD with LIB preloaded (nothing for glibc)
run() {
	lib=$1; shift
	if [ -n "$lib" ]; then
		env LD_PRELOAD="$lib" GMALLOC_CONF=/dev/null "$@"
	else
		"$@"
	fi
}
want() { case " $ONLY " in *" $1 "*) return 0 ;; esac; return 1; }
field() { sed -n "s/.*[[:space:]]$1 \([0-9.]*\).*/\1/p"; }

works="churn churn-mt medium-mt prodcons larson rounds threads generations large realloc realloc-mt"
if want work; then
	echo "== Workloads: medians of $RUNS rounds (allocators interleaved in each round)"
	echo "   wall = elapsed s, cpu = user+sys s, rss = peak MiB; ratios to glibc"
	r=1
	while [ "$r" -le "$RUNS" ]; do
		for w in $works; do
			for a in $present; do
				name=${a%%:*} lib=${a#*:}
				run "$lib" /usr/bin/time -f '%e %U %S %M' -o "$tmp/t" "$tmp/workloads" "$w" "$SCALE" >/dev/null ||
					{ echo "$w under $name failed"; continue; }
				awk '{printf "%s %.3f %.1f\n", $1, $2 + $3, $4 / 1024}' "$tmp/t" >>"$tmp/w.$w.$name"
			done
		done
		r=$((r + 1))
	done
	printf '%-9s %-9s %7s %7s %7s %7s %7s %7s\n' workload allocator wall cpu rss wall/g cpu/g rss/g
	for w in $works; do
		[ -s "$tmp/w.$w.glibc" ] || continue
		gw=$(cut -d' ' -f1 "$tmp/w.$w.glibc" | median)
		gc=$(cut -d' ' -f2 "$tmp/w.$w.glibc" | median)
		gr=$(cut -d' ' -f3 "$tmp/w.$w.glibc" | median)
		for a in $present; do
			name=${a%%:*}
			[ -s "$tmp/w.$w.$name" ] || continue
			mw=$(cut -d' ' -f1 "$tmp/w.$w.$name" | median)
			mc=$(cut -d' ' -f2 "$tmp/w.$w.$name" | median)
			mr=$(cut -d' ' -f3 "$tmp/w.$w.$name" | median)
			echo "$w $name $mw $mc $mr $gw $gc $gr" | awk '
				function q(a, b) { return b > 0 ? a / b : 1 }
				{ printf "%-9s %-9s %7.3f %7.3f %7.1f %7.2f %7.2f %7.2f\n", $1, $2, $3, $4, $5, q($3, $6), q($4, $7), q($5, $8) }'
		done
	done | tee "$tmp/table"
	echo
	echo "== Geometric means of the ratios to glibc over the workloads (aim for gmalloc: wall <= 0.90)"
	printf '%-9s %7s %7s %7s %9s\n' allocator wall cpu rss 2thr/1thr
	for a in $present; do
		name=${a%%:*}
		one=$(cut -d' ' -f1 "$tmp/w.churn.$name" 2>/dev/null | median)
		two=$(cut -d' ' -f1 "$tmp/w.churn-mt.$name" 2>/dev/null | median)
		awk -v n="$name" -v one="${one:-0}" -v two="${two:-0}" '
			$2 == n && $6 > 0 && $7 > 0 && $8 > 0 { w += log($6); c += log($7); r += log($8); k++ }
			END { if (k) printf "%-9s %7.2f %7.2f %7.2f %9.2f\n", n, exp(w / k), exp(c / k), exp(r / k), (two > 0 ? one / two : 0) }' "$tmp/table"
	done
	echo "(2thr/1thr = wall(churn) / wall(churn-mt): the same operations on one thread and on two; 2.00 is perfect)"
fi

if want rt; then
	echo
	echo "== Real-time thread: 1 ms period, malloc+memset+free of 4..64 KiB (us; medians of $RT_RUNS runs of $RT_SECS s, interleaved)"
	echo "   (SCHED_FIFO 50; no mlockall; the churning thread frees 1..8 MiB blocks, live set 10..300 MiB;"
	echo "   apart: the real-time thread on CPU 0, the churning one on CPU 1; tlb: TLB shootdowns taken)"
	if [ "$(id -u)" != 0 ]; then
		echo "skipped: SCHED_FIFO needs root"
	else
		modes=$RT_MODES
		rt_allocs=""
		for a in $present gm-noprt:$gm; do
			case " ${RT_ALLOCS:-${a%%:*}} " in
			*" ${a%%:*} "*) rt_allocs="$rt_allocs $a" ;;
			esac
		done
		r=1
		while [ "$r" -le "$RT_RUNS" ]; do
			for mode in $modes; do
				for a in $rt_allocs; do
					name=${a%%:*} lib=${a#*:}
					prt=auto
					[ "$name" = gm-noprt ] && prt=off
					run "$lib" env GMALLOC_PAGE_RETURN_THREAD=$prt "$tmp/rt" "$mode" "$RT_SECS" \
						>>"$tmp/rt.$mode.$name" || true
				done
			done
			r=$((r + 1))
		done
		first=$(echo $modes | cut -d' ' -f1).$(echo $rt_allocs | cut -d: -f1)
		if grep -q '^skip' "$tmp/rt.$first"; then
			grep -m1 '^skip' "$tmp/rt.$first"
		else
			printf '%-9s %-6s %9s %9s %9s %9s %9s %9s %11s %9s %7s\n' allocator mode \
				wake_p99 wake_p999 wake_max op_p99 op_p999 op_max free_p9999 free_max tlb
			# med FILE KIND FIELD: median over the runs of FIELD of the KIND lines
			med() { grep "^$2 " "$1" | field "$3" | median; }
			for a in $rt_allocs; do
				name=${a%%:*}
				for mode in $modes; do
					f="$tmp/rt.$mode.$name"
					if grep -q '^skip' "$f" 2>/dev/null; then
						printf '%-9s %-6s %s\n' "$name" "$mode" "$(grep -m1 '^skip' "$f")"
						continue
					fi
					grep -q '^wake' "$f" 2>/dev/null || { printf '%-9s %-6s failed\n' "$name" "$mode"; continue; }
					fp=- fm=-
					if [ "$mode" != quiet ]; then
						fp=$(med "$f" churnfree p9999) fm=$(med "$f" churnfree max)
					fi
					printf '%-9s %-6s %9s %9s %9s %9s %9s %9s %11s %9s %7s\n' "$name" "$mode" \
						"$(med "$f" wake p99)" "$(med "$f" wake p999)" "$(med "$f" wake max)" \
						"$(med "$f" op p99)" "$(med "$f" op p999)" "$(med "$f" op max)" "$fp" "$fm" \
						"$(med "$f" tlb n)"
				done
			done
			echo "(the parts of the operation, each timed: medians over the runs of their p50 and p99)"
			printf '%-11s %-6s %10s %10s %10s %10s %10s %10s\n' allocator mode \
				malloc_p50 memset_p50 free_p50 malloc_p99 memset_p99 free_p99
			for a in $rt_allocs; do
				name=${a%%:*}
				for mode in $modes; do
					f="$tmp/rt.$mode.$name"
					grep -q '^p50' "$f" 2>/dev/null || continue
					printf '%-11s %-6s %10s %10s %10s %10s %10s %10s\n' "$name" "$mode" \
						"$(med "$f" p50 malloc)" "$(med "$f" p50 memset)" "$(med "$f" p50 free)" \
						"$(med "$f" p99 malloc)" "$(med "$f" p99 memset)" "$(med "$f" p99 free)"
				done
			done
			if [ -f "$tmp/rt.$(echo $modes | cut -d' ' -f1).glibc" ]; then
				echo "(op p99 at most glibc's in the same round: runs of $RT_RUNS)"
				for a in $rt_allocs; do
					name=${a%%:*}
					[ "$name" = glibc ] && continue
					line=$(printf '%-11s' "$name")
					for mode in $modes; do
						grep '^op ' "$tmp/rt.$mode.$name" | field p99 >"$tmp/ours"
						grep '^op ' "$tmp/rt.$mode.glibc" | field p99 >"$tmp/theirs"
						k=$(paste -d' ' "$tmp/ours" "$tmp/theirs" |
							awk 'NF == 2 && $1 <= $2 { n++ } END { print n + 0 }')
						line="$line $mode $k"
					done
					echo "$line"
				done
			fi
		fi
	fi
fi

if want worst; then
	echo
	echo "== Worst case per call: $OPS mixed calls on one thread, each timed (us; max includes preemption)"
	printf '%-9s %8s %9s %9s %11s %9s %11s %11s %11s\n' allocator p99 p99.99 max malloc_max free_max realloc_max \
		gib_malloc gib_free
	for a in $present; do
		name=${a%%:*} lib=${a#*:}
		out=$(run "$lib" "$tmp/worst" "$OPS") || { echo "$name: failed"; continue; }
		m=$(echo "$out" | grep '^mixed'); g=$(echo "$out" | grep '^gib')
		echo "$name $m $g" | awk '{ printf "%-9s %8s %9s %9s %11s %9s %11s %11s %11s\n", $1, $6, $8, $10, $12, $14, $16, $19, $21 }'
	done
	echo
	echo "== The core's steps per call (steps.c; bound ANR_CALL_STEPS_MAX, + pages / 64 + 1 for a free of n pages)"
	"$tmp/steps" "$OPS"
fi
