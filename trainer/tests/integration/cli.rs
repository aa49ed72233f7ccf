//! The binary's contract: results on stdout, errors as one line on stderr with exit status 1.

use crate::support;

use std::process::Command;

use azr_trainer::Arch;

fn cli() -> Command {
    Command::new(env!("CARGO_BIN_EXE_azr-trainer"))
}

#[test]
fn missing_model_file_is_one_error_line_not_a_panic() {
    let out = cli()
        .args([
            "generate",
            "--model",
            "/nonexistent/m.gguf",
            "--prompt",
            "hi",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "stderr: {stderr}");
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains("/nonexistent/m.gguf"),
        "{stderr}"
    );
}

#[test]
fn corrupt_model_file_is_one_error_line_not_a_panic() {
    let junk = std::env::temp_dir().join(format!("azr-cli-junk-{}.gguf", std::process::id()));
    std::fs::write(&junk, b"not a model").unwrap();
    let out = cli()
        .args([
            "generate",
            "--model",
            &junk.to_string_lossy(),
            "--prompt",
            "hi",
        ])
        .output()
        .unwrap();
    std::fs::remove_file(&junk).ok();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "stderr: {stderr}");
    assert!(stderr.contains("invalid GGUF"), "{stderr}");
}

#[test]
fn generate_prints_the_continuation_of_a_saved_model() {
    let model = support::tiny_model(Arch::Llama);
    let tok = support::tiny_tokenizer(model.config.vocab_size);
    let dir = std::env::temp_dir().join(format!("azr-cli-model-{}", std::process::id()));
    azr_trainer::loading::safetensors::save_hf_dir(&model, &tok, &dir).unwrap();
    let out = cli()
        .args([
            "generate",
            "--model",
            &dir.to_string_lossy(),
            "--prompt",
            "t5 t17 t3",
        ])
        .args(["--greedy", "--max-new-tokens", "5", "--threads", "1"])
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected = azr_trainer::generate::generate(
        &model,
        &tok,
        &[vec![5, 17, 3]],
        &azr_trainer::generate::SamplingParams::greedy(5),
    )
    .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim_end(),
        expected[0].text
    );
}

/// A tiny model saved as a Hugging Face directory that transformers can load.
fn saved_tiny_model(tag: &str) -> std::path::PathBuf {
    let model = support::tiny_model(Arch::Llama);
    let tok = support::tiny_tokenizer(model.config.vocab_size);
    let dir = std::env::temp_dir().join(format!("azr-cli-{tag}-{}", std::process::id()));
    azr_trainer::loading::safetensors::save_hf_dir(&model, &tok, &dir).unwrap();
    dir
}

#[test]
fn bench_compare_takes_turns_with_transformers_and_prints_ratios() {
    let dir = saved_tiny_model("bench");
    let out = cli()
        .args(["bench", "--model", &dir.to_string_lossy()])
        .args([
            "--repeats",
            "2",
            "--threads",
            "1",
            "--only",
            "prefill,train",
        ])
        .arg("--compare")
        .arg(support::reference_python())
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).ok();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    // One progress line per round, with both sides' times.
    for line in [
        "prefill 1/2: ",
        "prefill 2/2: ",
        "train 1/2: ",
        "train 2/2: ",
    ] {
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with(line) && l.contains("transformers")),
            "{line}: {stderr}"
        );
    }
    assert!(!stderr.contains("decode_b1"), "--only ignored: {stderr}");
    for key in ["prefill_tokens_per_s: ", "train_step_s: "] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(key) && l.ends_with('x')),
            "no {key} ratio: {stdout}"
        );
    }
}

#[test]
fn bench_reference_that_fails_is_one_error_line_with_its_reason() {
    let dir = saved_tiny_model("bench-fail");
    let script = dir.join("failing_reference.py");
    std::fs::write(&script, "import sys\nsys.exit('no transformers here')\n").unwrap();
    let out = cli()
        .args(["bench", "--model", &dir.to_string_lossy()])
        .args(["--repeats", "1", "--threads", "1", "--only", "prefill"])
        .args(["--compare", "python3", "--reference-script"])
        .arg(&script)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).ok();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: ") && last.contains("no transformers here"),
        "{stderr}"
    );
}
