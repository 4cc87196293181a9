#!/usr/bin/env bash
# A longer local fuzzing run: builds the `fuzz` preset and runs each libFuzzer target in turn
# for a while, adding the new inputs it finds to tests/fuzz/corpus/<target>/ (then minimised
# with -merge so the checked-in corpus stays small). Crashes land in build/fuzz/findings/.
#
# Usage: scripts/fuzz.sh [seconds per target, default 300] [target ...]
#        (targets: fuzz_canonicalise fuzz_sse fuzz_dialects fuzz_yaml; default all)
# Set MERIDIAN_BUILD_LOCK to a file to serialise the build (flock) on a shared machine.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-300}
(($#)) && shift
targets=("$@")
((${#targets[@]})) || targets=(fuzz_canonicalise fuzz_sse fuzz_dialects fuzz_yaml)

cmake --preset fuzz >/dev/null
if [ -n "${MERIDIAN_BUILD_LOCK:-}" ]; then
  flock "$MERIDIAN_BUILD_LOCK" cmake --build --preset fuzz
else
  cmake --build --preset fuzz
fi

findings=build/fuzz/findings
mkdir -p "$findings"
status=0
for t in "${targets[@]}"; do
  corpus=tests/fuzz/corpus/$t
  fresh=build/fuzz/fresh/$t
  rm -rf "$fresh" && mkdir -p "$fresh"
  echo "== $t: ${seconds}s"
  # One process (no -jobs: the machine is shared). New inputs go to the fresh dir first so the
  # merge below keeps only those that add coverage to the checked-in corpus.
  if ! "build/fuzz/tests/fuzz/$t" -max_total_time="$seconds" -max_len=8192 -timeout=10 \
      -print_final_stats=1 -artifact_prefix="$findings/$t-" \
      "$fresh" "$corpus" 2>&1 | tee "build/fuzz/$t.log" | grep -E "^(#[0-9]+ *DONE|stat::|==[0-9]+==|SUMMARY)"; then
    :
  fi
  if grep -qE "^==[0-9]+==ERROR|SUMMARY: |deadly signal|Test unit written" "build/fuzz/$t.log"; then
    echo "== $t: FINDING (see build/fuzz/$t.log and $findings/)"
    status=1
  fi
  # Minimise: the hand-named seeds stay; the generated (sha1-named) entries are replaced by the
  # smallest set that keeps the coverage of seeds, old entries and this run's finds together.
  merged=build/fuzz/merged/$t
  rm -rf "$merged" && mkdir -p "$merged"
  "build/fuzz/tests/fuzz/$t" -merge=1 -max_len=8192 "$merged" "$corpus" "$fresh" >/dev/null 2>&1
  find "$corpus" -type f -regextype posix-extended -regex '.*/[0-9a-f]{40}' -delete
  for f in "$merged"/*; do
    cmp -s "$f" "$corpus/$(basename "$f")" 2>/dev/null || cp "$f" "$corpus/"
  done
  # Drop merged copies of the named seeds (same bytes under a sha1 name).
  for seed in $(find "$corpus" -type f -regextype posix-extended ! -regex '.*/[0-9a-f]{40}'); do
    rm -f "$corpus/$(sha1sum "$seed" | cut -c1-40)"
  done
  echo "== $t: corpus now $(ls "$corpus" | wc -l) inputs"
done
exit $status
