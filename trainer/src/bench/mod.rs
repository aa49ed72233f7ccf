//! Throughput measurements, the same ones `bench/reference.py` takes with transformers so that
//! the two can be compared on one machine in one run: prefill tokens/s, decode tokens/s at
//! batch 1 and 8, and the time of one PPO training step. Medians over `repeats` runs after a
//! warm-up run.
//!
//! With other sides (transformers, llama.cpp, our own path at another precision) every side
//! takes turns, measurement by measurement, each round starting with the next side: the
//! shared CPUs this runs on drift in speed by tens of percent over minutes, and timing one
//! side after the other would measure that drift as much as the code.

pub mod mismatch;
pub mod reference;
pub mod selfplay;

pub use reference::Reference;

use std::time::Instant;

use serde::Serialize;

use crate::device::synchronize;
use crate::generate::{decode_step, decode_step_libtorch};
use crate::model::{KvCache, Model, Precision, left_pad, positions_and_bias};
use crate::train::{Sample, TrainConfig, Trainer};
use crate::{Error, Result};

#[derive(Debug, Clone, Serialize)]
pub struct BenchSpec {
    pub prefill_tokens: usize,
    pub decode_tokens: usize,
    /// Prompt tokens before the decode steps (self-play decodes after prompts of hundreds to
    /// a thousand tokens, where attention over the cache costs as much as the weights).
    pub decode_context: usize,
    pub train_samples: usize,
    pub train_prompt_tokens: usize,
    pub train_response_tokens: usize,
    pub repeats: usize,
}

impl Default for BenchSpec {
    fn default() -> Self {
        BenchSpec {
            prefill_tokens: 128,
            decode_tokens: 32,
            decode_context: 16,
            train_samples: 4,
            train_prompt_tokens: 64,
            train_response_tokens: 64,
            repeats: 3,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    pub prefill_tokens_per_s: Option<f64>,
    pub decode_b1_tokens_per_s: Option<f64>,
    pub decode_b8_tokens_per_s: Option<f64>,
    pub train_step_s: Option<f64>,
}

/// The median (the upper middle of an even count); `None` for no values.
fn median(values: &[f64]) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied()
}

/// Deterministic token ids that avoid the special tokens at the top of real vocabularies.
fn ids(n: usize, offset: usize, vocab: i64) -> Vec<i64> {
    let range = (vocab / 2).max(1);
    (0..n)
        .map(|i| 100 + ((i * 7919 + offset * 104_729) as i64 % range))
        .map(|t| t.min(vocab - 1))
        .collect()
}

/// One of the four measurements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    Prefill,
    DecodeB1,
    DecodeB8,
    Train,
}

impl Measure {
    pub const ALL: [Measure; 4] = [
        Measure::Prefill,
        Measure::DecodeB1,
        Measure::DecodeB8,
        Measure::Train,
    ];

    /// Parses a name as [`Measure::name`] gives it.
    pub fn parse(name: &str) -> Result<Self> {
        Measure::ALL
            .into_iter()
            .find(|m| m.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = Measure::ALL.iter().map(|m| m.name()).collect();
                Error::InvalidArgument(format!(
                    "unknown measurement `{name}` (expected one of {})",
                    names.join(", ")
                ))
            })
    }

    /// The name `reference.py --serve` reads.
    pub fn name(self) -> &'static str {
        match self {
            Measure::Prefill => "prefill",
            Measure::DecodeB1 => "decode_b1",
            Measure::DecodeB8 => "decode_b8",
            Measure::Train => "train",
        }
    }
}

