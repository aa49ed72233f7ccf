//! Decoder-only transformers: the architecture description (`Config`), the attention-mask and
//! position helpers shared by generation and training, and the model itself.
//!
//! Qwen2 is Llama with biases on the q/k/v projections (and, in the small sizes, tied input and
//! output embeddings), so both run on the same decoder in `llama.rs`; `qwen2.rs` holds what is
//! specific to Qwen2 (its Hugging Face config), `llama.rs` what is specific to Llama.

pub mod linear;
pub mod llama;
pub mod lora;
pub mod norm;
pub mod qwen2;
pub mod rotary;

use serde_json::Value;
use tch::{Device, Kind, Tensor};

use crate::{Error, Result};

pub use linear::Precision;
pub use llama::{KvCache, Model};

/// The architectures the trainer runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    Llama,
    Qwen2,
}

impl Arch {
    /// The `architectures` entry transformers expects in `config.json`.
    pub fn hf_class(self) -> &'static str {
        match self {
            Arch::Llama => "LlamaForCausalLM",
            Arch::Qwen2 => "Qwen2ForCausalLM",
        }
    }

    pub fn hf_model_type(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
        }
    }
}

/// Everything the model code needs to know about an architecture instance.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub arch: Arch,
    pub vocab_size: i64,
    pub hidden_size: i64,
    pub intermediate_size: i64,
    pub num_layers: i64,
    pub num_heads: i64,
    pub num_kv_heads: i64,
    pub head_dim: i64,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub max_position_embeddings: i64,
    pub tie_word_embeddings: bool,
    /// Biases on the q, k and v projections (Qwen2: yes; Llama: no).
    pub qkv_bias: bool,
    pub bos_token_id: Option<i64>,
    pub eos_token_ids: Vec<i64>,
}

