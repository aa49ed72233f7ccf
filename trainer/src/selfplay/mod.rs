//! The Absolute Zero self-play loop: propose, validate, solve, reward, TRR++ update.
//!
//! One training step, for every task type played (reference `azr_ray_trainer.py`, `fit`):
//!
//! 1. **Propose** `propose_batch_size` (default `batch_size`) tasks per type:
//!    deduction/abduction prompts show K reference programs from the type's buffer, induction
//!    prompts one buffered program to write inputs and a message for.
//! 2. **Validate** the parsed proposals in the sandbox (one `ValidateBatch` for programs with
//!    the banned-import rules, one without for induction inputs run on buffered programs).
//! 3. **Estimate** each valid proposal's solve rate `s` from `n_samples` solver answers
//!    (`CheckBatch`), which gives the proposer its learnability reward; valid proposals join
//!    their buffer.
//! 4. **Solve** `batch_size` tasks per type drawn from the buffers (newest first), checked in
//!    the sandbox, rewarded for accuracy.
//! 5. **Update**: TRR++ advantages per (type × role) group on the propose and solve rollouts,
//!    old log-probs recomputed with the current policy, PPO-clip with AdamW.
//!
//! Before the first step the buffers are seeded by proposing with the base model (no update).
//! Every random choice is drawn from `step_rng(seed, step, purpose)`, so a run resumed from a
//! checkpoint draws what an uninterrupted run would have.

pub mod checkpoint;
mod generation;
pub mod metrics;
mod propose;
mod rollouts;
pub mod sandbox;
mod seeding;
mod solve;
mod update;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use rand::RngExt;
use rand::seq::SliceRandom;

use crate::device::Placement;
use crate::generate::{SamplingParams, generate_with_stats, response_logprobs};
use crate::model::lora::LoraConfig;
use crate::model::{Model, Precision};
use crate::tokenizer::TextTokenizer;
use crate::train::{Sample, TrainConfig, Trainer, has_gradient};
use azr::buffer::{fnv1a_hex, step_rng};
use azr::check::{Checker, TaskCheck, ValidateTask, answer_accuracy};
use azr::config::{AdvantageEstimator, AzrConfig};
use azr::parse::{
    read_estimate_answer, read_induction_proposal, read_solver_answer_in, read_triplet_proposal_in,
};
use azr::prompts::{
    Prompt, PromptStyle, propose_induction_prompt, propose_triplet_prompt_in, solve_prompt_in,
};
use azr::rewards::{
    intrinsic_rewards, joins_buffer, learnability, propose_reward, solve_rate, solve_reward,
};
use azr::task::{Group, InductionTask, Role, SolveTask, TaskType, Triplet};
use azr::trrpp;
use azr::{Buffers, buffer::Pushed};
use metrics::{GroupTally, MetricsLog, Progress, StepRecord, Times};
use sandbox::{Sandbox, SandboxSpec, SandboxStats};

/// How a run is started.
pub struct RunOptions {
    pub config: AzrConfig,
    /// Where checkpoints, metrics and the effective config go.
    pub output: PathBuf,
    /// Continue from the newest checkpoint under `output`.
    pub resume: bool,
    pub sandbox: SandboxSpec,
    pub placement: Placement,
    /// A training-time budget (seeding not counted): no step is started that the last
    /// step's time says would end past it.
    pub max_training: Option<std::time::Duration>,
}

/// Set by SIGINT/SIGTERM; the loop stops at the next phase boundary and checkpoints.
pub type StopFlag = Arc<AtomicBool>;

/// What a finished (or stopped) run reports.
#[derive(Debug)]
pub struct RunSummary {
    pub steps_done: u64,
    pub metrics: PathBuf,
    pub checkpoint: Option<PathBuf>,
    pub interrupted: bool,
}

/// A step abandoned at a phase boundary because a stop was requested.
#[derive(Debug, thiserror::Error)]
#[error("interrupted")]
struct Interrupted;

/// One generated response and what it is for.
struct Rollout {
    group: Group,
    prompt: Vec<i64>,
    response: Vec<i64>,
    /// Log-probs of `response` as it was sampled (from the rollout copy's weights).
    sampled_logprobs: Vec<f32>,
    reward: f64,
    /// The task a solver rollout answered (a key unique within the step), so that answers
    /// to one task can be contrasted (`optim.advantage = "task_group"`); `None` for
    /// proposals.
    task: Option<u64>,
}

