#!/usr/bin/env bash
# Installs and builds everything azr-rs needs on a fresh Debian bookworm machine, then runs
# the main job on the embedded default: `azr-sandbox eval` over the AZR seed programs.
#
# Everything slow is cached under $HOME/.cache/azr-rs (the wasm guest, the pre-initialised
# snapshot, the cargo target directory), so a second run takes seconds.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache="${AZR_CACHE_DIR:-$HOME/.cache/azr-rs}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$cache/target}"

"$root/scripts/apt-deps.sh" guest
guest=$(bash "$root/scripts/build-guest.sh")
echo "guest: $guest" >&2

LIBTORCH=$(bash "$root/scripts/libtorch.sh" | tail -n1)
export LIBTORCH
bash "$root/scripts/models.sh" >&2

cargo build --release --locked -p azr-sandbox -p azr-trainer
bin="$CARGO_TARGET_DIR/release/azr-sandbox"
echo "installed: $bin $CARGO_TARGET_DIR/release/azr-trainer" >&2

seeds="${AZR_SEEDS:-$root/../shared/data/azr-seeds/7b_seed_io.jsonl}"
out="$cache/eval-7b_seed_io.jsonl"
"$bin" eval --jsonl "$seeds" --output "$out"
echo "answers: $out" >&2