impl Config {
    /// Checks the invariants the model code relies on, so that a bad file fails at load time.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_layers", self.num_layers),
            ("num_heads", self.num_heads),
            ("num_kv_heads", self.num_kv_heads),
            ("head_dim", self.head_dim),
            ("max_position_embeddings", self.max_position_embeddings),
        ];
        for (name, v) in positive {
            if v <= 0 {
                return Err(Error::Config(format!("{name} = {v} must be positive")));
            }
        }
        if self.num_heads % self.num_kv_heads != 0 {
            return Err(Error::Config(format!(
                "num_heads {} is not a multiple of num_kv_heads {}",
                self.num_heads, self.num_kv_heads
            )));
        }
        if self.head_dim % 2 != 0 {
            return Err(Error::Config(format!("head_dim {} is odd", self.head_dim)));
        }
        Ok(())
    }

    /// Reads a Hugging Face `config.json`.
    pub fn from_hf_json(v: &Value) -> Result<Self> {
        let model_type = v.get("model_type").and_then(Value::as_str).unwrap_or("");
        let cfg = match model_type {
            "llama" => llama::config_from_hf(v)?,
            "qwen2" => qwen2::config_from_hf(v)?,
            other => {
                return Err(Error::Unsupported(format!(
                    "model_type `{other}` (supported: llama, qwen2)"
                )));
            }
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Writes a Hugging Face `config.json` that transformers loads back into the same model.
    pub fn to_hf_json(&self) -> Value {
        let mut v = serde_json::json!({
            "architectures": [self.arch.hf_class()],
            "model_type": self.arch.hf_model_type(),
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "num_key_value_heads": self.num_kv_heads,
            "head_dim": self.head_dim,
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "max_position_embeddings": self.max_position_embeddings,
            "tie_word_embeddings": self.tie_word_embeddings,
            "hidden_act": "silu",
            "torch_dtype": "float32",
        });
        if let Some(bos) = self.bos_token_id {
            v["bos_token_id"] = bos.into();
        }
        match self.eos_token_ids.as_slice() {
            [] => {}
            [one] => v["eos_token_id"] = (*one).into(),
            many => v["eos_token_id"] = many.into(),
        }
        match self.arch {
            Arch::Llama => {
                v["attention_bias"] = self.qkv_bias.into();
                v["mlp_bias"] = false.into();
            }
            Arch::Qwen2 => {
                v["use_sliding_window"] = false.into();
            }
        }
        v
    }

    /// The shape of a real model, for random-weight models that measure speed and memory
    /// where the real weights cannot be had (e.g. a GPU machine with no network). `None` for
    /// an unknown name.
    pub fn named_shape(name: &str) -> Option<Self> {
        let c = match name {
            "qwen2.5-0.5b" => Config {
                arch: Arch::Qwen2,
                vocab_size: 151_936,
                hidden_size: 896,
                intermediate_size: 4864,
                num_layers: 24,
                num_heads: 14,
                num_kv_heads: 2,
                head_dim: 64,
                rms_norm_eps: 1e-6,
                rope_theta: 1_000_000.0,
                max_position_embeddings: 32_768,
                tie_word_embeddings: true,
                qkv_bias: true,
                bos_token_id: None,
                eos_token_ids: vec![],
            },
            "smollm2-135m" => Config {
                arch: Arch::Llama,
                vocab_size: 49_152,
                hidden_size: 576,
                intermediate_size: 1536,
                num_layers: 30,
                num_heads: 9,
                num_kv_heads: 3,
                head_dim: 64,
                rms_norm_eps: 1e-5,
                rope_theta: 100_000.0,
                max_position_embeddings: 8192,
                tie_word_embeddings: true,
                qkv_bias: false,
                bos_token_id: None,
                eos_token_ids: vec![],
            },
            _ => return None,
        };
        Some(c)
    }

    /// A small config for unit tests.
    pub fn tiny(arch: Arch) -> Self {
        Config {
            arch,
            vocab_size: 97,
            hidden_size: 32,
            intermediate_size: 64,
            num_layers: 2,
            num_heads: 4,
            num_kv_heads: 2,
            head_dim: 8,
            rms_norm_eps: 1e-6,
            rope_theta: 10000.0,
            max_position_embeddings: 256,
            tie_word_embeddings: arch == Arch::Qwen2,
            qkv_bias: arch == Arch::Qwen2,
            bos_token_id: None,
            eos_token_ids: vec![],
        }
    }
}

/// Reads an integer field of a Hugging Face config, with a clear error when it is missing.
/// The fields every Llama-family `config.json` shares; an architecture adjusts what differs.
/// Whether autograd would record an operation on `tensors`: grad mode is on and one of them
/// requires a gradient. The fused CPU paths (`linear`, `norm`, `rotary`) are invisible to
/// autograd, so they run only when this is false.
pub(crate) fn autograd_records(tensors: &[&tch::Tensor]) -> bool {
    tensors.iter().any(|t| t.requires_grad()) && grad_mode_enabled()
}

/// Whether autograd is recording. Parameters report `requires_grad` even under `no_grad`,
/// so the flag alone cannot tell a decode step from a training forward pass.
pub(crate) fn grad_mode_enabled() -> bool {
    // SAFETY: sets the thread-local grad mode and at once restores the previous value.
    unsafe {
        let previous = torch_sys::at_grad_set_enabled(0);
        torch_sys::at_grad_set_enabled(previous);
        previous != 0
    }
}

pub(crate) fn hf_base_config(v: &Value, arch: Arch, qkv_bias: bool) -> Result<Config> {
    let hidden = hf_int(v, "hidden_size")?;
    let heads = hf_int(v, "num_attention_heads")?;
    Ok(Config {
        arch,
        vocab_size: hf_int(v, "vocab_size")?,
        hidden_size: hidden,
        intermediate_size: hf_int(v, "intermediate_size")?,
        num_layers: hf_int(v, "num_hidden_layers")?,
        num_heads: heads,
        num_kv_heads: v
            .get("num_key_value_heads")
            .and_then(Value::as_i64)
            .unwrap_or(heads),
        head_dim: if heads > 0 { hidden / heads } else { 0 },
        rms_norm_eps: v
            .get("rms_norm_eps")
            .and_then(Value::as_f64)
            .unwrap_or(1e-6),
        rope_theta: hf_rope_theta(v)?,
        max_position_embeddings: hf_int(v, "max_position_embeddings")?,
        tie_word_embeddings: v
            .get("tie_word_embeddings")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        qkv_bias,
        bos_token_id: v.get("bos_token_id").and_then(Value::as_i64),
        eos_token_ids: hf_eos(v),
    })
}

pub(crate) fn hf_int(v: &Value, key: &str) -> Result<i64> {
    v.get(key)
        .and_then(Value::as_i64)
        .ok_or_else(|| Error::Config(format!("config.json lacks integer `{key}`")))
}

/// RoPE base frequency: top-level `rope_theta` (transformers 4) or inside `rope_parameters`
/// (transformers 5). Any RoPE variant other than the default is refused.
pub(crate) fn hf_rope_theta(v: &Value) -> Result<f64> {
    let scaled = |r: Option<&Value>| {
        r.is_some_and(|r| {
            !r.is_null()
                && r.get("rope_type")
                    .and_then(Value::as_str)
                    .unwrap_or("default")
                    != "default"
        })
    };
    if scaled(v.get("rope_scaling")) || scaled(v.get("rope_parameters")) {
        return Err(Error::Unsupported(
            "scaled RoPE (rope_scaling / rope_type other than default)".into(),
        ));
    }
    Ok(v.get("rope_theta")
        .and_then(Value::as_f64)
        .or_else(|| v.get("rope_parameters")?.get("rope_theta")?.as_f64())
        .unwrap_or(10000.0))
}

/// `eos_token_id` may be one id or a list of ids.
pub(crate) fn hf_eos(v: &Value) -> Vec<i64> {
    match v.get("eos_token_id") {
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_i64).collect(),
        Some(x) => x.as_i64().into_iter().collect(),
        None => vec![],
    }
}

