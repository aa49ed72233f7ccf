//! Batched generation with a KV cache, and teacher-forced log-probs of given responses.
//!
//! Prompts of different lengths are left-padded into one batch; positions count real tokens
//! only and padding is masked out of attention, so each sequence is computed as it would be
//! alone (up to float rounding). A batch holds at most `max_batch` sequences; a waiting prompt
//! takes the row of a finished one, its cache joining the batch's padded the same way
//! (continuous batching). Log-probs are those of the distribution tokens are drawn from
//! (logits / temperature, before top-p truncation), which is what a PPO ratio compares against;
//! `response_logprobs` computes the same quantity with gradients for training.

use tch::{Device, Kind, Tensor};

use crate::model::{AttnMask, KvCache, Model, Precision, left_pad, positions_and_bias};
use crate::tokenizer::TextTokenizer;
use crate::vector;
use crate::{Error, Result};
use azr::rng::SplitMix64;

/// How to pick tokens and when to stop.
#[derive(Debug, Clone)]
pub struct SamplingParams {
    pub max_new_tokens: usize,
    /// 0 means greedy (argmax); log-probs are then those of the untempered distribution.
    pub temperature: f64,
    /// Nucleus sampling: draw only from the smallest set of tokens whose probability reaches
    /// `top_p` (1.0 = no truncation).
    pub top_p: f64,
    /// Generation of a sequence stops once its decoded text contains one of these; the text is
    /// cut before it (the tokens up to the one that completed it are kept).
    pub stop_strings: Vec<String>,
    /// Seed of the sampling generator; the same seed reproduces the same samples.
    pub seed: Option<u64>,
    /// The weights decoding reads: f32, or a rollout copy (see [`Precision`]). The prompt's
    /// forward pass (many rows, compute-bound) always runs in f32.
    pub precision: Precision,
    /// Run the prompts' common leading tokens through the model once and give every prompt
    /// a copy of their keys and values, rather than once per prompt (see [`generate`]).
    pub share_prefix: bool,
    /// Sequences decoded at once (0: every prompt): a finished sequence's row is given to
    /// the next waiting prompt, so the batch stays full while prompts wait.
    pub max_batch: usize,
    /// When set (a run being stopped), generation ends at its next step with
    /// [`Error::Cancelled`].
    pub cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    /// Run a prompt given several times through the model once and copy its keys, values
    /// and logits to each of its rows (see [`generate`]); false computes every row's prompt.
    pub merge_repeats: bool,
    /// Take the fused decode step where it applies ([`decode_step`]); false runs every step
    /// through libtorch's operators ([`decode_step_libtorch`]). Both are kept so that the
    /// paths can be measured against each other (`bench-selfplay`).
    pub fused_steps: bool,
}

/// The fewest common leading tokens worth a separate forward pass: below this the extra
/// pass and the cache's copies cost more than the prompts' rows save.
pub const MIN_SHARED_PREFIX: usize = 32;

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            max_new_tokens: 64,
            temperature: 0.0,
            top_p: 1.0,
            stop_strings: vec![],
            seed: None,
            precision: Precision::F32,
            share_prefix: true,
            max_batch: 0,
            cancel: None,
            merge_repeats: true,
            fused_steps: true,
        }
    }
}

impl SamplingParams {
    /// These parameters on the plain path: decoding from the f32 weights, every prompt row
    /// computed in full, every step through libtorch's operators (what `bench-selfplay`
    /// measures the configured path against).
    pub fn plain_path(self) -> Self {
        SamplingParams {
            precision: Precision::F32,
            share_prefix: false,
            merge_repeats: false,
            fused_steps: false,
            ..self
        }
    }

