//! One policy-gradient step: PPO-clip loss over token-level advantages, AdamW, gradient
//! clipping, gradient accumulation over micro-batches.
//!
//! The loss is averaged over all response tokens of the whole step (not per micro-batch), so
//! accumulating micro-batches gives the same gradient as one big batch.

use std::path::Path;

use tch::{Kind, Tensor};

use crate::adamw::{AdamW, AdamWConfig};
use crate::generate::TeacherForced;
use crate::model::{Model, Precision};
use crate::{Error, Result};

/// One rollout sample as the learner sees it.
#[derive(Debug, Clone)]
pub struct Sample {
    pub prompt: Vec<i64>,
    pub response: Vec<i64>,
    /// Log-probs of `response` under the policy that generated it; `None` when that policy
    /// is the one this step starts from (the first mini-batch of an on-policy update): the
    /// step's own log-probs, detached, are then the old ones, which saves the forward pass
    /// that would recompute them. The ratio is 1 and the gradient the same.
    pub old_logprobs: Option<Vec<f32>>,
    /// Advantage of each response token (often one value repeated).
    pub advantages: Vec<f32>,
}

#[derive(Debug, Clone)]
pub struct TrainConfig {
    pub lr: f64,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// PPO clip range ε: the ratio is clipped to [1 − ε, 1 + ε].
    pub clip: f64,
    /// Global gradient-norm bound (0 = no clipping).
    pub max_grad_norm: f64,
    /// Samples per forward/backward pass.
    pub micro_batch: usize,
    /// Temperature the samples were drawn at (log-probs must be computed at the same one).
    pub temperature: f64,
    /// Keep only each layer's input during the forward pass and recompute the layer in the
    /// backward pass: activation memory of one layer instead of all, for ~1.3× the compute.
    pub gradient_checkpointing: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            lr: 1e-6,
            weight_decay: 0.0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            clip: 0.2,
            max_grad_norm: 1.0,
            micro_batch: 4,
            temperature: 1.0,
            gradient_checkpointing: false,
        }
    }
}

/// Token-level PPO-clip loss summed over masked tokens:
/// `Σ mask · max(−A·r, −A·clip(r, 1−ε, 1+ε))` with `r = exp(new − old)`.
pub fn ppo_clip_loss_sum(
    new_logprobs: &Tensor,
    old_logprobs: &Tensor,
    advantages: &Tensor,
    mask: &Tensor,
    clip: f64,
) -> Tensor {
    let ratio = (new_logprobs - old_logprobs).exp();
    let unclipped = -advantages * &ratio;
    let clipped = -advantages * ratio.clamp(1.0 - clip, 1.0 + clip);
    (unclipped.max_other(&clipped) * mask).sum(Kind::Float)
}

/// Statistics of one step.
#[derive(Debug, Clone)]
pub struct StepStats {
    /// Mean PPO loss per response token, before the update.
    pub loss: f64,
    pub tokens: usize,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Per sample, the log-probs of its response under the weights before the update (what
    /// the forward pass computed); `None` for a sample skipped because it has no gradient.
    pub logprobs: Vec<Option<Vec<f32>>>,
}

/// Owns the optimiser state for a model's trainable weights.
pub struct Trainer {
    opt: AdamW,
    pub config: TrainConfig,
}

impl Trainer {
    pub fn new(model: &Model, config: TrainConfig) -> Result<Self> {
        let opt = AdamW::new(
            model.variables(),
            AdamWConfig {
                lr: config.lr,
                beta1: config.beta1,
                beta2: config.beta2,
                eps: config.eps,
                weight_decay: config.weight_decay,
            },
        );
        Ok(Trainer { opt, config })
    }

    /// Optimiser steps taken (restored by [`Trainer::load_state`]).
    pub fn optimizer_steps(&self) -> u64 {
        self.opt.steps
    }

    /// Saves the optimiser state (moment estimates, step count) as safetensors.
    pub fn save_state(&self, path: &Path) -> Result<()> {
        self.opt.save(path)
    }

    /// Restores what [`Trainer::save_state`] wrote, for the same model.
    pub fn load_state(&mut self, path: &Path) -> Result<()> {
        self.opt.load(path)
    }

