#!/usr/bin/env bash
# Meridian's benchmark suite: direct vs nginx proxy_pass vs Meridian, in alternation, on one
# machine. See bench/README.md. Usage:
#   bench/run.sh [all|throughput|paced|stream|conns|soak|micro]...
# Settings (environment): BUILD=build/bench OUT=bench/results/<UTC time> SECS=5 ROUNDS=2
#   CONNS="1 16 64 256" PACED_RATE=1000 PACED_SECS=10 STREAM_SECS=8 IDLE_CONNS=10000
#   SLOW_STREAMS=10000 SOAK_SECS=600 SOAK_RATE=1000 LOCK=/tmp/meridian-build.lock (taken around
#   each measured section; LOCK= disables) PROXY_CPU=0 LOAD_CPU=1 THREADS=1 (Meridian's
#   server.threads) MERIDIAN_WRAP= (a command Meridian runs under: callgrind, strace, env)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
BUILD=${BUILD:-build/bench}
OUT=${OUT:-bench/results/$(date -u +%Y%m%dT%H%M%SZ)}
SECS=${SECS:-5}
ROUNDS=${ROUNDS:-2}
CONNS=${CONNS:-"1 16 64 256"}
PACED_RATE=${PACED_RATE:-1000}
PACED_SECS=${PACED_SECS:-10}
STREAM_SECS=${STREAM_SECS:-8}
IDLE_CONNS=${IDLE_CONNS:-10000}
SLOW_STREAMS=${SLOW_STREAMS:-10000}
SOAK_SECS=${SOAK_SECS:-600}
SOAK_RATE=${SOAK_RATE:-1000}
LOCK=${LOCK-/tmp/meridian-build.lock}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
PROFILE_SECS=${PROFILE_SECS:-20}
THREADS=${THREADS:-1}  # Meridian's server.threads (PROXY_CPU may list several cores: "0,1")
FLUSH=${FLUSH:-1s}  # the ledger's stats.flush_interval (and stats.max_queue below)
MAX_QUEUE=${MAX_QUEUE:-100000}
# PLACE=taskset: the whole Meridian process on PROXY_CPU (every thread, the ledger writer too);
# PLACE=cpus: server.cpus: [PROXY_CPU], so only its event loops are there and the ledger writer
# and other background threads run on the other core (with wrk and the mock).
PLACE=${PLACE:-taskset}
PROFILE_CONNS=${PROFILE_CONNS:-64}
MERIDIAN_WRAP=${MERIDIAN_WRAP:-}
HZ=$(getconf CLK_TCK)

log() { printf '%s\n' "$*" >&2; }

# --- what the suite needs -------------------------------------------------------------------
ensure_tools() {
  local missing=()
  command -v nginx >/dev/null || missing+=(nginx-light)
  command -v wrk >/dev/null || missing+=(wrk)
  command -v gnuplot >/dev/null || missing+=(gnuplot-nox)
  [[ -f /usr/include/benchmark/benchmark.h ]] || missing+=(libbenchmark-dev)
  if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    local sudo=; ((EUID == 0)) || sudo=sudo
    $sudo apt-get update -qq && $sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

ensure_build() {
  local need=("$BUILD/meridian" "$BUILD/tools/sim/meridian-sim" "$BUILD/bench/meridian-loadgen" "$BUILD/bench/meridian-micro")
  local f
  for f in "${need[@]}"; do
    if [[ ! -x $f ]]; then
      [[ $BUILD == build/bench ]] || { log "$f is missing; build it or use BUILD=build/bench"; exit 1; }
      log "building the bench preset"
      locked cmake --preset bench >/dev/null
      locked cmake --build --preset bench
      return
    fi
  done
}

# Runs a command holding $LOCK, so no compile shares the CPU with a measurement.
locked() { if [[ -n $LOCK ]]; then flock "$LOCK" "$@"; else "$@"; fi; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
sys_ticks() { awk '{print $15}' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
wait_for() {  # FILE PATTERN
  local i
  for i in $(seq 600); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  log "timed out waiting for '$2' in $1"; cat "$1" >&2; exit 1
}

# --- the processes under test ---------------------------------------------------------------
# A realistic non-streamed answer (OpenAI chat.completion with usage), 0.6 KB.
COMPLETION='{"id":"chatcmpl-bench","object":"chat.completion","created":1764460800,"model":"mock-model","system_fingerprint":"fp_bench","choices":[{"index":0,"message":{"role":"assistant","content":"A keep-alive connection pool keeps idle upstream connections open and reuses them for the next request to the same host, so only the first request pays for the TCP and TLS handshakes. Size it to the expected concurrency."},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":41,"completion_tokens":46,"total_tokens":87,"prompt_tokens_details":{"cached_tokens":0}}}'
REQUEST='{"model":"MODEL","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Explain in two sentences how an HTTP keep-alive connection pool saves time."}],"temperature":0.2,"max_tokens":128}'
STREAM_REQUEST='{"model":"MODEL","stream":true,"messages":[{"role":"user","content":"Explain in two sentences how an HTTP keep-alive connection pool saves time."}],"max_tokens":256}'

tmp=
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ -n $tmp && -z ${KEEP_TMP:-} ]]; then rm -rf "$tmp"; elif [[ -n $tmp ]]; then log "kept $tmp"; fi
  return 0
}
trap cleanup EXIT

