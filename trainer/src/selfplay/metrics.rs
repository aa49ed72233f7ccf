//! What a run records: one JSON line per step in `metrics.jsonl` (plus `seed` and `resume`
//! events), and a progress line per step on stderr.
//!
//! A step line holds, per group (`gen_code_i` … `pred_code_f`): rollouts, mean reward,
//! format-error rate, validity rate of proposals (propose groups), solve rate (solve groups:
//! mean accuracy; propose groups: mean estimated solve rate of the valid proposals), and the
//! TRR++ whitening statistics; buffer sizes; generated tokens and tokens/s; sandbox calls,
//! items, failures, restarts and time; the time split of the step; the update's loss.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::sandbox::SandboxStats;
use azr::task::Group;
use azr::trrpp::GroupStats;

/// Accumulates one group's rollouts during a step.
#[derive(Debug, Default)]
pub struct GroupTally {
    rewards: Vec<f64>,
    format_errors: usize,
    valid: Vec<bool>,
    solve_rates: Vec<f64>,
    response_tokens: usize,
    /// Valid proposals that joined their buffer.
    pub joined: usize,
    /// Solver answers the sandbox refused because they need the program they predict.
    pub refused_answers: usize,
    /// Solver answers to tasks proposed during training (the rest were seeded).
    pub proposed_in_training: usize,
}

impl GroupTally {
    pub fn add(
        &mut self,
        reward: f64,
        format_error: bool,
        valid: Option<bool>,
        solve_rate: Option<f64>,
        tokens: usize,
    ) {
        self.rewards.push(reward);
        self.format_errors += usize::from(format_error);
        if let Some(v) = valid {
            self.valid.push(v);
        }
        if let Some(s) = solve_rate {
            self.solve_rates.push(s);
        }
        self.response_tokens += tokens;
    }
}

fn mean(v: impl IntoIterator<Item = f64>) -> Option<f64> {
    let (mut sum, mut n) = (0.0, 0usize);
    for x in v {
        sum += x;
        n += 1;
    }
    (n > 0).then(|| sum / n as f64)
}

/// One group of a step, as `metrics.jsonl` holds it (and `report` reads it back: fields a
/// run from an older version did not write read as their defaults).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct GroupRecord {
    pub rollouts: usize,
    pub mean_reward: Option<f64>,
    /// Every reward of the group (each is −1, −0.5, or a reward in (0, 1] plus intrinsic
    /// terms).
    pub rewards: Vec<f64>,
    pub format_error_rate: Option<f64>,
    /// Every rollout of the group got the same reward: its advantages are all zero, so it
    /// teaches nothing this step (`None` for an empty group).
    pub zero_variance: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub joined_buffer: Option<usize>,
    pub solve_rate: Option<f64>,
    /// Solve groups: the share of answers refused because they need the program they
    /// predict (an answer that calls `f` scores nothing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused_answer_rate: Option<f64>,
    /// Solve groups: the share of answers to tasks the run proposed during training (the
    /// rest answer seeded tasks): how much the solver learns from self-play's own tasks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proposed_in_training: Option<f64>,
    pub mean_response_tokens: Option<f64>,
    /// TRR++ whitening of the group: token-weighted mean return and divisor.
    pub baseline: Option<f64>,
    pub scale: Option<f64>,
}

/// Seconds of each part of a step.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Times {
    pub total_s: f64,
    pub generate_s: f64,
    /// Of `generate_s`: the prompts' forward passes, and the decode steps with sampling.
    pub prefill_s: f64,
    pub decode_s: f64,
    /// Prompt positions computed (after deduplication and shared openings).
    pub prompt_tokens: usize,
    pub sandbox_s: f64,
    pub update_s: f64,
    pub checkpoint_s: f64,
    #[serde(skip)]
    pub generated_tokens: usize,
}

/// The sandbox traffic of one step.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SandboxDelta {
    pub calls: u64,
    pub items: u64,
    pub seconds: f64,
    pub mean_call_ms: f64,
    pub failed_items: u64,
    pub restarts: u64,
    /// The sandbox's share of the step's time.
    pub share_of_step: f64,
}

