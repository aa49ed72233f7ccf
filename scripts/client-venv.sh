#!/usr/bin/env bash
# Creates the Python environment of the daemon's client tests: stock grpcio (sync and
# asyncio), requests, and veRL's own SandboxFusion client code (sandbox/tests/python/).
#
# Result: $HOME/.cache/azr-rs/venv-clients-<hash of the requirement files and python3's
# version>; the path of its python is printed on the last line. Idempotent and cached: a
# finished venv is reused; changing a requirement file makes a new one.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache="${AZR_CACHE_DIR:-$HOME/.cache/azr-rs}"
python="${PYTHON:-python3}"
reqs="$root/sandbox/tests/python/requirements.txt"
nodeps="$root/sandbox/tests/python/requirements-nodeps.txt"

key=$( (cat "$reqs" "$nodeps"; "$python" --version) | sha256sum | cut -c1-16)
venv="$cache/venv-clients-$key"
if [[ -f "$venv/.complete" ]]; then
  echo "$venv/bin/python"
  exit 0
fi

mkdir -p "$cache"
# One creation at a time (tests that need the venv may start together).
exec 9>"$venv.lock"
flock 9
if [[ -f "$venv/.complete" ]]; then
  echo "$venv/bin/python"
  exit 0
fi
echo "client-venv.sh: creating $venv (once, about a minute)" >&2
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip >&2
"$venv/bin/python" -m pip install --quiet -r "$reqs" >&2
"$venv/bin/python" -m pip install --quiet --no-deps -r "$nodeps" >&2
"$venv/bin/python" -c "import grpc, grpc_tools, requests" >&2
touch "$venv/.complete"
# Older venvs of this kind (other keys) are stale.
find "$cache" -maxdepth 1 -name 'venv-clients-*' ! -name "venv-clients-$key" -exec rm -rf {} + 2>/dev/null || true
echo "$venv/bin/python"
