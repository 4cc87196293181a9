#!/usr/bin/env bash
# Draws the throughput chart from a results directory of bench/run.sh (throughput.summary.csv):
# requests/s, p99 latency and proxy CPU per request against connections, for direct, nginx and
# Meridian. Usage: bench/plot.sh RESULTS_DIR [OUT.svg]   (default OUT: RESULTS_DIR/throughput.svg)
set -euo pipefail
dir=${1:?usage: bench/plot.sh RESULTS_DIR [OUT.svg]}
out=${2:-$dir/throughput.svg}
csv=$dir/throughput.summary.csv
[[ -f $csv ]] || { echo "no $csv" >&2; exit 1; }
command -v gnuplot >/dev/null || { echo "gnuplot is needed: apt-get install gnuplot-nox" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
for t in direct nginx meridian; do
  awk -F, -v t="$t" 'NR > 1 && $2 == t { print $1, $3, $4, $6, $7 }' "$csv" | sort -n >"$tmp/$t.dat"
done
title="$(grep -m1 '^cpu:' "$dir/env.txt" 2>/dev/null | cut -d' ' -f2- || true)"
gnuplot <<EOF
set terminal svg size 1200,420 dynamic font "sans,12" background rgb "white"
set output "$out"
set multiplot layout 1,3 title "Non-streamed chat, proxy pinned to one core (${title//\"/})"
set logscale x 2
set xlabel "connections"
set xtics (1, 16, 64, 256)
set key top left
set grid ytics
set style line 1 lc rgb "#888888" lw 2 pt 7
set style line 2 lc rgb "#009639" lw 2 pt 5
set style line 3 lc rgb "#1f5fbf" lw 2 pt 9
set title "requests/s (higher is better)"
set yrange [0:*]
plot "$tmp/direct.dat" u 1:2 w lp ls 1 t "direct (mock)", \
     "$tmp/nginx.dat" u 1:2 w lp ls 2 t "nginx proxy\\\_pass", \
     "$tmp/meridian.dat" u 1:2 w lp ls 3 t "Meridian (stats+metrics+ledger)"
set title "p99 latency, ms (lower is better)"
set logscale y 10
set yrange [*:*]
plot "$tmp/direct.dat" u 1:(\$4/1000) w lp ls 1 t "direct", \
     "$tmp/nginx.dat" u 1:(\$4/1000) w lp ls 2 t "nginx", \
     "$tmp/meridian.dat" u 1:(\$4/1000) w lp ls 3 t "Meridian"
unset logscale y
set title "proxy CPU per request, us (lower is better)"
set yrange [0:*]
plot "$tmp/nginx.dat" u 1:5 w lp ls 2 t "nginx", \
     "$tmp/meridian.dat" u 1:5 w lp ls 3 t "Meridian"
unset multiplot
EOF
echo "wrote $out"