/// Prefill of `prompts`, then `steps` single-token decode steps (greedy) from the weights
/// `precision` names, under no_grad; the seconds of the decode steps alone.
fn decode(
    model: &Model,
    prompts: &[Vec<i64>],
    steps: usize,
    precision: Precision,
    fused: bool,
) -> Result<f64> {
    let step = if fused {
        decode_step
    } else {
        decode_step_libtorch
    };
    tch::no_grad(|| {
        let (ids, mut mask) = left_pad(prompts, 0, model.device())?;
        let mut cache =
            KvCache::with_capacity(model.config.num_layers, ids.size()[1] + steps as i64);
        let (pos, bias) = positions_and_bias(&mask, ids.size()[1], model.kind());
        let hidden = model.forward_hidden(&ids, &pos, &bias, Some(&mut cache));
        let mut next = model.logits(&hidden.select(1, -1)).argmax(-1, true);
        synchronize(model.device());
        let t = Instant::now();
        for _ in 0..steps {
            next = step(model, &mut mask, &mut cache, &next, precision).argmax(-1, true);
        }
        // Reading the last token back forces the work to finish (matters on CUDA).
        let _ = Vec::<i64>::try_from(next.flatten(0, -1))?;
        Ok(t.elapsed().as_secs_f64())
    })
}

/// One side of a comparison: takes a measurement once and says how long it took.
pub trait Side {
    /// What the side is called in progress lines and results.
    fn name(&self) -> String;
    /// Takes measurement `m` once; its seconds.
    fn once(&mut self, m: Measure) -> Result<f64>;
}

/// Our side: a model, the precision decoding reads, and the inputs of every measurement.
pub struct Ours<'m> {
    model: &'m Model,
    precision: Precision,
    /// Decode steps fused where they can be (as generation runs them), or always through
    /// libtorch's operators.
    fused: bool,
    spec: BenchSpec,
    prompt: Vec<i64>,
    short: Vec<Vec<i64>>,
    train: Option<(Trainer, Vec<Sample>)>,
}

impl<'m> Ours<'m> {
    /// `train` = false leaves out the training step (it needs optimizer state, three times the
    /// model's memory). Decoding reads the weights `precision` names (prefill and training
    /// are f32 whatever it is).
    pub fn new(
        model: &'m Model,
        spec: &BenchSpec,
        train: bool,
        precision: Precision,
    ) -> Result<Self> {
        let vocab = model.config.vocab_size;
        if spec.prefill_tokens.max(spec.decode_context) + spec.decode_tokens + 1
            > model.config.max_position_embeddings as usize
            || spec.decode_context == 0
        {
            return Err(Error::InvalidArgument(
                "bench sequence longer than the model allows".into(),
            ));
        }
        let train = if train {
            let samples: Vec<Sample> = (0..spec.train_samples)
                .map(|i| Sample {
                    prompt: ids(spec.train_prompt_tokens, 10 + i, vocab),
                    response: ids(spec.train_response_tokens, 20 + i, vocab),
                    old_logprobs: Some(vec![-1.0; spec.train_response_tokens]),
                    advantages: vec![
                        if i % 2 == 0 { 1.0 } else { -1.0 };
                        spec.train_response_tokens
                    ],
                })
                .collect();
            let config = TrainConfig {
                micro_batch: spec.train_samples,
                lr: 1e-7,
                ..Default::default()
            };
            Some((Trainer::new(model, config)?, samples))
        } else {
            None
        };
        if precision != Precision::F32 {
            // The copy is made once per weight version; made here, its cost is not part of the
            // decode figures (self-play logs it per step as `update.rollout_copy_s`).
            let t = std::time::Instant::now();
            model.refresh_rollout_copy(precision);
            eprintln!(
                "{} rollout copy made in {:.2} s ({:.0} MB)",
                precision.name(),
                t.elapsed().as_secs_f64(),
                model.rollout_copy_bytes() as f64 / 1e6
            );
        }
        Ok(Ours {
            model,
            precision,
            fused: true,
            spec: spec.clone(),
            prompt: ids(spec.prefill_tokens, 0, vocab),
            short: (0..8)
                .map(|i| ids(spec.decode_context, i + 1, vocab))
                .collect(),
            train,
        })
    }
}

impl Ours<'_> {
    /// This side with its decode steps through libtorch's operators (the path before the
    /// fused step), to measure what fusing gains in one run.
    pub fn with_libtorch_steps(mut self) -> Self {
        self.fused = false;
        self
    }
}

