#!/usr/bin/env bash
# The learning experiment in one command: does self-play of the `learn` preset raise held-out
# accuracy beside its lr-0 control?
#
#   scripts/learning-run.sh [NAME]        (default: learning-<today>)
#
# Phases, one after another (never two models in memory at once); each writes its results
# when it ends and marks itself done, so a run that is cut off resumes at the phase it was in
# (training resumes from its newest checkpoint):
#   programs     held-out programs of the preset's family cells (HELD_OUT_PER_CELL each)
#   eval-before  the base model: held-out programs, the AZR seed programs, HumanEval
#   train        `train --preset learn` for TRAIN_MINUTES of training (or TRAIN_STEPS steps)
#   control      the same config and seeds at lr 0, for the steps the run took (lr 0 leaves
#                the weights as they were, so the control needs no evaluation of its own)
#   eval-after   the trained model (its last checkpoint), as eval-before
#   report       the runs' table and PNG, the paired test, the files to commit
#
# Large files (checkpoints, answers) stay in $AZR_CACHE_DIR/learning/NAME; what is worth
# committing is copied to trainer/results/NAME. Environment (defaults in brackets):
#   TRAIN_MINUTES [75]  TRAIN_STEPS [1000]  HELD_OUT_PER_CELL [34]  EVAL_TOKENS [256]  AZR_LIMIT [32]
#   HUMANEVAL [1]       EXTRA_SET [""] (more `--set FIELD=VALUE` for the run and the control)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache="${AZR_CACHE_DIR:-$HOME/.cache/azr-rs}"
name="${1:-learning-$(date +%F)}"
work="$cache/learning/$name"
results="$root/trainer/results/$name"
train_minutes="${TRAIN_MINUTES:-75}"
train_steps="${TRAIN_STEPS:-1000}"
per_cell="${HELD_OUT_PER_CELL:-34}"
eval_tokens="${EVAL_TOKENS:-256}"
azr_limit="${AZR_LIMIT:-32}"
humaneval="${HUMANEVAL:-1}"
read -r -a extra_set <<<"${EXTRA_SET:-}"
set_args=()
for s in "${extra_set[@]}"; do set_args+=(--set "$s"); done
mkdir -p "$work" "$results"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$cache/target}"
LIBTORCH=$(bash "$root/scripts/libtorch.sh" | tail -n1)
export LIBTORCH
(cd "$root" && cargo build --release --locked -p azr-sandbox -p azr-trainer)
bin="$CARGO_TARGET_DIR/release/azr-trainer"
model=$(bash "$root/scripts/models.sh" | tail -n2 | head -n1)

log() { echo "[$(date +%T)] $*" | tee -a "$work/phases.log" >&2; }
done_mark() { touch "$work/.done-$1"; log "$1: done"; }
is_done() { [[ -e "$work/.done-$1" ]]; }

# The cells the preset trains on, read from the preset itself (`tasks.families`).
cells=$(sed -n 's/^families = \[\(.*\)\]/\1/p' "$root/azr/presets/learn.toml" | tr -d '" ')