/// One generated response.
struct Generated {
    tokens: Vec<i64>,
    logprobs: Vec<f32>,
    /// The decoded tokens, special tokens skipped.
    text: String,
}

/// What a step's generation phase leaves for its update.
struct Phase {
    buffers: Buffers,
    tallies: BTreeMap<Group, GroupTally>,
    rollouts: Vec<Rollout>,
}

/// A prompt ready for generation.
struct Encoded {
    ids: Vec<i64>,
}

/// What the loop judges tasks with: the sandbox daemon's client ([`Sandbox`]), or anything
/// else that validates and checks the same items and counts its traffic (a fake in tests,
/// so that rewards and buffers can be tested without a daemon). Failures are per item
/// (a failed item is a failed check), so the calls cannot fail as a whole.
pub trait Judge: Checker<Error = std::convert::Infallible> {
    /// The traffic so far, for the metrics.
    fn stats(&self) -> &SandboxStats;
    /// What it is, for the log.
    fn describe(&self) -> String;
}

impl Judge for Sandbox {
    fn stats(&self) -> &SandboxStats {
        &self.stats
    }

    fn describe(&self) -> String {
        Sandbox::describe(self)
    }
}

/// The running loop: the policy, its optimiser, the judge (the sandbox), the buffers.
pub struct SelfPlay<J: Judge = Sandbox> {
    config: AzrConfig,
    model: Model,
    tokenizer: TextTokenizer,
    trainer: Trainer,
    sandbox: J,
    buffers: Buffers,
    /// Training steps completed.
    step: u64,
    output: PathBuf,
    log: MetricsLog,
    /// `rollouts.jsonl`: every response with its group and reward (what the model wrote is
    /// the first thing to look at when rates look wrong).
    rollout_log: MetricsLog,
    stop: StopFlag,
    elapsed_before: f64,
    last_checkpoint: Option<PathBuf>,
    max_training: Option<std::time::Duration>,
    /// Generate on the plain path (f32 weights, every prompt row computed in full, decode
    /// steps through libtorch's operators), whatever the config says: what
    /// [`SelfPlay::measure_generation`] compares the configured path against.
    plain_path: bool,
}

impl SelfPlay<Sandbox> {
    /// Loads the model (or the checkpoint to resume), connects the sandbox, opens the metrics.
    pub fn start(opts: RunOptions, stop: StopFlag) -> Result<Self> {
        let spec = opts.sandbox.clone();
        SelfPlay::start_with(opts, stop, |validation| {
            Sandbox::connect(spec, validation).context("connecting to the sandbox")
        })
    }
}

