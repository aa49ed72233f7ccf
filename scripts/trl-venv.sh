#!/usr/bin/env bash
# Adds to the reference venv (scripts/reference-venv.sh: torch 2.11, transformers) what the
# Python package's trainer tests need: TRL (GRPOTrainer), datasets, grpcio and protobuf, and
# veRL's own reward loop (verl without its GPU dependencies, plus the packages its reward
# modules import). torch and transformers stay as they are (pip constraints), so the
# trainer's parity tests are unaffected. Prints the venv's python on the last line.
#
# Cached: a marker file in the venv names this script's hash; changing it re-runs pip.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
python=$(bash "$root/scripts/reference-venv.sh" | tail -n1)
venv=$(dirname "$(dirname "$python")")
key=$(sha256sum "$0" | cut -c1-16)
marker="$venv/.trl-$key"
if [[ -f "$marker" ]]; then
  echo "$python"
  exit 0
fi
exec 9>"$venv/.trl.lock"
flock 9
if [[ -f "$marker" ]]; then
  echo "$python"
  exit 0
fi
echo "trl-venv.sh: adding TRL and veRL's reward loop to $venv (once, a few minutes)" >&2
constraints=$(mktemp)
trap 'rm -f "$constraints"' EXIT
"$python" -m pip freeze | grep -iE '^(torch|transformers|accelerate|tokenizers|safetensors|numpy)==' >"$constraints"
"$python" -m pip install --quiet -c "$constraints" \
  trl==1.16.0 datasets==5.2.0 "grpcio>=1.50" "protobuf>=4.21" \
  ray==2.60.0 tensordict==0.15.3 omegaconf==2.3.1 hydra-core aiohttp orjson codetiming >&2
"$python" -m pip install --quiet --no-deps verl==0.9.1 >&2
"$python" -c "import trl, datasets, grpc, verl, ray, tensordict" >&2
rm -f "$venv"/.trl-*
touch "$marker"
echo "$python"
