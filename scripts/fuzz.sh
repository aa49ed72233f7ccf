#!/usr/bin/env bash
# Fuzzes one target of fuzz/ (cargo-fuzz, libFuzzer) for a while:
#
#   scripts/fuzz.sh TARGET [SECONDS] [libFuzzer flags...]      # targets: fuzz/fuzz_targets/*.rs
#
# Installs cargo-fuzz if missing (cached under $HOME/.cache/azr-rs/cargo-fuzz/<version>),
# seeds fuzz/corpus/TARGET from data/azr-seeds, builds the target, replays the
# committed crash inputs of fuzz/regressions/TARGET first (any failure stops here), then runs
# libFuzzer for SECONDS (default 600). Works with the stable toolchain: cargo-fuzz passes
# `-Zsanitizer=address` (and no -Zbuild-std), which stable rustc accepts with RUSTC_BOOTSTRAP=1,
# and stable ships the ASan runtime. Crashes land in fuzz/artifacts/TARGET/ (see fuzz/README.md).
#
# Environment: AZR_FUZZ_SANITIZER (address, the default, or none),
# CARGO_BUILD_JOBS, AZR_CACHE_DIR, AZR_FUZZ_FAULT=abort (python_source:
# treat contained interpreter faults as crashes).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache="${AZR_CACHE_DIR:-$HOME/.cache/azr-rs}"
target="${1:?usage: scripts/fuzz.sh TARGET [SECONDS] [libFuzzer flags...]}"
seconds="${2:-600}"
shift $(( $# >= 2 ? 2 : 1 ))
fuzz="$root/fuzz"
[[ -f "$fuzz/fuzz_targets/$target.rs" ]] || {
  echo "unknown target $target; have: $(cd "$fuzz/fuzz_targets" && ls | sed 's/\.rs$//' | tr '\n' ' ')" >&2
  exit 2
}

# cargo-fuzz, built once per version with the stable toolchain.
cargo_fuzz_version=0.13.2
fuzz_bin="$cache/cargo-fuzz/$cargo_fuzz_version/bin"
if [[ ! -x "$fuzz_bin/cargo-fuzz" ]]; then
  echo "installing cargo-fuzz $cargo_fuzz_version into $fuzz_bin" >&2
  cargo install --locked --quiet cargo-fuzz --version "$cargo_fuzz_version" \
    --root "$cache/cargo-fuzz/$cargo_fuzz_version"
fi
export PATH="$fuzz_bin:$PATH"

# libfuzzer-sys compiles libFuzzer (C++).
if ! command -v c++ >/dev/null; then
  sudo=""; [[ $(id -u) -ne 0 ]] && sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq g++ >/dev/null
fi
# The sandbox embeds the wasm guest: its packages and the (cached) build, as the tests do.
"$root/scripts/apt-deps.sh" guest
bash "$root/scripts/build-guest.sh" >/dev/null

# Seed corpus: every seed program (python_source), every seed line (eval_line), every seed
# program as an encoded RunRequest and ValidateRequest (grpc_request: a selector byte, then
# the protobuf body), or every seed output and input as an answer (check_answer: a selector
# byte, then the answer), one file each, named by content hash like libFuzzer's own; new
# finds accumulate beside them.
seeds="$root/data/azr-seeds"
corpus="$fuzz/corpus/$target"
mkdir -p "$corpus"
if [[ -d "$seeds" ]]; then
  python3 - "$target" "$corpus" "$seeds"/*.jsonl <<'EOF'
import hashlib, json, pathlib, sys
target, corpus, files = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3:]

def field(number, payload):
    """A length-delimited protobuf field."""
    out, n = bytearray([number << 3 | 2]), len(payload)
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out) + payload

def requests(record):
    program = field(1, field(1, record["snippet"].encode()))  # task.program.source
    task = program + field(2, record.get("input", "").encode())
    yield b"\x00" + field(1, task)  # RunRequest
    yield b"\x01" + field(1, task)  # ValidateRequest

n = 0
for name in files:
    for line in pathlib.Path(name).read_text(encoding="utf-8").splitlines():
        if target == "python_source":
            inputs = [json.loads(line)["snippet"].encode()]
        elif target == "eval_line":
            inputs = [line.encode()]
        elif target == "grpc_request":
            inputs = list(requests(json.loads(line)))
        elif target == "check_answer":
            record = json.loads(line)
            inputs = [b"\x00" + o.encode() for o in [record.get("output")] + record.get("outputs", []) if o]
            inputs += [b"\x01" + i.encode() for i in [record.get("input")] + record.get("inputs", []) if i]
        else:
            continue
        for data in inputs:
            path = corpus / hashlib.sha1(data).hexdigest()
            if not path.exists():
                path.write_bytes(data)
                n += 1
print(f"seeded {n} new inputs into {corpus}", file=sys.stderr)
EOF
else
  echo "no seed data at $seeds; fuzzing from an empty corpus" >&2
fi

# ASan works with wasmtime (its signal handlers chain to ASan's, its address-space
# reservations are fine, LSan finds no leaks); it instruments host code only, never the
# Cranelift-compiled guest. `none` is the fallback.
sanitizer="${AZR_FUZZ_SANITIZER:-address}"
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="$cache/fuzz-target"
# The known crash inputs first: each must pass before new fuzzing starts.
mapfile -t regressions < <(find "$fuzz/regressions/$target" -type f ! -name '.*' 2>/dev/null | sort)
common=(--fuzz-dir "$fuzz" -s "$sanitizer")
cd "$fuzz"
cargo fuzz build "${common[@]}" "$target"
# python_source saves inputs that end in a contained interpreter fault here (not crashes),
# and writes each input to last-input before running it: its worker runs under the daemon's
# seccomp filters, and a refused call ends the process before libFuzzer could save it.
export AZR_FUZZ_FAULT_DIR="$fuzz/artifacts/$target"
mkdir -p "$AZR_FUZZ_FAULT_DIR"
export AZR_FUZZ_INPUT_FILE="$AZR_FUZZ_FAULT_DIR/last-input"
died() {
  echo "fuzz: $target failed: a crash libFuzzer caught is saved in $AZR_FUZZ_FAULT_DIR/crash-*;" \
    "a process ended by a refused system call (python_source) was running $AZR_FUZZ_INPUT_FILE" >&2
  exit 1
}
# Each input runs at most five items of 1 s each; 30 s means a hang.
flags=(-rss_limit_mb=4096 -timeout=30 -print_final_stats=1)
if ((${#regressions[@]})); then
  echo "replaying ${#regressions[@]} regression input(s) of $target" >&2
  cargo fuzz run "${common[@]}" "$target" "${regressions[@]}" -- "${flags[@]}" -runs=1 || died
fi
cargo fuzz run "${common[@]}" "$target" "$corpus" -- \
  "${flags[@]}" -max_total_time="$seconds" "$@" || died
