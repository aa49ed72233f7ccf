//! Putting low-rank adapters on a model, saving and loading them in PEFT's layout, and the
//! weights with the adapters merged in (what a checkpoint's `model/` holds).

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;
use tch::{Kind, Tensor, nn};

use super::{Model, fused_sizes, var_named};
use crate::model::lora::{Adapter, LoraConfig, Pair, TARGET_MODULES};
use crate::{Error, Result};

/// The file names PEFT reads an adapter from.
const ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";
const ADAPTER_CONFIG: &str = "adapter_config.json";

/// Where PEFT stores the pair of a projection: `base_model.model.<module>.lora_A.weight`.
fn pair_names(module: &str) -> (String, String) {
    (
        format!("base_model.model.{module}.lora_A.weight"),
        format!("base_model.model.{module}.lora_B.weight"),
    )
}

/// The modules (Hugging Face names) of the parts of layer `l`'s projections, in the order
/// of [`super::Layer::projections_mut`]: each part carries its own adapter.
fn layer_modules(l: usize) -> [Vec<String>; 4] {
    let p = format!("model.layers.{l}");
    let names = |group: &str, parts: &[&str]| -> Vec<String> {
        parts.iter().map(|m| format!("{p}.{group}.{m}")).collect()
    };
    [
        names("self_attn", &["q_proj", "k_proj", "v_proj"]),
        names("self_attn", &["o_proj"]),
        names("mlp", &["gate_proj", "up_proj"]),
        names("mlp", &["down_proj"]),
    ]
}

/// The state of a model trained through adapters.
pub(super) struct Adapters {
    pub(super) config: LoraConfig,
    /// The adapters' variables under their PEFT names (the base model's are frozen).
    pub(super) vs: nn::VarStore,
}

impl Model {
    /// Freezes the model's weights and puts a fresh adapter of `config` on every projection
    /// of every layer: `A` uniform in ±1/√k (PEFT's default), `B` zero, so the model computes
    /// what it did before. Drawn from our own generator: the same seed, the same adapters.
    pub fn attach_lora(&mut self, config: LoraConfig, seed: u64) -> Result<()> {
        if self.adapters.is_some() {
            return Err(Error::InvalidArgument(
                "the model already carries adapters".into(),
            ));
        }
        if config.rank <= 0 || !config.alpha.is_finite() || config.alpha <= 0.0 {
            return Err(Error::Config(format!(
                "LoRA rank {} and alpha {} must be positive",
                config.rank, config.alpha
            )));
        }
        let device = self.device();
        let kind = self.kind();
        let mut rng = azr::rng::SplitMix64::new(seed);
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let c = self.config.clone();
        let r = config.rank;
        for l in 0..self.layers.len() {
            let sizes = [
                fused_sizes(&c, "self_attn.qkv_proj.weight"),
                vec![c.hidden_size],
                fused_sizes(&c, "mlp.gate_up_proj.weight"),
                vec![c.hidden_size],
            ];
            let projections = self.layers[l].projections_mut();
            for ((linear, modules), sizes) in
                projections.into_iter().zip(layer_modules(l)).zip(sizes)
            {
                let k = linear.weight().size()[1];
                let bound = 1.0 / (k as f64).sqrt();
                let mut pairs = Vec::new();
                for (module, n) in modules.iter().zip(sizes) {
                    let (a_name, b_name) = pair_names(module);
                    let a: Vec<f32> = (0..r * k)
                        .map(|_| ((2.0 * rng.uniform() - 1.0) * bound) as f32)
                        .collect();
                    let a = Tensor::from_slice(&a).view([r, k]).to_kind(kind);
                    let b = Tensor::zeros([n, r], (kind, tch::Device::Cpu));
                    pairs.push(Pair {
                        a: var_named(&root, &a_name, &a.to_device(device))?,
                        b: var_named(&root, &b_name, &b.to_device(device))?,
                    });
                }
                linear.set_adapter(Adapter::new(pairs, config.scale()));
            }
        }
        self.vs.freeze();
        self.adapters = Some(Adapters { config, vs });
        Ok(())
    }

    /// The adapters' configuration, when the model carries adapters.
    pub fn lora(&self) -> Option<LoraConfig> {
        self.adapters.as_ref().map(|a| a.config)
    }

    /// Every variable, the model's and the adapters': the optimiser keeps those that require
    /// a gradient (only the adapters' once they are attached).
    pub fn variables(&self) -> HashMap<String, Tensor> {
        let mut vars = self.vs.variables();
        if let Some(a) = &self.adapters {
            vars.extend(a.vs.variables());
        }
        vars
    }