    /// Accumulates gradients over micro-batches of `samples`, then clips and applies them.
    pub fn step(&mut self, model: &Model, samples: &[Sample]) -> Result<StepStats> {
        for (i, s) in samples.iter().enumerate() {
            let old_len = s.old_logprobs.as_ref().map_or(s.response.len(), Vec::len);
            if old_len != s.response.len() || s.advantages.len() != s.response.len() {
                return Err(Error::InvalidArgument(format!(
                    "sample {i}: response, old_logprobs and advantages differ in length"
                )));
            }
        }
        let tokens: usize = samples.iter().map(|s| s.response.len()).sum();
        if tokens == 0 {
            return Err(Error::InvalidArgument(
                "no response tokens to train on".into(),
            ));
        }
        let device = model.device();
        self.opt.zero_grad();
        let params = self.opt.params();
        // Gradients are asked of autograd rather than accumulated into `.grad`: no pass to
        // zero them before, none to add the first micro-batch's to zeros.
        let mut grads: Vec<Option<Tensor>> = params.iter().map(|_| None).collect();
        let mut loss_total = 0.0;
        // A sample whose advantages are all zero adds exactly zero to the loss and to every
        // gradient (its tokens still count in the mean's denominator, `tokens`), so its
        // forward and backward passes are skipped: in self-play most rollouts of a group
        // that got one reward for all have zero advantage.
        let learning: Vec<usize> = (0..samples.len())
            .filter(|&i| has_gradient(&samples[i].advantages))
            .collect();
        let mut logprobs: Vec<Option<Vec<f32>>> = vec![None; samples.len()];
        for ids in learning.chunks(self.config.micro_batch.max(1)) {
            let chunk: Vec<&Sample> = ids.iter().map(|&i| &samples[i]).collect();
            let prompts: Vec<_> = chunk.iter().map(|s| s.prompt.clone()).collect();
            let responses: Vec<_> = chunk.iter().map(|s| s.response.clone()).collect();
            let tf = TeacherForced::new(model, &prompts, &responses)?;
            let r = tf.response_len as usize;
            let pad = |f: &dyn Fn(&Sample) -> &Vec<f32>| {
                let mut v = Vec::with_capacity(chunk.len() * r);
                for s in &chunk {
                    v.extend(
                        f(s).iter()
                            .copied()
                            .chain(std::iter::repeat_n(0.0, r - f(s).len())),
                    );
                }
                Tensor::from_slice(&v)
                    .view([chunk.len() as i64, r as i64])
                    .to_device(device)
            };
            // Samples without old log-probs take the step's own (detached): they were
            // sampled from the weights this step starts from.
            let on_policy = chunk.iter().all(|s| s.old_logprobs.is_none());
            let given = chunk.iter().all(|s| s.old_logprobs.is_some());
            if !(on_policy || given) {
                return Err(Error::InvalidArgument(
                    "a micro-batch mixes samples with and without old log-probs".into(),
                ));
            }
            let old = given.then(|| pad(&|s| s.old_logprobs.as_ref().unwrap_or(NONE)));
            let adv = pad(&|s| &s.advantages);
            let (clip, temperature) = (self.config.clip, self.config.temperature);
            let mut current: Option<Tensor> = None;
            let mut head = |hidden: &Tensor| {
                let new_lp = tf.logprobs(model, hidden, temperature);
                let detached = new_lp.detach();
                let old = old.as_ref().unwrap_or(&detached);
                let loss =
                    ppo_clip_loss_sum(&new_lp, old, &adv, &tf.response_mask, clip) / tokens as f64;
                current = Some(detached);
                loss
            };
            let loss = if self.config.gradient_checkpointing {
                checkpointed_backward(model, &tf, head)
            } else {
                let loss = head(&model.forward_hidden(&tf.ids, &tf.positions, &tf.bias, None));
                let new = Tensor::f_run_backward(&[&loss], &params, false, false)?;
                for (acc, g) in grads.iter_mut().zip(new) {
                    if !g.defined() {
                        continue;
                    }
                    // Out of place: autograd may hand back a tensor it shares (an expanded
                    // or a passed-through gradient).
                    *acc = Some(match acc.take() {
                        Some(prev) => prev + g,
                        None => g,
                    });
                }
                loss
            };
            loss_total += loss.double_value(&[]);
            if let Some(lp) = current {
                let lp = lp.to_device(tch::Device::Cpu).to_kind(Kind::Float);
                for (row, &i) in ids.iter().enumerate() {
                    let all = Vec::<f32>::try_from(lp.get(row as i64))?;
                    logprobs[i] = Some(all[..samples[i].response.len()].to_vec());
                }
            }
        }
        if self.config.gradient_checkpointing {
            // The checkpointed pass backpropagates layer by layer into `.grad`.
            grads = self.opt.accumulated_grads();
        }
        let defined: Vec<Tensor> = grads.iter().flatten().map(Tensor::shallow_clone).collect();
        let grad_norm = crate::adamw::grad_norm(&defined);
        self.opt.step_with(
            &grads,
            crate::adamw::clip_scale(grad_norm, self.config.max_grad_norm),
        );
        self.opt.zero_grad();
        Ok(StepStats {
            loss: loss_total,
            tokens,
            grad_norm,
            logprobs,
        })
    }
}

/// What `pad` reads for a sample without old log-probs (never padded: a micro-batch is all
/// with or all without).
const NONE: &Vec<f32> = &Vec::new();

/// Whether a response with these token advantages adds anything to the PPO-clip gradient:
/// with every advantage zero, both terms of the clipped objective are zero.
pub fn has_gradient(advantages: &[f32]) -> bool {
    advantages.iter().any(|&a| a != 0.0)
}

/// Forward and backward through the decoder one layer at a time, keeping only layer inputs.
///
/// The forward pass runs without a graph, saving each layer's input. The loss `head` is then
/// differentiated with respect to the last layer's output, and each layer, recomputed with a
/// graph, receives the gradient of its output: backpropagating `sum(output · grad)` gives its
/// parameters' gradients and the gradient of its input, which the layer below receives.
/// Gradients accumulate in the parameters exactly as a plain `backward` would leave them.
pub fn checkpointed_backward(
    model: &Model,
    tf: &TeacherForced,
    head: impl FnOnce(&Tensor) -> Tensor,
) -> Tensor {
    let rope = model.rope(&tf.positions);
    let layers = model.config.num_layers as usize;
    let mut inputs = Vec::with_capacity(layers);
    let last = tch::no_grad(|| {
        let mut x = model.embed(&tf.ids);
        for l in 0..layers {
            let next = model.layer_at(l, &x, &rope, &tf.bias, None, Precision::F32);
            inputs.push(x);
            x = next;
        }
        x
    });
    let top = last.detach().set_requires_grad(true);
    let loss = head(&model.final_norm(&top));
    loss.backward();
    let mut grad = top.grad();
    for (l, input) in inputs.into_iter().enumerate().rev() {
        let x = input.detach().set_requires_grad(true);
        let out = model.layer_at(l, &x, &rope, &tf.bias, None, Precision::F32);
        (out * &grad).sum(Kind::Float).backward();
        grad = x.grad();
    }
    let embed = model.embed(&tf.ids);
    if embed.requires_grad() {
        (embed * &grad).sum(Kind::Float).backward();
    }
    loss.detach()
}
