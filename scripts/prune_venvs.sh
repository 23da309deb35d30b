#!/usr/bin/env bash
# Remove the default environments (several GB each, made by scripts/setup.sh) under DIR whose checkout is gone
# or no longer links to them (.venv). An environment without a recorded checkout (.cleanpose-checkout, written
# by setup.sh) is left alone.
# Usage: bash scripts/prune_venvs.sh DIR
set -euo pipefail
DIR=${1:?usage: prune_venvs.sh DIR}
for venv in "$DIR"/venv-*; do
  [ -f "$venv/.cleanpose-checkout" ] || continue
  checkout=$(cat "$venv/.cleanpose-checkout")
  if [ "$(readlink -f "$checkout/.venv" 2>/dev/null)" != "$(readlink -f "$venv")" ]; then
    echo "[setup] removing $venv: its checkout $checkout is gone or uses another environment"
    rm -rf "$venv"
  fi
done
