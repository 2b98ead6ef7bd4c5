#!/usr/bin/env bash
# Installs LiteLLM's proxy into its own venv (var/tools/litellm-venv): an OpenAI-compatible server nobody here
# wrote, which the OpenAI-path tests run against besides our stand-in (tests/support/openai_server.py). It has
# its own venv because its pins clash with the project's. Idempotent: quick when the pinned version is there.
#   scripts/install_litellm.sh          install (or check) it
#   scripts/install_litellm.sh --where  print the proxy's executable path (the tests' fixture asks this script,
#                                       so the venv's place and the pin live here only)
# The pin is explicit on purpose: LiteLLM 1.107.0 on PyPI was a compromised release; never move to it.
set -euo pipefail
cd "$(dirname "$0")/.."
LITELLM_SPEC='litellm[proxy]==1.108.7'
venv="${LITELLM_VENV:-$PWD/var/tools/litellm-venv}"
proxy="$venv/bin/litellm"
stamp="$venv/.installed"

if [ "${1:-}" = "--where" ]; then
  echo "$proxy"
  exit 0
fi
case "$LITELLM_SPEC" in *==1.107.0*) echo "refusing LiteLLM 1.107.0 (compromised release)" >&2; exit 1 ;; esac
if [ -x "$proxy" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$LITELLM_SPEC" ]; then
  exit 0
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
