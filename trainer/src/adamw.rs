//! AdamW with decoupled weight decay (torch.optim.AdamW's arithmetic), written out so that its
//! state can be saved and restored: libtorch's C++ optimizers behind `tch::nn::Optimizer` keep
//! their moment estimates out of reach, and a resumed run must continue with the same ones.
//!
//! Per parameter `p` with gradient `g`, at step `t` (1-based):
//! `p ← p·(1 − lr·wd)`, `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`,
//! `p ← p − lr · (m / (1−β₁ᵗ)) / (√(v / (1−β₂ᵗ)) + ε)`.

use std::collections::HashMap;
use std::path::Path;

use tch::{Kind, Tensor};

use crate::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

/// The optimiser over a fixed, named set of parameters.
pub struct AdamW {
    pub config: AdamWConfig,
    /// Parameters by name, in a stable order (sorted), so saved state maps back by name.
    params: Vec<(String, Tensor)>,
    /// First and second moment estimates, created on the first step.
    moments: Vec<Option<(Tensor, Tensor)>>,
    /// Steps taken so far (the bias corrections' `t`).
    pub steps: u64,
}

impl AdamW {
    /// An optimiser over the trainable variables of `vars` (a `VarStore`'s `variables()`).
    pub fn new(vars: HashMap<String, Tensor>, config: AdamWConfig) -> Self {
        let mut params: Vec<(String, Tensor)> = vars
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let moments = params.iter().map(|_| None).collect();
        AdamW {
            config,
            params,
            moments,
            steps: 0,
        }
    }

    pub fn zero_grad(&mut self) {
        for (_, p) in &mut self.params {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.detach_().zero_();
            }
        }
    }

    /// Scales all gradients so that their global L2 norm is at most `max`; returns the norm
    /// before clipping.
    pub fn clip_grad_norm(&mut self, max: f64) -> f64 {
        let grads: Vec<Tensor> = self
            .params
            .iter()
            .map(|(_, p)| p.grad())
            .filter(Tensor::defined)
            .collect();
        if grads.is_empty() {
            return 0.0;
        }
        let total = tch::no_grad(|| {
            let squares: Vec<Tensor> = grads
                .iter()
                .map(|g| g.to_kind(Kind::Float).square().sum(Kind::Float))
                .collect();
            Tensor::stack(&squares, 0).sum(Kind::Float).sqrt()
        })
        .double_value(&[]);
        if max > 0.0 && total.is_finite() && total > max {
            let scale = max / (total + 1e-6);
            tch::no_grad(|| {
                for mut g in grads {
                    let _ = g.g_mul_scalar_(scale);
                }
            });
        }
        total
    }

    /// One update from the accumulated gradients; parameters without a gradient are skipped.
    pub fn step(&mut self) {
        self.steps += 1;
        let c = self.config;
        let t = self.steps as i32;
        let bias1 = 1.0 - c.beta1.powi(t);
        let bias2 = 1.0 - c.beta2.powi(t);
        tch::no_grad(|| {
            for ((_, p), moments) in self.params.iter_mut().zip(&mut self.moments) {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let (m, v) = moments.get_or_insert_with(|| (p.zeros_like(), p.zeros_like()));
                if c.weight_decay != 0.0 {
                    let _ = p.g_mul_scalar_(1.0 - c.lr * c.weight_decay);
                }
                let _ = m.g_mul_scalar_(c.beta1);
                let _ = m.g_add_(&(&g * (1.0 - c.beta1)));
                let _ = v.g_mul_scalar_(c.beta2);
                let _ = v.g_add_(&(g.square() * (1.0 - c.beta2)));
                let denom = (&*v / bias2).sqrt() + c.eps;
                let update = (&*m / bias1) / denom * c.lr;
                let _ = p.g_sub_(&update);
            }
        });
    }

    /// Writes the moment estimates and the step count (safetensors, f32, on the CPU).
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut named: Vec<(String, Tensor)> =
            vec![("__steps__".into(), Tensor::from_slice(&[self.steps as i64]))];
        for ((name, _), moments) in self.params.iter().zip(&self.moments) {
            if let Some((m, v)) = moments {
                named.push((format!("{name}.exp_avg"), m.to_device(tch::Device::Cpu)));
                named.push((format!("{name}.exp_avg_sq"), v.to_device(tch::Device::Cpu)));
            }
        }
        Tensor::write_safetensors(&named, path)?;
        Ok(())
    }

    /// Restores what [`AdamW::save`] wrote; every saved tensor must match a parameter.
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let saved: HashMap<String, Tensor> = Tensor::read_safetensors(path)?.into_iter().collect();
        let steps = saved
            .get("__steps__")
            .ok_or_else(|| Error::Config(format!("{}: no step count", path.display())))?;
        self.steps = steps.int64_value(&[0]).max(0) as u64;
        for ((name, p), moments) in self.params.iter().zip(&mut self.moments) {
            let m = saved.get(&format!("{name}.exp_avg"));
            let v = saved.get(&format!("{name}.exp_avg_sq"));
            *moments = match (m, v) {
                (Some(m), Some(v)) if m.size() == p.size() && v.size() == p.size() => Some((
                    m.to_device(p.device()).to_kind(p.kind()),
                    v.to_device(p.device()).to_kind(p.kind()),
                )),
                (None, None) => None,
                _ => {
                    return Err(Error::Config(format!(
                        "{}: optimiser state for `{name}` is missing or has the wrong shape",
                        path.display()
                    )));
                }
            };
        }
        Ok(())
    }
}
