#!/usr/bin/env bash
# Installs and builds everything azr-rs needs on a fresh Debian bookworm machine, then runs
# the main job on the embedded defaults: `azr-sandbox eval` over the AZR seed programs (a
# quick check of the guest), then a short self-play run of the `tiny` preset on the default
# model (Qwen2.5-Coder-0.5B-Instruct) through an embedded sandbox daemon.
#
# Everything slow is cached under $HOME/.cache/azr-rs (the wasm guest, the pre-initialised
# snapshot, the cargo target directory), so a second run takes seconds.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache="${AZR_CACHE_DIR:-$HOME/.cache/azr-rs}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$cache/target}"

"$root/scripts/apt-deps.sh" guest
"$root/scripts/apt-deps.sh" trainer
guest=$(bash "$root/scripts/build-guest.sh")
echo "guest: $guest" >&2

LIBTORCH=$(bash "$root/scripts/libtorch.sh" | tail -n1)
export LIBTORCH
bash "$root/scripts/models.sh" >&2

cargo build --release --locked -p azr-sandbox -p azr-trainer
bin="$CARGO_TARGET_DIR/release/azr-sandbox"
echo "installed: $bin $CARGO_TARGET_DIR/release/azr-trainer" >&2

seeds="${AZR_SEEDS:-$root/data/azr-seeds/7b_seed_io.jsonl}"
out="$cache/eval-7b_seed_io.jsonl"
"$bin" eval --jsonl "$seeds" --output "$out"
echo "answers: $out" >&2

# Self-play: one training step of the `tiny` preset, its seed pool started from the 32
# built-in programs (about five minutes on 2 cores; the full preset runs 20 steps, and
# `--max-minutes` bounds a run by time). Each set-up run starts over in its own directory.
run="${AZR_SETUP_RUN:-$cache/runs/setup-tiny}"
rm -rf "$run"
"$CARGO_TARGET_DIR/release/azr-trainer" train --preset tiny --output "$run" \
  --total-steps "${AZR_SETUP_STEPS:-1}"
echo "self-play run: $run (metrics.jsonl, rollouts.jsonl, checkpoints/)" >&2
# What the run did, per group: format-valid rate and mean reward at its first and last step.
"$CARGO_TARGET_DIR/release/azr-trainer" report "$run" --png "$run/report.png"
