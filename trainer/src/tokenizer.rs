//! Text ↔ token ids, special tokens and the chat template, whichever format the model came in.
//!
//! A GGUF file carries no `tokenizer.json`, only llama.cpp's description of one (vocabulary,
//! merges, token types, the name of the pre-tokenizer). `from_gguf_metadata` turns that into
//! the equivalent Hugging Face `tokenizer.json`, which the `tokenizers` crate then loads, so both
//! sources end up in the same well-tested implementation and saving is a plain `tokenizer.json`.

use std::collections::HashMap;
use std::path::Path;

use serde_json::{Value, json};

use crate::loading::gguf_file::Value as Meta;
use crate::{Error, Result};

/// Splitting regexes of the pre-tokenizers our models use (as llama.cpp names them).
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

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

fn tok_err(e: impl std::fmt::Display) -> Error {
    Error::Tokenizer(e.to_string())
}

/// GPT-2's reversible map from bytes to printable characters, which byte-level vocabularies are
/// spelled in.
fn byte_alphabet() -> [char; 256] {
    let mut map = ['\0'; 256];
    let mut next = 256u32;
    for b in 0..256u32 {
        let printable =
            (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
        let c = if printable {
            b
        } else {
            next += 1;
            next - 1
        };
        map[b as usize] = char::from_u32(c).unwrap_or('\u{fffd}');
    }
    map
}

impl TextTokenizer {
    /// Rebuilds the tokenizer described by a GGUF file's `tokenizer.*` metadata.
    pub fn from_gguf_metadata(meta: &HashMap<String, Meta>) -> Result<Self> {
        let get = |k: &str| meta.get(k);
        let model = get("tokenizer.ggml.model")
            .and_then(Meta::as_str)
            .unwrap_or("");
        if model != "gpt2" {
            return Err(Error::Unsupported(format!(
                "GGUF tokenizer model `{model}` (only byte-level BPE, `gpt2`, is supported)"
            )));
        }
        let tokens: Vec<&str> = get("tokenizer.ggml.tokens")
            .and_then(Meta::as_array)
            .ok_or_else(|| Error::Tokenizer("GGUF lacks tokenizer.ggml.tokens".into()))?
            .iter()
            .map(|v| {
                v.as_str()
                    .ok_or_else(|| Error::Tokenizer("non-string token".into()))
            })
            .collect::<Result<_>>()?;
        let types: Vec<i64> = get("tokenizer.ggml.token_type")
            .and_then(Meta::as_array)
            .map(|a| a.iter().map(|v| v.as_i64().unwrap_or(1)).collect())
            .unwrap_or_default();
        let merges: Vec<Value> = get("tokenizer.ggml.merges")
            .and_then(Meta::as_array)
            .ok_or_else(|| Error::Tokenizer("GGUF lacks tokenizer.ggml.merges".into()))?
            .iter()
            .map(|m| {
                m.as_str()
                    .and_then(|s| s.split_once(' '))
                    .map(|(a, b)| json!([a, b]))
                    .ok_or_else(|| Error::Tokenizer("malformed merge".into()))
            })
            .collect::<Result<_>>()?;

        let alphabet = byte_alphabet();
        let in_alphabet = |t: &str| t.chars().all(|c| alphabet.contains(&c));
        let mut vocab = serde_json::Map::new();
        let mut added = Vec::new();
        for (id, &token) in tokens.iter().enumerate() {
            // Tokens outside the byte alphabet are respelled as the bytes they stand for.
            let spelled = if in_alphabet(token) {
                token.to_string()
            } else {
                token.bytes().map(|b| alphabet[b as usize]).collect()
            };
            vocab.insert(spelled, json!(id));
            let ty = types.get(id).copied().unwrap_or(1);
            // 3 = CONTROL (special, e.g. <|im_start|>), 4 = USER_DEFINED (kept whole, not special).
            if (ty == 3 && in_alphabet(token)) || ty == 4 {
                added.push(json!({
                    "id": id, "content": token, "single_word": false, "lstrip": false,
                    "rstrip": false, "normalized": false, "special": ty == 3,
                }));
            }
        }
        let pre = get("tokenizer.ggml.pre")
            .and_then(Meta::as_str)
            .unwrap_or("default");
        let split = |re: &str| {
            json!({"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": re}, "behavior": "Isolated", "invert": false},
                {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false},
            ]})
        };
        let byte_level = json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true});
        let (normalizer, pre_tokenizer) = match pre {
            "qwen2" | "deepseek-r1-qwen" => (json!({"type": "NFC"}), split(QWEN2_SPLIT)),
            "llama3" | "llama-v3" | "llama-bpe" | "smaug-bpe" => (Value::Null, split(LLAMA3_SPLIT)),
            // SmolLM's own tokenizer.json: every digit on its own, then GPT-2's byte-level split.
            "smollm" => (
                Value::Null,
                json!({"type": "Sequence", "pretokenizers": [
                    {"type": "Digits", "individual_digits": true}, byte_level]}),
            ),
            _ => (Value::Null, byte_level),
        };
        let tokenizer_json = json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": added,
            "normalizer": normalizer,
            "pre_tokenizer": pre_tokenizer,
            "post_processor": null,
            "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
            "model": {
                "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                "ignore_merges": false, "vocab": vocab, "merges": merges,
            },
        });
        let inner: tokenizers::Tokenizer = tokenizer_json.to_string().parse().map_err(tok_err)?;

        let id_of = |k: &str| get(k).and_then(Meta::as_i64);
        let token_of = |id: Option<i64>| {
            id.and_then(|i| tokens.get(i as usize))
                .map(|s| s.to_string())
        };
        let bos_id = id_of("tokenizer.ggml.bos_token_id");
        let eos_id = id_of("tokenizer.ggml.eos_token_id");
        let mut eos_ids: Vec<i64> = [eos_id, id_of("tokenizer.ggml.eot_token_id")]
            .into_iter()
            .flatten()
            .collect();
        // Chat models end a turn with <|im_end|>; base text ends with <|endoftext|>.
        for t in ["<|im_end|>", "<|endoftext|>", "<|eot_id|>"] {
            if let Some(id) = inner.token_to_id(t) {
                eos_ids.push(id.into());
            }
        }
        eos_ids.sort_unstable();
        eos_ids.dedup();
        Ok(TextTokenizer {
            inner,
            eos_ids,
            bos_id,
            add_bos: get("tokenizer.ggml.add_bos_token")
                .and_then(Meta::as_bool)
                .unwrap_or(false),
            chat_template: get("tokenizer.chat_template")
                .and_then(Meta::as_str)
                .map(str::to_string),
            bos_token: token_of(bos_id),
            eos_token: token_of(eos_id),
        })
    }

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