    pub fn greedy(max_new_tokens: usize) -> Self {
        SamplingParams {
            max_new_tokens,
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    Eos,
    Stop,
    Length,
}

/// One generated continuation.
#[derive(Debug, Clone)]
pub struct Completion {
    /// Generated token ids (including the EOS token when one ended it).
    pub tokens: Vec<i64>,
    /// Log-probability of each generated token under the sampling distribution.
    pub logprobs: Vec<f32>,
    /// Decoded text, special tokens skipped, cut before a stop string.
    pub text: String,
    pub finish: FinishReason,
}

/// Picks one token per row of `logits` `[B, V]` (f32) and returns `(tokens, logprobs)`.
///
/// Sampling draws from `rng` on the CPU (not libtorch's global generator) so that a seed
/// reproduces a run whatever else the process is doing. Each row is one copy out of the
/// tensor and vectorised passes over it: a batch of 16 rows of a 152k vocabulary through
/// libtorch's `log_softmax` and an f64 `exp` per entry took ≈ 3 ms a row, every step.
fn pick(logits: &Tensor, p: &SamplingParams, rng: &mut SplitMix64) -> Result<(Vec<i64>, Vec<f32>)> {
    let logits = logits.to_device(Device::Cpu).to_kind(Kind::Float);
    let vocab = match logits.size().as_slice() {
        [_, v] if *v > 0 => *v as usize,
        shape => {
            return Err(Error::InvalidArgument(format!(
                "logits of shape {shape:?}: expected [rows, vocabulary]"
            )));
        }
    };
    let values = Vec::<f32>::try_from(logits.flatten(0, -1))?;
    let mut scratch = vec![0f32; vocab];
    let (mut next, mut lps) = (Vec::new(), Vec::new());
    for row in values.chunks_exact(vocab) {
        let (token, lp) = if p.temperature <= 0.0 {
            greedy_row(row, &mut scratch)
        } else {
            sample_row(row, p.temperature, p.top_p, rng, &mut scratch)
        };
        next.push(token as i64);
        lps.push(lp);
    }
    Ok((next, lps))
}

/// The first most likely index of `row` (as `argmax`) and its log-prob.
fn greedy_row(row: &[f32], scratch: &mut [f32]) -> (usize, f32) {
    let top = vector::max(row);
    let token = row.iter().position(|&v| v == top).unwrap_or(0);
    let sum = vector::exp_shifted(row, top, scratch);
    (token, row[token] - top - sum.ln())
}

/// Draws an index from `row / temperature`'s softmax, restricted to the top-p nucleus: the
/// most likely tokens, in order, until their mass reaches `top_p` (at least one token);
/// returns it and its log-prob under the untruncated distribution.
fn sample_row(
    row: &[f32],
    temperature: f64,
    top_p: f64,
    rng: &mut SplitMix64,
    weights: &mut [f32],
) -> (usize, f32) {
    let inv = (1.0 / temperature) as f32;
    let scaled: Vec<f32> = row.iter().map(|&v| v * inv).collect();
    let top = vector::max(&scaled);
    // `weights` ∝ probabilities (the largest is 1), `sum` their total.
    let sum = vector::exp_shifted(&scaled, top, weights);
    let logprob = |i: usize| scaled[i] - top - sum.ln();
    let weights = &*weights;
    if top_p < 1.0 {
        let mut order: Vec<usize> = (0..weights.len()).collect();
        order.sort_unstable_by(|&a, &b| weights[b].total_cmp(&weights[a]).then(a.cmp(&b)));
        let (mut mass, mut keep) = (0.0, 0);
        let want = top_p * f64::from(sum);
        for &i in &order {
            keep += 1;
            mass += f64::from(weights[i]);
            if mass >= want {
                break;
            }
        }
        order.truncate(keep.max(1));
        let token = draw(order.iter().copied(), weights, rng);
        return (token, logprob(token));
    }
    let token = draw(0..weights.len(), weights, rng);
    (token, logprob(token))
}

/// Draws one of `candidates` with probability ∝ its weight.
fn draw(
    candidates: impl Iterator<Item = usize> + Clone,
    weights: &[f32],
    rng: &mut SplitMix64,
) -> usize {
    let total: f64 = candidates.clone().map(|i| f64::from(weights[i])).sum();
    let mut u = rng.uniform() * total;
    let (mut first, mut last) = (None, None);
    for i in candidates {
        first.get_or_insert(i);
        let w = f64::from(weights[i]);
        u -= w;
        if u < 0.0 {
            return i;
        }
        if w > 0.0 {
            last = Some(i);
        }
    }
    // Rounding left u a hair above zero: the last candidate with any weight.
    last.or(first).unwrap_or(0)
}

/// Where one [`generate`] call's time went.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GenerationStats {
    /// Prompt positions run through the model: a prompt given several times counts once,
    /// a shared opening once for all.
    pub prompt_tokens: usize,
    /// Seconds of the prompts' forward passes (to the first logits).
    pub prefill_s: f64,
    /// Seconds of the decode steps, sampling included.
    pub decode_s: f64,
}

/// Generates continuations of `prompts` (token ids): at most `params.max_batch` sequences at
/// a time, a waiting prompt taking the place of each finished sequence (continuous batching).
///
/// A prompt given several times is run through the model once (`merge_repeats`) and the
/// prompts' common opening once (`share_prefix`), per group of prompts joining the batch.
pub fn generate(
    model: &Model,
    tokenizer: &TextTokenizer,
    prompts: &[Vec<i64>],
    params: &SamplingParams,
) -> Result<Vec<Completion>> {
    generate_with_stats(model, tokenizer, prompts, params).map(|(out, _)| out)
}

/// Prompts run through the model together: their KV cache, attention mask and the logits of
/// each prompt's next token, one row per prompt in the order given.
struct Prefilled {
    cache: KvCache,
    mask: Tensor,
    logits: Tensor,
    /// Positions computed.
    positions: usize,
}

/// Runs `prompts` through the model, leaving room in the cache for `new_tokens` more.
///
/// A prompt given several times (a group of rollouts, a solve rate's samples) is run once
/// (`merge_repeats`); its keys, values and last logits are then copied to each of its rows,
/// which sample independently from there. The prompts' common opening (the chat template
/// and instruction text) is computed once, as a batch of one, when it is at least
/// [`MIN_SHARED_PREFIX`] tokens and `share_prefix` is set; every prompt continues from a
/// copy of its keys and values. At least one token of each prompt is left to its own pass,
/// whose last position gives the first logits.
fn prefill(
    model: &Model,
    prompts: &[Vec<i64>],
    params: &SamplingParams,
    new_tokens: usize,
) -> Result<Prefilled> {
    let device = model.device();
    let mut unique: Vec<Vec<i64>> = Vec::new();
    let mut first_seen = std::collections::HashMap::new();
    let row_of: Vec<i64> = prompts
        .iter()
        .map(|p| {
            let mut add = || {
                unique.push(p.clone());
                unique.len() as i64 - 1
            };
            if params.merge_repeats {
                *first_seen.entry(p.as_slice()).or_insert_with(add)
            } else {
                add()
            }
        })
        .collect();
    let shortest = unique.iter().map(Vec::len).min().unwrap_or(0);
    let shared = match &unique[..] {
        [first, rest @ ..] if params.share_prefix && !rest.is_empty() => rest
            .iter()
            .map(|p| first.iter().zip(p).take_while(|(a, b)| a == b).count())
            .min()
            .unwrap_or(0)
            .min(shortest.saturating_sub(1)),
        _ => 0,
    };
    let shared = if shared >= MIN_SHARED_PREFIX {
        shared
    } else {
        0
    };
    let suffixes: Vec<Vec<i64>> = unique.iter().map(|p| p[shared..].to_vec()).collect();
    if tracing::enabled!(tracing::Level::DEBUG) {
        // What a prefix tree of the prompts would leave to compute: each prompt's tokens past
        // its longest common opening with an earlier one.
        let tree: usize = unique
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let common = unique[..i]
                    .iter()
                    .map(|q| p.iter().zip(q).take_while(|(a, b)| a == b).count())
                    .max()
                    .unwrap_or(0);
                p.len() - common.min(p.len().saturating_sub(1))
            })
            .sum();
        tracing::debug!(
            prompts = prompts.len(),
            unique = unique.len(),
            shared,
            computed = shared + suffixes.iter().map(Vec::len).sum::<usize>(),
            with_a_prefix_tree = tree,
            "prompt positions"
        );
    }
    let (ids, suffix_mask) = left_pad(&suffixes, 0, device)?;
    let mut cache = KvCache::with_capacity(
        model.config.num_layers,
        (shared as i64) + ids.size()[1] + new_tokens as i64,
    );
    // Prefix columns (all real) then each suffix left-padded: padding sits between the two,
    // masked out of attention, and positions count real tokens, so each prompt is computed as
    // it would be alone.
    let unique_mask = if shared > 0 {
        let prefix = Tensor::ones(
            [unique.len() as i64, shared as i64],
            (suffix_mask.kind(), device),
        );
        Tensor::cat(&[&prefix, &suffix_mask], 1)
    } else {
        suffix_mask
    };
    let positions = shared + suffixes.iter().map(Vec::len).sum::<usize>();
    let (mask, logits) = tch::no_grad(|| {
        if shared > 0 {
            let prefix = Tensor::from_slice(&unique[0][..shared])
                .view([1, shared as i64])
                .to_device(device);
            let prefix_mask = unique_mask.narrow(0, 0, 1).narrow(1, 0, shared as i64);
            let (positions, bias) = positions_and_bias(&prefix_mask, shared as i64, model.kind());
            let _ = model.forward_hidden(&prefix, &positions, &bias, Some(&mut cache));
            let copies = Tensor::zeros([unique.len() as i64], (Kind::Int64, device));
            cache.keep_rows(&copies);
        }
        let (positions, bias) = positions_and_bias(&unique_mask, ids.size()[1], model.kind());
        let hidden = model.forward_hidden(&ids, &positions, &bias, Some(&mut cache));
        let logits = model.logits(&hidden.select(1, -1));
        if unique.len() < prompts.len() {
            let rows = Tensor::from_slice(&row_of).to_device(device);
            cache.keep_rows(&rows);
            (
                unique_mask.index_select(0, &rows),
                logits.index_select(0, &rows),
            )
        } else {
            (unique_mask, logits)
        }
    });
    Ok(Prefilled {
        cache,
        mask,
        logits,
        positions,
    })
}