/// Which keys each query may attend to.
pub enum AttnMask {
    /// Plain causal attention: no padding, and every key is one of the new tokens (no cache,
    /// or an empty one). SDPA's own causal path, with no bias tensor made or read.
    Causal,
    /// An additive bias `[B, 1, t, S]`: 0 where a query may attend, the dtype's lowest finite
    /// value elsewhere.
    Bias(Tensor),
}

/// Positions and attention mask for a batch whose sequences are left-padded.
///
/// `mask` is `[B, S]` (1 = real token, 0 = padding) over everything the model has seen
/// including the `t` new tokens at the end. Positions count real tokens only, so a left-padded
/// sequence gets the same positions (hence the same rotary phases) as it would alone. Without
/// padding and cached keys the mask is [`AttnMask::Causal`]; otherwise a bias `[B, 1, t, S]`:
/// 0 where a query may attend (causal and not padding), the dtype's lowest finite value
/// elsewhere — finite, so a padding query that can attend nothing gets a uniform distribution
/// instead of NaNs.
pub fn positions_and_bias(mask: &Tensor, t: i64, kind: Kind) -> (Tensor, AttnMask) {
    let size = mask.size();
    let (b, s) = (size[0], size[size.len() - 1]);
    let device = mask.device();
    let positions = (mask.cumsum(1, Kind::Int64) - 1)
        .clamp_min(0)
        .narrow(1, s - t, t);
    if t == s && i64::try_from(mask.min()).is_ok_and(|min| min > 0) {
        return (positions, AttnMask::Causal);
    }
    let keys = Tensor::arange(s, (Kind::Int64, device)).view([1, s]);
    let queries = (Tensor::arange(t, (Kind::Int64, device)) + (s - t)).view([t, 1]);
    let causal = keys.le_tensor(&queries).view([1, 1, t, s]);
    let allowed = causal.logical_and(&mask.gt(0).view([b, 1, 1, s]));
    let lowest = lowest_finite(kind);
    let bias =
        Tensor::zeros([b, 1, t, s], (kind, device)).masked_fill(&allowed.logical_not(), lowest);
    (positions, AttnMask::Bias(bias))
}

