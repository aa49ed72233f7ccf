//! Parity with transformers on the real models (fp32, CPU), computed at test time by
//! tests/reference.py in the reference venv: the prompt's tokenization, the full-vocabulary
//! logits at every prompt position (max abs difference ≤ 1e-4) and a 32-token greedy
//! continuation (identical).
//!
//! Needs scripts/models.sh and scripts/reference-venv.sh to have run; fails naming them if not.

use crate::support;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use azr_trainer::device::Placement;
use azr_trainer::generate::{SamplingParams, generate};
use azr_trainer::model::{left_pad, positions_and_bias};
use support::{model_file, reference_python};

const PROMPT: &str = "Write a Python function that checks whether a number is prime.";
const GREEDY_TOKENS: usize = 32;

struct Reference {
    hf_ids: Vec<i64>,
    chat_text: String,
    greedy: Vec<i64>,
    logits: Vec<f32>,
}

fn reference(model: &Path, ids: &[i64], text: Option<&str>) -> Reference {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference.py");
    let logits_file = std::env::temp_dir().join(format!(
        "azr-parity-{}-{}.f32",
        std::process::id(),
        model
            .file_name()
            .and_then(|s| s.to_str())
            .unwrap_or("model")
    ));
    let ids_arg: Vec<String> = ids.iter().map(i64::to_string).collect();
    let t0 = Instant::now();
    let mut cmd = Command::new(reference_python());
    cmd.arg(&script)
        .args(["--model", &model.to_string_lossy()])
        .args(["--ids", &ids_arg.join(",")])
        .args(["--greedy", &GREEDY_TOKENS.to_string()])
        .args(["--logits-out", &logits_file.to_string_lossy()]);
    if let Some(text) = text {
        cmd.args(["--text", text]).args(["--chat-user", PROMPT]);
    }
    let out = cmd.output().expect("reference python runs");
    assert!(
        out.status.success(),
        "tests/reference.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "transformers reference took {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().expect("reference prints JSON");
    let v: serde_json::Value = serde_json::from_str(line).expect("reference JSON parses");
    let ints = |k: &str| -> Vec<i64> {
        v[k].as_array()
            .map(|a| a.iter().filter_map(|x| x.as_i64()).collect())
            .unwrap_or_default()
    };
    let bytes = std::fs::read(&logits_file).expect("reference logits file");
    std::fs::remove_file(&logits_file).ok();
    Reference {
        hf_ids: ints("hf_ids"),
        chat_text: v["chat_text"].as_str().unwrap_or_default().to_string(),
        greedy: ints("greedy"),
        logits: bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
    }
}

/// The parity tests run one at a time: each already uses every core (libtorch and the reference
/// process), and oversubscribed OpenMP threads slow everything down many times over.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn check_against_transformers(path: &Path) {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    azr_trainer::device::set_threads(None);
    let file = path
        .file_name()
        .and_then(|s| s.to_str())
        .unwrap_or("model")
        .to_string();
    let t0 = Instant::now();
    let mut loaded = azr_trainer::load(path, Placement::cpu()).expect("model loads");
    eprintln!("{file}: loaded in {:.1} s", t0.elapsed().as_secs_f64());
    let text = loaded
        .tokenizer
        .apply_chat_template(&[("user", PROMPT)])
        .expect("chat template renders");
    let ids = loaded.tokenizer.encode(&text).expect("prompt encodes");
    let model = &loaded.model;

    let logits = tch::no_grad(|| {
        let (input, mask) = left_pad(std::slice::from_ref(&ids), 0, model.device()).unwrap();
        let (pos, bias) = positions_and_bias(&mask, ids.len() as i64, model.kind());
        let hidden = model.forward_hidden(&input, &pos, &bias, None);
        Vec::<f32>::try_from(model.logits(&hidden).flatten(0, -1)).unwrap()
    });
    // Exactly GREEDY_TOKENS tokens, as the reference loop ignores EOS too.
    loaded.tokenizer.eos_ids.clear();
    let t1 = Instant::now();
    let ours_gen = generate(
        &loaded.model,
        &loaded.tokenizer,
        std::slice::from_ref(&ids),
        &SamplingParams::greedy(GREEDY_TOKENS),
    )
    .expect("generation runs");
    eprintln!(
        "{file}: {} prompt tokens, {GREEDY_TOKENS} greedy tokens in {:.1} s",
        ids.len(),
        t1.elapsed().as_secs_f64()
    );

    let r = reference(path, &ids, Some(&text));
    assert_eq!(
        r.logits.len(),
        logits.len(),
        "logit count (positions × vocab)"
    );
    let diff = logits
        .iter()
        .zip(&r.logits)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    eprintln!(
        "{file}: max abs logit difference {diff:e} over {} values",
        logits.len()
    );
    let ours = loaded
        .tokenizer
        .decode(&ours_gen[0].tokens, false)
        .unwrap_or_default();
    let theirs = loaded
        .tokenizer
        .decode(&r.greedy, false)
        .unwrap_or_default();
    assert_eq!(
        text, r.chat_text,
        "chat template rendering differs from transformers'"
    );
    assert_eq!(
        ids, r.hf_ids,
        "tokenization of the chat prompt differs from transformers'"
    );
    assert!(
        diff <= 1e-4,
        "{file}: max abs logit difference {diff} > 1e-4"
    );
    assert_eq!(
        ours_gen[0].tokens, r.greedy,
        "greedy continuations differ:\nours:   {ours:?}\ntheirs: {theirs:?}"
    );
}

#[test]
fn smollm2_gguf_matches_transformers() {
    check_against_transformers(&model_file("smollm2-135m-instruct.gguf"));
}

#[test]
fn qwen2_5_coder_gguf_matches_transformers() {
    check_against_transformers(&model_file("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"));
}

/// Loads a GGUF model, saves it as a Hugging Face directory, and checks that directory against
/// transformers like the original (our loader reads it back; transformers loads it).
fn check_safetensors_round_trip(file: &str) {
    let loaded = azr_trainer::load(&model_file(file), Placement::cpu()).expect("model loads");
    let dir = RemovedOnDrop(
        std::env::temp_dir().join(format!("azr-roundtrip-{}-{file}", std::process::id())),
    );
    azr_trainer::loading::safetensors::save_hf_dir(&loaded.model, &loaded.tokenizer, &dir.0)
        .expect("saves");
    drop(loaded);
    check_against_transformers(&dir.0);
}

/// A directory of the test's own, removed when the test ends, failed or not (a saved model
/// is hundreds of MB).
struct RemovedOnDrop(std::path::PathBuf);

impl Drop for RemovedOnDrop {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

/// Our saved Hugging Face directory is what transformers loads: same logits, same greedy text,
/// same chat template and tokenization (through the saved tokenizer files).
#[test]
fn smollm2_safetensors_round_trip_matches_transformers() {
    check_safetensors_round_trip("smollm2-135m-instruct.gguf");
}

#[test]
fn qwen2_5_coder_safetensors_round_trip_matches_transformers() {
    check_safetensors_round_trip("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf");
}

/// Texts that exercise the pre-tokenizer: code indentation, newlines, punctuation runs,
/// contractions, non-ASCII letters, emoji, special-token text.
const TRICKY_TEXTS: &[&str] = &[
    "def f(x):\n    return x ** 2  # square\n\n\tprint(f(3))",
    "Don't stop; it's   spaced\r\n  out...!!! ?? (a+b)*c",
    "Größe café naïve Ελληνικά русский 日本語 🙂👍",
    "<|im_start|>user\nhi<|im_end|>",
];

fn tokenization_matches_transformers(file: &str, texts: &[&str]) {
    let path = model_file(file);
    let loaded = azr_trainer::load(&path, Placement::cpu()).expect("model loads");
    let texts_file =
        std::env::temp_dir().join(format!("azr-texts-{}-{file}.json", std::process::id()));
    std::fs::write(&texts_file, serde_json::to_string(texts).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference.py");
    let out = Command::new(reference_python())
        .arg(&script)
        .args([
            "--model",
            &path.to_string_lossy(),
            "--ids",
            "0",
            "--logits-out",
            "-",
        ])
        .args(["--tokenize-only", &texts_file.to_string_lossy()])
        .output()
        .expect("reference python runs");
    std::fs::remove_file(&texts_file).ok();
    assert!(
        out.status.success(),
        "tests/reference.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: Vec<Vec<i64>> = serde_json::from_str(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or(""),
    )
    .unwrap();
    for (text, theirs) in texts.iter().zip(theirs) {
        let ours = loaded.tokenizer.encode(text).unwrap();
        assert_eq!(ours, theirs, "tokenization of {text:?}");
        assert_eq!(
            loaded.tokenizer.decode(&ours, false).unwrap(),
            *text,
            "round trip of {text:?}"
        );
    }
}

#[test]
fn qwen2_tokenizer_matches_transformers_on_tricky_text() {
    let mut texts = TRICKY_TEXTS.to_vec();
    texts.push("x = 12345 + 678");
    tokenization_matches_transformers("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", &texts);
}

/// Digits are left out: SmolLM's tokenizer (and llama.cpp's `smollm` pre-tokenizer, which we
/// follow) splits every digit apart, while transformers' GGUF loader does not.
#[test]
fn smollm2_tokenizer_matches_transformers_on_tricky_text() {
    tokenization_matches_transformers("smollm2-135m-instruct.gguf", TRICKY_TEXTS);
}

/// The Hugging Face directories we write for both architectures (Qwen2: q/k/v biases, tied
/// embeddings; Llama: untied) load in transformers as the same model: tiny random weights,
/// so this runs in seconds.
#[test]
fn saved_tiny_checkpoints_load_in_transformers_as_the_same_model() {
    use azr_trainer::generate::SamplingParams;
    use azr_trainer::model::llama::random_weights;
    use azr_trainer::{Arch, Config, Model};
    for arch in [Arch::Qwen2, Arch::Llama] {
        let mut config = Config::tiny(arch);
        config.tie_word_embeddings = arch == Arch::Qwen2;
        let weights = random_weights(&config, 3);
        let model =
            Model::from_weights(config, weights, tch::Device::Cpu, tch::Kind::Float).unwrap();
        let tok = support::tiny_tokenizer(model.config.vocab_size);
        let dir = std::env::temp_dir().join(format!("azr-tiny-{arch:?}-{}", std::process::id()));
        azr_trainer::loading::safetensors::save_hf_dir(&model, &tok, &dir).unwrap();
        let ids = vec![5i64, 17, 3, 44, 90, 12];
        let logits = tch::no_grad(|| {
            let (input, mask) = left_pad(std::slice::from_ref(&ids), 0, model.device()).unwrap();
            let (pos, bias) = positions_and_bias(&mask, ids.len() as i64, model.kind());
            let hidden = model.forward_hidden(&input, &pos, &bias, None);
            Vec::<f32>::try_from(model.logits(&hidden).flatten(0, -1)).unwrap()
        });
        let ours = generate(
            &model,
            &tok,
            std::slice::from_ref(&ids),
            &SamplingParams::greedy(GREEDY_TOKENS),
        )
        .unwrap();
        let r = reference(&dir, &ids, None);
        std::fs::remove_dir_all(&dir).ok();
        let diff = logits
            .iter()
            .zip(&r.logits)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert_eq!(logits.len(), r.logits.len(), "{arch:?}: logit count");
        assert!(diff <= 1e-4, "{arch:?}: max abs logit difference {diff}");
        assert_eq!(ours[0].tokens, r.greedy, "{arch:?}: greedy continuation");
    }
}
