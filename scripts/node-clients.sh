#!/usr/bin/env bash
# Installs the Node.js gRPC client the daemon's tests drive (@grpc/grpc-js and
# @grpc/proto-loader, pinned in sandbox/tests/node/package.json): a second stock gRPC
# implementation beside grpcio. Prints the directory whose node_modules holds them.
#
# Cached under $HOME/.cache/azr-rs/node-clients-<hash of package.json and node's version>.
# Needs node and npm (Debian's nodejs and npm packages, installed if missing).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache="${AZR_CACHE_DIR:-$HOME/.cache/azr-rs}"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  "$root/scripts/apt-deps.sh" node
fi
manifest="$root/sandbox/tests/node/package.json"
key=$( (cat "$manifest"; node --version) | sha256sum | cut -c1-16)
dir="$cache/node-clients-$key"
if [[ -f "$dir/.complete" ]]; then
  echo "$dir"
  exit 0
fi
mkdir -p "$cache"
exec 9>"$cache/.node-clients.lock"
flock 9
if [[ -f "$dir/.complete" ]]; then
  echo "$dir"
  exit 0
fi
echo "node-clients.sh: npm install into $dir (once, seconds)" >&2
rm -rf "$dir"
mkdir -p "$dir"
cp "$manifest" "$dir/package.json"
(cd "$dir" && npm install --silent --no-audit --no-fund >&2)
touch "$dir/.complete"
find "$cache" -maxdepth 1 -name 'node-clients-*' ! -name "node-clients-$key" -exec rm -rf {} + 2>/dev/null || true
echo "$dir"
