#!/usr/bin/env bash
# Builds everything with the `ci` preset (warnings are errors) and runs every test under ctest,
# then builds the libFuzzer targets (`fuzz` preset, clang) and runs each for ten seconds.
# Usage: scripts/test.sh [extra ctest args]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
cmake --preset ci >/dev/null
cmake --build --preset ci
ctest --preset ci --parallel 2 "$@"
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz
ctest --preset fuzz --parallel 2
