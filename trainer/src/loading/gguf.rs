//! Building a model from a GGUF file: config from the metadata, weights dequantised to f32 once
//! and renamed to their Hugging Face names, tokenizer and chat template from the metadata.

use std::collections::HashMap;
use std::path::Path;

use tch::{Kind, Tensor};

use super::LoadedModel;
use super::gguf_file::{GgufFile, Value};
use crate::device::Placement;
use crate::model::{Arch, Config, Model};
use crate::{Error, Result};

/// Reads the model config from `{arch}.*` metadata keys.
pub fn config_from_metadata(file: &GgufFile, vocab_size: i64) -> Result<Config> {
    let m = &file.metadata;
    let arch_name = m
        .get("general.architecture")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::Config("GGUF lacks general.architecture".into()))?;
    let arch = match arch_name {
        "llama" => Arch::Llama,
        "qwen2" => Arch::Qwen2,
        other => {
            return Err(Error::Unsupported(format!(
                "GGUF architecture `{other}` (supported: llama, qwen2)"
            )));
        }
    };
    let int = |k: &str| -> Result<i64> {
        m.get(&format!("{arch_name}.{k}"))
            .and_then(Value::as_i64)
            .ok_or_else(|| Error::Config(format!("GGUF lacks {arch_name}.{k}")))
    };
    let float = |k: &str| m.get(&format!("{arch_name}.{k}")).and_then(Value::as_f64);
    if file.tensors.contains_key("rope_freqs.weight") {
        return Err(Error::Unsupported("scaled RoPE (rope_freqs.weight)".into()));
    }
    let hidden = int("embedding_length")?;
    let heads = int("attention.head_count")?;
    let head_dim = match int("attention.key_length") {
        Ok(d) => d,
        Err(_) if heads > 0 => hidden / heads,
        Err(e) => return Err(e),
    };
    let config = Config {
        arch,
        vocab_size,
        hidden_size: hidden,
        intermediate_size: int("feed_forward_length")?,
        num_layers: int("block_count")?,
        num_heads: heads,
        num_kv_heads: int("attention.head_count_kv").unwrap_or(heads),
        head_dim,
        rms_norm_eps: float("attention.layer_norm_rms_epsilon").unwrap_or(1e-6),
        rope_theta: float("rope.freq_base").unwrap_or(10000.0),
        max_position_embeddings: int("context_length")?,
        tie_word_embeddings: !file.tensors.contains_key("output.weight"),
        qkv_bias: arch == Arch::Qwen2,
        bos_token_id: m.get("tokenizer.ggml.bos_token_id").and_then(Value::as_i64),
        eos_token_ids: m
            .get("tokenizer.ggml.eos_token_id")
            .and_then(Value::as_i64)
            .into_iter()
            .collect(),
    };
    config.validate()?;
    Ok(config)
}

/// llama.cpp's name for a Hugging Face weight name.
fn gguf_name(hf: &str) -> Option<String> {
    let fixed = match hf {
        "model.embed_tokens.weight" => Some("token_embd.weight"),
        "model.norm.weight" => Some("output_norm.weight"),
        "lm_head.weight" => Some("output.weight"),
        _ => None,
    };
    if let Some(f) = fixed {
        return Some(f.to_string());
    }
    let rest = hf.strip_prefix("model.layers.")?;
    let (layer, tail) = rest.split_once('.')?;
    let (module, kind) = tail.rsplit_once('.')?;
    let short = match module {
        "input_layernorm" => "attn_norm",
        "self_attn.q_proj" => "attn_q",
        "self_attn.k_proj" => "attn_k",
        "self_attn.v_proj" => "attn_v",
        "self_attn.o_proj" => "attn_output",
        "post_attention_layernorm" => "ffn_norm",
        "mlp.gate_proj" => "ffn_gate",
        "mlp.up_proj" => "ffn_up",
        "mlp.down_proj" => "ffn_down",
        _ => return None,
    };
    Some(format!("blk.{layer}.{short}.{kind}"))
}

/// Undoes llama.cpp's reordering of Llama q/k projection rows.
///
/// llama.cpp rotates adjacent pairs (GPT-J style) while Hugging Face Llama rotates the two
/// halves of each head, so its converter permutes rows within each head from
/// `[h, 2, d/2]` to `[h, d/2, 2]`; this is the inverse.
fn unpermute(w: &Tensor, heads: i64) -> Tensor {
    let shape = w.size();
    let rows = shape[0];
    let mut view = vec![heads, rows / heads / 2, 2];
    view.extend_from_slice(&shape[1..]);
    w.reshape(view.as_slice())
        .transpose(1, 2)
        .reshape(shape.as_slice())
}

/// Loads a GGUF model file, dequantising every weight to f32 once.
pub fn load_gguf(path: &Path, placement: Placement) -> Result<LoadedModel> {
    let file = GgufFile::open(path)?;
    let tokenizer = super::gguf_tokenizer::tokenizer_from_metadata(&file.metadata)?;
    let embd = file
        .tensors
        .get("token_embd.weight")
        .ok_or_else(|| Error::MissingWeight("token_embd.weight".into()))?;
    let vocab_size = embd.shape.first().copied().unwrap_or(0);
    let config = config_from_metadata(&file, vocab_size)?;
    let mut weights = HashMap::new();
    for (hf, shape) in crate::model::llama::weight_shapes(&config) {
        let name = gguf_name(&hf).ok_or_else(|| Error::MissingWeight(hf.clone()))?;
        let (values, got) = file.dequantize(&name)?;
        if got != shape {
            return Err(Error::Shape {
                name,
                got,
                want: shape,
            });
        }
        let mut t = Tensor::from_slice(&values).view(shape.as_slice());
        if config.arch == Arch::Llama {
            if hf.ends_with("q_proj.weight") {
                t = unpermute(&t, config.num_heads);
            } else if hf.ends_with("k_proj.weight") {
                t = unpermute(&t, config.num_kv_heads);
            }
        }
        weights.insert(hf, t.to_kind(Kind::Float));
    }
    let model = Model::from_weights(config, weights, placement.device, placement.kind)?;
    Ok(LoadedModel { model, tokenizer })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpermute_inverts_llama_cpp_permutation() {
        let heads = 2;
        let w = Tensor::arange(8 * 3, (Kind::Float, tch::Device::Cpu)).view([8, 3]);
        // llama.cpp's permute: [h, 2, d/2, ...] -> swap(1, 2)
        let permuted = w.reshape([heads, 2, 2, 3]).transpose(1, 2).reshape([8, 3]);
        assert!(unpermute(&permuted, heads).equal(&w));
    }

    #[test]
    fn gguf_names_follow_llama_cpp() {
        assert_eq!(
            gguf_name("model.layers.11.self_attn.k_proj.bias").as_deref(),
            Some("blk.11.attn_k.bias")
        );
        assert_eq!(
            gguf_name("model.layers.0.mlp.down_proj.weight").as_deref(),
            Some("blk.0.ffn_down.weight")
        );
        assert_eq!(
            gguf_name("lm_head.weight").as_deref(),
            Some("output.weight")
        );
    }
}
