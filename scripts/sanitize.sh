#!/usr/bin/env bash
# Builds the `asan` (AddressSanitizer + UndefinedBehaviorSanitizer) and `tsan` (ThreadSanitizer)
# presets and runs every unit and integration test under each with ctest. Not part of
# scripts/test.sh: two more full builds and slow instrumented runs would double CI's time.
#
# Usage: scripts/sanitize.sh [asan|tsan ...] [-- extra ctest args]   (default: asan tsan)
#
# Sanitizer reports from every process the tests start (the real `meridian` and
# `meridian-sim` included, whose stderr the harness does not show) are written to
# build/<preset>/sanitizer-logs/; the script fails when a test fails or any report was written,
# and prints the reports. Set MERIDIAN_BUILD_LOCK to a file to serialise the builds (flock) with
# other builds on a shared machine.
set -euo pipefail
cd "$(dirname "$0")/.."

presets=()
while (($#)) && [ "$1" != "--" ]; do presets+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
((${#presets[@]})) || presets=(asan tsan)

locked() {
  if [ -n "${MERIDIAN_BUILD_LOCK:-}" ]; then flock "$MERIDIAN_BUILD_LOCK" "$@"; else "$@"; fi
}

status=0
for preset in "${presets[@]}"; do
  echo "== $preset: build"
  cmake --preset "$preset" >/dev/null
  locked cmake --build --preset "$preset"

  logs="build/$preset/sanitizer-logs"
  rm -rf "$logs" && mkdir -p "$logs"
  # Appended to the options the test preset sets; each process writes <prefix>.<pid>.
  export ASAN_OPTIONS="log_path=$PWD/$logs/asan" UBSAN_OPTIONS="log_path=$PWD/$logs/ubsan"
  export TSAN_OPTIONS="log_path=$PWD/$logs/tsan"

  echo "== $preset: test"
  if ! ctest --preset "$preset" --parallel 2 "$@"; then
    echo "== $preset: tests FAILED"
    status=1
  fi
  if compgen -G "$logs/*" >/dev/null; then
    echo "== $preset: sanitizer reports"
    for f in "$logs"/*; do echo "--- $f"; cat "$f"; done
    status=1
  else
    echo "== $preset: no sanitizer reports"
  fi
  unset ASAN_OPTIONS UBSAN_OPTIONS TSAN_OPTIONS
done
exit $status
