#!/usr/bin/env bash
# A quick throughput check: wrk against meridian-sim directly, then through meridian, in
# alternation (A B A B), non-streamed chat. Usage: bench/quick.sh [build-dir] [seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/dev}; secs=${2:-5}; conns=${3:-16}
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
tmp=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT
"$build/tools/sim/meridian-sim" -c tools/sim/examples/basic.yaml >"$tmp/sim.out" &
for _ in $(seq 50); do grep -q ready "$tmp/sim.out" 2>/dev/null && break; sleep 0.1; done
sim_port=$(grep -o '"port":[0-9]*' "$tmp/sim.out" | head -1 | cut -d: -f2)
cat >"$tmp/gw.yaml" <<YAML
server: { listen: 127.0.0.1:0, threads: 1 }
providers:
  mock:
    base_url: http://127.0.0.1:$sim_port/v1
    region: local
    models: { mock-model: { input: 0.1, output: 0.2 } }
YAML
"$build/meridian" serve -c "$tmp/gw.yaml" --log-level warn >"$tmp/gw.out" &
for _ in $(seq 50); do grep -q listening "$tmp/gw.out" 2>/dev/null && break; sleep 0.1; done
gw_port=$(grep -o '"port":[0-9]*' "$tmp/gw.out" | head -1 | cut -d: -f2)
cat >"$tmp/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"MODEL","messages":[{"role":"user","content":"Hello there, how are you today?"}]}'
LUA
sed 's/MODEL/mock-model/' "$tmp/post.lua" >"$tmp/direct.lua"
sed 's/MODEL/mock\/mock-model/' "$tmp/post.lua" >"$tmp/gw.lua"
run() { wrk -t1 -c"$conns" -d"${secs}s" --latency -s "$2" "http://127.0.0.1:$1/v1/chat/completions" |
        awk -v n="$3" '/Requests\/sec/ {rps=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2} END {printf "%-8s %10s req/s  p50 %8s  p99 %8s\n", n, rps, p50, p99}'; }
for round in 1 2; do
  run "$sim_port" "$tmp/direct.lua" direct
  run "$gw_port" "$tmp/gw.lua" meridian
done
