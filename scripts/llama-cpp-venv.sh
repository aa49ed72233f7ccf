#!/usr/bin/env bash
# Creates the llama.cpp reference that `azr-trainer bench --compare-llama-cpp` runs beside us:
# a venv with llama-cpp-python (which vendors llama.cpp and builds it from source, ≈ 25 min on
# 2 cores) built for this CPU (GGML_NATIVE: the SIMD paths this machine has, as a user who
# builds llama.cpp here gets them).
#
# A benchmark reference only: no test needs it, and scripts/test.sh does not call it.
#
# Result: $HOME/.cache/azr-rs/venv-llama-cpp-<version>-<cpu>, keyed by the version and by this
# CPU's feature flags (a native build is only valid on the CPU it was built for); the path of
# its python is printed on the last line. Idempotent: a finished venv is reused.
set -euo pipefail

version=0.3.36
cache="${AZR_CACHE_DIR:-$HOME/.cache/azr-rs}"
python="${PYTHON:-python3}"
cpu="$(grep -m1 '^flags' /proc/cpuinfo | sha256sum | cut -c1-12)"
venv="$cache/venv-llama-cpp-$version-$cpu"

if [[ -f "$venv/.complete" ]]; then
  echo "$venv/bin/python"
  exit 0
fi

mkdir -p "$cache"
echo "llama-cpp-venv.sh: building llama-cpp-python $version into $venv (once, ≈ 25 min on 2 cores)" >&2
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip >&2
# scikit-build-core fetches cmake and ninja as Python packages when the system has none.
CMAKE_ARGS="-DGGML_NATIVE=ON -DGGML_OPENMP=ON" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
  "$venv/bin/python" -m pip install --quiet --no-cache-dir "llama-cpp-python==$version" >&2
"$venv/bin/python" -c "import llama_cpp; assert llama_cpp.__version__ == '$version', llama_cpp.__version__" >&2
touch "$venv/.complete"
echo "$venv/bin/python"
