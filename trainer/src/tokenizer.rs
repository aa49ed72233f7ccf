//! Text ↔ token ids, special tokens and the chat template, whichever format the model came in.
//!
//! A GGUF file's tokenizer is rebuilt as a Hugging Face one by
//! `loading::gguf_tokenizer`, so both sources end up in the same `tokenizers` implementation
//! and saving is a plain `tokenizer.json`.

use std::path::Path;

use serde_json::{Value, json};

use crate::{Error, Result};

/// A tokenizer plus what generation needs to know about its special tokens.
pub struct TextTokenizer {
    pub inner: tokenizers::Tokenizer,
    /// Ids that end a generation (EOS, end-of-turn).
    pub eos_ids: Vec<i64>,
    pub bos_id: Option<i64>,
    /// Whether `encode` prepends BOS (the model was trained with it).
    pub add_bos: bool,
    /// Jinja chat template, when the model has one.
    pub chat_template: Option<String>,
    pub bos_token: Option<String>,
    pub eos_token: Option<String>,
}

pub(crate) fn tok_err(e: impl std::fmt::Display) -> Error {
    Error::Tokenizer(e.to_string())
}

impl TextTokenizer {
    /// Loads `tokenizer.json` (+ `tokenizer_config.json`, `chat_template.jinja`) from a Hugging
    /// Face model directory; `eos_ids` come from the model's config.
    pub fn from_hf_dir(dir: &Path, eos_ids: &[i64]) -> Result<Self> {
        let path = dir.join("tokenizer.json");
        let inner = tokenizers::Tokenizer::from_file(&path)
            .map_err(|e| Error::Tokenizer(format!("{}: {e}", path.display())))?;
        let config: Value = match std::fs::read_to_string(dir.join("tokenizer_config.json")) {
            Ok(s) => serde_json::from_str(&s)?,
            Err(_) => Value::Null,
        };
        // Special tokens appear as plain strings or as {"content": ...} objects.
        let token_str = |key: &str| -> Option<String> {
            let v = config.get(key)?;
            v.as_str()
                .or_else(|| v.get("content").and_then(Value::as_str))
                .map(str::to_string)
        };
        let chat_template = std::fs::read_to_string(dir.join("chat_template.jinja"))
            .ok()
            .or_else(|| {
                config
                    .get("chat_template")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            });
        let bos_token = token_str("bos_token");
        let eos_token = token_str("eos_token");
        let mut ids: Vec<i64> = eos_ids.to_vec();
        if let Some(id) = eos_token.as_deref().and_then(|t| inner.token_to_id(t)) {
            ids.push(id.into());
        }
        ids.sort_unstable();
        ids.dedup();
        Ok(TextTokenizer {
            bos_id: bos_token
                .as_deref()
                .and_then(|t| inner.token_to_id(t))
                .map(i64::from),
            add_bos: config
                .get("add_bos_token")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            inner,
            eos_ids: ids,
            chat_template,
            bos_token,
            eos_token,
        })
    }

    /// A whitespace word-level tokenizer over `t0` … `t{vocab-1}` (every other word is `t0`)
    /// with `t{vocab-1}` as EOS: the tokenizer of the tiny random models that tests and smoke
    /// runs use where a real vocabulary would only cost time.
    pub fn word_level(vocab: i64) -> Result<Self> {
        if vocab < 2 {
            return Err(Error::InvalidArgument(format!(
                "vocabulary of {vocab} words"
            )));
        }
        let words: serde_json::Map<String, Value> =
            (0..vocab).map(|i| (format!("t{i}"), i.into())).collect();
        let json = json!({
            "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
            "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null,
            "decoder": null,
            "model": {"type": "WordLevel", "vocab": words, "unk_token": "t0"},
        });
        Ok(TextTokenizer {
            inner: json.to_string().parse().map_err(tok_err)?,
            eos_ids: vec![vocab - 1],
            bos_id: None,
            add_bos: false,
            chat_template: None,
            bos_token: None,
            eos_token: Some(format!("t{}", vocab - 1)),
        })
    }

    /// Writes `tokenizer.json` and `tokenizer_config.json` in the layout transformers reads.
    pub fn save_hf(&self, dir: &Path) -> Result<()> {
        self.inner
            .save(dir.join("tokenizer.json"), false)
            .map_err(tok_err)?;
        let mut config = json!({
            "tokenizer_class": "PreTrainedTokenizerFast",
            "add_bos_token": self.add_bos,
            "clean_up_tokenization_spaces": false,
            "model_max_length": 131072,
        });
        if let Some(t) = &self.bos_token {
            config["bos_token"] = t.clone().into();
        }
        if let Some(t) = &self.eos_token {
            config["eos_token"] = t.clone().into();
        }
        if let Some(t) = &self.chat_template {
            config["chat_template"] = t.clone().into();
        }
        let path = dir.join("tokenizer_config.json");
        std::fs::write(&path, serde_json::to_string_pretty(&config)?)
            .map_err(|e| Error::io(path, e))
    }

    /// Token ids of `text`, with BOS first when the model expects it. Special-token text in
    /// `text` (e.g. `<|im_start|>`) becomes the special token, as chat prompts need.
    pub fn encode(&self, text: &str) -> Result<Vec<i64>> {
        let enc = self.inner.encode(text, false).map_err(tok_err)?;
        let mut ids: Vec<i64> = Vec::with_capacity(enc.len() + 1);
        if self.add_bos
            && let Some(bos) = self.bos_id
        {
            ids.push(bos);
        }
        ids.extend(enc.get_ids().iter().map(|&i| i64::from(i)));
        Ok(ids)
    }

    /// Text of `ids`; special tokens are dropped when `skip_special`.
    pub fn decode(&self, ids: &[i64], skip_special: bool) -> Result<String> {
        let ids: Vec<u32> = ids
            .iter()
            .map(|&i| u32::try_from(i).map_err(|_| Error::Tokenizer(format!("bad token id {i}"))))
            .collect::<Result<_>>()?;
        self.inner.decode(&ids, skip_special).map_err(tok_err)
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Renders a conversation with the model's chat template, ending with the assistant's turn
    /// opened (`add_generation_prompt`), ready for generation.
    pub fn apply_chat_template(&self, messages: &[(&str, &str)]) -> Result<String> {
        let template = self
            .chat_template
            .as_deref()
            .ok_or_else(|| Error::Template("the model has no chat template".into()))?;
        let mut env = minijinja::Environment::new();
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |msg: String| -> std::result::Result<String, minijinja::Error> {
                Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    msg,
                ))
            },
        );
        env.add_template("chat", template)
            .map_err(|e| Error::Template(e.to_string()))?;
        let messages: Vec<Value> = messages
            .iter()
            .map(|(role, content)| json!({"role": role, "content": content}))
            .collect();
        env.get_template("chat")
            .and_then(|t| {
                t.render(minijinja::context! {
                    messages => messages,
                    add_generation_prompt => true,
                    bos_token => self.bos_token.clone().unwrap_or_default(),
                    eos_token => self.eos_token.clone().unwrap_or_default(),
                })
            })
            .map_err(|e| Error::Template(e.to_string()))
    }
}