impl Side for Ours<'_> {
    fn name(&self) -> String {
        let path = if self.fused { "" } else { " libtorch-ops" };
        format!("azr-trainer {}{path}", self.precision.name())
    }

    fn once(&mut self, m: Measure) -> Result<f64> {
        let model = self.model;
        match m {
            Measure::Prefill => {
                let t = Instant::now();
                tch::no_grad(|| -> Result<()> {
                    let (ids, mask) =
                        left_pad(std::slice::from_ref(&self.prompt), 0, model.device())?;
                    let (pos, bias) = positions_and_bias(&mask, ids.size()[1], model.kind());
                    let hidden = model.forward_hidden(&ids, &pos, &bias, None);
                    let logits = model.logits(&hidden.select(1, -1));
                    let _ = Vec::<f32>::try_from(logits.flatten(0, -1))?;
                    Ok(())
                })?;
                Ok(t.elapsed().as_secs_f64())
            }
            Measure::DecodeB1 => decode(
                model,
                &self.short[..1],
                self.spec.decode_tokens,
                self.precision,
                self.fused,
            ),
            Measure::DecodeB8 => decode(
                model,
                &self.short,
                self.spec.decode_tokens,
                self.precision,
                self.fused,
            ),
            Measure::Train => {
                let (trainer, samples) = self.train.as_mut().ok_or_else(|| {
                    Error::InvalidArgument("bench made without the training step".into())
                })?;
                let t = Instant::now();
                trainer.step(model, samples)?;
                synchronize(model.device());
                Ok(t.elapsed().as_secs_f64())
            }
        }
    }
}

/// Every measurement's seconds, per side.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Times {
    pub prefill: Vec<f64>,
    pub decode_b1: Vec<f64>,
    pub decode_b8: Vec<f64>,
    pub train: Vec<f64>,
}

impl Times {
    fn of(&mut self, m: Measure) -> &mut Vec<f64> {
        match m {
            Measure::Prefill => &mut self.prefill,
            Measure::DecodeB1 => &mut self.decode_b1,
            Measure::DecodeB8 => &mut self.decode_b8,
            Measure::Train => &mut self.train,
        }
    }

    /// Throughputs from the medians (`None` for what was not measured).
    pub fn result(&self, spec: &BenchSpec) -> BenchResult {
        let d = spec.decode_tokens as f64;
        let rate = |work: f64, times: &[f64]| median(times).map(|t| work / t);
        BenchResult {
            prefill_tokens_per_s: rate(spec.prefill_tokens as f64, &self.prefill),
            decode_b1_tokens_per_s: rate(d, &self.decode_b1),
            decode_b8_tokens_per_s: rate(8.0 * d, &self.decode_b8),
            train_step_s: median(&self.train),
        }
    }
}

/// Runs each of `measures` `spec.repeats` times on every side after a warm-up on each, the
/// sides taking turns (round r starts with side r mod the number of sides, so that no side
/// always runs on caches or clocks another just left); `progress` gets a line after each
/// round. Returns every side's times, in the order of `sides`.
pub fn run(
    spec: &BenchSpec,
    measures: &[Measure],
    sides: &mut [&mut dyn Side],
    mut progress: impl FnMut(String),
) -> Result<Vec<Times>> {
    let mut times = vec![Times::default(); sides.len()];
    let repeats = spec.repeats.max(1);
    for &m in measures {
        // Warm-up: first-call allocations, lazy initialisation, CUDA kernel selection.
        for side in sides.iter_mut() {
            side.once(m)?;
        }
        for round in 0..repeats {
            let mut line = format!("{} {}/{repeats}:", m.name(), round + 1);
            let mut taken = vec![0.0; sides.len()];
            for turn in 0..sides.len() {
                let i = (round + turn) % sides.len();
                taken[i] = sides[i].once(m)?;
            }
            for (i, (side, t)) in sides.iter().zip(&taken).enumerate() {
                times[i].of(m).push(*t);
                let sep = if i == 0 { "" } else { "," };
                line.push_str(&format!("{sep} {} {t:.3} s", side.name()));
            }
            progress(line);
        }
    }
    Ok(times)
}
