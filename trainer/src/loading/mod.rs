//! Loading models from GGUF files and Hugging Face directories, and saving the latter.

pub mod gguf;
pub mod gguf_file;
pub mod gguf_tokenizer;
pub mod safetensors;

use std::path::Path;

use crate::device::Placement;
use crate::model::Model;
use crate::tokenizer::TextTokenizer;
use crate::{Error, Result};

/// A model with the tokenizer that goes with it.
pub struct LoadedModel {
    pub model: Model,
    pub tokenizer: TextTokenizer,
}

/// Loads a `.gguf` file or a Hugging Face directory (`config.json`, `*.safetensors`,
/// `tokenizer.json`), deciding by what `path` is.
pub fn load(path: &Path, placement: Placement) -> Result<LoadedModel> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    let loaded = if meta.is_dir() {
        safetensors::load_hf_dir(path, placement)
    } else {
        gguf::load_gguf(path, placement)
    };
    // The file's bytes and dequantised copies are gone now; give their pages back.
    crate::memory::release_free_memory();
    loaded
}