impl SandboxDelta {
    pub fn between(before: &SandboxStats, after: &SandboxStats) -> Self {
        let calls = after.calls - before.calls;
        let seconds = after.seconds - before.seconds;
        SandboxDelta {
            calls,
            items: after.items - before.items,
            seconds,
            mean_call_ms: if calls > 0 {
                seconds * 1000.0 / calls as f64
            } else {
                0.0
            },
            failed_items: after.failed_items - before.failed_items,
            restarts: after.restarts - before.restarts,
            share_of_step: 0.0,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct UpdateStats {
    pub samples: usize,
    pub tokens: usize,
    pub optimizer_steps: usize,
    /// Mean PPO loss per token, before the updates.
    pub loss: f64,
    /// Largest gradient norm before clipping.
    pub grad_norm: f64,
    /// Mean |log p_f32 − log p_sampled| over the tokens that learned: how far the weights
    /// rollouts were sampled from (the int8 copy) are from the f32 policy the update uses.
    /// `None` when no token learned.
    pub rollout_logprob_gap: Option<f64>,
    /// Seconds spent making the int8 rollout copy after the update.
    pub rollout_copy_s: f64,
}

/// One finished step, one line of `metrics.jsonl`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StepRecord {
    pub step: u64,
    pub groups: BTreeMap<String, GroupRecord>,
    /// Of the groups with rollouts, the fraction whose rewards were all equal (no gradient):
    /// 1 means the step could not learn anything.
    pub zero_variance_groups: Option<f64>,
    pub buffers: BTreeMap<String, usize>,
    pub time: Times,
    pub generated_tokens: usize,
    pub tokens_per_s: f64,
    pub sandbox: SandboxDelta,
    pub update: UpdateStats,
}

impl StepRecord {
    pub fn new(
        step: u64,
        tallies: &BTreeMap<Group, GroupTally>,
        whitening: &BTreeMap<Group, GroupStats>,
        buffers: BTreeMap<String, usize>,
        time: Times,
        mut sandbox: SandboxDelta,
        update: UpdateStats,
    ) -> Self {
        let mut groups = BTreeMap::new();
        let empty = GroupTally::default();
        // All six groups are named every step, empty ones included, so that every line of
        // the file has the same shape.
        for g in Group::ALL {
            let t = tallies.get(&g).unwrap_or(&empty);
            let w = whitening.get(&g);
            let n = t.rewards.len();
            groups.insert(
                g.name(),
                GroupRecord {
                    rollouts: n,
                    mean_reward: mean(t.rewards.iter().copied()),
                    rewards: t.rewards.clone(),
                    format_error_rate: (n > 0).then(|| t.format_errors as f64 / n as f64),
                    zero_variance: (n > 0).then(|| t.rewards.iter().all(|&r| r == t.rewards[0])),
                    valid_rate: mean(t.valid.iter().map(|&v| f64::from(u8::from(v)))),
                    joined_buffer: (!t.valid.is_empty()).then_some(t.joined),
                    solve_rate: mean(t.solve_rates.iter().copied()),
                    refused_answer_rate: (n > 0 && g.role == azr::task::Role::Solve)
                        .then(|| t.refused_answers as f64 / n as f64),
                    proposed_in_training: (n > 0 && g.role == azr::task::Role::Solve)
                        .then(|| t.proposed_in_training as f64 / n as f64),
                    mean_response_tokens: (n > 0).then(|| t.response_tokens as f64 / n as f64),
                    baseline: w.map(|w| w.mean),
                    scale: w.map(|w| w.scale),
                },
            );
        }
        let zero_variance_groups = mean(
            groups
                .values()
                .filter_map(|g| g.zero_variance)
                .map(|z| f64::from(u8::from(z))),
        );
        sandbox.share_of_step = if time.total_s > 0.0 {
            sandbox.seconds / time.total_s
        } else {
            0.0
        };
        StepRecord {
            step,
            groups,
            zero_variance_groups,
            buffers,
            generated_tokens: time.generated_tokens,
            tokens_per_s: if time.generate_s > 0.0 {
                time.generated_tokens as f64 / time.generate_s
            } else {
                0.0
            },
            time,
            sandbox,
            update,
        }
    }
}

/// `metrics.jsonl`, appended line by line and flushed, so a crash loses at most the line
/// being written.
pub struct MetricsLog {
    path: PathBuf,
    file: std::fs::File,
}

impl MetricsLog {
    /// Opens the log. When resuming from step `resume_step`, lines of later steps (written
    /// after that checkpoint by the run that stopped) are dropped: the resumed run writes them
    /// again.
    pub fn open(path: &Path, resume_step: u64, resuming: bool) -> Result<Self> {
        if resuming && path.exists() {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let kept: Vec<&str> = text
                .lines()
                .filter(|line| {
                    serde_json::from_str::<serde_json::Value>(line)
                        .ok()
                        .and_then(|v| v.get("step").and_then(|s| s.as_u64()))
                        .is_none_or(|s| s <= resume_step)
                })
                .collect();
            let mut body = kept.join("\n");
            if !body.is_empty() {
                body.push('\n');
            }
            std::fs::write(path, body).with_context(|| format!("rewriting {}", path.display()))?;
        } else if !resuming {
            // A fresh run starts a fresh file (there is no checkpoint to continue from).
            std::fs::write(path, "").with_context(|| format!("creating {}", path.display()))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(MetricsLog {
            path: path.to_owned(),
            file,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn event(&mut self, value: &serde_json::Value) -> Result<()> {
        self.write_line(&serde_json::to_string(value)?)
    }

    pub fn step(&mut self, record: &StepRecord) -> Result<()> {
        self.write_line(&serde_json::to_string(record)?)
    }

    fn write_line(&mut self, line: &str) -> Result<()> {
        writeln!(self.file, "{line}")
            .and_then(|_| self.file.flush())
            .with_context(|| format!("writing {}", self.path.display()))
    }
}

/// The per-step progress line: a bar, the step's time split, an ETA and the headline rates.
pub struct Progress {
    first: u64,
    total: u64,
    started: Instant,
}

impl Progress {
    pub fn new(done: u64, total: u64) -> Self {
        Progress {
            first: done,
            total,
            started: Instant::now(),
        }
    }

    pub fn step_done(&mut self, r: &StepRecord) {
        let done_here = r.step - self.first;
        let per_step = self.started.elapsed().as_secs_f64() / done_here.max(1) as f64;
        let (bar, eta) = if self.total > 0 {
            let width = 20usize;
            let filled = ((r.step as f64 / self.total as f64) * width as f64).round() as usize;
            let filled = filled.min(width);
            let left = self.total.saturating_sub(r.step) as f64 * per_step;
            (
                format!(
                    "[{}{}] {}/{}",
                    "#".repeat(filled),
                    ".".repeat(width - filled),
                    r.step,
                    self.total
                ),
                format!("ETA {}", clock(left)),
            )
        } else {
            (format!("step {}", r.step), String::new())
        };
        let rate = |name: &str, f: fn(&GroupRecord) -> Option<f64>| {
            r.groups
                .get(name)
                .and_then(f)
                .map_or("-".to_owned(), |v| format!("{v:.2}"))
        };
        eprintln!(
            "{bar} {eta} | {:.1} s (gen {:.1} = prompts {:.1} + decode {:.1}, sandbox {:.2}, update {:.1}) | valid i {} o {} f {} | solve i {} o {} f {} | zero-variance groups {} | {:.1} tok/s",
            r.time.total_s,
            r.time.generate_s,
            r.time.prefill_s,
            r.time.decode_s,
            r.time.sandbox_s,
            r.time.update_s,
            rate("gen_code_i", |g| g.valid_rate),
            rate("gen_code_o", |g| g.valid_rate),
            rate("gen_code_f", |g| g.valid_rate),
            rate("pred_code_i", |g| g.solve_rate),
            rate("pred_code_o", |g| g.solve_rate),
            rate("pred_code_f", |g| g.solve_rate),
            r.zero_variance_groups
                .map_or("-".to_owned(), |v| format!("{v:.2}")),
            r.tokens_per_s,
        );
    }
}

fn clock(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(rewards: &[f64]) -> GroupTally {
        GroupTally {
            rewards: rewards.to_vec(),
            ..GroupTally::default()
        }
    }

    #[test]
    fn a_group_whose_rewards_are_all_equal_counts_as_zero_variance() {
        let mut tallies = BTreeMap::new();
        tallies.insert(Group::ALL[1], tally(&[-1.0, -1.0]));
        tallies.insert(Group::ALL[3], tally(&[-1.0, -0.5]));
        let record = StepRecord::new(
            1,
            &tallies,
            &BTreeMap::new(),
            BTreeMap::new(),
            Times::default(),
            SandboxDelta::default(),
            UpdateStats::default(),
        );
        assert_eq!(record.groups["pred_code_i"].zero_variance, Some(true));
        assert_eq!(record.groups["pred_code_o"].zero_variance, Some(false));
        assert_eq!(record.groups["gen_code_i"].zero_variance, None);
        assert_eq!(record.zero_variance_groups, Some(0.5));
    }
}
