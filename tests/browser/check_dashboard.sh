#!/bin/sh
# Loads the dashboard in Debian's headless Chromium: dumps the DOM after the inline script ran,
# takes a screenshot, and fails when the page logged a console error.
# usage: check_dashboard.sh BASE_URL [OUT_DIR]
#   BASE_URL  e.g. http://127.0.0.1:8080 (the page is BASE_URL/dashboard); a URL that already
#             ends in /dashboard (optionally with a query) or a file:// URL is loaded as is
#   OUT_DIR   where dom.html, dashboard.png and console.log go (default: a new temporary folder)
# exit: 0 ok, 1 console errors or Chromium failed, 2 usage, 77 Chromium not installed (skip)
set -eu

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: $0 BASE_URL [OUT_DIR]" >&2
  exit 2
fi

chromium=/usr/bin/chromium
if [ ! -x "$chromium" ]; then
  echo "skip: $chromium not found (Debian package 'chromium')" >&2
  exit 77
fi

case "$1" in
  file://* | */dashboard | */dashboard\?*) url=$1 ;;
  *) url=${1%/}/dashboard ;;
esac
out=${2:-$(mktemp -d)}
mkdir -p "$out"
dom=$out/dom.html
shot=$out/dashboard.png
log=$out/console.log
profiles=$(mktemp -d)
trap 'rm -rf "$profiles"' EXIT

# Each run gets its own profile so that no cache or state carries over between them. The
# virtual time budget lets the first fetch of the inline script finish before the DOM is taken.
run_chromium() {
  timeout 90 "$chromium" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$(mktemp -d "$profiles/p.XXXXXX")" --enable-logging=stderr --v=0 \
    --virtual-time-budget=3000 "$@" "$url"
}

: >"$log"
if ! run_chromium --dump-dom >"$dom" 2>>"$log"; then
  echo "FAIL: chromium --dump-dom failed for $url (log: $log)" >&2
  exit 1
fi
if ! run_chromium --screenshot="$shot" --window-size=1280,1600 >/dev/null 2>>"$log"; then
  echo "FAIL: chromium --screenshot failed for $url (log: $log)" >&2
  exit 1
fi

# Chromium logs every console message at the same level ("INFO:CONSOLE"), so errors are told
# apart by their text: uncaught exceptions and anything that says error.
errors=$(grep 'CONSOLE' "$log" | grep -i -E 'error|uncaught' || true)

echo "dom: $dom"
echo "screenshot: $shot"
failed=0
if [ -n "$errors" ]; then
  echo "FAIL: console errors:" >&2
  echo "$errors" >&2
  failed=1
fi
if [ ! -s "$dom" ] || ! grep -q 'data-testid="total-tokens"' "$dom"; then
  echo "FAIL: the dumped DOM has no dashboard in it" >&2
  failed=1
fi
if [ ! -s "$shot" ]; then
  echo "FAIL: no screenshot was written" >&2
  failed=1
fi
[ "$failed" -eq 0 ] || exit 1
echo "ok: no console errors"
