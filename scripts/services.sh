#!/usr/bin/env bash
# Starts the services the fleet tests need — redis-server and PostgreSQL, from Debian's packages —
# on loopback, on ports chosen now, in a fresh temporary directory. Prints the environment the
# tests read; source it:   eval "$(scripts/services.sh start)"   ...   scripts/services.sh stop DIR
#   MERIDIAN_TEST_REDIS     redis://127.0.0.1:PORT
#   MERIDIAN_TEST_POSTGRES  postgres://meridian@127.0.0.1:PORT/meridian (trust auth, loopback only)
#   MERIDIAN_SERVICES_DIR   where they keep their data and logs; `stop` removes it
set -euo pipefail

# A random loopback port nothing answers on (the services bind it right after), below the
# kernel's ephemeral range: a port there can be held by some client's outgoing connection, which
# no connect probe sees but which makes the bind fail ("Address already in use").
free_port() {
  local port low high
  read -r low high </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || low=32768
  high=$((low - 1)); low=$((high < 20000 ? 10000 : 20000))
  for _ in $(seq 50); do
    port=$(shuf -i "$low-$high" -n 1)
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "$port"; return; }
  done
  echo "no free port found" >&2
  exit 1
}

pg_bin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && { echo "$d"; return; }; done
  echo "PostgreSQL's server binaries are missing: apt-get install postgresql" >&2
  exit 1
}

# Runs a command as the postgres user when we are root (initdb and postgres refuse root).
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start() {
  command -v redis-server >/dev/null || { echo "redis-server is missing: apt-get install redis-server" >&2; exit 1; }
  local dir redis_port pg_port bin
  dir=$(mktemp -d /tmp/meridian-services.XXXXXX)
  chmod 755 "$dir"
  # A port taken between the probe and the bind is tried again with another one.
  for attempt in 1 2 3; do
    redis_port=$(free_port)
    redis-server --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no \
      --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --dir "$dir" >/dev/null
    for _ in $(seq 100); do
      redis-cli -p "$redis_port" ping 2>/dev/null | grep -q PONG && break
      sleep 0.05
    done
    redis-cli -p "$redis_port" ping 2>/dev/null | grep -q PONG && break
    [ "$attempt" -eq 3 ] && { echo "redis did not start; see $dir/redis.log" >&2; exit 1; }
  done

  bin=$(pg_bin)
  mkdir -p "$dir/pg"
  [ "$(id -u)" -eq 0 ] && chown postgres "$dir/pg"
  as_pg "$bin/initdb" -D "$dir/pg/data" -U meridian --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; exit 1; }
  # A port taken between the probe and the bind is tried again with another one.
  for attempt in 1 2 3; do
    pg_port=$(free_port)
    as_pg "$bin/pg_ctl" -D "$dir/pg/data" -l "$dir/pg/postgres.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $pg_port -k $dir/pg -c fsync=off -c max_connections=200" \
      start >/dev/null && break
    [ "$attempt" -eq 3 ] && { cat "$dir/pg/postgres.log" >&2; exit 1; }
  done
  as_pg "$bin/createdb" -h 127.0.0.1 -p "$pg_port" -U meridian meridian

  echo "export MERIDIAN_SERVICES_DIR=$dir"
  echo "export MERIDIAN_TEST_REDIS=redis://127.0.0.1:$redis_port"
  echo "export MERIDIAN_TEST_POSTGRES=postgres://meridian@127.0.0.1:$pg_port/meridian"
}

stop() {
  local dir=${1:-${MERIDIAN_SERVICES_DIR:-}}
  [ -n "$dir" ] && [ -d "$dir" ] || return 0
  [ -f "$dir/redis.pid" ] && kill "$(cat "$dir/redis.pid")" 2>/dev/null || true
  [ -d "$dir/pg/data" ] && as_pg "$(pg_bin)/pg_ctl" -D "$dir/pg/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}

case "${1:-}" in
  start) start ;;
  stop) stop "${2:-}" ;;
  *) echo "usage: $0 start | stop [DIR]" >&2; exit 2 ;;
esac