start_all() {
  tmp=$(mktemp -d /tmp/meridian-bench.XXXXXX)
  ulimit -n 1048576 2>/dev/null || ulimit -n "$(ulimit -Hn)"
  mkdir -p "$tmp/nginx"
  MOCK_PORT=$(free_port); PROXY_PORT=$(free_port); PROXY_STREAM_PORT=$(free_port)
  # The mock upstream: nginx `return 200`, one worker, on the load core.
  cat >"$tmp/mock.conf" <<EOF
worker_processes 1; daemon off; master_process off; pid $tmp/mock.pid;
error_log $tmp/mock.err warn;
events { worker_connections 65536; }
http {
  access_log off; keepalive_requests 100000000; keepalive_timeout 600s;
  client_body_temp_path $tmp/nginx/body; proxy_temp_path $tmp/nginx/proxy;
  fastcgi_temp_path $tmp/nginx/fcgi; uwsgi_temp_path $tmp/nginx/uwsgi; scgi_temp_path $tmp/nginx/scgi;
  server {
    listen 127.0.0.1:$MOCK_PORT backlog=8192;
    location / { default_type application/json; return 200 '$COMPLETION'; }
  }
}
EOF
  taskset -c "$LOAD_CPU" nginx -c "$tmp/mock.conf" -p "$tmp" 2>"$tmp/mock.stderr" &
  MOCK_PID=$!; pids+=("$MOCK_PID")
  # The streaming mock: meridian-sim, paced (50 tokens/s, 20 tokens), on the load core.
  cat >"$tmp/sim.yaml" <<EOF
providers:
  stream: { port: 0, models: [mock-model], ttft: 0ms, tokens_per_second: 50, reply_tokens: 20 }
  slow:   { port: 0, models: [mock-model], ttft: 0ms, tokens_per_second: 2, reply_tokens: 30 }
EOF
  taskset -c "$LOAD_CPU" "$BUILD/tools/sim/meridian-sim" -c "$tmp/sim.yaml" >"$tmp/sim.out" 2>"$tmp/sim.err" &
  SIM_PID=$!; pids+=("$SIM_PID")
  wait_for "$tmp/sim.out" ready
  SIM_PORT=$(grep '"provider":"stream"' "$tmp/sim.out" | grep -o '"port":[0-9]*' | cut -d: -f2)
  SLOW_PORT=$(grep '"provider":"slow"' "$tmp/sim.out" | grep -o '"port":[0-9]*' | cut -d: -f2)
  # The reference proxy: nginx proxy_pass with upstream keep-alive, one worker, the proxy core.
  cat >"$tmp/proxy.conf" <<EOF
worker_processes 1; daemon off; master_process off; pid $tmp/proxy.pid;
error_log $tmp/proxy.err warn;
worker_rlimit_nofile 1048576;
events { worker_connections 65536; }
http {
  access_log off; keepalive_requests 100000000; keepalive_timeout 600s;
  client_body_temp_path $tmp/nginx/body; proxy_temp_path $tmp/nginx/proxy;
  fastcgi_temp_path $tmp/nginx/fcgi; uwsgi_temp_path $tmp/nginx/uwsgi; scgi_temp_path $tmp/nginx/scgi;
  upstream mock { server 127.0.0.1:$MOCK_PORT; keepalive 512; keepalive_requests 100000000; keepalive_timeout 600s; }
  upstream sim { server 127.0.0.1:$SIM_PORT; keepalive 512; }
  upstream slow { server 127.0.0.1:$SLOW_PORT; keepalive 512; }
  server {
    listen 127.0.0.1:$PROXY_PORT backlog=8192;
    location / { proxy_pass http://mock; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
  server {
    listen 127.0.0.1:$PROXY_STREAM_PORT backlog=8192;
    location / { proxy_pass http://sim; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering off; }
    location /slow/ { proxy_pass http://slow/; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering off; }
  }
}
EOF
  taskset -c "$PROXY_CPU" nginx -c "$tmp/proxy.conf" -p "$tmp" 2>"$tmp/proxy.stderr" &
  PROXY_PID=$!; pids+=("$PROXY_PID")
  # Meridian: one I/O thread on the proxy core; stats, metrics and the SQLite ledger on.
  cat >"$tmp/meridian.yaml" <<EOF
server:
  listen: 127.0.0.1:0
  threads: $THREADS
$( [[ $PLACE == cpus ]] && echo "  cpus: [${PROXY_CPU//,/, }]" )
  limits: { max_connections: 100000 }
providers:
  mock:   { base_url: "http://127.0.0.1:$MOCK_PORT/v1", region: local, models: { mock-model: { input: 0.15, output: 0.6 } } }
  stream: { base_url: "http://127.0.0.1:$SIM_PORT/v1",  region: local, models: { mock-model: { input: 0.15, output: 0.6 } } }
  slow:   { base_url: "http://127.0.0.1:$SLOW_PORT/v1", region: local, models: { mock-model: { input: 0.15, output: 0.6 } } }
energy: { kwh_per_million_tokens: 1.0 }
stats:
  ledger: sqlite:$tmp/ledger.db
  flush_interval: $FLUSH
  max_queue: $MAX_QUEUE
EOF
  # stdout carries one access-log line per request: keep the first 64 KB, discard the rest.
  # shellcheck disable=SC2086
  local place=(taskset -c "$PROXY_CPU"); [[ $PLACE == cpus ]] && place=()
  "${place[@]}" $MERIDIAN_WRAP "$BUILD/meridian" serve -c "$tmp/meridian.yaml" --log-level warn \
    > >(stdbuf -o0 head -c 65536 >"$tmp/gw.out"; cat >/dev/null) 2>"$tmp/gw.err" &
  GW_PID=$!; pids+=("$GW_PID")
  wait_for "$tmp/gw.out" '"event":"listening"'
  GW_PORT=$(grep '"event":"listening"' "$tmp/gw.out" | grep -o '"port":[0-9]*' | cut -d: -f2)
  sleep 0.3
  for p in "$MOCK_PID" "$PROXY_PID" "$GW_PID" "$SIM_PID"; do
    kill -0 "$p" 2>/dev/null || { log "a process did not start"; cat "$tmp"/*.stderr "$tmp"/*.err >&2; exit 1; }
  done
  # wrk scripts
  for t in direct nginx meridian; do
    local model=mock-model; [[ $t == meridian ]] && model=mock/mock-model
    printf '%s' "${REQUEST/MODEL/$model}" >"$tmp/$t.json"
    printf '%s' "${STREAM_REQUEST/MODEL/$model}" >"$tmp/$t.stream.json"
    local smodel=stream/mock-model; [[ $t == meridian ]] || smodel=mock-model
    printf '%s' "${STREAM_REQUEST/MODEL/$smodel}" >"$tmp/$t.stream.json"
    local slmodel=slow/mock-model; [[ $t == meridian ]] || slmodel=mock-model
    printf '%s' "${STREAM_REQUEST/MODEL/$slmodel}" >"$tmp/$t.slow.json"
    cat >"$tmp/$t.lua" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer bench"
wrk.body = '$(cat "$tmp/$t.json")'
EOF
  done
  mkdir -p "$OUT"
  {
    echo "date: $(date -u +%FT%TZ)"
    echo "commit: $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD -- gateway stats providers policies 2>/dev/null || echo '+local changes')"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //') x $(nproc)"
    echo "kernel: $(uname -r)"
    echo "nginx: $(nginx -v 2>&1 | cut -d/ -f2)"
    echo "wrk: $(wrk -v 2>&1 | head -1 | awk '{print $2}')"
    echo "build: $BUILD ($(grep -m1 CMAKE_BUILD_TYPE:STRING "$BUILD/CMakeCache.txt" | cut -d= -f2))"
    echo "meridian: threads $THREADS, placement $PLACE on cpu $PROXY_CPU"
  } >"$OUT/env.txt"
}

# target -> port and measured pid
port_of() { case $1 in direct) echo "$MOCK_PORT" ;; nginx) echo "$PROXY_PORT" ;; meridian) echo "$GW_PORT" ;; esac; }
pid_of() { case $1 in direct) echo "$MOCK_PID" ;; nginx) echo "$PROXY_PID" ;; meridian) echo "$GW_PID" ;; esac; }
stream_port_of() { case $1 in direct) echo "$SIM_PORT" ;; nginx) echo "$PROXY_STREAM_PORT" ;; meridian) echo "$GW_PORT" ;; esac; }
stream_pid_of() { case $1 in direct) echo "$SIM_PID" ;; nginx) echo "$PROXY_PID" ;; meridian) echo "$GW_PID" ;; esac; }

# wrk's latency unit -> microseconds
to_us() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) f = 1; else if (v ~ /ms$/) f = 1000; else if (v ~ /m$/) f = 60e6; else if (v ~ /s$/) f = 1e6; else f = 1; printf "%.1f", n * f }'; }

# A failed load run (it exits non-zero after 100 failures in a row) is reported, not fatal.
loadgen() { taskset -c "$LOAD_CPU" "$BUILD/bench/meridian-loadgen" "$@" || log "meridian-loadgen failed: $*"; }
kv() { tr ' ' '\n' <<<"$1" | awk -F= -v k="$2" '$1 == k {print $2}'; }

# --- throughput: wrk at 1, 16, 64, 256 connections --------------------------------------------
wrk_point() {  # TARGET CONNS ROUND -> appends a CSV row
  local t=$1 c=$2 r=$3 port pid before after out
  port=$(port_of "$t"); pid=$(pid_of "$t")
  before=$(cpu_ticks "$pid"); local sys_before; sys_before=$(sys_ticks "$pid")
  out=$(taskset -c "$LOAD_CPU" wrk -t1 -c"$c" -d"${SECS}s" --latency -s "$tmp/$t.lua" "http://127.0.0.1:$port/v1/chat/completions")
  after=$(cpu_ticks "$pid"); local sys_after; sys_after=$(sys_ticks "$pid")
  echo "$out" >>"$OUT/throughput.wrk.txt"
  local rps reqs p50 p90 p99 errs cpu
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  p50=$(to_us "$(awk '$1 == "50%" {print $2}' <<<"$out")")
  p90=$(to_us "$(awk '$1 == "90%" {print $2}' <<<"$out")")
  p99=$(to_us "$(awk '$1 == "99%" {print $2}' <<<"$out")")
  errs=$(awk '/Non-2xx/ {n += $NF} /Socket errors/ {gsub(",", ""); n += $4 + $6 + $8 + $10} END {print n + 0}' <<<"$out")
  cpu=$(awk -v d=$((after - before)) -v hz="$HZ" -v n="$reqs" 'BEGIN { printf "%.2f", n ? d * 1e6 / hz / n : 0 }')
  local sys; sys=$(awk -v d=$((sys_after - sys_before)) -v hz="$HZ" -v n="$reqs" 'BEGIN { printf "%.2f", n ? d * 1e6 / hz / n : 0 }')
  echo "$r,$t,$c,$rps,$p50,$p90,$p99,$cpu,$errs,$(hwm_kib "$pid"),$sys" >>"$OUT/throughput.csv"
  printf '  round %s %-8s c=%-4s %10s req/s  p50 %8sus  p99 %8sus  cpu %6sus/req (system %s)  errors %s\n' \
    "$r" "$t" "$c" "$rps" "$p50" "$p99" "$cpu" "$sys" "$errs" >&2
}

cmd_throughput() {
  echo "round,target,conns,rps,p50_us,p90_us,p99_us,cpu_us_per_req,errors,hwm_kib,sys_us_per_req" >"$OUT/throughput.csv"
  log "== throughput: wrk -t1, ${SECS}s per point, $ROUNDS rounds (direct, nginx, meridian alternating)"
  local t c r
  for t in direct nginx meridian; do  # warm-up: pools, caches, page faults
    taskset -c "$LOAD_CPU" wrk -t1 -c64 -d1s -s "$tmp/$t.lua" "http://127.0.0.1:$(port_of "$t")/v1/chat/completions" >/dev/null
  done
  for c in $CONNS; do
    for r in $(seq "$ROUNDS"); do
      for t in direct nginx meridian; do wrk_point "$t" "$c" "$r"; done
    done
  done
  summarise_throughput
}

summarise_throughput() {
  # mean over rounds per (target, conns), then ratios and added latency
  awk -F, 'NR > 1 { k = $3 "," $2; n[k]++; rps[k] += $4; p50[k] += $5; p90[k] += $6; p99[k] += $7; cpu[k] += $8; err[k] += $9; if ($10 > hwm[k]) hwm[k] = $10; cs[$3] = 1 }
    END {
      print "conns,target,rps,p50_us,p90_us,p99_us,cpu_us_per_req,errors,hwm_kib,rps_vs_direct,rps_vs_nginx,added_p50_us,added_p99_us"
      split("direct nginx meridian", ts, " ")
      for (c in cs) for (i = 1; i <= 3; i++) {
        k = c "," ts[i]; d = c ",direct"; g = c ",nginx"; if (!n[k]) continue
        printf "%s,%s,%.0f,%.1f,%.1f,%.1f,%.2f,%d,%d,%.3f,%.3f,%.1f,%.1f\n", c, ts[i], rps[k]/n[k], p50[k]/n[k], p90[k]/n[k], p99[k]/n[k], cpu[k]/n[k], err[k], hwm[k],
          (rps[k]/n[k]) / (rps[d]/n[d]), (rps[k]/n[k]) / (rps[g]/n[g]), p50[k]/n[k] - p50[d]/n[d], p99[k]/n[k] - p99[d]/n[d]
      }
    }' "$OUT/throughput.csv" | { read -r h; echo "$h"; sort -t, -k1,1n -k2,2; } >"$OUT/throughput.summary.csv"
  {
    echo "Throughput (wrk -t1, ${SECS}s x $ROUNDS rounds, mean; proxy on cpu $PROXY_CPU, wrk+mock on cpu $LOAD_CPU)"
    printf '%-6s %-9s %9s %9s %9s %9s %8s %7s %9s %8s %8s %9s %9s\n' conns target 'req/s' 'p50 us' 'p90 us' 'p99 us' 'cpu us/r' errors 'HWM KiB' 'x direct' 'x nginx' '+p50 us' '+p99 us'
    tail -n +2 "$OUT/throughput.summary.csv" | awk -F, '{ printf "%-6s %-9s %9s %9s %9s %9s %8s %7s %9s %8s %8s %9s %9s\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13 }'
  } | tee "$OUT/throughput.txt"
}

# --- paced: one connection, closed loop and open loop at PACED_RATE ---------------------------
cmd_paced() {
  log "== latency on one connection: closed loop ${SECS}s, then paced ${PACED_RATE}/s for ${PACED_SECS}s (latency from the scheduled send time)"
  echo "round,target,mode,rate,ok,errors,rps,p50_us,p90_us,p99_us,p999_us,max_us,cpu_us_per_req" >"$OUT/paced.csv"
  local t r out before after pid
  for t in direct nginx meridian; do loadgen closed --port "$(port_of "$t")" --body-file "$tmp/$t.json" -d 1 >/dev/null; done
  for r in $(seq "$ROUNDS"); do
    for t in direct nginx meridian; do
      pid=$(pid_of "$t")
      for mode in closed paced; do
        before=$(cpu_ticks "$pid")
        if [[ $mode == closed ]]; then
          out=$(loadgen closed --port "$(port_of "$t")" --body-file "$tmp/$t.json" -c 1 -d "$SECS")
        else
          out=$(loadgen paced --port "$(port_of "$t")" --body-file "$tmp/$t.json" -c 1 -d "$PACED_SECS" --rate "$PACED_RATE")
        fi
        after=$(cpu_ticks "$pid")
        local ok; ok=$(kv "$out" ok)
        local cpu; cpu=$(awk -v d=$((after - before)) -v hz="$HZ" -v n="$ok" 'BEGIN { printf "%.2f", n ? d * 1e6 / hz / n : 0 }')
        echo "$r,$t,$mode,$([[ $mode == paced ]] && echo "$PACED_RATE" || echo 0),$ok,$(( $(kv "$out" errors) + $(kv "$out" non2xx) )),$(kv "$out" rps),$(kv "$out" lat_p50),$(kv "$out" lat_p90),$(kv "$out" lat_p99),$(kv "$out" lat_p999),$(kv "$out" lat_max),$cpu" >>"$OUT/paced.csv"
        printf '  round %s %-8s %-6s %s\n' "$r" "$t" "$mode" "$out" >&2
      done
    done
  done
  {
    echo "One connection (meridian-loadgen; $ROUNDS rounds, mean; paced = open loop at ${PACED_RATE}/s, latency from the scheduled time)"
    printf '%-7s %-9s %9s %9s %9s %9s %9s %9s %9s %9s\n' mode target 'req/s' 'p50 us' 'p90 us' 'p99 us' 'p99.9 us' 'cpu us/r' '+p50 us' '+p99 us'
    awk -F, 'NR > 1 { k = $3 "," $2; n[k]++; rps[k] += $7; p50[k] += $8; p90[k] += $9; p99[k] += $10; p999[k] += $11; cpu[k] += $13 }
      END { split("closed paced", ms, " "); split("direct nginx meridian", ts, " ")
        for (m = 1; m <= 2; m++) for (i = 1; i <= 3; i++) { k = ms[m] "," ts[i]; d = ms[m] ",direct"; if (!n[k]) continue
          printf "%-7s %-9s %9.0f %9.1f %9.1f %9.1f %9.1f %9.2f %9.1f %9.1f\n", ms[m], ts[i], rps[k]/n[k], p50[k]/n[k], p90[k]/n[k], p99[k]/n[k], p999[k]/n[k], cpu[k]/n[k], p50[k]/n[k] - p50[d]/n[d], p99[k]/n[k] - p99[d]/n[d] } }' "$OUT/paced.csv"
  } | tee "$OUT/paced.txt"
}

# --- stream: time to first token and the spacing of events ------------------------------------
cmd_stream() {
  log "== streaming: meridian-sim at 50 tokens/s (20 tokens, ttft 0), ${STREAM_SECS}s per point"
  echo "round,target,conns,streams,errors,ttft_p50_us,ttft_p99_us,gap_p50_us,gap_p99_us,gap_max_us,events,max_events_per_read,reads_multi_event,cpu_us_per_event" >"$OUT/stream.csv"
  local t r c out
  for r in $(seq "$ROUNDS"); do
    for c in 1 64; do
      for t in direct nginx meridian; do
        kill -0 "$SIM_PID" 2>/dev/null || { log "meridian-sim has exited:"; tail -5 "$tmp/sim.err" >&2; return 1; }
        local spid before after; spid=$(stream_pid_of "$t"); before=$(cpu_ticks "$spid")
        out=$(loadgen stream --port "$(stream_port_of "$t")" --body-file "$tmp/$t.stream.json" -c "$c" -d "$STREAM_SECS" --ramp 1000)
        after=$(cpu_ticks "$spid")
        local per_event; per_event=$(awk -v d=$((after - before)) -v hz="$HZ" -v n="$(kv "$out" events)" 'BEGIN { printf "%.2f", n ? d * 1e6 / hz / n : 0 }')
        echo "$r,$t,$c,$(kv "$out" ok),$(( $(kv "$out" errors) + $(kv "$out" non2xx) )),$(kv "$out" ttft_p50),$(kv "$out" ttft_p99),$(kv "$out" gap_p50),$(kv "$out" gap_p99),$(kv "$out" gap_max),$(kv "$out" events),$(kv "$out" max_events_per_read),$(kv "$out" reads_multi_event),$per_event" >>"$OUT/stream.csv"
        printf '  round %s %-8s c=%-3s %s\n' "$r" "$t" "$c" "$out" >&2
      done
    done
  done
  {
    echo "Streaming (meridian-loadgen stream; $ROUNDS rounds, mean; ttft = request sent -> first event; gap = between events, nominal 20000 us)"
    printf '%-5s %-9s %8s %6s %9s %9s %9s %9s %9s %10s %9s %10s %9s\n' conns target streams errors 'ttft p50' 'ttft p99' '+ttft p50' 'gap p50' 'gap p99' 'gap max' 'ev/read' 'multi-ev' 'cpu us/ev'
    awk -F, 'NR > 1 { k = $3 "," $2; n[k]++; s[k] += $4; e[k] += $5; t50[k] += $6; t99[k] += $7; g50[k] += $8; g99[k] += $9; if ($10 > gm[k]) gm[k] = $10; if ($12 > mx[k]) mx[k] = $12; me[k] += $13; ce[k] += $14; cs[$3] = 1 }
      END { split("direct nginx meridian", ts, " ")
        for (c in cs) for (i = 1; i <= 3; i++) { k = c "," ts[i]; d = c ",direct"; if (!n[k]) continue
          printf "%-5s %-9s %8d %6d %9.1f %9.1f %9.1f %9.1f %9.1f %10.1f %9d %10d %9.2f\n", c, ts[i], s[k], e[k], t50[k]/n[k], t99[k]/n[k], t50[k]/n[k] - t50[d]/n[d], g50[k]/n[k], g99[k]/n[k], gm[k], mx[k], me[k], ce[k]/n[k] } }' "$OUT/stream.csv" | sort -k1,1n -s
  } | tee "$OUT/stream.txt"
}

# --- conns: memory per idle keep-alive connection; N concurrent slow streams -----------------
cmd_conns() {
  # A proxied stream holds two descriptors in the proxy (client + upstream); stay under the limit.
  local fit=$((($(ulimit -n) - 500) / 2))
  if ((SLOW_STREAMS > fit)); then
    log "(open-file limit $(ulimit -n): $SLOW_STREAMS proxied streams do not fit, running $fit)"
    SLOW_STREAMS=$fit
  fi
  ((IDLE_CONNS > fit * 2)) && IDLE_CONNS=$((fit * 2))
  log "== connections: $IDLE_CONNS idle keep-alive clients; $SLOW_STREAMS concurrent slow streams (2 tokens/s, 30 tokens)"
  echo "target,kind,conns,ok,errors,rss_before_kib,rss_after_kib,kib_per_conn,hwm_kib,peak_streams,ttft_p50_us,ttft_p99_us,gap_p99_us" >"$OUT/conns.csv"
  local t pid before after out
  for t in nginx meridian; do
    pid=$(pid_of "$t")
    loadgen closed --port "$(port_of "$t")" --body-file "$tmp/$t.json" -c 64 -d 1 >/dev/null
    sleep 1
    before=$(rss_kib "$pid")
    loadgen idle --port "$(port_of "$t")" --body-file "$tmp/$t.json" -c "$IDLE_CONNS" -d 3 --ramp 5000 >"$tmp/idle.out" &
    local lg=$!
    for _ in $(seq 300); do grep -q idle_ready "$tmp/idle.out" && break; sleep 0.1; done
    sleep 1
    after=$(rss_kib "$pid")
    wait "$lg" || true
    out=$(tail -1 "$tmp/idle.out")
    local per; per=$(awk -v a="$after" -v b="$before" -v n="$IDLE_CONNS" 'BEGIN { printf "%.2f", (a - b) / n }')
    echo "$t,idle,$IDLE_CONNS,$(kv "$out" ok),$(( $(kv "$out" errors) + $(kv "$out" non2xx) )),$before,$after,$per,$(hwm_kib "$pid"),,,," >>"$OUT/conns.csv"
    printf '  %-8s idle %s: RSS %s -> %s KiB = %s KiB per connection  (%s)\n' "$t" "$IDLE_CONNS" "$before" "$after" "$per" "$out" >&2
    sleep 2
  done
  for t in nginx meridian; do
    pid=$(pid_of "$t")
    local port=$GW_PORT path=/v1/chat/completions
    [[ $t == nginx ]] && { port=$PROXY_STREAM_PORT; path=/slow/v1/chat/completions; }
    before=$(rss_kib "$pid")
    out=$(loadgen stream --port "$port" --path "$path" --body-file "$tmp/$t.slow.json" -c "$SLOW_STREAMS" --once --ramp 2000 -d 120 --drain 30)
    after=$(hwm_kib "$pid")
    echo "$t,slow_streams,$SLOW_STREAMS,$(kv "$out" ok),$(( $(kv "$out" errors) + $(kv "$out" non2xx) )),$before,$after,$(awk -v a="$after" -v b="$before" -v n="$SLOW_STREAMS" 'BEGIN { printf "%.2f", (a - b) / n }'),$after,$(kv "$out" peak_streams),$(kv "$out" ttft_p50),$(kv "$out" ttft_p99),$(kv "$out" gap_p99)" >>"$OUT/conns.csv"
    printf '  %-8s %s slow streams: %s\n' "$t" "$SLOW_STREAMS" "$out" >&2
    sleep 2
  done
  {
    echo "Connections (RSS of the proxy process; kib_per_conn = RSS delta / connections; for streams, HWM delta)"
    column -s, -t "$OUT/conns.csv"
  } | tee "$OUT/conns.txt"
}

# --- soak: RSS at a constant rate -------------------------------------------------------------
cmd_soak() {
  local every=5 warm=$((SOAK_SECS / 10))
  ((warm < 10)) && warm=10
  log "== soak: meridian at ${SOAK_RATE}/s (16 connections, open loop) for ${SOAK_SECS}s, RSS every ${every}s, warm-up ${warm}s"
  echo "t_s,rss_kib" >"$OUT/soak.csv"
  loadgen paced --port "$GW_PORT" --body-file "$tmp/meridian.json" -c 16 -d "$SOAK_SECS" --rate "$SOAK_RATE" >"$tmp/soak.out" &
  local lg=$! t0=$SECONDS
  while kill -0 "$lg" 2>/dev/null; do
    echo "$((SECONDS - t0)),$(rss_kib "$GW_PID")" >>"$OUT/soak.csv"
    sleep "$every"
  done
  wait "$lg" || true
  local out; out=$(cat "$tmp/soak.out")
  {
    echo "Soak: $out"
    awk -F, -v w="$warm" 'NR > 1 && $1 >= w { n++; if (!first) first = $2; last = $2; if (!min || $2 < min) min = $2; if ($2 > max) max = $2; sum += $2 }
      END { if (!n) { print "no samples after warm-up"; exit } m = sum / n
        printf "RSS after warm-up (%d samples): first %d KiB, last %d KiB, min %d, max %d, mean %.0f; spread %+.2f%% / %+.2f%% of the mean; last vs first %+.2f%%\n", n, first, last, min, max, m, (min - m) / m * 100, (max - m) / m * 100, (last - first) / first * 100 }' "$OUT/soak.csv"
  } | tee "$OUT/soak.txt"
}

# --- profile: Meridian under callgrind at 64 connections (instruction counts, not time) --------
cmd_profile() {
  log "== profile: wrk -c$PROFILE_CONNS for ${PROFILE_SECS}s"
  local t
  taskset -c "$LOAD_CPU" wrk -t1 -c"$PROFILE_CONNS" -d"${PROFILE_SECS}s" -s "$tmp/meridian.lua" "http://127.0.0.1:$GW_PORT/v1/chat/completions" | tee "$OUT/profile.wrk.txt"
  kill -TERM "$GW_PID"
  for t in $(seq 300); do kill -0 "$GW_PID" 2>/dev/null || break; sleep 0.1; done
  callgrind_annotate --inclusive=yes "$OUT/callgrind.out" >"$OUT/profile.inclusive.txt" 2>/dev/null || true
  callgrind_annotate "$OUT/callgrind.out" >"$OUT/profile.self.txt" 2>/dev/null || true
  local reqs; reqs=$(awk '/requests in/ {print $1}' "$OUT/profile.wrk.txt")
  local ir; ir=$(awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}' "$OUT/profile.self.txt")
  echo "instructions per request: $(awk -v i="$ir" -v n="$reqs" 'BEGIN { printf "%.0f", n ? i / n : 0 }') ($ir over $reqs requests, start-up included)" | tee "$OUT/profile.txt"
}

cmd_micro() {
  log "== micro-benchmarks (Google Benchmark)"
  taskset -c "$PROXY_CPU" "$BUILD/bench/meridian-micro" --benchmark_min_time=0.2 \
    --benchmark_out="$OUT/micro.json" --benchmark_out_format=json | tee "$OUT/micro.txt"
}

# ----------------------------------------------------------------------------------------------
main() {
  local cmds=("$@")
  ((${#cmds[@]})) || cmds=(all)
  [[ ${cmds[0]} == all ]] && cmds=(throughput paced stream conns micro soak)
  ensure_tools
  ensure_build
  mkdir -p "$OUT"
  OUT=$(cd "$OUT" && pwd)
  log "results in $OUT"
  local c
  for c in "${cmds[@]}"; do
    case $c in
      throughput | paced | stream | conns | soak | micro | profile) ;;
      *) log "unknown subcommand $c (all|throughput|paced|stream|conns|soak|micro|profile)"; exit 2 ;;
    esac
  done
  for c in "${cmds[@]}"; do
    if [[ $c == micro ]]; then
      with_lock cmd_micro
      continue
    fi
    local wrap=$MERIDIAN_WRAP
    if [[ $c == profile && -z $wrap ]]; then
      command -v valgrind >/dev/null || { log "profile needs valgrind"; exit 1; }
      MERIDIAN_WRAP="valgrind --tool=callgrind --callgrind-out-file=$OUT/callgrind.out"
    fi
    start_all
    MERIDIAN_WRAP=$wrap
    if [[ $c == soak && $SOAK_SECS -gt 240 ]]; then
      log "(soak longer than 4 minutes: run without the build lock)"
      "cmd_$c"
    else
      with_lock "cmd_$c"
    fi
    cleanup; pids=(); tmp=
  done
  [[ -f $OUT/throughput.summary.csv ]] && "$root/bench/plot.sh" "$OUT" >&2 || true
  log "results in $OUT"
}

# Holds $LOCK (fd 9) while a measured section runs.
with_lock() {
  if [[ -n $LOCK ]]; then
    exec 9>>"$LOCK"
    flock 9
    "$@"
    flock -u 9
    exec 9>&-
  else
    "$@"
  fi
}

main "$@"
