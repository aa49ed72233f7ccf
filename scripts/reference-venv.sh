#!/usr/bin/env bash
# Creates the reference Python environment the trainer's parity tests compare against:
# torch 2.11.0 (the libtorch version tch =0.24.0 uses) + transformers + gguf + accelerate.
# CPU is enough; the default torch wheel also brings the CUDA libraries (≈ 5 GB in all).
#
# Result: $HOME/.cache/azr-rs/venv-torch-2.11; the path of its python is printed on the last line.
# Idempotent: a finished venv is reused (a second run takes well under a second).
set -euo pipefail

cache="${AZR_CACHE_DIR:-$HOME/.cache/azr-rs}"
venv="$cache/venv-torch-2.11"
python="${PYTHON:-python3}"

if [[ -f "$venv/.complete" ]]; then
  echo "$venv/bin/python"
  exit 0
fi

mkdir -p "$cache"
echo "reference-venv.sh: creating $venv (once, a few minutes)" >&2
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip >&2
"$venv/bin/python" -m pip install --quiet torch==2.11.0 transformers safetensors gguf accelerate >&2
"$venv/bin/python" -c "import torch, transformers, gguf, safetensors, accelerate; assert torch.__version__.startswith('2.11.0'), torch.__version__" >&2
touch "$venv/.complete"
echo "$venv/bin/python"