/// [`generate`], and where its time went.
pub fn generate_with_stats(
    model: &Model,
    tokenizer: &TextTokenizer,
    prompts: &[Vec<i64>],
    params: &SamplingParams,
) -> Result<(Vec<Completion>, GenerationStats)> {
    let mut stats = GenerationStats::default();
    let c = &model.config;
    let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
    if longest + params.max_new_tokens > c.max_position_embeddings as usize {
        return Err(Error::InvalidArgument(format!(
            "prompt ({longest} tokens) + max_new_tokens ({}) exceeds the model's {} positions",
            params.max_new_tokens, c.max_position_embeddings
        )));
    }
    if let Some(&bad) = prompts
        .iter()
        .flatten()
        .find(|&&t| t < 0 || t >= c.vocab_size)
    {
        return Err(Error::InvalidArgument(format!(
            "token id {bad} outside the vocabulary"
        )));
    }
    if prompts.iter().any(Vec::is_empty) {
        return Err(Error::InvalidArgument(
            "a prompt in the batch is empty".into(),
        ));
    }
    let mut rng = match params.seed {
        Some(seed) => SplitMix64::new(seed),
        None => SplitMix64::from_entropy(),
    };
    let device = model.device();
    let b = prompts.len();
    let mut out: Vec<Completion> = (0..b)
        .map(|_| Completion {
            tokens: vec![],
            logprobs: vec![],
            text: String::new(),
            finish: FinishReason::Length,
        })
        .collect();
    if params.max_new_tokens == 0 || b == 0 {
        return Ok((out, stats));
    }
    let limit = match params.max_batch {
        0 => b,
        n => n.min(b),
    };
    let step_fn = if params.fused_steps {
        decode_step
    } else {
        decode_step_libtorch
    };
    // `active[row]` is the prompt index of each row in the batch; finished rows are dropped
    // from the batch (and the cache) so they cost nothing afterwards, and waiting prompts
    // join in their place. Rows sample in batch order from one generator, so a batch that
    // never refills draws what it always drew.
    let mut active: Vec<usize> = Vec::new();
    let mut waiting = 0..b;
    let mut running: Option<(KvCache, Tensor)> = None;
    let mut logits: Option<Tensor> = None;
    tch::no_grad(|| -> Result<()> {
        loop {
            if params
                .cancel
                .as_ref()
                .is_some_and(|c| c.load(std::sync::atomic::Ordering::Relaxed))
            {
                return Err(Error::Cancelled);
            }
            // Admit waiting prompts into the free rows.
            let free = limit - active.len();
            if free > 0 && !waiting.is_empty() {
                let take = free.min(waiting.len());
                let joining: Vec<usize> = waiting.by_ref().take(take).collect();
                let batch: Vec<Vec<i64>> = joining.iter().map(|&i| prompts[i].clone()).collect();
                let t = std::time::Instant::now();
                let p = prefill(model, &batch, params, params.max_new_tokens)?;
                stats.prompt_tokens += p.positions;
                running = Some(match running.take() {
                    None => (p.cache, p.mask),
                    Some((mut cache, mask)) => {
                        cache.append_rows(p.cache);
                        (cache, cat_left_padded(&mask, &p.mask))
                    }
                });
                logits = Some(match logits.take() {
                    None => p.logits,
                    Some(l) => Tensor::cat(&[&l, &p.logits], 0),
                });
                active.extend(joining);
                stats.prefill_s += t.elapsed().as_secs_f64();
            }
            let (Some((cache, mask)), Some(l)) = (running.as_mut(), logits.take()) else {
                break;
            };
            let t = std::time::Instant::now();
            let (next_v, lp_v) = pick(&l, params, &mut rng)?;
            let mut continuing = Vec::with_capacity(active.len());
            for (row, &i) in active.iter().enumerate() {
                let o = &mut out[i];
                o.tokens.push(next_v[row]);
                o.logprobs.push(lp_v[row]);
                if tokenizer.eos_ids.contains(&next_v[row]) {
                    o.finish = FinishReason::Eos;
                    continue;
                }
                if !params.stop_strings.is_empty() {
                    let text = tokenizer.decode(&o.tokens, true)?;
                    if params
                        .stop_strings
                        .iter()
                        .any(|s| text.contains(s.as_str()))
                    {
                        o.finish = FinishReason::Stop;
                        continue;
                    }
                }
                if o.tokens.len() >= params.max_new_tokens {
                    continue;
                }
                continuing.push(row);
            }
            if continuing.is_empty() {
                active.clear();
                running = None;
            } else {
                let mut next_v = next_v;
                if continuing.len() < active.len() {
                    let rows: Vec<i64> = continuing.iter().map(|&r| r as i64).collect();
                    let rows = Tensor::from_slice(&rows).to_device(device);
                    *mask = mask.index_select(0, &rows);
                    cache.keep_rows(&rows);
                    next_v = continuing.iter().map(|&r| next_v[r]).collect();
                    active = continuing.iter().map(|&r| active[r]).collect();
                }
                let next = Tensor::from_slice(&next_v)
                    .view([active.len() as i64, 1])
                    .to_device(device);
                logits = Some(step_fn(model, mask, cache, &next, params.precision));
            }
            stats.decode_s += t.elapsed().as_secs_f64();
        }
        Ok(())
    })?;
    for o in &mut out {
        let text = tokenizer.decode(&o.tokens, true)?;
        o.text = match params
            .stop_strings
            .iter()
            .filter_map(|s| text.find(s.as_str()))
            .min()
        {
            Some(cut) => text[..cut].to_string(),
            None => text,
        };
    }
    Ok((out, stats))
}

