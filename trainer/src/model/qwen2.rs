//! Qwen2 (Qwen2.5 Base/Coder/Instruct): the Llama decoder with biases on the q, k and v
//! projections (none on the output projection or the MLP). The small sizes tie the output
//! embedding to the input one. Sliding-window attention exists in the config but is off in every
//! released Qwen2.5 checkpoint, so it is refused rather than silently ignored.

use serde_json::Value;

use super::{Arch, Config, hf_eos, hf_int, hf_rope_theta};
use crate::{Error, Result};

/// Reads a Qwen2 `config.json`.
pub fn config_from_hf(v: &Value) -> Result<Config> {
    if v.get("use_sliding_window").and_then(Value::as_bool) == Some(true) {
        return Err(Error::Unsupported(
            "Qwen2 with use_sliding_window = true".into(),
        ));
    }
    let hidden = hf_int(v, "hidden_size")?;
    let heads = hf_int(v, "num_attention_heads")?;
    Ok(Config {
        arch: Arch::Qwen2,
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
        qkv_bias: true,
        bos_token_id: v.get("bos_token_id").and_then(Value::as_i64),
        eos_token_ids: hf_eos(v),
    })
}
