#!/usr/bin/env bash
# Checks the trainer's CUDA path on a GPU machine that has PyTorch 2.11 and transformers (its
# python3) but no Rust toolchain and no network: the binaries are built elsewhere with
# `cargo build --release -p azr-trainer -p azr-sandbox` and copied beside this checkout.
#
#   scripts/gpu-check.sh BIN_DIR OUT_DIR
#
# With random-weight models (the real weights cannot be fetched there) of the tiny shape and
# of the real SmolLM2-135M and Qwen2.5-0.5B shapes, it writes to OUT_DIR:
#   parity.jsonl    greedy 32-token continuations and their log-probs vs transformers, per
#                   device and dtype (cuda f32 and bf16; cpu f32 as the control)
#   bench-*.txt     `azr-trainer bench --compare python3` on the GPU, bf16 and f32
#   selfplay.txt, selfplay/metrics.jsonl
#                   two self-play steps on the GPU through an embedded sandbox daemon
# Every part runs even when an earlier one fails; the exit code counts the failed parts.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$(cd "${1:?BIN_DIR}" && pwd)
out=$(mkdir -p "${2:?OUT_DIR}" && cd "$2" && pwd)
work=${AZR_GPU_WORK:-/tmp/azr-gpu}
mkdir -p "$work"

# The binary links libtorch_cpu from a CPU-only directory; PyTorch's own libraries provide the
# same ABI plus libtorch_cuda, which must be loaded for CUDA to register. Only the trainer gets
# them (it keeps them from the sandbox daemon it starts).
torchlib=${TORCH_LIB:-$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')}
# A wrapper, so that `timeout` can run it too.
trainer="$work/azr-trainer"
printf '#!/bin/sh\nLD_LIBRARY_PATH="%s" LD_PRELOAD="%s" exec "%s" "$@"\n' \
  "$torchlib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$torchlib/libtorch_cuda.so" \
  "$bin/azr-trainer" >"$trainer"
chmod +x "$trainer"

failed=0
part() { echo "== $(date +%T) $*" >&2; }
fail() { echo "FAILED: $*" >&2; failed=$((failed + 1)); }

part "machine"
nvidia-smi -L
python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'

part "models"
"$trainer" init-model --output "$work/tiny-qwen2" >/dev/null || fail "init tiny qwen2"
"$trainer" init-model --arch llama --output "$work/tiny-llama" >/dev/null || fail "init tiny llama"
"$trainer" init-model --shape smollm2-135m --output "$work/smollm2-135m" >/dev/null || fail "init smollm2 shape"
"$trainer" init-model --shape qwen2.5-0.5b --output "$work/qwen2.5-0.5b" >/dev/null || fail "init qwen2.5 shape"

part "parity"
ids="11,23,5,42,7,19,88,3,64,2"
prompt=$(echo "$ids" | sed 's/\([0-9]*\)/t\1/g; s/,/ /g')
: >"$out/parity.jsonl"
for m in tiny-qwen2 tiny-llama smollm2-135m qwen2.5-0.5b; do
  runs=()
  for combo in cpu:f32 cuda:f32 cuda:bf16; do
    dev=${combo%%:*} dt=${combo#*:}
    f="$work/gen-$m-$dev-$dt.json"
    if timeout 90 "$trainer" generate --model "$work/$m" --device "$dev" --dtype "$dt" --greedy \
        --json --max-new-tokens 32 --prompt "$prompt" >"$f" 2>"$f.err"; then
      runs+=(--run "$dev:$dt:$f")
    else
      fail "generate $m $dev $dt ($(tail -n1 "$f.err"))"
    fi
  done
  if ((${#runs[@]})); then
    timeout 180 python3 "$root/trainer/bench/cuda_parity.py" --model "$work/$m" --prompt-ids "$ids" \
      "${runs[@]}" >>"$out/parity.jsonl" || fail "parity $m"
  fi
done
cat "$out/parity.jsonl"

for dt in bf16 f32; do
  part "bench qwen2.5-0.5b shape, cuda $dt"
  timeout 180 "$trainer" bench --model "$work/qwen2.5-0.5b" --device cuda --dtype "$dt" \
    --repeats 5 --compare python3 --reference-script "$root/trainer/bench/reference.py" \
    >"$out/bench-cuda-$dt.txt" 2>&1 || fail "bench cuda $dt"
  tail -n 8 "$out/bench-cuda-$dt.txt"
done

part "self-play on cuda"
rm -rf "$work/run"
timeout 240 "$trainer" train --preset tiny --model "$work/qwen2.5-0.5b" --device cuda \
  --output "$work/run" --total-steps 2 --sandbox-bin "$bin/azr-sandbox" \
  --set tasks.max_seed_rounds=1 --set reward.format_reward=false --set checkpoint_interval=2 \
  >"$out/selfplay.txt" 2>&1 || fail "self-play"
tail -n 15 "$out/selfplay.txt"
mkdir -p "$out/selfplay"
cp "$work/run/metrics.jsonl" "$out/selfplay/" 2>/dev/null || fail "no metrics.jsonl"
ls -R "$work/run/checkpoints" 2>/dev/null | head -n 20

part "done: $failed part(s) failed"
exit "$failed"
