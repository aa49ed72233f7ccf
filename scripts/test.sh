#!/usr/bin/env bash
# Runs the whole test suite, installing what the tests need first (idempotent and cached):
# Debian packages for the guest, the wasm guest itself, then `cargo test` on the workspace
# (real guest, real wasmtime, CPython for the fidelity baseline).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache="${AZR_CACHE_DIR:-$HOME/.cache/azr-rs}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$cache/target}"
cd "$root"

"$root/scripts/apt-deps.sh" guest
bash "$root/scripts/build-guest.sh" >/dev/null

cargo test --workspace --locked --no-fail-fast "$@"
