#!/usr/bin/env bash
# Installs LiteLLM's proxy into its own venv: an OpenAI-compatible server nobody here wrote, which the
# OpenAI-path tests run against besides our stand-in (tests/support/openai_server.py). It has its own venv
# because its pins clash with the project's. Idempotent: quick when the pinned version is there.
#   scripts/install_litellm.sh          install (or check) it
#   scripts/install_litellm.sh --where  print the proxy's executable path (the tests' fixture asks this script,
#                                       so the venv's place and the pin live here only)
# The venv lives OUTSIDE the clone, one per pin, so that every clone of the repository (CI clones afresh each
# run) shares one install of about 750 MB instead of downloading it again:
#   ${OBSERVABILITY_LAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/observability-lab}/litellm-<version>
# When that place cannot be written, it falls back to var/tools/litellm-venv in the clone. LITELLM_VENV=<dir>
# chooses the venv's directory outright.
# The pin is explicit on purpose: LiteLLM 1.107.0 on PyPI was a compromised release; never move to it.
set -euo pipefail
cd "$(dirname "$0")/.."
LITELLM_SPEC='litellm[proxy]==1.108.7'
case "$LITELLM_SPEC" in *==1.107.0*) echo "refusing LiteLLM 1.107.0 (compromised release)" >&2; exit 1 ;; esac

cache="${OBSERVABILITY_LAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/observability-lab}"
if [ -n "${LITELLM_VENV:-}" ]; then
  venv="$LITELLM_VENV"
elif mkdir -p "$cache" 2>/dev/null && [ -w "$cache" ]; then
  venv="$cache/litellm-${LITELLM_SPEC##*==}"
else
  venv="$PWD/var/tools/litellm-venv"
fi
proxy="$venv/bin/litellm"
stamp="$venv/.installed"

if [ "${1:-}" = "--where" ]; then
  echo "$proxy"
  exit 0
fi

installed() {
  # The stamp is written last, so a half-done install has none; a venv whose interpreter went away (the
  # system Python was upgraded) is installed again.
  [ -x "$proxy" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$LITELLM_SPEC" ] && "$venv/bin/python" -c '' 2>/dev/null
}
installed && exit 0

mkdir -p "$(dirname "$venv")"
if command -v flock >/dev/null 2>&1; then
  # Two clones installing at once (parallel CI jobs) must not build the same shared venv together.
  exec 9>"$venv.lock"
  flock 9
  installed && exit 0
fi
echo "installing $LITELLM_SPEC into $venv (about 750 MB, a few minutes)" >&2
if [ -e "$venv" ]; then
  # Only ever a venv of ours is replaced (an old pin, a half-done install), never a directory it is not.
  [ -f "$venv/pyvenv.cfg" ] || { echo "$venv exists and is not a venv: not touching it" >&2; exit 1; }
  rm -rf "$venv"
fi
"${PYTHON:-python3}" -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
"$venv/bin/pip" install -q "$LITELLM_SPEC"
echo "$LITELLM_SPEC" >"$stamp"
