//! One real sandbox per test binary (the snapshot is made once and cached on disk).

use std::sync::OnceLock;

use azr_sandbox::{Item, Limits, Outcome, Rules, Sandbox, config::SandboxConfig};

pub fn sandbox() -> &'static Sandbox {
    static SANDBOX: OnceLock<Sandbox> = OnceLock::new();
    SANDBOX.get_or_init(|| {
        let config = SandboxConfig {
            workers: 2,
            ..SandboxConfig::default()
        };
        Sandbox::new(&config.pool_config()).expect("the sandbox starts")
    })
}

/// Limits small enough that hostile tests end quickly.
pub fn tight() -> Limits {
    Limits {
        fuel: 2_000_000_000,
        timeout_ms: 5_000,
        memory_bytes: 256 << 20,
        ..Limits::default()
    }
}

pub fn run(program: &str, input: Option<&str>) -> Outcome {
    run_with(program, input, &tight())
}

pub fn run_with(program: &str, input: Option<&str>, limits: &Limits) -> Outcome {
    let item = Item::Run {
        program: program.to_owned(),
        imports: vec![],
        input: input.map(str::to_owned),
        files: Default::default(),
    };
    sandbox()
        .run(vec![item], limits, &Rules::default())
        .pop()
        .expect("one outcome per item")
}

pub fn items(items: Vec<Item>) -> Vec<Outcome> {
    sandbox().run(items, &tight(), &Rules::default())
}

/// `python3 -c program` at `PYTHONHASHSEED=0` (the seed the sandbox fixes), `stdin` written
/// to it; what it printed and how it ended.
pub fn python3(program: &str, stdin: &[u8]) -> std::process::Output {
    use std::io::Write;
    let mut child = std::process::Command::new("python3")
        .args(["-c", program])
        .env("PYTHONHASHSEED", "0")
        .env("PYTHONIOENCODING", "utf-8")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let mut input = child.stdin.take().expect("stdin");
    // A program that never reads its stdin may close it first: that is not an error here.
    let _ = input.write_all(stdin);
    drop(input);
    child.wait_with_output().expect("python3 ends")
}

/// The seed data shipped with the repository.
pub fn seeds_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/azr-seeds")
}

/// The `imports` list of a seed record (missing or malformed: none).
pub fn record_imports(record: &serde_json::Value) -> Vec<String> {
    record["imports"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// CPython's answers for seed-format JSONL files: `cpython_reference.py` at
/// `PYTHONHASHSEED=0` (the seed the sandbox fixes), run in a scratch directory since some
/// programs write files. One JSON object per input, in file, line and input order.
pub fn cpython_answers<T: serde::de::DeserializeOwned>(
    files: &[std::path::PathBuf],
    tag: &str,
) -> Vec<T> {
    let scratch = std::env::temp_dir().join(format!("azr-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("scratch dir");
    let output = std::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/cpython_reference.py"
        ))
        .args(files)
        .current_dir(&scratch)
        .env("PYTHONHASHSEED", "0")
        .output()
        .expect("python3 runs");
    let _ = std::fs::remove_dir_all(&scratch);
    assert!(
        output.status.success(),
        "cpython_reference.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("reference JSON")
}

/// [`cpython_answers`] for programs given as text, each `f` called with no arguments.
pub fn cpython_answers_for<T: serde::de::DeserializeOwned>(
    programs: &[String],
    tag: &str,
) -> Vec<T> {
    let lines: Vec<String> = programs
        .iter()
        .map(|p| serde_json::json!({ "snippet": p, "input": "" }).to_string())
        .collect();
    let jsonl = std::env::temp_dir().join(format!("azr-{tag}-{}.jsonl", std::process::id()));
    std::fs::write(&jsonl, lines.join("\n")).expect("write programs");
    let answers = cpython_answers(std::slice::from_ref(&jsonl), tag);
    let _ = std::fs::remove_file(&jsonl);
    answers
}
