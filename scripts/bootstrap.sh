#!/usr/bin/env bash
# Installs, from Debian 12's own packages, exactly what Meridian's build and tests need, then the
# client SDKs tests/clients drives (npm ci from its package-lock.json into the git-ignored
# tests/clients/node_modules, with the machine's Node.js, or Debian's when there is none).
# Idempotent: packages already present are skipped by apt, an up-to-date node_modules by npm.
# Run as root (or with sudo). `--build-only` installs the build set only (the container image's
# builder uses it): no test services, browsers, fuzzing compilers or client SDKs. The runtime
# libraries are the deploy/docker/Dockerfile's own list.
set -euo pipefail
build_only=0; [ "${1:-}" = "--build-only" ] && build_only=1
# What compiling the gateway and the simulator needs.
build_packages=(
  g++ cmake ninja-build ccache pkg-config
  libboost1.81-dev nlohmann-json3-dev libyaml-cpp-dev doctest-dev libssl-dev libsqlite3-dev
  libhiredis-dev libpq-dev   # fleet mode: shared limits in Redis, the ledger in PostgreSQL
  libjemalloc-dev            # the gateway's allocator (MERIDIAN_ALLOCATOR, docs/performance.md)
)
# What only the tests need.
test_packages=(
  clang libclang-rt-14-dev   # the fuzz preset: libFuzzer with ASan and UBSan
  openssl curl   # test certificates made at run time; the demo's curl examples
  prometheus     # promtool checks /metrics and deploy/prometheus; test_deploy runs the server
  chromium       # the dashboard test loads the page in headless Chromium
  redis-server postgresql    # started by scripts/services.sh for the fleet tests, on loopback
)
packages=("${build_packages[@]}")
[ "$build_only" -eq 1 ] || packages+=("${test_packages[@]}")
[ "$build_only" -eq 1 ] || command -v npm >/dev/null || packages+=(nodejs npm)  # tests/clients
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

[ "$build_only" -eq 0 ] || exit 0
# The client SDKs: reinstalled only when the lock file changed since the last install.
clients="$(cd "$(dirname "$0")/.." && pwd)/tests/clients"
if ! cmp -s "$clients/package-lock.json" "$clients/node_modules/.package-lock.json.installed"; then
  for attempt in 1 2 3; do
    npm ci --prefix "$clients" --no-audit --no-fund --loglevel=error && break
    [ "$attempt" -eq 3 ] && { echo "npm ci failed in $clients" >&2; exit 1; }
    sleep $((attempt * 5))
  done
  cp "$clients/package-lock.json" "$clients/node_modules/.package-lock.json.installed"
fi