impl<J: Judge> SelfPlay<J> {
    /// [`SelfPlay::start`] with the judge `connect` makes from the config's validation
    /// rules (`opts.sandbox` is then unused).
    pub fn start_with(
        opts: RunOptions,
        stop: StopFlag,
        connect: impl FnOnce(azr::config::ValidationConfig) -> Result<J>,
    ) -> Result<Self> {
        let RunOptions {
            config,
            output,
            resume,
            sandbox: _,
            placement,
            max_training,
        } = opts;
        config.validate().context("checking the config")?;
        std::fs::create_dir_all(&output)
            .with_context(|| format!("creating {}", output.display()))?;
        let restored = if resume {
            let r = checkpoint::latest(&output)?;
            if r.is_none() {
                tracing::warn!(
                    "--resume: no checkpoint under {}; starting from the beginning",
                    output.display()
                );
            }
            r
        } else {
            if !checkpoint::list(&output)?.is_empty() {
                bail!(
                    "{} already holds checkpoints of a run: pass --resume to continue it, or \
                     choose another --output",
                    output.display()
                );
            }
            None
        };
        std::fs::write(
            output.join("config.toml"),
            toml::to_string_pretty(&config).context("writing the config as TOML")?,
        )
        .context("saving the effective config")?;

        // A run trained through adapters resumes from its base model and the checkpoint's
        // adapters; otherwise from the checkpoint's (merged) model.
        let adapters_dir = restored
            .as_ref()
            .map(|r| r.path.join("adapter"))
            .filter(|d| d.is_dir());
        let model_path = match (&restored, &adapters_dir) {
            (Some(r), None) => r.path.join("model"),
            _ => resolve_model(&config.model)?,
        };
        let t0 = Instant::now();
        let mut loaded = crate::load(&model_path, placement)
            .with_context(|| format!("loading the model {}", model_path.display()))?;
        tracing::info!(
            model = %model_path.display(),
            arch = ?loaded.model.config.arch,
            layers = loaded.model.config.num_layers,
            secs = format!("{:.1}", t0.elapsed().as_secs_f64()),
            "policy loaded"
        );
        attach_adapters(&mut loaded.model, &config, adapters_dir.as_deref())?;
        let o = &config.optim;
        let mut trainer = Trainer::new(
            &loaded.model,
            TrainConfig {
                lr: o.lr,
                weight_decay: o.weight_decay,
                clip: o.ppo_clip,
                max_grad_norm: o.grad_clip,
                micro_batch: o.micro_batch,
                temperature: config.rollout.temperature,
                gradient_checkpointing: o.gradient_checkpointing,
                ..TrainConfig::default()
            },
        )?;
        let metrics_path = output.join("metrics.jsonl");
        let (buffers, step, elapsed_before) = match &restored {
            Some(r) => {
                trainer
                    .load_state(&r.path.join("optimizer.safetensors"))
                    .context("restoring the optimiser state")?;
                (r.buffers.clone(), r.state.step, r.state.elapsed_s)
            }
            None => (Buffers::new(), 0, 0.0),
        };
        let mut log = MetricsLog::open(&metrics_path, step, restored.is_some())?;
        let rollout_log =
            MetricsLog::open(&output.join("rollouts.jsonl"), step, restored.is_some())?;
        if let Some(r) = &restored {
            if r.state.seed != config.seed {
                tracing::warn!(
                    saved = r.state.seed,
                    now = config.seed,
                    "the seed differs from the checkpoint's; draws will differ from an uninterrupted run"
                );
            }
            log.event(&serde_json::json!({
                "event": "resume",
                "step": step,
                "checkpoint": r.path.display().to_string(),
                "buffers": buffer_sizes(&buffers),
                "buffers_digest": buffers.digest()?,
                "optimizer_steps": trainer.optimizer_steps(),
            }))?;
            tracing::info!(step, checkpoint = %r.path.display(), "resumed");
        }
        let sandbox = connect(config.validation.clone())?;
        tracing::info!(sandbox = %sandbox.describe(), "sandbox ready");
        Ok(SelfPlay {
            config,
            model: loaded.model,
            tokenizer: loaded.tokenizer,
            trainer,
            sandbox,
            buffers,
            step,
            output,
            log,
            rollout_log,
            stop,
            elapsed_before,
            last_checkpoint: restored.map(|r| r.path),
            max_training,
            plain_path: false,
        })
    }

    /// Runs until `total_steps` (0: until stopped), checkpointing on the way and on a stop.
    pub fn run(&mut self) -> Result<RunSummary> {
        let started = Instant::now();
        if self.buffers.seeding() {
            match self.seed_buffers() {
                Ok(()) => {}
                Err(e) if e.is::<Interrupted>() => return Ok(self.summary(true)),
                Err(e) => return Err(e),
            }
        }
        let total = self.config.total_steps;
        let mut progress = Progress::new(self.step, total);
        let mut interrupted = false;
        let training = Instant::now();
        let mut last_step_s = 0.0;
        let mut saved_step = None;
        while total == 0 || self.step < total {
            if self.stopped() {
                interrupted = true;
                break;
            }
            if let Some(budget) = self.max_training
                && training.elapsed().as_secs_f64() + last_step_s > budget.as_secs_f64()
            {
                eprintln!(
                    "stopping after step {}: another step (≈ {last_step_s:.0} s) would end past \
                     --max-minutes {:.1}",
                    self.step,
                    budget.as_secs_f64() / 60.0
                );
                if saved_step != Some(self.step) && self.step > 0 {
                    self.checkpoint(started)?;
                }
                break;
            }
            let step = self.step + 1;
            let started_step = Instant::now();
            match self.train_step(step) {
                Ok(mut record) => {
                    self.step = step;
                    let due = step.is_multiple_of(self.config.checkpoint_interval.max(1))
                        || (total > 0 && step == total);
                    let t = Instant::now();
                    if due {
                        self.checkpoint(started)?;
                        saved_step = Some(step);
                    }
                    record.time.checkpoint_s = t.elapsed().as_secs_f64();
                    last_step_s = started_step.elapsed().as_secs_f64();
                    self.log.step(&record)?;
                    progress.step_done(&record);
                }
                Err(e) if e.is::<Interrupted>() => {
                    interrupted = true;
                    break;
                }
                Err(e) => return Err(e.context(format!("step {step}"))),
            }
        }
        if interrupted {
            eprintln!(
                "stopping: saving a checkpoint at step {} (the unfinished step is redone on --resume)",
                self.step
            );
            if self.step > 0 {
                self.checkpoint(started)?;
            }
        }
        Ok(self.summary(interrupted))
    }