/// The rows of `a` `[A, Sa]` then those of `b` `[B, Sb]`, each left-padded with zeros
/// (masked-out columns) to the longer width, as [`KvCache::append_rows`] aligns the caches.
fn cat_left_padded(a: &Tensor, b: &Tensor) -> Tensor {
    let (wa, wb) = (a.size()[1], b.size()[1]);
    let width = wa.max(wb);
    let pad = |t: &Tensor, w: i64| {
        if w == width {
            t.shallow_clone()
        } else {
            let zeros = Tensor::zeros([t.size()[0], width - w], (t.kind(), t.device()));
            Tensor::cat(&[&zeros, t], 1)
        }
    };
    Tensor::cat(&[pad(a, wa), pad(b, wb)], 0)
}

/// One decode step: `next` `[B, 1]` (one new token per row) through the model after what
/// `cache` holds, from the weights `precision` names; `mask` `[B, S]` gains the new column.
/// Returns the logits `[B, V]` of the next position.
///
/// On the CPU the step runs fused ([`Model::decode_fused`]: the same arithmetic up to
/// rounding, without libtorch's per-operator overhead) where it applies, through libtorch
/// otherwise.
pub fn decode_step(
    model: &Model,
    mask: &mut Tensor,
    cache: &mut KvCache,
    next: &Tensor,
    precision: Precision,
) -> Tensor {
    *mask = Tensor::cat(&[&*mask, &mask.ones_like().narrow(1, 0, 1)], 1);
    if mask.device() == Device::Cpu && mask.kind() == Kind::Int64 {
        let as_vec = |t: &Tensor| Vec::<i64>::try_from(t.flatten(0, -1)).ok();
        if let (Some(tokens), Some(rows)) = (as_vec(next), as_vec(mask))
            && let Some(logits) = model.decode_fused(&tokens, &rows, cache, precision)
        {
            return logits;
        }
    }
    decode_step_libtorch_after(model, mask, cache, next, precision)
}

