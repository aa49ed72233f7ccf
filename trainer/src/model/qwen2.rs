//! Qwen2 (Qwen2.5 Base/Coder/Instruct): the Llama decoder with biases on the q, k and v
//! projections (none on the output projection or the MLP). The small sizes tie the output
//! embedding to the input one. Sliding-window attention exists in the config but is off in every
//! released Qwen2.5 checkpoint, so it is refused rather than silently ignored.

use serde_json::Value;

use super::{Arch, Config, hf_base_config};
use crate::{Error, Result};

/// Reads a Qwen2 `config.json`.
pub fn config_from_hf(v: &Value) -> Result<Config> {
    if v.get("use_sliding_window").and_then(Value::as_bool) == Some(true) {
        return Err(Error::Unsupported(
            "Qwen2 with use_sliding_window = true".into(),
        ));
    }
    hf_base_config(v, Arch::Qwen2, true)
}
