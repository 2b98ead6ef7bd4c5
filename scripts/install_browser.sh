#!/usr/bin/env bash
# Installs headless Chromium (Debian/Ubuntu `chromium`) for the tests that load the receiver's inbox page.
# As root on Debian/Ubuntu it installs it; otherwise it says what to install and carries on: the browser tests
# then skip with that reason (and fail under CI, where CI=true).
set -euo pipefail
for bin in chromium chromium-browser google-chrome; do
  command -v "$bin" >/dev/null 2>&1 && exit 0
done
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
  exit 0
fi
echo "chromium not found: the inbox page tests will skip. Install it with: sudo apt-get install -y chromium" >&2