    /// Writes the adapters as PEFT does (`adapter_model.safetensors`, `adapter_config.json`),
    /// so that `PeftModel.from_pretrained(base, dir)` loads them onto `base_model`.
    pub fn save_adapters(&self, dir: &Path, base_model: &str) -> Result<()> {
        let Some(a) = &self.adapters else {
            return Err(Error::InvalidArgument(
                "the model carries no adapters".into(),
            ));
        };
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let mut named: Vec<(String, Tensor)> =
            a.vs.variables()
                .into_iter()
                .map(|(n, t)| {
                    let t = t.detach().to_device(tch::Device::Cpu).to_kind(Kind::Float);
                    (n, t.contiguous())
                })
                .collect();
        named.sort_by(|x, y| x.0.cmp(&y.0));
        crate::loading::safetensors::write_safetensors(&named, &dir.join(ADAPTER_WEIGHTS))?;
        let config = serde_json::json!({
            "peft_type": "LORA",
            "task_type": "CAUSAL_LM",
            "base_model_name_or_path": base_model,
            "r": a.config.rank,
            "lora_alpha": a.config.alpha,
            "lora_dropout": 0.0,
            "bias": "none",
            "fan_in_fan_out": false,
            "inference_mode": true,
            "target_modules": TARGET_MODULES,
        });
        let path = dir.join(ADAPTER_CONFIG);
        std::fs::write(&path, serde_json::to_string_pretty(&config)?)
            .map_err(|e| Error::io(&path, e))
    }

    /// Reads the rank and alpha of the adapters saved in `dir` (by [`Model::save_adapters`]
    /// or PEFT).
    pub fn saved_lora_config(dir: &Path) -> Result<LoraConfig> {
        let path = dir.join(ADAPTER_CONFIG);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let v: Value = serde_json::from_str(&text)?;
        let rank = v.get("r").and_then(Value::as_i64);
        let alpha = v.get("lora_alpha").and_then(Value::as_f64);
        match (rank, alpha) {
            (Some(rank), Some(alpha)) => Ok(LoraConfig { rank, alpha }),
            _ => Err(Error::Config(format!(
                "{}: no integer `r` or number `lora_alpha`",
                path.display()
            ))),
        }
    }

    /// Loads the adapters saved in `dir` onto this model, which must carry adapters of the
    /// same rank: every pair must be in the file, with its shape.
    pub fn load_adapters(&mut self, dir: &Path) -> Result<()> {
        let Some(a) = &self.adapters else {
            return Err(Error::InvalidArgument(
                "attach adapters before loading them".into(),
            ));
        };
        let path = dir.join(ADAPTER_WEIGHTS);
        let saved: HashMap<String, Tensor> = Tensor::read_safetensors(&path)
            .map_err(|e| Error::Config(format!("reading {}: {e}", path.display())))?
            .into_iter()
            .collect();
        tch::no_grad(|| -> Result<()> {
            for (name, var) in a.vs.variables() {
                let t = saved
                    .get(&name)
                    .ok_or_else(|| Error::MissingWeight(format!("{}: {name}", path.display())))?;
                if t.size() != var.size() {
                    return Err(Error::Shape {
                        name,
                        got: t.size(),
                        want: var.size(),
                    });
                }
                let mut var = var;
                var.copy_(t);
            }
            Ok(())
        })
    }

    /// [`Model::named_weights`] with every adapter's product added to its projection: the
    /// model as it computes, as a plain checkpoint any loader reads. Without adapters, the
    /// weights themselves.
    pub fn merged_weights(&self) -> Vec<(String, Tensor)> {
        let Some(a) = &self.adapters else {
            return self.named_weights();
        };
        let vars = a.vs.variables();
        let scale = a.config.scale();
        tch::no_grad(|| {
            self.named_weights()
                .into_iter()
                .map(|(name, w)| {
                    let module = name.strip_suffix(".weight").unwrap_or(&name);
                    let (a_name, b_name) = pair_names(module);
                    match (vars.get(&a_name), vars.get(&b_name)) {
                        (Some(pa), Some(pb)) => {
                            let delta = pb.to_kind(Kind::Float).matmul(&pa.to_kind(Kind::Float));
                            let merged = w.to_kind(Kind::Float) + delta * scale;
                            (name, merged.to_kind(w.kind()))
                        }
                        _ => (name, w),
                    }
                })
                .collect()
        })
    }
}
