//! Low-rank adapters (LoRA): a frozen weight `W` plus a trained product `s · B A`, with `A`
//! of `r` rows and `B` of `r` columns, `s = alpha / r`.
//!
//! Why: full fine-tuning of a 0.5B model in f32 keeps four copies of every weight (the weight,
//! its gradient, AdamW's two moments: 8 GB); with adapters of rank 16 on every projection the
//! gradient and optimiser state are a few megabytes, the frozen weights' rollout copies
//! (packed, int8, int4) are made once and never go stale, and the update is cheaper. veRL and
//! TRL offer the same for GRPO.
//!
//! The adapter is kept apart from the weight, never merged into it while training: a
//! product is the frozen weight's (by whatever kernel applies) plus the adapter's, two small
//! products. A fused weight (`qkv_proj`, `gate_up_proj`) carries one adapter per original
//! projection, as PEFT puts them on Hugging Face checkpoints, so that a saved adapter loads
//! into PEFT unchanged. `B` starts at zero: the adapted model starts as the base model.

use std::sync::Mutex;

use tch::Tensor;

/// One projection's adapter pair: `a` `[r, k]`, `b` `[n_part, r]`.
pub struct Pair {
    pub a: Tensor,
    pub b: Tensor,
}

/// The adapters of one [`super::linear::Linear`]: one pair per part of its output rows (one
/// part for an unfused weight), in the order the parts are stacked.
pub struct Adapter {
    parts: Vec<Pair>,
    scale: f64,
    /// The inference form, `A` stacked `[P r, k]` and `s ·` block-diagonal `B` `[n, P r]`,
    /// with the versions of the pairs it was built from: one product each for the whole
    /// fused weight, rebuilt after an optimiser step.
    inference: Mutex<Option<Inference>>,
}

struct Inference {
    versions: Vec<(i64, i64)>,
    a: Tensor,
    b: Tensor,
}

impl Adapter {
    pub fn new(parts: Vec<Pair>, scale: f64) -> Self {
        Adapter {
            parts,
            scale,
            inference: Mutex::new(None),
        }
    }

    /// The adapter's share of `x · (W + s B A)ᵀ`, `[..., n]`, recorded by autograd when
    /// `record` (the training forward pass), from the cached inference form otherwise.
    pub fn forward(&self, x: &Tensor, record: bool) -> Tensor {
        if record {
            let outs: Vec<Tensor> = self
                .parts
                .iter()
                .map(|p| {
                    x.linear::<&Tensor>(&p.a, None)
                        .linear::<&Tensor>(&p.b, None)
                })
                .collect();
            let out = if outs.len() == 1 {
                outs.into_iter().next().unwrap_or_else(|| unreachable!())
            } else {
                Tensor::cat(&outs, -1)
            };
            return out * self.scale;
        }
        let (a, b) = self.inference_form();
        x.linear::<&Tensor>(&a, None).linear::<&Tensor>(&b, None)
    }

    /// The stacked `A` and scaled block-diagonal `B`, rebuilt when a pair has changed.
    fn inference_form(&self) -> (Tensor, Tensor) {
        let versions: Vec<(i64, i64)> = self
            .parts
            .iter()
            .map(|p| (p.a.internal_version(), p.b.internal_version()))
            .collect();
        // A poisoned lock only means another product panicked; the form is rebuilt if stale.
        let mut slot = self.inference.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = slot.as_ref()
            && f.versions == versions
        {
            return (f.a.shallow_clone(), f.b.shallow_clone());
        }
        let (a, b) = tch::no_grad(|| {
            let a = Tensor::cat(&self.parts.iter().map(|p| &p.a).collect::<Vec<_>>(), 0);
            let rank: i64 = self.parts.iter().map(|p| p.a.size()[0]).sum();
            let n: i64 = self.parts.iter().map(|p| p.b.size()[0]).sum();
            let b = Tensor::zeros(
                [n, rank],
                (self.parts[0].b.kind(), self.parts[0].b.device()),
            );
            let (mut row, mut col) = (0, 0);
            for p in &self.parts {
                let (rows, cols) = (p.b.size()[0], p.b.size()[1]);
                b.narrow(0, row, rows)
                    .narrow(1, col, cols)
                    .copy_(&(&p.b * self.scale));
                row += rows;
                col += cols;
            }
            (a.detach(), b)
        });
        *slot = Some(Inference {
            versions,
            a: a.shallow_clone(),
            b: b.shallow_clone(),
        });
        (a, b)
    }
}

/// How adapters are put on a model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoraConfig {
    /// Rows of `A` (columns of `B`) of every pair.
    pub rank: i64,
    /// The product is scaled by `alpha / rank` (PEFT's `lora_alpha`).
    pub alpha: f64,
}

impl LoraConfig {
    pub fn scale(&self) -> f64 {
        self.alpha / self.rank as f64
    }
}

/// The Hugging Face projections a model's adapters sit on (PEFT's `target_modules`): every
/// projection of every decoder layer; never the embeddings or the output head.
pub const TARGET_MODULES: [&str; 7] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];
