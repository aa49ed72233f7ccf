#!/usr/bin/env bash
# Installs the Python package (sandbox/python, `azr-sandbox`) into a fresh venv the way a
# user does, `pip install sandbox/python` with no compiler, for its tests. Prints the venv's
# python on the last line.
#
# With --oldest, the venv gets the oldest grpcio and protobuf the package allows (its lower
# bounds), to show they hold.
#
# Cached under $HOME/.cache/azr-rs/venv-[oldest-]package-<hash of the package's files and
# python3's version>: any change to the package makes a new venv from scratch.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache="${AZR_CACHE_DIR:-$HOME/.cache/azr-rs}"
python="${PYTHON:-python3}"
package="$root/sandbox/python"
flavour=package
pins=()
if [[ "${1:-}" == "--oldest" ]]; then
  flavour=oldest-package
  pins=("grpcio==1.50.0" "protobuf==4.21.12")
fi

key=$( (cd "$package" && find . -type f ! -path '*/__pycache__/*' ! -path '*.egg-info*' \
  ! -path './build/*' ! -path '*/.mypy_cache/*' ! -path '*/.ruff_cache/*' | LC_ALL=C sort \
  | xargs sha256sum; "$python" --version) | sha256sum | cut -c1-16)
venv="$cache/venv-$flavour-$key"
if [[ -f "$venv/.complete" ]]; then
  echo "$venv/bin/python"
  exit 0
fi
mkdir -p "$cache"
exec 9>"$cache/.venv-$flavour.lock"
flock 9
if [[ -f "$venv/.complete" ]]; then
  echo "$venv/bin/python"
  exit 0
fi
echo "package-venv.sh: pip install sandbox/python into $venv" >&2
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip >&2
# A copy, so the build leaves nothing in the source tree.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -r "$package" "$tmp/python"
# No compiler: any attempt to build native code fails (the package is pure Python and its
# dependencies come as wheels).
CC=false CXX=false "$venv/bin/python" -m pip install --quiet --only-binary grpcio,protobuf \
  "$tmp/python" ${pins[@]+"${pins[@]}"} >&2
"$venv/bin/python" -c "import azr_sandbox, azr_sandbox.verl, azr_sandbox.trl" >&2
touch "$venv/.complete"
find "$cache" -maxdepth 1 -name "venv-$flavour-*" ! -name "venv-$flavour-$key" -exec rm -rf {} + 2>/dev/null || true
echo "$venv/bin/python"
