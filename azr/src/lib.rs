//! The Absolute Zero Reasoner's (AZR) self-play logic, apart from any model or sandbox.
//!
//! Everything here is deterministic given its inputs and needs neither a model nor the sandbox
//! (nor libtorch to build: its tests run in seconds):
//! the loop generates text with the model, hands this module the text, sends the *items to
//! check* this module builds to the sandbox, and hands back the verdicts. What each step does
//! follows the AZR reference implementation (LeapLabTHU/Absolute-Zero-Reasoner, files named in
//! each module); where our design document gives exact values, those win.
//!
//! One step of self-play, and the module that owns each part:
//!
//! 1. `buffer`: sample K reference programs per task type (and solver tasks, newest first).
//! 2. `prompts`: build the propose prompts; the model answers.
//! 3. `parse`: extract and check the proposals' format (`<think>`/`<answer>`, code blocks).
//! 4. `check`: the proposals become `ValidateTask`s; the sandbox validates them.
//! 5. `prompts` again: valid proposals become solver prompts; the model answers `n_samples`
//!    times per proposal; `parse` extracts the answers, `check` turns them into `TaskCheck`s.
//! 6. `rewards` (+ `intrinsic`): learnability for the proposer, correctness for the solver,
//!    the composite format scheme.
//! 7. `trrpp`: Task-Relative REINFORCE++ advantages per (task type × role), token-level, ready
//!    for the trainer's policy update.
//!
//! `config` holds every knob with the reference's defaults (and `presets/` the two shipped
//! configs); `task` the vocabulary; `rng` the seeded generator every sampler owns.

pub mod buffer;
pub mod check;
pub mod config;
pub mod families;
pub mod intrinsic;
pub mod parse;
pub mod prompts;
pub mod rewards;
pub mod rng;
pub mod task;
pub mod trrpp;

pub use buffer::Buffers;
pub use check::{CheckKind, CheckResult, Checker, TaskCheck, ValidateTask, Validation};
pub use config::AzrConfig;
pub use parse::FormatError;
pub use task::{Group, InductionTask, Role, SolveTask, TaskType, Triplet};

/// Errors of the AZR logic that come from its inputs (a config file, a checkpoint, a batch
/// whose parts do not line up). Model answers that do not parse are not errors but
/// [`FormatError`]s: they are an expected outcome that earns a reward.
#[derive(Debug, thiserror::Error)]
pub enum AzrError {
    #[error("config: {0}")]
    Config(String),
    #[error("config file: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("unknown preset `{0}` (known: tiny, learn, 7b)")]
    UnknownPreset(String),
    #[error("buffer: {0}")]
    Buffer(String),
    #[error("mismatched lengths: {0}")]
    Mismatch(String),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}