/// [`decode_step`] through libtorch's operators whatever the device: the path the fused
/// step is measured and tested against.
pub fn decode_step_libtorch(
    model: &Model,
    mask: &mut Tensor,
    cache: &mut KvCache,
    next: &Tensor,
    precision: Precision,
) -> Tensor {
    *mask = Tensor::cat(&[&*mask, &mask.ones_like().narrow(1, 0, 1)], 1);
    decode_step_libtorch_after(model, mask, cache, next, precision)
}

/// The libtorch step once `mask` has its new column.
fn decode_step_libtorch_after(
    model: &Model,
    mask: &Tensor,
    cache: &mut KvCache,
    next: &Tensor,
    precision: Precision,
) -> Tensor {
    let (positions, bias) = positions_and_bias(mask, 1, model.kind());
    let hidden = model.forward_hidden_at(next, &positions, &bias, Some(cache), precision);
    model.logits_at(&hidden.select(1, -1), precision)
}

/// A batch of prompt + response sequences laid out for one teacher-forced forward pass:
/// prompts left-padded to `prompt_len`, responses right-padded to `response_len` after them.
pub struct TeacherForced {
    pub ids: Tensor,
    pub positions: Tensor,
    pub bias: AttnMask,
    /// Response ids `[B, R]` (padding = 0) and mask (1 = real token), f32.
    pub responses: Tensor,
    pub response_mask: Tensor,
    pub prompt_len: i64,
    pub response_len: i64,
}

