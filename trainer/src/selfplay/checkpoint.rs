//! Checkpoints of a self-play run: everything a resumed run needs to continue as if it had
//! never stopped.
//!
//! `OUTPUT/checkpoints/step-000005/` holds
//! - `model/`: the policy as a Hugging Face directory (safetensors, config, tokenizer), loadable
//!   by `azr-trainer` and by transformers;
//! - `optimizer.safetensors`: AdamW's moment estimates and step count;
//! - `buffers.json`: the task buffers;
//! - `state.json`: the step, the seed and the time spent. The run's randomness is a function
//!   of (seed, step, purpose) (see `azr::buffer::step_rng`), so seed and step are its whole
//!   RNG state.
//!
//! A checkpoint is written into `step-N.partial/` and renamed when complete, so a crash while
//! saving never leaves a half checkpoint that `--resume` would pick up.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::loading::safetensors::save_hf_dir;
use crate::model::Model;
use crate::tokenizer::TextTokenizer;
use crate::train::Trainer;
use azr::Buffers;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Training steps completed.
    pub step: u64,
    pub seed: u64,
    pub optimizer_steps: u64,
    /// Seconds of training (seeding and steps) behind this checkpoint.
    pub elapsed_s: f64,
    /// The model the run started from (`model` of its config), which saved adapters apply to.
    #[serde(default)]
    pub base_model: String,
}

pub fn checkpoints_dir(output: &Path) -> PathBuf {
    output.join("checkpoints")
}

fn name(step: u64) -> String {
    format!("step-{step:06}")
}

/// Complete checkpoints under `output`, oldest first.
pub fn list(output: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let dir = checkpoints_dir(output);
    if !dir.exists() {
        return Ok(vec![]);
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let file_name = entry.file_name();
        let Some(n) = file_name
            .to_str()
            .and_then(|s| s.strip_prefix("step-"))
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue; // `.partial` leftovers and anything else
        };
        if entry.path().join("state.json").is_file() {
            out.push((n, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Writes a checkpoint and deletes all but the newest `keep`.
pub fn save(
    output: &Path,
    state: &State,
    model: &Model,
    tokenizer: &TextTokenizer,
    trainer: &Trainer,
    buffers: &Buffers,
    keep: usize,
) -> Result<PathBuf> {
    let dir = checkpoints_dir(output);
    let final_path = dir.join(name(state.step));
    let partial = dir.join(format!("{}.partial", name(state.step)));
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial).with_context(|| format!("creating {}", partial.display()))?;
    save_hf_dir(model, tokenizer, &partial.join("model")).context("saving the model")?;
    if model.lora().is_some() {
        model
            .save_adapters(&partial.join("adapter"), &state.base_model)
            .context("saving the adapters")?;
    }
    trainer
        .save_state(&partial.join("optimizer.safetensors"))
        .context("saving the optimiser state")?;
    std::fs::write(partial.join("buffers.json"), buffers.to_json()?)
        .context("saving the buffers")?;
    // state.json last: its presence marks a complete checkpoint.
    std::fs::write(
        partial.join("state.json"),
        serde_json::to_string_pretty(state)?,
    )
    .context("saving the state")?;
    if final_path.exists() {
        std::fs::remove_dir_all(&final_path)
            .with_context(|| format!("replacing {}", final_path.display()))?;
    }
    std::fs::rename(&partial, &final_path)
        .with_context(|| format!("renaming {} into place", partial.display()))?;
    let all = list(output)?;
    for (_, old) in all.iter().take(all.len().saturating_sub(keep.max(1))) {
        if let Err(e) = std::fs::remove_dir_all(old) {
            tracing::warn!(path = %old.display(), error = %e, "could not delete an old checkpoint");
        }
    }
    Ok(final_path)
}

/// What `--resume` reads back (the model itself is loaded from `path/model`).
pub struct Restored {
    pub path: PathBuf,
    pub state: State,
    pub buffers: Buffers,
}

/// Reads the newest complete checkpoint under `output`, if any.
pub fn latest(output: &Path) -> Result<Option<Restored>> {
    let Some((_, path)) = list(output)?.pop() else {
        return Ok(None);
    };
    let read = |f: &str| {
        std::fs::read_to_string(path.join(f))
            .with_context(|| format!("reading {}", path.join(f).display()))
    };
    let state: State = serde_json::from_str(&read("state.json")?)
        .with_context(|| format!("parsing {}/state.json", path.display()))?;
    let buffers = Buffers::from_json(&read("buffers.json")?)
        .with_context(|| format!("parsing {}/buffers.json", path.display()))?;
    if !path.join("model").is_dir() {
        bail!("{}: no model directory", path.display());
    }
    Ok(Some(Restored {
        path,
        state,
        buffers,
    }))
}
