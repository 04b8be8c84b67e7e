# device/timeline.gp - the timeline chart of device/run.sh (report.py runs
# it with dir, outfile, term, limit, total, the watermarks in MiB nh, nl, dh,
# dl (NaN: none), has_suite, has_plain).
# Columns of samples.tsv: 1 t, 2 device, 3 oom_kills, 4 pool, 5-8 quota of
# renderer, pyjob, cache, spooler, 9-13 memory of renderer, pyjob, cache,
# spooler, hog, 14 anonymous + tmpfs, 15 device memory as the broker measures
# it against its marks (usage less inactive page cache), 16 watermark state
# (0 normal, 1 notify, 2 deny), 17 what the broker may lend (MiB).  Each panel stacks what the
# workloads hold (quota with the suite, memory without it), the hog on top,
# under the device's memory (page cache included).
eval "set terminal ".term
set termoption noenhanced
set output outfile
set multiplot layout 1, (has_suite + has_plain)
set xlabel "seconds"
set ylabel "MiB"
set yrange [0:limit * 1.1]
set autoscale xfix
set key below horizontal font ",8" samplen 1.5 width -1
# The same margins for both panels, whatever their keys hold.
set bmargin 10
set tmargin 3
set lmargin 8
set rmargin 2
set grid ytics lc rgb "#dddddd"
set style fill solid 0.75 noborder
z(c) = valid(c) ? column(c) : 0
c_hog = "#bbbbbb"; c_cache = "#e6a15c"; c_py = "#8e88c7"; c_rend = "#5cb89a"; c_spool = "#e77fb3"

if (has_suite) {
	f = dir."/suite/samples.tsv"
	set title "with the suite: quota each client holds (stacked)"
	plot f u 1:(z(7)+z(6)+z(5)+z(8)+z(13)) w filledcurves x1 fc rgb c_hog t "hog (no broker)", \
	     f u 1:(z(7)+z(6)+z(5)+z(8)) w filledcurves x1 fc rgb c_spool t "spool (track_fs)", \
	     f u 1:(z(7)+z(6)+z(5)) w filledcurves x1 fc rgb c_rend t "renderer (gmalloc)", \
	     f u 1:(z(7)+z(6)) w filledcurves x1 fc rgb c_py t "python3 (gmalloc)", \
	     f u 1:(z(7)) w filledcurves x1 fc rgb c_cache t "cache (anr_malloc)", \
	     f u 1:2 w l lc rgb "#000000" lw 2 t "device memory", \
	     f u 1:14 w l lc rgb "#000000" lw 1 dt 2 t "anonymous + tmpfs", \
	     f u 1:15 w l lc rgb "#0050b0" lw 1 t (nh == nh ? "device, as the marks see it" : ""), \
	     limit w l lc rgb "#c00000" lw 1.5 dt 2 t "limit", \
	     f u 1:17 w steps lc rgb "#0050b0" lw 1.5 dt 4 t (nh == nh ? "broker may lend" : ""), \
	     (nh == nh ? 1/0 : total) w l lc rgb "#0050b0" lw 1.5 dt 4 t (nh == nh ? "" : "broker total"), \
	     (nh == nh ? nh : 1/0) w l lc rgb "#e08000" lw 1.5 dt 2 t (nh == nh ? "notify high/low" : ""), \
	     (nl == nl ? nl : 1/0) w l lc rgb "#e08000" lw 1 dt 3 notitle, \
	     (dh == dh ? dh : 1/0) w l lc rgb "#9000a0" lw 1.5 dt 2 t (dh == dh ? "deny high/low" : ""), \
	     (dl == dl ? dl : 1/0) w l lc rgb "#9000a0" lw 1 dt 3 notitle, \
	     f u 1:(z(16) == 1 ? limit * 1.05 : 1/0) w p pt 7 ps 0.9 lc rgb "#e08000" t (nh == nh ? "in notify" : ""), \
	     f u 1:(z(16) == 2 ? limit * 1.05 : 1/0) w p pt 7 ps 0.9 lc rgb "#9000a0" t (dh == dh ? "in deny" : "")
}
if (has_plain) {
	f = dir."/plain/samples.tsv"
	set title "plain: memory each process uses (stacked)"
	plot f u 1:(z(11)+z(10)+z(9)+z(12)+z(13)) w filledcurves x1 fc rgb c_hog t "hog", \
	     f u 1:(z(11)+z(10)+z(9)+z(12)) w filledcurves x1 fc rgb c_spool t "spool (tmpfs)", \
	     f u 1:(z(11)+z(10)+z(9)) w filledcurves x1 fc rgb c_rend t "renderer", \
	     f u 1:(z(11)+z(10)) w filledcurves x1 fc rgb c_py t "python3", \
	     f u 1:(z(11)) w filledcurves x1 fc rgb c_cache t "cache", \
	     f u 1:2 w l lc rgb "#000000" lw 2 t "device memory", \
	     f u 1:14 w l lc rgb "#000000" lw 1 dt 2 t "anonymous + tmpfs", \
	     limit w l lc rgb "#c00000" lw 1.5 dt 2 t "limit", \
	     dir."/plain/kills.dat" u 1:2 w p pt 2 ps 2.5 lw 3 lc rgb "#c00000" t "OOM kill"
}
unset multiplot
