//! Shared test helpers: tiny random models, and locating the real models and the reference venv.

use std::path::PathBuf;

use azr_trainer::model::llama::random_weights;
use azr_trainer::{Arch, Config, Model, TextTokenizer};
use tch::{Device, Kind};

/// A random-weight model small enough for millisecond forward passes.
pub fn tiny_model(arch: Arch) -> Model {
    tch::set_num_threads(1);
    let config = Config::tiny(arch);
    let weights = random_weights(&config, 7);
    Model::from_weights(config, weights, Device::Cpu, Kind::Float).expect("tiny model builds")
}

/// A word-level tokenizer over the tiny vocabulary (`t0` … `t96`), no EOS.
pub fn tiny_tokenizer(vocab: i64) -> TextTokenizer {
    let vocab: serde_json::Map<String, serde_json::Value> =
        (0..vocab).map(|i| (format!("t{i}"), i.into())).collect();
    let json = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null,
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "t0"},
    });
    TextTokenizer {
        inner: json.to_string().parse().expect("tiny tokenizer parses"),
        eos_ids: vec![],
        bos_id: None,
        add_bos: false,
        chat_template: None,
        bos_token: None,
        eos_token: None,
    }
}

pub fn cache_dir() -> PathBuf {
    std::env::var_os("AZR_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/azr-rs")
        })
}

/// The reference venv's python, or a panic naming the script that creates it.
pub fn reference_python() -> PathBuf {
    let p = cache_dir().join("venv-torch-2.11/bin/python");
    assert!(
        p.exists() && cache_dir().join("venv-torch-2.11/.complete").exists(),
        "reference venv missing at {}: run scripts/reference-venv.sh first",
        p.display()
    );
    p
}

/// A model file fetched by scripts/models.sh, or a panic naming that script.
pub fn model_file(name: &str) -> PathBuf {
    let p = cache_dir().join("models").join(name);
    assert!(
        p.exists(),
        "model {} missing: run scripts/models.sh first",
        p.display()
    );
    p
}
