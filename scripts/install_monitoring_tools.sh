#!/usr/bin/env bash
# Installs Prometheus, Alertmanager (with promtool and amtool) and the Pushgateway (the eval gate pushes its
# results there) from Debian/Ubuntu packages when missing,
# and Chromium, which the tests run headless to check that pages render offline (/docs, /redoc).
# As root on Debian/Ubuntu it installs them; otherwise it prints exactly what to install and fails.
set -euo pipefail
missing=()
for bin in prometheus promtool prometheus-alertmanager amtool prometheus-pushgateway chromium; do
  command -v "$bin" >/dev/null 2>&1 || missing+=("$bin")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "missing: ${missing[*]}" >&2
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq prometheus prometheus-alertmanager prometheus-pushgateway chromium >/dev/null
  # The Debian packages start system services on some hosts; the lab runs its own processes on its own ports.
  for unit in prometheus prometheus-alertmanager prometheus-pushgateway prometheus-node-exporter; do
    if command -v systemctl >/dev/null 2>&1; then systemctl stop "$unit" 2>/dev/null || true; fi
    if command -v service >/dev/null 2>&1; then service "$unit" stop >/dev/null 2>&1 || true; fi
  done
  exit 0
fi
cat >&2 <<'TXT'
Prometheus and Alertmanager are needed. Install them, then run the command again:
  Debian/Ubuntu:  sudo apt-get install -y prometheus prometheus-alertmanager prometheus-pushgateway chromium
  macOS:          brew install prometheus alertmanager pushgateway   (then symlink alertmanager as prometheus-alertmanager)
  elsewhere:      put prometheus, promtool, prometheus-alertmanager (or alertmanager) and amtool on PATH
TXT
exit 1
