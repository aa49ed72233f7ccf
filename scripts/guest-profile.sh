#!/usr/bin/env bash
# Where the guest's time goes on one `bench compute` workload: `perf record` of the sandbox
# side alone (wasmtime's perf map names the guest's compiled functions), the worker
# thread's samples by function, self time, as a Markdown table.
#
# Usage: scripts/guest-profile.sh WORKLOAD [TOP]
#   WORKLOAD: a part of a workload's name ("numeric", "calls", "string", "dicts",
#   "HumanEval", "AZR"); TOP: rows (default 12).
# Needs `perf` (Debian's linux-perf) and a release build (scripts/setup.sh makes one).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
workload=${1:?usage: guest-profile.sh WORKLOAD [TOP]}
top=${2:-12}
bin="${CARGO_TARGET_DIR:-$root/target}/release/azr-sandbox"
[[ -x "$bin" ]] || { echo "no release build at $bin" >&2; exit 1; }
command -v perf >/dev/null || { echo "perf is not installed (apt install linux-perf)" >&2; exit 1; }
cases=$(bash "$root/scripts/humaneval-cases.sh" | tail -n1)
data=$(mktemp /tmp/azr-guest-profile.XXXXXX)
trap 'rm -f "$data"' EXIT
perf record -q -F 999 -o "$data" -- "$bin" bench compute --cases "$cases" \
  --seeds "$root/data/azr-seeds/7b_seed_io.jsonl" --rounds 3 --perf-map --no-cpython \
  --only "$workload" >/dev/null 2>&1
perf report -i "$data" --no-children --sort symbol --comm azr-worker-0 --stdio 2>/dev/null |
  python3 -c '
import re, sys
top = int(sys.argv[1])
def demangle(symbol):
    # Rust v0 names: the identifiers are length-prefixed; keep them in order.
    name = symbol.split("::", 2)[-1]
    if not name.startswith("_R"):
        return name
    parts, i = [], 0
    while i < len(name):
        m = re.match(r"(\d+)_?", name[i:])
        if m and (name[i - 2:i] in ("Cs", "Ms") or name[i - 1:i] in ("B", "s")):
            i += len(m.group(0))  # a crate hash, a disambiguator or a back-reference
            continue
        if m and m.group(1) != "0":
            n = int(m.group(1))
            start = i + len(m.group(0))
            ident = name[start:start + n]
            if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", ident or "-"):
                if not re.fullmatch(r"Cs[0-9A-Za-z]+", ident) and ident not in parts[-1:]:
                    parts.append(ident)
                i = start + n
                continue
        i += 1
    return "::".join(p for p in parts if not p.startswith("_"))
rows = []
for line in sys.stdin:
    m = re.match(r"\s*([\d.]+)%\s+\[\.\]\s+(\S+)", line)
    if m:
        rows.append((float(m.group(1)), demangle(m.group(2))))
print("| self % | function |")
print("|---:|---|")
for pct, fn in rows[:top]:
    print(f"| {pct:.1f} | `{fn}` |")
' "$top"
