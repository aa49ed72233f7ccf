#!/usr/bin/env bash
# Runs the whole test suite, installing what the tests need first (idempotent and cached):
# Debian packages for the guest and the daemon's tests, the wasm guest, libtorch 2.11, the two GGUF models and the
# transformers reference venv (for the trainer's parity tests), then `cargo test` on the
# workspace: real guest, real wasmtime, real libtorch, CPython and transformers as baselines.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache="${AZR_CACHE_DIR:-$HOME/.cache/azr-rs}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$cache/target}"
cd "$root"

"$root/scripts/apt-deps.sh" guest
"$root/scripts/apt-deps.sh" daemon
bash "$root/scripts/build-guest.sh" >/dev/null
LIBTORCH=$(bash "$root/scripts/libtorch.sh" | tail -n1)
export LIBTORCH
bash "$root/scripts/models.sh" >/dev/null
bash "$root/scripts/reference-venv.sh" >/dev/null

cargo test --workspace --locked --no-fail-fast "$@"