if ! is_done programs; then
    log "programs: $per_cell held-out programs per cell of $cells"
    : >"$work/held-out.partial"
    for cell in ${cells//,/ }; do
        "$bin" families --output "$work/cell.jsonl" --split held-out --per-level "$per_cell" \
            --families "${cell%/*}" --levels "${cell#*/}" --seed 1
        cat "$work/cell.jsonl" >>"$work/held-out.partial"
    done
    rm -f "$work/cell.jsonl"
    mv "$work/held-out.partial" "$work/held-out-programs.jsonl"
    done_mark programs
fi

# Scores `model` ($2) on the held-out programs, the AZR seed programs and HumanEval into
# $work/$1-*.json.
evaluate() {
    local tag=$1 model=$2
    local common=(--model "$model" --precision int8 --max-new-tokens "$eval_tokens"
        --prompt-style brief)
    if [[ ! -e "$work/$tag-held-out.json" ]]; then
        log "$tag: held-out programs"
        "$bin" eval "${common[@]}" --programs "$work/held-out-programs.jsonl" --limit 0 \
            --answers "$work/$tag-held-out-answers.jsonl" >"$work/$tag-held-out.partial"
        mv "$work/$tag-held-out.partial" "$work/$tag-held-out.json"
    fi
    if [[ ! -e "$work/$tag-azr-seeds.json" ]]; then
        log "$tag: the AZR seed programs (first $azr_limit)"
        "$bin" eval "${common[@]}" --limit "$azr_limit" >"$work/$tag-azr-seeds.partial"
        mv "$work/$tag-azr-seeds.partial" "$work/$tag-azr-seeds.json"
    fi
    if [[ "$humaneval" == 1 && ! -e "$work/$tag-humaneval.json" ]]; then
        log "$tag: HumanEval"
        local problems
        problems=$(bash "$root/scripts/humaneval.sh" | tail -n1)
        "$bin" eval --model "$model" --precision int8 --no-tasks --humaneval "$problems" \
            >"$work/$tag-humaneval.partial"
        mv "$work/$tag-humaneval.partial" "$work/$tag-humaneval.json"
    fi
}

if ! is_done eval-before; then
    evaluate before "$model"
    done_mark eval-before
fi

# The newest checkpoint's step of a run directory (0 when it has none).
last_step() {
    local newest
    newest=$(ls -d "$1"/checkpoints/step-[0-9]* 2>/dev/null | grep -v partial | sort | tail -n1)
    [[ -n "$newest" ]] && python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["step"])' \
        "$newest/state.json" || echo 0
}

if ! is_done train; then
    resume=()
    [[ -d "$work/run/checkpoints" ]] && resume=(--resume)
    log "train: --preset learn for $train_minutes minutes ${EXTRA_SET:-}"
    "$bin" train --preset learn --output "$work/run" "${resume[@]}" \
        --total-steps "$train_steps" --max-minutes "$train_minutes" "${set_args[@]}" 2>&1 |
        tee -a "$work/run.log" >&2
    done_mark train
fi
steps=$(last_step "$work/run")

if ! is_done control; then
    resume=()
    [[ -d "$work/control/checkpoints" ]] && resume=(--resume)
    log "control: lr 0 for the run's $steps steps"
    "$bin" train --preset learn --output "$work/control" "${resume[@]}" \
        --total-steps "$steps" "${set_args[@]}" --set optim.lr=0 2>&1 |
        tee -a "$work/control.log" >&2
    done_mark control
fi

if ! is_done eval-after; then
    evaluate after "$work/run/checkpoints/step-$(printf %06d "$steps")/model"
    done_mark eval-after
fi

log "report"
"$bin" report "$work/run" "$work/control" --png "$results/report.png" >"$results/report.txt"
python3 "$root/scripts/paired-test.py" "$work/before-held-out.json" "$work/after-held-out.json" \
    --verdicts "$results/held-out-verdicts.json" | tee "$results/held-out.md"
for f in before-held-out before-azr-seeds before-humaneval after-held-out after-azr-seeds \
    after-humaneval; do
    [[ -e "$work/$f.json" ]] && cp "$work/$f.json" "$results/"
done
for run in run control; do
    mkdir -p "$results/$run"
    cp "$work/$run/config.toml" "$work/$run/metrics.jsonl" "$results/$run/"
    gzip -c "$work/$run/rollouts.jsonl" >"$results/$run/rollouts.jsonl.gz"
done
for tag in before after; do
    gzip -c "$work/$tag-held-out-answers.jsonl" >"$results/$tag-held-out-answers.jsonl.gz"
done
cp "$work/held-out-programs.jsonl" "$work/phases.log" "$results/"
log "results in $results"