impl TeacherForced {
    pub fn new(model: &Model, prompts: &[Vec<i64>], responses: &[Vec<i64>]) -> Result<Self> {
        if prompts.len() != responses.len() || prompts.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "{} prompts but {} responses",
                prompts.len(),
                responses.len()
            )));
        }
        let device = model.device();
        let r = responses.iter().map(Vec::len).max().unwrap_or(0);
        if r == 0 {
            return Err(Error::InvalidArgument("all responses are empty".into()));
        }
        let vocab = model.config.vocab_size;
        if let Some(&bad) = prompts
            .iter()
            .chain(responses)
            .flatten()
            .find(|&&t| t < 0 || t >= vocab)
        {
            return Err(Error::InvalidArgument(format!(
                "token id {bad} outside the vocabulary"
            )));
        }
        let longest = prompts
            .iter()
            .zip(responses)
            .map(|(a, b)| a.len() + b.len())
            .max()
            .unwrap_or(0);
        if longest > model.config.max_position_embeddings as usize {
            return Err(Error::InvalidArgument(format!(
                "a prompt + response of {longest} tokens exceeds the model's {} positions",
                model.config.max_position_embeddings
            )));
        }
        let (prompt_ids, prompt_mask) = left_pad(prompts, 0, device)?;
        // Responses are right-padded after the (left-padded) prompts; causality keeps the
        // trailing padding from influencing any real token.
        let mut resp = Vec::with_capacity(responses.len() * r);
        let mut resp_mask = Vec::with_capacity(responses.len() * r);
        for s in responses {
            resp.extend(s.iter().copied().chain(std::iter::repeat_n(0, r - s.len())));
            resp_mask.extend(
                std::iter::repeat_n(1i64, s.len()).chain(std::iter::repeat_n(0, r - s.len())),
            );
        }
        let shape = [responses.len() as i64, r as i64];
        let resp = Tensor::from_slice(&resp).view(shape).to_device(device);
        let resp_mask = Tensor::from_slice(&resp_mask).view(shape).to_device(device);
        let ids = Tensor::cat(&[&prompt_ids, &resp], 1);
        let mask = Tensor::cat(&[&prompt_mask, &resp_mask], 1);
        let (positions, bias) = positions_and_bias(&mask, ids.size()[1], model.kind());
        Ok(TeacherForced {
            ids,
            positions,
            bias,
            responses: resp,
            response_mask: resp_mask.to_kind(Kind::Float),
            prompt_len: prompt_ids.size()[1],
            response_len: r as i64,
        })
    }

    /// Masked log-probs `[B, R]` of the responses from the decoder's final hidden states.
    pub fn logprobs(&self, model: &Model, hidden: &Tensor, temperature: f64) -> Tensor {
        // The hidden state at position t predicts token t + 1.
        let logits = model.logits(&hidden.narrow(1, self.prompt_len - 1, self.response_len));
        let logits = if temperature > 0.0 {
            logits / temperature
        } else {
            logits
        };
        let logp = logits.log_softmax(-1, Kind::Float);
        let lp = logp
            .gather(2, &self.responses.unsqueeze(2), false)
            .squeeze_dim(2);
        lp * &self.response_mask
    }
}

