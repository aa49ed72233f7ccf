//! Throughput measurements, the same ones `scripts/bench_reference.py` takes with transformers
//! so that the two can be compared on one machine in one run: prefill tokens/s, decode tokens/s
//! at batch 1 and 8, and the time of one PPO training step. Medians over `repeats` runs after a
//! warm-up run.

use std::time::Instant;

use serde::Serialize;
use tch::{Device, Tensor};

use crate::device::synchronize;
use crate::model::{KvCache, Model, left_pad, positions_and_bias};
use crate::train::{Sample, TrainConfig, Trainer};
use crate::{Error, Result};

#[derive(Debug, Clone, Serialize)]
pub struct BenchSpec {
    pub prefill_tokens: usize,
    pub decode_tokens: usize,
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
            train_samples: 4,
            train_prompt_tokens: 64,
            train_response_tokens: 64,
            repeats: 3,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    pub prefill_tokens_per_s: f64,
    pub decode_b1_tokens_per_s: f64,
    pub decode_b8_tokens_per_s: f64,
    pub train_step_s: Option<f64>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Deterministic token ids that avoid the special tokens at the top of real vocabularies.
fn ids(n: usize, offset: usize, vocab: i64) -> Vec<i64> {
    let range = (vocab / 2).max(1);
    (0..n)
        .map(|i| 100 + ((i * 7919 + offset * 104_729) as i64 % range))
        .map(|t| t.min(vocab - 1))
        .collect()
}

/// Times `repeats` calls of `f` after a warm-up call, each one waited for on the device
/// (CUDA work is asynchronous).
fn timed<F: FnMut() -> Result<()>>(device: Device, repeats: usize, mut f: F) -> Result<Vec<f64>> {
    f()?; // warm-up: first-call allocations, lazy initialisation, CUDA kernel selection
    synchronize(device);
    let mut out = Vec::with_capacity(repeats);
    for _ in 0..repeats.max(1) {
        let t = Instant::now();
        f()?;
        synchronize(device);
        out.push(t.elapsed().as_secs_f64());
    }
    Ok(out)
}

/// Prefill of `prompts`, then `steps` single-token decode steps (greedy), under no_grad.
fn decode(model: &Model, prompts: &[Vec<i64>], steps: usize) -> Result<f64> {
    tch::no_grad(|| {
        let (ids, mut mask) = left_pad(prompts, 0, model.device())?;
        let mut cache = KvCache::new(model.config.num_layers);
        let (pos, bias) = positions_and_bias(&mask, ids.size()[1], model.kind());
        let hidden = model.forward_hidden(&ids, &pos, &bias, Some(&mut cache));
        let mut next = model.logits(&hidden.select(1, -1)).argmax(-1, true);
        let t = Instant::now();
        for _ in 0..steps {
            mask = Tensor::cat(&[&mask, &mask.ones_like().narrow(1, 0, 1)], 1);
            let (pos, bias) = positions_and_bias(&mask, 1, model.kind());
            let hidden = model.forward_hidden(&next, &pos, &bias, Some(&mut cache));
            next = model.logits(&hidden.select(1, -1)).argmax(-1, true);
        }
        // Reading the last token back forces the work to finish (matters on CUDA).
        let _ = Vec::<i64>::try_from(next.flatten(0, -1))?;
        Ok(t.elapsed().as_secs_f64())
    })
}

/// Runs every measurement; `train` = false skips the training step (it needs optimizer state,
/// three times the model's memory).
pub fn run(model: &Model, spec: &BenchSpec, train: bool) -> Result<BenchResult> {
    let vocab = model.config.vocab_size;
    if spec.prefill_tokens + spec.decode_tokens + 1 > model.config.max_position_embeddings as usize
    {
        return Err(Error::InvalidArgument(
            "bench sequence longer than the model allows".into(),
        ));
    }
    let prompt = ids(spec.prefill_tokens, 0, vocab);
    let prefill = timed(model.device(), spec.repeats, || {
        tch::no_grad(|| {
            let (ids, mask) = left_pad(std::slice::from_ref(&prompt), 0, model.device())?;
            let (pos, bias) = positions_and_bias(&mask, ids.size()[1], model.kind());
            let hidden = model.forward_hidden(&ids, &pos, &bias, None);
            let _ = Vec::<f32>::try_from(model.logits(&hidden.select(1, -1)).flatten(0, -1))?;
            Ok(())
        })
    })?;
    let short: Vec<Vec<i64>> = (0..8).map(|i| ids(16, i + 1, vocab)).collect();
    let mut b1 = Vec::new();
    let mut b8 = Vec::new();
    timed(model.device(), spec.repeats, || {
        b1.push(decode(model, &short[..1], spec.decode_tokens)?);
        Ok(())
    })?;
    timed(model.device(), spec.repeats, || {
        b8.push(decode(model, &short, spec.decode_tokens)?);
        Ok(())
    })?;
    // Drop the warm-up runs' times.
    b1.remove(0);
    b8.remove(0);
    let train_step_s = if train {
        let samples: Vec<Sample> = (0..spec.train_samples)
            .map(|i| Sample {
                prompt: ids(spec.train_prompt_tokens, 10 + i, vocab),
                response: ids(spec.train_response_tokens, 20 + i, vocab),
                old_logprobs: vec![-1.0; spec.train_response_tokens],
                advantages: vec![if i % 2 == 0 { 1.0 } else { -1.0 }; spec.train_response_tokens],
            })
            .collect();
        let config = TrainConfig {
            micro_batch: spec.train_samples,
            lr: 1e-7,
            ..Default::default()
        };
        let mut trainer = Trainer::new(model, config)?;
        Some(median(timed(model.device(), spec.repeats, || {
            trainer.step(model, &samples).map(|_| ())
        })?))
    } else {
        None
    };
    let d = spec.decode_tokens as f64;
    Ok(BenchResult {
        prefill_tokens_per_s: spec.prefill_tokens as f64 / median(prefill),
        decode_b1_tokens_per_s: d / median(b1),
        decode_b8_tokens_per_s: 8.0 * d / median(b8),
        train_step_s,
    })
}
