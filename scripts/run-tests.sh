#!/usr/bin/env bash
# Runs lint and the whole test suite. Browser and integration tests talk only to loopback:
# when we can create a network namespace (root), everything runs inside a fresh loopback-only
# one, so Chromium never sees a real interface.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
"$VENV/bin/ruff" check src tests fuzz bench
"$VENV/bin/mypy"
PYTEST=("$VENV/bin/python" -m pytest "$@")
if [ "$(id -u)" -eq 0 ] && unshare -n true 2>/dev/null; then
  exec unshare -n sh -c 'ip link set lo up && exec "$0" "$@"' "${PYTEST[@]}"
else
  echo "note: cannot create a network namespace (not root); running on the host's loopback" >&2
  exec "${PYTEST[@]}"
fi
