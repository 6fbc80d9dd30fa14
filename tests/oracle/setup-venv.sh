#!/bin/sh
# tests/oracle/setup-venv.sh — makes the Python venv the oracle scripts run in,
# outside the repo (SYNTHCXR_VENV, default ~/.cache/synthcxr/venv), and prints
# its python's path. The programs and `make check` never need it.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
venv=${SYNTHCXR_VENV:-$HOME/.cache/synthcxr/venv}
if [ ! -x "$venv/bin/python" ]; then
  mkdir -p "$(dirname "$venv")"
  python3 -m venv "$venv" >&2
fi
if ! "$venv/bin/python" -m pip install -q -r "$here/requirements.txt" >&2; then
  echo "setup-venv: pip could not install $here/requirements.txt into $venv" >&2
  exit 1
fi
echo "$venv/bin/python"
