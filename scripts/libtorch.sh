#!/usr/bin/env bash
# Provides libtorch 2.11.0 (the version tch =0.24.0 links against) from the Python package
# registry, without a full PyTorch install: only the headers and the CPU libraries are taken from
# the torch wheel, plus the two small CUDA runtime libraries that libtorch_cpu.so links against.
#
# Result: $HOME/.cache/azr-rs/libtorch-2.11.0/{include,lib,build-version}; the path is printed on
# the last line. Build the trainer with `LIBTORCH=<that path>`; binaries find the libraries via
# the rpath that trainer/build.rs adds, so no LD_LIBRARY_PATH is needed at run time.
#
# Idempotent: a finished directory is reused (a second run takes well under a second).
set -euo pipefail

version=2.11.0
cuda_runtime=13.0.96
cuda_cupti=13.0.85
cache="${AZR_CACHE_DIR:-$HOME/.cache/azr-rs}"
dest="$cache/libtorch-$version"
python="${PYTHON:-python3}"

root=$(cd "$(dirname "$0")/.." && pwd)
# `.cargo/config.toml` points LIBTORCH at this link, so a plain `cargo build` finds libtorch.
link_into_repo() { ln -sfn "$dest" "$root/.libtorch"; }

if [[ -f "$dest/.complete" ]]; then
  link_into_repo
  echo "$dest"
  exit 0
fi

work="$(mktemp -d "$cache/libtorch-work.XXXXXX" 2>/dev/null || { mkdir -p "$cache"; mktemp -d "$cache/libtorch-work.XXXXXX"; })"
trap 'rm -rf "$work"' EXIT

fetch() { # fetch SPEC: downloads one wheel for this machine (no dependencies) into $work/wheels
  "$python" -m pip download --quiet --no-deps --only-binary=:all: -d "$work/wheels" "$1" >&2
}

echo "libtorch.sh: downloading torch==$version and the CUDA runtime wheels (once)" >&2
fetch "torch==$version"
fetch "nvidia-cuda-runtime==$cuda_runtime"
fetch "nvidia-cuda-cupti==$cuda_cupti"

torch_whl="$(ls "$work"/wheels/torch-"$version"*-cp311-*x86_64.whl 2>/dev/null | head -n1 || true)"
[[ -n "$torch_whl" ]] || { echo "libtorch.sh: no cp311 linux x86_64 torch wheel downloaded" >&2; exit 1; }

stage="$work/libtorch"
mkdir -p "$stage/lib" "$work/unz"
"$python" - "$torch_whl" "$work/unz" <<'PY'
# Extracts only torch/include and the CPU libraries from the (large) wheel.
import re, sys, zipfile
whl, out = sys.argv[1], sys.argv[2]
want = re.compile(r"^torch/(include/.*|lib/(libc10\.so|libtorch_cpu\.so|libgomp[^/]*\.so[^/]*))$")
with zipfile.ZipFile(whl) as z:
    names = [n for n in z.namelist() if want.match(n) and not n.endswith("/")]
    for n in names:
        z.extract(n, out)
libs = [n for n in names if n.startswith("torch/lib/")]
if not any(n.endswith("libtorch_cpu.so") for n in libs) or not any(n.endswith("libc10.so") for n in libs):
    sys.exit(f"libtorch.sh: wheel {whl} lacks libc10.so/libtorch_cpu.so")
PY
mv "$work/unz/torch/include" "$stage/include"
mv "$work/unz/torch/lib/"* "$stage/lib/"

for w in "$work"/wheels/nvidia_cuda_runtime*.whl "$work"/wheels/nvidia_cuda_cupti*.whl; do
  "$python" - "$w" "$stage/lib" <<'PY'
# Copies libcudart.so.13 / libcupti.so.13 (flattened) out of an nvidia-* wheel.
import os, re, shutil, sys, zipfile
whl, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(whl) as z:
    hits = [n for n in z.namelist() if re.search(r"/lib/lib(cudart|cupti)\.so\.13$", n)]
    if not hits:
        sys.exit(f"libtorch.sh: no libcudart/libcupti .so.13 in {whl}")
    for n in hits:
        with z.open(n) as src, open(os.path.join(out, os.path.basename(n)), "wb") as dst:
            shutil.copyfileobj(src, dst)
PY
done

# The real libtorch.so would pull in libtorch_cuda.so; the CPU library carries every symbol tch needs.
ln -s libtorch_cpu.so "$stage/lib/libtorch.so"
echo "$version" > "$stage/build-version"
touch "$stage/.complete"

rm -rf "$dest"
mv "$stage" "$dest"
link_into_repo
echo "$dest"
