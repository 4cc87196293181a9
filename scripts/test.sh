#!/usr/bin/env bash
# Builds everything with the `ci` preset (warnings are errors) and runs every test under ctest,
# with Redis and PostgreSQL started on loopback for the fleet tests (scripts/services.sh),
# then builds the libFuzzer targets (`fuzz` preset, clang) and runs each for ten seconds.
# Usage: scripts/test.sh [extra ctest args]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
cmake --preset ci >/dev/null
cmake --build --preset ci
# Redis and PostgreSQL for the fleet tests, on loopback ports chosen now; stopped on exit.
# (Assigned first: a failed start stops the run here instead of vanishing inside eval.)
services_env=$(scripts/services.sh start)
eval "$services_env"
trap 'scripts/services.sh stop "$MERIDIAN_SERVICES_DIR"' EXIT
ctest --preset ci --parallel 2 "$@"
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz
ctest --preset fuzz --parallel 2
