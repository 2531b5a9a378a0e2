#!/usr/bin/env bash
# Headless Chromium (Debian's package) for tests/test_report_browser.py, which opens the HTML report in a
# real browser. Idempotent: returns at once when a chromium binary is on PATH. Exits non-zero when it
# cannot be installed (no root, no apt, no network); .ci/run carries on and that test skips with its reason.
#   usage: bash .ci/chromium.sh
set -eu
if command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "chromium: not root or no apt-get, cannot install Debian's chromium" >&2; exit 1
fi
# bounded: a CI without network must not hang here
timeout 300 apt-get update -qq >/dev/null \
  && DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq --no-install-recommends chromium >/dev/null \
  || { echo "chromium: apt-get could not install chromium" >&2; exit 1; }
