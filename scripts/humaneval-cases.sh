#!/usr/bin/env bash
# HumanEval as test-case work: the 164 canonical solutions and 7 wrong variants of each, with
# every `check` split into one case per assertion and CPython's verdict on each case
# (sandbox/bench/humaneval_cases.py). Used by `azr-sandbox bench test-cases` and the
# verdict-parity test. Prints the path of the JSONL file.
#
# Cached under $HOME/.cache/azr-rs/humaneval/, keyed by the generator and python3's version
# (about a minute on two cores the first time).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
python="${PYTHON:-python3}"
source_file=$("$root/scripts/humaneval.sh")
generator="$root/sandbox/bench/humaneval_cases.py"
key=$( (cat "$generator" "$source_file"; "$python" --version) | sha256sum | cut -c1-16)
out="$(dirname "$source_file")/cases-$key.jsonl"
if [[ -s "$out" ]]; then
  echo "$out"
  exit 0
fi
# Tests run concurrently may ask at once: one generates, the others wait for it.
exec 9>"$out.lock"
flock 9
if [[ -s "$out" ]]; then
  echo "$out"
  exit 0
fi
echo "humaneval-cases.sh: generating $out (once, about a minute)" >&2
"$python" "$generator" cases "$source_file" "$out"
find "$(dirname "$source_file")" -maxdepth 1 -name 'cases-*' ! -name "cases-$key.*" -delete
echo "$out"
