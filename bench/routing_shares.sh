#!/usr/bin/env bash
# Shows that the routing policy matters: the same traffic sent to `auto-cost` (policy cost) and
# `auto-latency` (policy latency) over three simulated providers with different prices and
# speeds, and the share of requests each provider received under each policy.
# Usage: bench/routing_shares.sh [build-dir] [requests-per-route]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/dev}; n=${2:-60}
tmp=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT
cat >"$tmp/sim.yaml" <<'YAML'
providers:
  cheap: { port: 0, models: [m], ttft: 120ms, tokens_per_second: 0, reply_tokens: 20 }
  mid:   { port: 0, models: [m], ttft: 40ms,  tokens_per_second: 0, reply_tokens: 20 }
  quick: { port: 0, models: [m], ttft: 5ms,   tokens_per_second: 0, reply_tokens: 20 }
YAML
"$build/tools/sim/meridian-sim" -c "$tmp/sim.yaml" >"$tmp/sim.out" &
for _ in $(seq 50); do grep -q ready "$tmp/sim.out" 2>/dev/null && break; sleep 0.1; done
port() { grep "\"provider\":\"$1\"" "$tmp/sim.out" | grep -o '"port":[0-9]*' | cut -d: -f2; }
cat >"$tmp/gw.yaml" <<YAML
server: { listen: 127.0.0.1:0, threads: 1 }
stats: { ledger: none }
providers:
  cheap: { base_url: "http://127.0.0.1:$(port cheap)/v1", region: cn, models: { m: { input: 0.1, output: 0.3, quality: 70 } } }
  mid:   { base_url: "http://127.0.0.1:$(port mid)/v1",   region: us, models: { m: { input: 1.0, output: 3.0, quality: 80 } } }
  quick: { base_url: "http://127.0.0.1:$(port quick)/v1", region: us, models: { m: { input: 5.0, output: 15.0, quality: 90 } } }
routes:
  - { match: auto-cost,    policy: cost,    candidates: [cheap/m, mid/m, quick/m] }
  - { match: auto-latency, policy: latency, candidates: [cheap/m, mid/m, quick/m] }
YAML
"$build/meridian" serve -c "$tmp/gw.yaml" --log-level warn >"$tmp/gw.out" &
for _ in $(seq 50); do grep -q listening "$tmp/gw.out" 2>/dev/null && break; sleep 0.1; done
gw=$(grep -o '"port":[0-9]*' "$tmp/gw.out" | head -1 | cut -d: -f2)
for route in auto-cost auto-latency; do
  for _ in $(seq "$n"); do
    curl -s -o /dev/null "http://127.0.0.1:$gw/v1/chat/completions" -H 'Content-Type: application/json' \
      -d "{\"model\":\"$route\",\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}]}"
  done
done
curl -s "http://127.0.0.1:$gw/metrics" | awk -v n="$n" '
  /^meridian_requests_total\{/ && /status="200"/ {
    match($0, /route="[^"]*"/); r = substr($0, RSTART + 7, RLENGTH - 8)
    match($0, /provider="[^"]*"/); p = substr($0, RSTART + 10, RLENGTH - 11)
    c[r "," p] = $NF; routes[r] = 1; providers[p] = 1 }
  END {
    printf "%-14s", "route"; for (p in providers) printf " %14s", p; printf "\n"
    for (r in routes) { printf "%-14s", r
      for (p in providers) printf " %8d (%3.0f%%)", c[r "," p], 100 * c[r "," p] / n; printf "\n" } }'
