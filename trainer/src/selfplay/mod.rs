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
pub mod metrics;
pub mod sandbox;

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
use sandbox::{Sandbox, SandboxSpec};

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

/// The running loop: the policy, its optimiser, the sandbox, the buffers.
pub struct SelfPlay {
    config: AzrConfig,
    model: Model,
    tokenizer: TextTokenizer,
    trainer: Trainer,
    sandbox: Sandbox,
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

impl SelfPlay {
    /// Loads the model (or the checkpoint to resume), connects the sandbox, opens the metrics.
    pub fn start(opts: RunOptions, stop: StopFlag) -> Result<Self> {
        let RunOptions {
            config,
            output,
            resume,
            sandbox,
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
        let sandbox = Sandbox::connect(sandbox, config.validation.clone())
            .context("connecting to the sandbox")?;
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

    /// Makes what the first generation of either path would otherwise make inside its timing:
    /// the rollout copy of the configured precision and the packed copies of the f32
    /// weights (one short prompt through each path).
    pub fn prepare_generation(&mut self) -> Result<()> {
        let precision = self.config.rollout.precision;
        if precision != Precision::F32 {
            self.model.refresh_rollout_copy(precision);
        }
        // More rows than the few-row kernels take, so that the f32 weights get packed.
        let prompt = self
            .tokenizer
            .encode(&"def f(x):\n    return x + 1\n".repeat(8))?;
        let params = SamplingParams {
            max_new_tokens: 2,
            seed: Some(0),
            precision,
            ..SamplingParams::default()
        };
        for params in [params.clone(), params.plain_path()] {
            generate_with_stats(
                &self.model,
                &self.tokenizer,
                std::slice::from_ref(&prompt),
                &params,
            )?;
        }
        Ok(())
    }

    /// Runs the generation phase of the next step (proposals, their validation and
    /// solve-rate answers, the solver's answers: everything but the update) once, on the
    /// configured path or, with `reference`, on the plain path (see `plain_path`), and says
    /// what it took. Seeds the buffers first if they are empty; leaves the buffers, the
    /// weights and the step count as they were, so every call draws the same tasks from the
    /// same seeds. With `gap`, also the mean |log p_f32 − log p_sampled| of the tokens
    /// generated (one untimed f32 teacher-forced pass over them).
    pub fn measure_generation(&mut self, reference: bool, gap: bool) -> Result<GenerationFigures> {
        if self.buffers.seeding() {
            self.seed_buffers()?;
        }
        let sandbox_before = self.sandbox.stats.clone();
        let mut times = Times::default();
        self.plain_path = reference;
        let phase = self.rollout_phase(self.step + 1, &mut times);
        self.plain_path = false;
        let Phase { rollouts, .. } = phase?;
        let sandbox = metrics::SandboxDelta::between(&sandbox_before, &self.sandbox.stats);
        // Each response's tokens, then a separator no token's bytes can be.
        let digest = fnv1a_hex(rollouts.iter().flat_map(|r| {
            r.response
                .iter()
                .flat_map(|t| t.to_le_bytes())
                .chain([0xff; 8])
        }));
        let logprob_gap = if gap {
            let mut g = LogprobGap::default();
            let trainable: Vec<&Rollout> =
                rollouts.iter().filter(|r| !r.response.is_empty()).collect();
            for (r, lps) in trainable.iter().zip(self.f32_logprobs(&trainable)?) {
                g.add(&lps, &r.sampled_logprobs);
            }
            g.mean()
        } else {
            None
        };
        Ok(GenerationFigures {
            generate_s: times.generate_s,
            prefill_s: times.prefill_s,
            decode_s: times.decode_s,
            prompt_tokens: times.prompt_tokens,
            generated_tokens: times.generated_tokens,
            rollouts: rollouts.len(),
            sandbox_s: sandbox.seconds,
            tokens_digest: digest,
            logprob_gap,
        })
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

    /// What opens the assistant's turn: nothing for a brief prompt, which asks for a bare
    /// reply; `rollout.assistant_prefix` (`<think>`) for the reference's, which opens with
    /// its reasoning.
    fn opening(&self, brief: bool) -> &str {
        if brief {
            ""
        } else {
            &self.config.rollout.assistant_prefix
        }
    }

    /// A solver task's prompt in the configured style.
    fn encode_solver(&self, task: &SolveTask) -> Result<Option<Encoded>> {
        let style = self.config.rollout.prompt_style;
        let opening = self.opening(style == PromptStyle::Brief);
        self.encode_opening(&solve_prompt_in(task, style), opening)
    }

    /// `prompt` as token ids, the assistant's turn opened with `opening` (with the chat
    /// template); `None` when it is longer than `max_prompt_tokens` or leaves the model no
    /// room to answer.
    fn encode_opening(&self, prompt: &Prompt, opening: &str) -> Result<Option<Encoded>> {
        let text = if self.config.rollout.chat_template && self.tokenizer.chat_template.is_some() {
            self.tokenizer.apply_chat_template(&prompt.pairs())? + opening
        } else {
            prompt.plain_text()
        };
        let ids = self.tokenizer.encode(&text)?;
        let room = (self.model.config.max_position_embeddings as usize).saturating_sub(ids.len());
        if ids.len() > self.config.rollout.max_prompt_tokens || room == 0 {
            return Ok(None);
        }
        Ok(Some(Encoded { ids }))
    }

    /// Generates one response per prompt, `generation_batch` sequences at a time (a
    /// finished one's row given to the next prompt).
    fn generate(
        &self,
        prompts: &[Vec<i64>],
        seed: u64,
        times: &mut Times,
    ) -> Result<Vec<Generated>> {
        let t = Instant::now();
        let r = &self.config.rollout;
        let positions = self.model.config.max_position_embeddings as usize;
        let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
        let params = SamplingParams {
            max_new_tokens: r.max_response_tokens.min(positions.saturating_sub(longest)),
            temperature: r.temperature,
            top_p: r.top_p,
            // Nothing after the answer is ever read; stopping there saves the tokens an
            // instruct model spends on closing remarks.
            stop_strings: vec!["</answer>".into()],
            seed: Some(seed),
            precision: r.precision,
            share_prefix: r.share_prefix,
            max_batch: r.generation_batch.max(1),
            cancel: Some(self.stop.clone()),
            ..SamplingParams::default()
        };
        let params = if self.plain_path {
            params.plain_path()
        } else {
            params
        };
        let (completions, stats) =
            match generate_with_stats(&self.model, &self.tokenizer, prompts, &params) {
                Err(crate::Error::Cancelled) => return Err(Interrupted.into()),
                r => r?,
            };
        times.prefill_s += stats.prefill_s;
        times.decode_s += stats.decode_s;
        times.prompt_tokens += stats.prompt_tokens;
        let mut out = Vec::with_capacity(prompts.len());
        for c in completions {
            times.generated_tokens += c.tokens.len();
            let text = self.tokenizer.decode(&c.tokens, true)?;
            out.push(Generated {
                tokens: c.tokens,
                logprobs: c.logprobs,
                text,
            });
        }
        self.check_stop()?;
        times.generate_s += t.elapsed().as_secs_f64();
        Ok(out)
    }

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

    /// Builds the propose prompts of one task type: `(prompt ids, references, induction
    /// program)` per proposal. Prompts over `content_max_length` are redrawn with other
    /// references (up to 8 times), then with fewer.
    fn propose_prompts(
        &self,
        buffers: &Buffers,
        task: TaskType,
        n: usize,
        rng: &mut rand::rngs::StdRng,
    ) -> Result<Vec<(Encoded, Vec<Triplet>)>> {
        let c = &self.config;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let mut k = c.tasks.references;
            let mut chosen = None;
            for attempt in 0..16 {
                if attempt >= 8 && k > 1 {
                    k -= 1;
                }
                let refs = buffers.references(task, k, rng);
                let prompt = match task {
                    TaskType::Induction => match refs.first() {
                        Some(r) => propose_induction_prompt(&r.program, c.tasks.induction_inputs),
                        None => break,
                    },
                    _ => propose_triplet_prompt_in(
                        c.rollout.prompt_style,
                        task,
                        &refs,
                        &c.validation.banned_words,
                        c.parse.reject_multiple_functions,
                    ),
                };
                // Induction proposals are always asked in the reference's words.
                let brief =
                    task != TaskType::Induction && c.rollout.prompt_style == PromptStyle::Brief;
                if let Some(enc) = self.encode_opening(&prompt, self.opening(brief))?
                    && enc.ids.len() <= c.rollout.content_max_length
                {
                    chosen = Some((enc, refs));
                    break;
                }
            }
            match chosen {
                Some(x) => out.push(x),
                None => tracing::warn!(%task, "no propose prompt fits content_max_length; skipped"),
            }
        }
        Ok(out)
    }

    /// Proposes `n` tasks of each type in `types`, validates them and returns, per proposal,
    /// what the rest of the step needs. `seeding` skips nothing but is logged differently.
    fn propose(
        &mut self,
        buffers: &Buffers,
        types: &[TaskType],
        n: usize,
        step: u64,
        stream: u64,
        times: &mut Times,
    ) -> Result<Vec<Proposal>> {
        let mut rng = step_rng(self.config.seed, step, stream);
        let mut prompts = Vec::new();
        for &task in types {
            for (enc, refs) in self.propose_prompts(buffers, task, n, &mut rng)? {
                prompts.push((task, enc, refs));
            }
        }
        let ids: Vec<Vec<i64>> = prompts.iter().map(|(_, e, _)| e.ids.clone()).collect();
        let seed = rng.random::<u64>();
        let responses = self.generate(&ids, seed, times)?;
        let c = &self.config;
        let mut proposals = Vec::with_capacity(prompts.len());
        let mut items = Vec::new();
        for ((task, enc, refs), g) in prompts.into_iter().zip(responses) {
            let Generated {
                tokens: response,
                logprobs: sampled_logprobs,
                text,
            } = g;
            let mut p = Proposal {
                task,
                prompt: enc.ids,
                response,
                sampled_logprobs,
                references: refs,
                text: text.clone(),
                format_ok: false,
                checks: 0..0,
                solve: None,
                invalid: None,
            };
            match task {
                TaskType::Induction => {
                    let read = read_induction_proposal(
                        &text,
                        c.tasks.induction_inputs,
                        c.reward.format_reward,
                    );
                    p.format_ok = read.format_ok;
                    if let Err(e) = &read.parsed {
                        p.invalid = Some(format!("format: {e}"));
                    }
                    if let (Ok(parsed), Some(r)) = (read.parsed, p.references.first()) {
                        let start = items.len();
                        for input in &parsed.inputs {
                            items.push(ValidateTask {
                                program: r.program.clone(),
                                imports: r.imports.clone(),
                                input: input.clone(),
                                check_banned: false,
                            });
                        }
                        p.checks = start..items.len();
                        p.solve = Some(SolveTask::Induction(InductionTask {
                            program: r.program.clone(),
                            inputs: parsed.inputs,
                            outputs: vec![],
                            message: parsed.message,
                            imports: r.imports.clone(),
                        }));
                    }
                }
                _ => {
                    let read = read_triplet_proposal_in(
                        &text,
                        &c.parse,
                        c.reward.format_reward,
                        c.rollout.prompt_style,
                    );
                    p.format_ok = read.format_ok;
                    if let Err(e) = &read.parsed {
                        p.invalid = Some(format!("format: {e}"));
                    }
                    if let Ok(parsed) = read.parsed {
                        items.push(ValidateTask {
                            program: parsed.program.clone(),
                            imports: parsed.imports.clone(),
                            input: parsed.input.clone(),
                            check_banned: true,
                        });
                        p.checks = items.len() - 1..items.len();
                        let t = Triplet {
                            program: parsed.program,
                            input: parsed.input,
                            output: String::new(),
                            imports: parsed.imports,
                        };
                        p.solve = Some(match task {
                            TaskType::Abduction => SolveTask::Abduction(t),
                            _ => SolveTask::Deduction(t),
                        });
                    }
                }
            }
            proposals.push(p);
        }
        self.check_stop()?;
        let results = self.validate(&items, times);
        for p in &mut proposals {
            let Some(task) = p.solve.as_mut() else {
                continue;
            };
            let r = &results[p.checks.clone()];
            // Valid only if every execution succeeded (for induction: every input ran).
            if r.is_empty() || !r.iter().all(|v| v.ok) {
                p.solve = None;
                p.invalid = Some(
                    r.iter()
                        .find_map(|v| v.error.clone())
                        .unwrap_or_else(|| "not run".to_owned()),
                );
                continue;
            }
            let outputs: Vec<String> = r.iter().filter_map(|v| v.output.clone()).collect();
            match task {
                SolveTask::Induction(t) => t.outputs = outputs,
                SolveTask::Deduction(t) | SolveTask::Abduction(t) => {
                    t.output = outputs.into_iter().next().unwrap_or_default()
                }
            }
        }
        Ok(proposals)
    }

    /// Seeding: the configured seed programs first, then proposals of the base model until
    /// the deduction/abduction seed pool and the induction buffer hold `batch_size ×
    /// seed_batch_factor` programs (or `max_seed_rounds` pass); then the buffers start from
    /// them.
    fn seed_buffers(&mut self) -> Result<()> {
        let target = self.config.seed_buffer_size();
        let types = self.config.tasks.types.clone();
        let triplet_types: Vec<TaskType> = types
            .iter()
            .copied()
            .filter(|t| *t != TaskType::Induction)
            .collect();
        let induction = types.contains(&TaskType::Induction);
        let mut buffers = self.buffers.clone();
        let started = Instant::now();
        self.add_seed_programs(&mut buffers)?;
        eprintln!(
            "seeding the buffers to {target} programs per type (at most {} rounds)",
            self.config.tasks.max_seed_rounds
        );
        for round in 0..self.config.tasks.max_seed_rounds {
            let mut want: Vec<TaskType> = Vec::new();
            if buffers.seed.len() < target {
                want.extend(&triplet_types);
            }
            if induction && buffers.induction.len() < target {
                want.push(TaskType::Induction);
            }
            if want.is_empty() || (triplet_types.is_empty() && !induction) {
                break;
            }
            let mut times = Times::default();
            let proposals = self.propose(
                &buffers,
                &want,
                self.config.tasks.batch_size,
                0,
                1000 + round as u64,
                &mut times,
            )?;
            let mut valid = 0;
            for p in &proposals {
                self.rollout_log.event(&serde_json::json!({
                    "seed_round": round + 1,
                    "group": Group::new(p.task, Role::Propose).name(),
                    "valid": p.solve.is_some(),
                    "invalid": p.invalid,
                    "format_ok": p.format_ok,
                    "response": p.text,
                    "task": p.solve,
                }))?;
            }
            for p in proposals {
                match p.solve {
                    Some(SolveTask::Induction(t)) => {
                        valid += 1;
                        buffers.push_induction(t, 0, self.config.tasks.dedup, usize::MAX);
                    }
                    Some(SolveTask::Deduction(t) | SolveTask::Abduction(t)) => {
                        valid += 1;
                        buffers.add_seed(t);
                    }
                    None => {}
                }
            }
            let record = serde_json::json!({
                "event": "seed",
                "round": round + 1,
                "valid": valid,
                "seed_programs": buffers.seed.len(),
                "induction_tasks": buffers.induction.len(),
                "generate_s": times.generate_s,
                "sandbox_s": times.sandbox_s,
                "tokens": times.generated_tokens,
            });
            self.log.event(&record)?;
            eprintln!(
                "seed round {}: {valid} valid proposals; seed pool {}/{target}, induction {}/{target} ({:.0} s)",
                round + 1,
                buffers.seed.len(),
                buffers.induction.len(),
                started.elapsed().as_secs_f64()
            );
            self.check_stop()?;
        }
        if buffers.seed.len() < target {
            tracing::warn!(
                have = buffers.seed.len(),
                target,
                "seeding ended before the target; training starts with what the buffers hold"
            );
        }
        buffers.finish_seeding(target);
        self.buffers = buffers;
        Ok(())
    }

    /// Runs the configured seed programs (`tasks.seed_programs`) in the sandbox as a
    /// proposal's program is run, and puts the valid ones, with the outputs the sandbox
    /// computed, in the seed pool. A program that does not run is left out and named.
    fn add_seed_programs(&mut self, buffers: &mut Buffers) -> Result<()> {
        let spec = self.config.tasks.seed_programs.clone();
        let programs = azr::buffer::seed_programs(&self.config.tasks, self.config.seed)?;
        if programs.is_empty() {
            return Ok(());
        }
        let items: Vec<ValidateTask> = programs
            .iter()
            .map(|t| ValidateTask {
                program: t.program.clone(),
                imports: t.imports.clone(),
                input: t.input.clone(),
                check_banned: true,
            })
            .collect();
        let mut times = Times::default();
        let results = self.validate(&items, &mut times);
        let (mut added, mut refused) = (0, 0);
        for (i, (mut t, v)) in programs.into_iter().zip(results).enumerate() {
            match (v.ok, v.output) {
                (true, Some(output)) => {
                    t.output = output;
                    added += usize::from(buffers.add_seed(t));
                }
                _ => {
                    refused += 1;
                    tracing::warn!(
                        program = i + 1,
                        error = v.error.as_deref().unwrap_or("no output"),
                        "a seed program does not run; left out"
                    );
                }
            }
        }
        self.log.event(&serde_json::json!({
            "event": "seed_programs",
            "source": spec,
            "added": added,
            "refused": refused,
            "sandbox_s": times.sandbox_s,
        }))?;
        eprintln!("seed programs ({spec}): {added} added to the seed pool, {refused} refused");
        Ok(())
    }

    // ----- one training step ------------------------------------------------------------

    fn train_step(&mut self, step: u64) -> Result<StepRecord> {
        let step_started = Instant::now();
        let sandbox_before = self.sandbox.stats.clone();
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
        let sandbox = metrics::SandboxDelta::between(&sandbox_before, &self.sandbox.stats);
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

    /// A step's rollouts: proposals, their validation and solve-rate estimates, then the
    /// solver's answers, each rewarded. Works on a copy of the buffers (returned with the
    /// valid proposals added), so an interrupted or measured phase leaves them as they were.
    fn rollout_phase(&mut self, step: u64, times: &mut Times) -> Result<Phase> {
        let c = self.config.clone();
        let types = c.tasks.types.clone();
        // The step works on a copy: an interrupted step leaves the buffers as they were.
        let mut buffers = self.buffers.clone();
        let mut tallies: BTreeMap<Group, GroupTally> = BTreeMap::new();
        let mut rollouts: Vec<Rollout> = Vec::new();

        // 1–2. Propose and validate.
        let proposals = self.propose(&buffers, &types, c.propose_batch_size(), step, 0, times)?;

        // 3. Estimate the solve rate of every valid proposal with n_samples answers.
        let mut est_prompts = Vec::new();
        let mut est_owner = Vec::new();
        for (i, p) in proposals.iter().enumerate() {
            if let Some(task) = &p.solve
                && let Some(enc) = self.encode_solver(task)?
            {
                for _ in 0..c.reward.n_samples {
                    est_prompts.push(enc.ids.clone());
                    est_owner.push(i);
                }
            }
        }
        let mut rng = step_rng(c.seed, step, 1);
        let est_responses = self.generate(&est_prompts, rng.random::<u64>(), times)?;
        let mut checks = Vec::new();
        let mut ranges = Vec::new();
        for (&i, Generated { text, .. }) in est_owner.iter().zip(&est_responses) {
            let (Some(task), start) = (&proposals[i].solve, checks.len()) else {
                continue;
            };
            if let Some(answer) = read_estimate_answer(text, task.task_type()) {
                checks.extend(TaskCheck::for_answer(task, &answer));
            }
            ranges.push((i, start..checks.len()));
        }
        self.check_stop()?;
        let results = self.check(&checks, times);
        let mut accuracies: BTreeMap<usize, Vec<Option<f64>>> = BTreeMap::new();
        for (i, range) in ranges {
            let task = proposals[i].task;
            let verdicts: Vec<Option<bool>> =
                results[range].iter().map(|r| Some(r.passed)).collect();
            let acc = answer_accuracy(task, &verdicts, c.reward.induction);
            accuracies.entry(i).or_default().push(Some(acc));
        }

        // Proposer rewards; valid proposals join their buffers.
        for (i, p) in proposals.iter().enumerate() {
            let group = Group::new(p.task, Role::Propose);
            let tally = tallies.entry(group).or_default();
            let valid = p.solve.is_some();
            let s = accuracies.get(&i).map(|a| solve_rate(a));
            let base = s.map_or(0.0, |s| learnability(s, c.reward.learnability));
            let intrinsic = match &p.solve {
                Some(SolveTask::Deduction(t) | SolveTask::Abduction(t)) => {
                    let refs: Vec<&str> = p.references.iter().map(|r| r.program.as_str()).collect();
                    let (answer, counter) = if p.task == TaskType::Abduction {
                        (&t.input, &buffers.input_types)
                    } else {
                        (&t.output, &buffers.output_types)
                    };
                    intrinsic_rewards(&c.reward, p.task, &t.program, &refs, answer, counter)
                }
                _ => vec![],
            };
            let reward = propose_reward(
                p.format_ok,
                valid,
                base,
                &intrinsic,
                c.reward.intrinsic_combine,
            );
            tally.add(reward, !p.format_ok, Some(valid), s, p.response.len());
            self.rollout_log.event(&serde_json::json!({
                "step": step,
                "group": group.name(),
                "reward": reward,
                "format_ok": p.format_ok,
                "valid": valid,
                "invalid": p.invalid,
                "solve_rate": s,
                "learnability": base,
                "response": p.text,
                "task": p.solve,
            }))?;
            if let (Some(task), Some(s)) = (&p.solve, s)
                && joins_buffer(c.tasks.valid_program_filter, s)
            {
                let pushed = match task.clone() {
                    SolveTask::Induction(t) => {
                        buffers.push_induction(t, step, c.tasks.dedup, c.tasks.max_programs)
                    }
                    SolveTask::Deduction(t) | SolveTask::Abduction(t) => {
                        buffers.push_triplet(p.task, t, step, c.tasks.dedup, c.tasks.max_programs)
                    }
                };
                if pushed == Pushed::Added {
                    tally.joined += 1;
                }
            }
            if c.tasks.train_propose {
                rollouts.push(Rollout {
                    group,
                    prompt: p.prompt.clone(),
                    response: p.response.clone(),
                    sampled_logprobs: p.sampled_logprobs.clone(),
                    reward,
                    task: None,
                });
            }
        }

        // 4. Solve tasks drawn from the buffers, each answered `solve_group_size` times.
        let mut rng = step_rng(c.seed, step, 2);
        let group_size = c.tasks.solve_group_size.max(1);
        let mut solve_tasks = Vec::new();
        // The task each solver rollout answered, as a key unique within the step.
        let mut task_keys = Vec::new();
        // Whether each solver rollout's task was proposed during training (not seeded).
        let mut proposed_in_training = Vec::new();
        let mut next_key = 0u64;
        for &task in &types {
            if buffers.is_empty(task) {
                continue;
            }
            for drawn in buffers.solver_tasks(
                task,
                c.tasks.batch_size.div_ceil(group_size),
                step,
                c.tasks.recent_window,
                c.tasks.solver_mix,
                &mut rng,
            )? {
                let t = drawn.task;
                match self.encode_solver(&t)? {
                    Some(enc) => {
                        for _ in 0..group_size {
                            solve_tasks.push((t.clone(), enc.ids.clone()));
                            proposed_in_training.push(drawn.added_at > 0);
                            task_keys.push(next_key);
                        }
                        next_key += 1;
                    }
                    None => tracing::warn!(%task, "a solver prompt is too long; skipped"),
                }
            }
        }
        let ids: Vec<Vec<i64>> = solve_tasks.iter().map(|(_, ids)| ids.clone()).collect();
        let responses = self.generate(&ids, rng.random::<u64>(), times)?;
        let mut checks = Vec::new();
        let mut read = Vec::new();
        for ((task, _), Generated { text, .. }) in solve_tasks.iter().zip(&responses) {
            let answer = read_solver_answer_in(
                text,
                task.task_type(),
                c.reward.format_reward,
                c.rollout.prompt_style,
            );
            let start = checks.len();
            if let Some(a) = &answer.answer {
                checks.extend(TaskCheck::for_answer(task, a));
            }
            read.push((answer.format_ok, start..checks.len()));
        }
        self.check_stop()?;
        let results = self.check(&checks, times);
        for (((((task, prompt), generated), (format_ok, range)), key), proposed) in solve_tasks
            .into_iter()
            .zip(responses)
            .zip(read)
            .zip(task_keys)
            .zip(proposed_in_training)
        {
            let Generated {
                tokens: response,
                logprobs: sampled_logprobs,
                text,
            } = generated;
            let verdicts: Vec<Option<bool>> = results[range.clone()]
                .iter()
                .map(|r| Some(r.passed))
                .collect();
            let refused = results[range].iter().any(|r| r.refused_answer);
            let acc = if format_ok {
                answer_accuracy(task.task_type(), &verdicts, c.reward.induction)
            } else {
                0.0
            };
            let reward = solve_reward(format_ok, acc);
            let group = Group::new(task.task_type(), Role::Solve);
            self.rollout_log.event(&serde_json::json!({
                "step": step,
                "group": group.name(),
                "reward": reward,
                "accuracy": acc,
                "format_ok": format_ok,
                "refused_answer": refused,
                "response": text,
                "task_key": key,
                "task": &task,
                "proposed_in_training": proposed,
            }))?;
            let tally = tallies.entry(group).or_default();
            tally.add(reward, !format_ok, None, Some(acc), response.len());
            tally.refused_answers += usize::from(refused);
            tally.proposed_in_training += usize::from(proposed);
            rollouts.push(Rollout {
                group,
                prompt,
                response,
                sampled_logprobs,
                reward,
                task: Some(key),
            });
        }
        self.check_stop()?;
        Ok(Phase {
            buffers,
            tallies,
            rollouts,
        })
    }

    /// The f32 policy's log-probs of each rollout's response (teacher-forced, no gradient),
    /// `micro_batch` rollouts per pass.
    fn f32_logprobs(&self, rollouts: &[&Rollout]) -> Result<Vec<Vec<f32>>> {
        let temperature = self.config.rollout.temperature;
        let mut out = Vec::with_capacity(rollouts.len());
        for chunk in rollouts.chunks(self.config.optim.micro_batch.max(1)) {
            let prompts: Vec<Vec<i64>> = chunk.iter().map(|r| r.prompt.clone()).collect();
            let responses: Vec<Vec<i64>> = chunk.iter().map(|r| r.response.clone()).collect();
            let (lp, _) =
                tch::no_grad(|| response_logprobs(&self.model, &prompts, &responses, temperature))?;
            let lp = lp.to_device(tch::Device::Cpu).to_kind(tch::Kind::Float);
            for (row, r) in chunk.iter().enumerate() {
                let all = Vec::<f32>::try_from(lp.get(row as i64))?;
                out.push(all[..r.response.len()].to_vec());
            }
        }
        Ok(out)
    }

    /// TRR++ advantages, old log-probs from the current policy, then PPO-clip mini-batches.
    fn update(&mut self, step: u64, rollouts: &[Rollout]) -> Result<Update> {
        let trainable: Vec<&Rollout> = rollouts.iter().filter(|r| !r.response.is_empty()).collect();
        let inputs: Vec<trrpp::Rollout> = trainable
            .iter()
            .map(|r| trrpp::Rollout {
                group: r.group,
                reward: r.reward,
                response_len: r.response.len(),
            })
            .collect();
        let gamma = self.config.optim.gamma;
        let adv = match self.config.optim.advantage {
            AdvantageEstimator::Trrpp => trrpp::advantages(&inputs, gamma),
            AdvantageEstimator::TaskGroup => {
                let tasks: Vec<Option<u64>> = trainable.iter().map(|r| r.task).collect();
                trrpp::task_group_advantages(&inputs, &tasks, gamma)
            }
        };
        if self.config.optim.lr == 0.0 {
            // A control run (lr 0): the update would leave every weight as it is (AdamW's
            // step and weight decay both scale with lr), so its forward and backward passes
            // are skipped; the advantages and group statistics are still logged.
            return Ok(Update {
                groups: adv.groups,
                stats: metrics::UpdateStats {
                    samples: trainable.len(),
                    ..Default::default()
                },
            });
        }
        let o = &self.config.optim;
        let (mini_batch, epochs, tis_cap) = (o.mini_batch.max(1), o.ppo_epochs, o.tis_cap);
        let mut rng = step_rng(self.config.seed, step, 3);
        let mut order: Vec<usize> = (0..trainable.len()).collect();
        order.shuffle(&mut rng);
        // The first mini-batch of a one-epoch update is taken with the weights that sampled
        // it (in f32): its old log-probs are the step's own, so they are not recomputed.
        // Every later mini-batch needs them from before the first optimiser step, and
        // truncated importance sampling needs them before any step, to weigh advantages.
        let mut on_policy = vec![false; trainable.len()];
        if epochs == 1 && tis_cap == 0.0 {
            for &i in order.iter().take(mini_batch) {
                on_policy[i] = true;
            }
        }
        // Old log-probs matter only where an advantage is non-zero: elsewhere the PPO term is
        // zero whatever they are, and the trainer skips those samples (see `Trainer::step`).
        let mut old: Vec<Option<Vec<f32>>> = trainable
            .iter()
            .zip(&on_policy)
            .map(|(r, &own)| (!own).then(|| vec![0.0; r.response.len()]))
            .collect();
        let learning: Vec<usize> = (0..trainable.len())
            .filter(|&i| has_gradient(&adv.per_rollout[i]))
            .collect();
        let recompute: Vec<usize> = learning
            .iter()
            .copied()
            .filter(|&i| !on_policy[i])
            .collect();
        let recomputed: Vec<&Rollout> = recompute.iter().map(|&i| trainable[i]).collect();
        for (&i, lps) in recompute.iter().zip(self.f32_logprobs(&recomputed)?) {
            old[i] = Some(lps);
        }
        // How far the sampling weights (the int8 rollout copy) are from the f32 policy the
        // update uses, on the tokens that learn (for on-policy samples, measured by their
        // mini-batch's forward pass below); and, when asked, truncated importance sampling:
        // each token's advantage weighted by min(p_f32 / p_sampled, cap), which (a weight
        // being positive) is the PPO term multiplied by that weight.
        let mut gap = LogprobGap::default();
        let mut advantages = adv.per_rollout.clone();
        for &i in &recompute {
            let (sampled, f32_lps) = (&trainable[i].sampled_logprobs, old[i].as_deref());
            gap.add(f32_lps.unwrap_or_default(), sampled);
            if tis_cap > 0.0 {
                for (t, (f32_lp, s_lp)) in
                    f32_lps.unwrap_or_default().iter().zip(sampled).enumerate()
                {
                    let w = f64::from(f32_lp - s_lp).exp().min(tis_cap);
                    advantages[i][t] = (f64::from(advantages[i][t]) * w) as f32;
                }
            }
        }
        let samples: Vec<Sample> = trainable
            .iter()
            .zip(&advantages)
            .zip(old)
            .map(|((r, a), old_logprobs)| Sample {
                prompt: r.prompt.clone(),
                response: r.response.clone(),
                old_logprobs,
                advantages: a.clone(),
            })
            .collect();
        let mut stats = metrics::UpdateStats {
            samples: samples.len(),
            ..Default::default()
        };
        if samples.is_empty() {
            return Ok(Update {
                groups: adv.groups,
                stats,
            });
        }
        let mut loss_tokens = 0.0;
        for epoch in 0..epochs {
            if epoch > 0 {
                order.shuffle(&mut rng);
            }
            for ids in order.chunks(mini_batch) {
                let batch: Vec<Sample> = ids.iter().map(|&i| samples[i].clone()).collect();
                if batch.iter().all(|s| s.response.is_empty()) {
                    continue;
                }
                let s = self.trainer.step(&self.model, &batch)?;
                for (lps, &i) in s.logprobs.iter().zip(ids) {
                    if let (Some(lps), true) = (lps, on_policy[i] && epoch == 0) {
                        gap.add(lps, &trainable[i].sampled_logprobs);
                    }
                }
                stats.optimizer_steps += 1;
                stats.tokens += s.tokens;
                loss_tokens += s.loss * s.tokens as f64;
                stats.grad_norm = stats.grad_norm.max(s.grad_norm);
            }
        }
        stats.rollout_logprob_gap = gap.mean();
        stats.loss = if stats.tokens > 0 {
            loss_tokens / stats.tokens as f64
        } else {
            0.0
        };
        if self.config.rollout.precision != Precision::F32 && stats.optimizer_steps > 0 {
            // The next step samples from the updated weights: their rollout copy is made now,
            // and its cost shows in the step's metrics.
            let t = Instant::now();
            self.model
                .refresh_rollout_copy(self.config.rollout.precision);
            stats.rollout_copy_s = t.elapsed().as_secs_f64();
        }
        Ok(Update {
            groups: adv.groups,
            stats,
        })
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

/// The model a config names: a path, or a bare file name among the models
/// `scripts/models.sh` fetched into `$AZR_CACHE_DIR/models` (default `~/.cache/azr-rs`).
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
