#!/usr/bin/env bash
# Installs, from Debian 12's own packages, exactly what Meridian's build and tests need.
# Idempotent: packages already present are skipped by apt. Run as root (or with sudo).
set -euo pipefail
packages=(
  g++ cmake ninja-build ccache pkg-config
  libboost1.81-dev nlohmann-json3-dev libyaml-cpp-dev doctest-dev libssl-dev libsqlite3-dev
  clang libclang-rt-14-dev   # the fuzz preset: libFuzzer with ASan and UBSan
  openssl curl   # test certificates made at run time; the demo's curl examples
  prometheus     # promtool checks /metrics and deploy/prometheus; test_deploy runs the server
  chromium       # the dashboard test loads the page in headless Chromium
  libhiredis-dev libpq-dev   # fleet mode: shared limits in Redis, the ledger in PostgreSQL
  redis-server postgresql    # started by scripts/services.sh for the fleet tests, on loopback
)
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
