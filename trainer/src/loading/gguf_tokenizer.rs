//! A GGUF file's tokenizer: llama.cpp's description of one (vocabulary, merges, token types,
//! the name of the pre-tokenizer) turned into the equivalent Hugging Face `tokenizer.json`,
//! which the `tokenizers` crate then loads, so both sources end up in the same well-tested
//! implementation and saving is a plain `tokenizer.json`.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::gguf_file::Value as Meta;
use crate::tokenizer::{TextTokenizer, tok_err};
use crate::{Error, Result};

/// Splitting regexes of the pre-tokenizers our models use (as llama.cpp names them).
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

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

/// Rebuilds the tokenizer described by a GGUF file's `tokenizer.*` metadata.
pub fn tokenizer_from_metadata(meta: &HashMap<String, Meta>) -> Result<TextTokenizer> {
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
