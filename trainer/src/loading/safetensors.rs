//! Hugging Face checkpoint directories: `config.json`, one or more `*.safetensors`,
//! `tokenizer.json` (+ `tokenizer_config.json`). Loading reads any such directory; saving writes
//! one that `transformers.AutoModelForCausalLM.from_pretrained` loads back unchanged.

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;
use tch::{Kind, Tensor};

use super::LoadedModel;
use crate::device::Placement;
use crate::model::{Config, Model};
use crate::tokenizer::TextTokenizer;
use crate::{Error, Result};

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    Ok(serde_json::from_str(&text)?)
}

/// Loads a Hugging Face model directory.
pub fn load_hf_dir(dir: &Path, placement: Placement) -> Result<LoadedModel> {
    let config = Config::from_hf_json(&read_json(&dir.join("config.json"))?)?;
    let mut eos = config.eos_token_ids.clone();
    if let Ok(gen_cfg) = read_json(&dir.join("generation_config.json")) {
        eos.extend(crate::model::hf_eos(&gen_cfg));
    }
    let tokenizer = TextTokenizer::from_hf_dir(dir, &eos)?;
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Error::MissingWeight(format!(
            "no *.safetensors file in {}",
            dir.display()
        )));
    }
    let mut weights = HashMap::new();
    for f in &files {
        let tensors = Tensor::read_safetensors(f)
            .map_err(|e| Error::Config(format!("{}: {e}", f.display())))?;
        for (name, t) in tensors {
            weights.insert(name, t.to_kind(Kind::Float));
        }
    }
    // Tied checkpoints may still carry a copy of the output embedding; it is not a separate weight.
    if config.tie_word_embeddings {
        weights.remove("lm_head.weight");
    }
    let model = Model::from_weights(config, weights, placement.device, placement.kind)?;
    Ok(LoadedModel { model, tokenizer })
}

/// Saves `model` and `tokenizer` as a Hugging Face directory (f32 weights in one
/// `model.safetensors`, any adapters merged in, `config.json`, `generation_config.json`, tokenizer files).
pub fn save_hf_dir(model: &Model, tokenizer: &TextTokenizer, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let weights: Vec<(String, Tensor)> = model
        .merged_weights()
        .into_iter()
        .map(|(n, t)| {
            (
                n,
                t.to_device(tch::Device::Cpu)
                    .to_kind(Kind::Float)
                    .contiguous(),
            )
        })
        .collect();
    let path = dir.join("model.safetensors");
    write_safetensors(&weights, &path)?;
    let mut config = model.config.to_hf_json();
    config["eos_token_id"] = match tokenizer.eos_ids.as_slice() {
        [one] => (*one).into(),
        many => many.into(),
    };
    let write = |name: &str, v: &Value| -> Result<()> {
        let path = dir.join(name);
        std::fs::write(&path, serde_json::to_string_pretty(v)?).map_err(|e| Error::io(path, e))
    };
    write("config.json", &config)?;
    let mut gen_cfg = serde_json::json!({"eos_token_id": config["eos_token_id"].clone()});
    if let Some(bos) = model.config.bos_token_id {
        gen_cfg["bos_token_id"] = bos.into();
    }
    write("generation_config.json", &gen_cfg)?;
    tokenizer.save_hf(dir)
}

/// Writes f32 tensors with the `{"format": "pt"}` header transformers expects (tch's own writer
/// leaves the header empty).
pub(crate) fn write_safetensors(weights: &[(String, Tensor)], path: &Path) -> Result<()> {
    let mut bytes = Vec::with_capacity(weights.len());
    for (name, t) in weights {
        let values = Vec::<f32>::try_from(t.flatten(0, -1))?;
        let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
        bytes.push((
            name.as_str(),
            shape,
            values
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect::<Vec<u8>>(),
        ));
    }
    let views = bytes
        .iter()
        .map(|(name, shape, data)| {
            ::safetensors::tensor::TensorView::new(::safetensors::Dtype::F32, shape.clone(), data)
                .map(|v| (*name, v))
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
    let header = HashMap::from([("format".to_string(), "pt".to_string())]);
    ::safetensors::tensor::serialize_to_file(views, &Some(header), path)
        .map_err(|e| Error::Config(format!("{}: {e}", path.display())))
}
