#!/usr/bin/env bash
# Runs the whole test suite, installing what the tests need first (idempotent and cached):
# Debian packages for the guest and the daemon's tests, the wasm guest, libtorch 2.11, the
# two GGUF models, the transformers reference venv (for the trainer's parity tests) and the
# client venv (stock grpcio, veRL's SandboxFusion client, for the daemon's client tests), the
# Python package installed into a fresh venv, TRL and veRL's reward loop in the reference
# venv, HumanEval's completions and cases (for the verdict-parity tests), Node's grpc-js,
# then `cargo test` on the workspace: real guest, real wasmtime, real libtorch, CPython and
# transformers as baselines; then a short fuzz run of every cargo-fuzz target (see below).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache="${AZR_CACHE_DIR:-$HOME/.cache/azr-rs}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$cache/target}"
cd "$root"

"$root/scripts/apt-deps.sh" guest
"$root/scripts/apt-deps.sh" trainer
"$root/scripts/apt-deps.sh" daemon
bash "$root/scripts/build-guest.sh" >/dev/null
LIBTORCH=$(bash "$root/scripts/libtorch.sh" | tail -n1)
export LIBTORCH
bash "$root/scripts/models.sh" >/dev/null
bash "$root/scripts/reference-venv.sh" >/dev/null
bash "$root/scripts/client-venv.sh" >/dev/null
bash "$root/scripts/package-venv.sh" >/dev/null
bash "$root/scripts/package-venv.sh" --oldest >/dev/null
bash "$root/scripts/trl-venv.sh" >/dev/null
bash "$root/scripts/humaneval-cases.sh" >/dev/null
bash "$root/scripts/node-clients.sh" >/dev/null

cargo test --workspace --locked --no-fail-fast "$@"

# Fuzz smoke run: every cargo-fuzz target of fuzz/ replays its committed regression inputs,
# then fuzzes for AZR_FUZZ_SMOKE_SECONDS (default 30; 0 skips this). The first, cold build
# of the instrumented targets takes about 20 minutes on 2 cores; it is cached in
# $cache/fuzz-target.
#
# On a new machine everything above is cold too (guest, libtorch, venvs, debug build: 64
# minutes on 2 Zen 3 cores with nothing else running, 2026-12-02; 80 on 2 cores shared with
# other builds), and CI allows 90. So when the instrumented build is not cached and more than
# AZR_FUZZ_COLD_AFTER_MIN minutes (default 55) have passed, the smoke run is skipped with a
# notice rather than let the whole run time out; the next (warm) run does it.
smoke="${AZR_FUZZ_SMOKE_SECONDS:-30}"
elapsed_min=$(( SECONDS / 60 ))
if [[ "$smoke" != 0 && ! -d "$cache/fuzz-target" && $elapsed_min -gt ${AZR_FUZZ_COLD_AFTER_MIN:-55} ]]; then
  echo "fuzz smoke: SKIPPED: the instrumented targets are not built yet (about 20 minutes)" \
    "and this run has already taken ${elapsed_min} minutes; run scripts/fuzz.sh TARGET 30" \
    "or scripts/test.sh again to include it" >&2
  smoke=0
fi
if [[ "$smoke" != 0 ]]; then
  for target in eval_line python_source grpc_request check_answer; do
    log="$CARGO_TARGET_DIR/fuzz-smoke-$target.log"
    echo "fuzz smoke: $target for ${smoke}s (log: $log)" >&2
    if ! bash "$root/scripts/fuzz.sh" "$target" "$smoke" >"$log" 2>&1; then
      tail -n 60 "$log" >&2
      echo "fuzz smoke: $target FAILED" >&2
      exit 1
    fi
    # The last three: the fuzzing run's (the replay of the regression inputs prints its own).
    # -a: a log may hold the raw bytes of an input, and grep would only say "binary file matches".
    grep -aE '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$log" \
      | tail -n 3 | tr '\n' ' ' | sed "s/^/fuzz smoke: $target: /;s/ $/\n/" >&2
  done
fi