/// The most negative finite value of a floating-point kind (`torch.finfo(kind).min`), as the
/// f64 that converts to it exactly: libtorch refuses a scalar that would round to -inf.
pub fn lowest_finite(kind: Kind) -> f64 {
    match kind {
        // (2 − 2⁻⁷) · 2¹²⁷: bf16 keeps f32's exponent range with 8 significant bits.
        Kind::BFloat16 => -(2.0 - 2f64.powi(-7)) * 2f64.powi(127),
        Kind::Half => -65504.0,
        Kind::Double => f64::MIN,
        _ => f64::from(f32::MIN),
    }
}

/// Builds a left-padded `[B, L]` id tensor and its mask from sequences of different lengths.
pub fn left_pad(seqs: &[Vec<i64>], pad_id: i64, device: Device) -> Result<(Tensor, Tensor)> {
    let len = seqs.iter().map(Vec::len).max().unwrap_or(0);
    if seqs.is_empty() || len == 0 {
        return Err(Error::InvalidArgument(
            "empty batch or empty sequence".into(),
        ));
    }
    if seqs.iter().any(Vec::is_empty) {
        return Err(Error::InvalidArgument(
            "a sequence in the batch is empty".into(),
        ));
    }
    let mut ids = Vec::with_capacity(seqs.len() * len);
    let mut mask = Vec::with_capacity(seqs.len() * len);
    for s in seqs {
        let pad = len - s.len();
        ids.extend(std::iter::repeat_n(pad_id, pad).chain(s.iter().copied()));
        mask.extend(std::iter::repeat_n(0i64, pad).chain(std::iter::repeat_n(1, s.len())));
    }
    let shape = [seqs.len() as i64, len as i64];
    Ok((
        Tensor::from_slice(&ids).view(shape).to_device(device),
        Tensor::from_slice(&mask).view(shape).to_device(device),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// bf16 is what `--device cuda` runs; libtorch refuses a fill value that overflows it, so
    /// the bias must be built with bf16's own lowest value (checked here on the CPU).
    #[test]
    fn attention_bias_builds_in_every_model_dtype_with_its_lowest_finite_value() {
        let mask = Tensor::from_slice(&[0i64, 1, 1, 1, 1, 1]).view([2, 3]);
        for kind in [Kind::Float, Kind::BFloat16, Kind::Half, Kind::Double] {
            let (pos, AttnMask::Bias(bias)) = positions_and_bias(&mask, 3, kind) else {
                panic!("a padded batch needs a bias");
            };
            assert_eq!(
                Vec::<i64>::try_from(pos.flatten(0, -1)).unwrap(),
                [0, 0, 1, 0, 1, 2]
            );
            assert_eq!(bias.kind(), kind);
            let b = Vec::<f64>::try_from(bias.to_kind(Kind::Double).flatten(0, -1)).unwrap();
            let low = lowest_finite(kind);
            assert!(b.iter().all(|v| v.is_finite()), "{kind:?}: {b:?}");
            // Row 0 (left-padded): its first key is padding for every query.
            assert_eq!(b[0], low, "{kind:?}");
            // Causal: the first query of row 1 sees only the first key.
            assert_eq!(&b[9..12], &[0.0, low, low], "{kind:?}");
        }
    }

    #[test]
    fn only_an_unpadded_batch_without_cached_keys_is_plain_causal() {
        let full = Tensor::from_slice(&[1i64, 1, 1, 1, 1, 1]).view([2, 3]);
        assert!(matches!(
            positions_and_bias(&full, 3, Kind::Float).1,
            AttnMask::Causal
        ));
        // One new token after two cached ones.
        assert!(matches!(
            positions_and_bias(&full, 1, Kind::Float).1,
            AttnMask::Bias(_)
        ));
        let padded = Tensor::from_slice(&[0i64, 1, 1, 1, 1, 1]).view([2, 3]);
        assert!(matches!(
            positions_and_bias(&padded, 3, Kind::Float).1,
            AttnMask::Bias(_)
        ));
    }
}