    fn summary(&self, interrupted: bool) -> RunSummary {
        RunSummary {
            steps_done: self.step,
            metrics: self.log.path().to_owned(),
            checkpoint: self.last_checkpoint.clone(),
            interrupted,
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn check_stop(&self) -> Result<()> {
        if self.stopped() {
            Err(Interrupted.into())
        } else {
            Ok(())
        }
    }

    fn checkpoint(&mut self, started: Instant) -> Result<()> {
        let t = Instant::now();
        let state = checkpoint::State {
            step: self.step,
            seed: self.config.seed,
            optimizer_steps: self.trainer.optimizer_steps(),
            elapsed_s: self.elapsed_before + started.elapsed().as_secs_f64(),
            base_model: self.config.model.clone(),
        };
        let path = checkpoint::save(
            &self.output,
            &state,
            &self.model,
            &self.tokenizer,
            &self.trainer,
            &self.buffers,
            self.config.checkpoint_keep,
        )
        .with_context(|| format!("checkpointing step {}", self.step))?;
        tracing::info!(
            step = self.step,
            path = %path.display(),
            secs = format!("{:.1}", t.elapsed().as_secs_f64()),
            "checkpoint saved"
        );
        self.last_checkpoint = Some(path);
        Ok(())
    }

    // ----- prompts and generation -------------------------------------------------------

    fn validate(&mut self, items: &[ValidateTask], times: &mut Times) -> Vec<azr::Validation> {
        let t = Instant::now();
        let Ok(v) = self.sandbox.validate(items);
        times.sandbox_s += t.elapsed().as_secs_f64();
        v
    }

    fn check(&mut self, items: &[TaskCheck], times: &mut Times) -> Vec<azr::CheckResult> {
        let t = Instant::now();
        let Ok(v) = self.sandbox.check(items);
        times.sandbox_s += t.elapsed().as_secs_f64();
        v
    }

    // ----- proposing --------------------------------------------------------------------

    // ----- one training step ------------------------------------------------------------

    fn train_step(&mut self, step: u64) -> Result<StepRecord> {
        let step_started = Instant::now();
        let sandbox_before = self.sandbox.stats().clone();
        let mut times = Times::default();
        let Phase {
            buffers,
            tallies,
            rollouts,
        } = self.rollout_phase(step, &mut times)?;

        // 5. TRR++ and the policy update.
        let t = Instant::now();
        let update = self.update(step, &rollouts)?;
        times.update_s = t.elapsed().as_secs_f64();

        self.buffers = buffers;
        times.total_s = step_started.elapsed().as_secs_f64();
        let sandbox = metrics::SandboxDelta::between(&sandbox_before, self.sandbox.stats());
        Ok(StepRecord::new(
            step,
            &tallies,
            &update.groups,
            buffer_sizes(&self.buffers),
            times,
            sandbox,
            update.stats,
        ))
    }
}

/// What one generation phase took ([`SelfPlay::measure_generation`]).
#[derive(Debug, Clone, serde::Serialize)]
pub struct GenerationFigures {
    /// Seconds in generation (prompts and decoding, sampling included; not the sandbox).
    pub generate_s: f64,
    pub prefill_s: f64,
    pub decode_s: f64,
    /// Prompt positions run through the model.
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
    pub rollouts: usize,
    /// Seconds in sandbox calls (validation and checks), apart from `generate_s`.
    pub sandbox_s: f64,
    /// FNV-1a of every response's tokens in order: equal digests, identical tokens.
    pub tokens_digest: String,
    /// Mean |log p_f32 − log p_sampled| over the generated tokens, when measured.
    pub logprob_gap: Option<f64>,
}

impl GenerationFigures {
    /// Generated tokens per second of generation.
    pub fn tokens_per_s(&self) -> f64 {
        self.generated_tokens as f64 / self.generate_s.max(f64::MIN_POSITIVE)
    }
}

/// The mean |log p_f32 − log p_sampled| over the tokens that learn.
#[derive(Default)]
struct LogprobGap {
    sum: f64,
    tokens: usize,
}

impl LogprobGap {
    fn add(&mut self, f32_logprobs: &[f32], sampled: &[f32]) {
        for (a, b) in f32_logprobs.iter().zip(sampled) {
            self.sum += f64::from((a - b).abs());
            self.tokens += 1;
        }
    }

    fn mean(&self) -> Option<f64> {
        (self.tokens > 0).then(|| self.sum / self.tokens as f64)
    }
}

/// One proposer rollout as the step carries it.
struct Proposal {
    task: TaskType,
    prompt: Vec<i64>,
    response: Vec<i64>,
    sampled_logprobs: Vec<f32>,
    references: Vec<Triplet>,
    /// The decoded response, for `rollouts.jsonl`.
    text: String,
    format_ok: bool,
    /// Its validation items.
    checks: std::ops::Range<usize>,
    /// The task it proposed, when valid (outputs filled in from the sandbox).
    solve: Option<SolveTask>,
    /// Why it is not valid: its format, or the sandbox's verdict on its program.
    invalid: Option<String>,
}

struct Update {
    groups: BTreeMap<Group, trrpp::GroupStats>,
    stats: metrics::UpdateStats,
}

fn buffer_sizes(b: &Buffers) -> BTreeMap<String, usize> {
    TaskType::ALL
        .iter()
        .map(|t| (t.code().to_owned(), b.len(*t)))
        .collect()
}

/// Puts the configured adapters on `model` (`optim.lora_rank` > 0), fresh or loaded from
/// `saved`. A run of learning rate 0 (a control) carries none: they would add exactly zero.
fn attach_adapters(model: &mut Model, config: &AzrConfig, saved: Option<&Path>) -> Result<()> {
    let o = &config.optim;
    if let Some(dir) = saved {
        let lora = Model::saved_lora_config(dir)?;
        model.attach_lora(lora, config.seed)?;
        model
            .load_adapters(dir)
            .with_context(|| format!("loading the adapters of {}", dir.display()))?;
        tracing::info!(rank = lora.rank, alpha = lora.alpha, dir = %dir.display(), "adapters restored");
        return Ok(());
    }
    if o.lora_rank > 0 && o.lr > 0.0 {
        let lora = LoraConfig {
            rank: o.lora_rank,
            alpha: o.lora_alpha,
        };
        model.attach_lora(lora, config.seed)?;
        tracing::info!(
            rank = lora.rank,
            alpha = lora.alpha,
            "adapters attached, weights frozen"
        );
    }
    Ok(())
}

/// The model a config names: a path, or a bare file name among the models
/// `scripts/models.sh` fetched into `$AZR_CACHE_DIR/models` (default `~/.cache/azr-rs`).
pub fn resolve_model(name: &str) -> Result<PathBuf> {
    let direct = Path::new(name);
    if direct.exists() {
        return Ok(direct.to_owned());
    }
    let cache = std::env::var_os("AZR_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/azr-rs")
        });
    let cached = cache.join("models").join(name);
    if cached.exists() {
        return Ok(cached);
    }
    bail!(
        "model `{name}` not found (neither a path nor {}): run scripts/models.sh, or pass \
         --model with a .gguf file or a Hugging Face directory",
        cached.display()
    )
}