/// Log-probs of `responses[i]` given `prompts[i]`, teacher-forced in one forward pass.
///
/// Returns `(logprobs, mask)`, both `[B, R]` with `R` the longest response: `logprobs[i, j]` is
/// log p(responses[i][j] | prompt, responses[i][..j]) at `temperature` (≤ 0 means 1), and
/// `mask` is 1 on real response tokens, 0 on padding. Differentiable when grads are enabled.
pub fn response_logprobs(
    model: &Model,
    prompts: &[Vec<i64>],
    responses: &[Vec<i64>],
    temperature: f64,
) -> Result<(Tensor, Tensor)> {
    let tf = TeacherForced::new(model, prompts, responses)?;
    let hidden = model.forward_hidden(&tf.ids, &tf.positions, &tf.bias, None);
    let lp = tf.logprobs(model, &hidden, temperature);
    Ok((lp, tf.response_mask))
}

/// Encodes `prompt` (through the chat template when `chat`), generates, and returns the
/// completion — the CLI's path, also handy in tests.
pub fn generate_text(
    model: &Model,
    tokenizer: &TextTokenizer,
    prompt: &str,
    chat: bool,
    params: &SamplingParams,
) -> Result<Completion> {
    let text = if chat {
        tokenizer.apply_chat_template(&[("user", prompt)])?
    } else {
        prompt.to_string()
    };
    let ids = tokenizer.encode(&text)?;
    let mut out = generate(model, tokenizer, &[ids], params)?;
    out.pop()
        .ok_or_else(|| Error::InvalidArgument("empty generation batch".into()))
}

#[cfg(test)]
mod tests {
    use super::{greedy_row, sample_row};
    use azr::rng::SplitMix64;

    fn softmax(row: &[f32], temperature: f64) -> Vec<f64> {
        let z: Vec<f64> = row.iter().map(|&v| f64::from(v) / temperature).collect();
        let top = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = z.iter().map(|v| (v - top).exp()).sum();
        z.iter().map(|v| (v - top).exp() / sum).collect()
    }

    #[test]
    fn sampled_tokens_follow_the_tempered_softmax_and_its_nucleus() {
        let row = [2.0f32, 1.0, 0.0, -1.0, 3.0, 1.0, 0.5, -2.0, 2.5];
        let mut scratch = vec![0.0; row.len()];
        let mut rng = SplitMix64::new(5);
        let draws = 40_000;
        for (temperature, top_p) in [(1.0, 1.0), (0.5, 1.0), (1.7, 1.0), (1.0, 0.8)] {
            let probs = softmax(&row, temperature);
            // The nucleus: the most likely tokens until their mass reaches top_p.
            let mut order: Vec<usize> = (0..row.len()).collect();
            order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
            let mut kept = vec![false; row.len()];
            let mut mass = 0.0;
            for &i in &order {
                kept[i] = true;
                mass += probs[i];
                if mass >= top_p {
                    break;
                }
            }
            let mut counts = vec![0usize; row.len()];
            for _ in 0..draws {
                let (token, lp) = sample_row(&row, temperature, top_p, &mut rng, &mut scratch);
                assert!(
                    (f64::from(lp) - probs[token].ln()).abs() < 1e-5,
                    "log-prob of {token}"
                );
                counts[token] += 1;
            }
            for i in 0..row.len() {
                let want = if kept[i] { probs[i] / mass } else { 0.0 };
                let got = counts[i] as f64 / draws as f64;
                assert!(
                    (got - want).abs() < 0.01,
                    "T {temperature} top-p {top_p}: token {i} drawn {got}, expected {want}"
                );
            }
        }
    }

    #[test]
    fn greedy_takes_the_first_largest_logit_with_its_log_prob() {
        let row = [0.5f32, 3.0, -1.0, 3.0];
        let mut scratch = vec![0.0; row.len()];
        let (token, lp) = greedy_row(&row, &mut scratch);
        assert_eq!(token, 1);
        assert!((f64::from(lp) - softmax(&row, 1.0)[1].ln()).abs() < 1e-6);
    }
}
