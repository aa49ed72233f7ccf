//! Does the sandbox agree with CPython on real AZR programs?
//!
//! Every input of every record of both seed files runs through the sandbox and through
//! CPython (computed now, by `cpython_reference.py`). They agree when both give the same
//! `repr`, or both fail. The sandbox fixes the hash seed at 0, so the one right answer is
//! CPython's at `PYTHONHASHSEED=0`, set order included: every record is judged against it,
//! except those importing modules outside the standard library, which cannot run in
//! either. Every disagreement is printed.

use crate::common;

use std::collections::HashMap;

use azr_sandbox::{Item, Rules, Verdict};
use serde::Deserialize;

#[derive(Deserialize, Clone)]
struct Reference {
    file: String,
    line: usize,
    index: usize,
    ok: bool,
    value: Option<String>,
    error: Option<String>,
    third_party: Vec<String>,
}

/// A short guess at why the two answers differ, for the report.
fn cause(cpython: &str, sandbox: &str) -> &'static str {
    let mut a: Vec<char> = cpython.chars().collect();
    let mut b: Vec<char> = sandbox.chars().collect();
    a.sort_unstable();
    b.sort_unstable();
    if a == b {
        "the same characters in another order (iteration order)"
    } else if sandbox.contains("PermissionError") || sandbox.contains("FileIO") {
        "needs the filesystem, which the sandbox denies by design"
    } else {
        "interpreter difference"
    }
}

#[test]
fn the_sandbox_agrees_with_cpython_on_the_azr_seed_programs() {
    let dir = common::seeds_dir();
    let files: Vec<String> = ["7b_seed_io.jsonl", "7b_code_f_seed_io.jsonl"]
        .iter()
        .map(|f| dir.join(f).to_string_lossy().into_owned())
        .collect();
    for f in &files {
        assert!(
            std::path::Path::new(f).exists(),
            "{f} is missing: the checkout ships it under data/azr-seeds"
        );
    }
    let paths: Vec<std::path::PathBuf> = files.iter().map(std::path::PathBuf::from).collect();
    let reference: Vec<Reference> = common::cpython_answers(&paths, "fidelity");

    // The same (file, line, index) order, as items for the sandbox.
    let mut records: HashMap<(String, usize), serde_json::Value> = HashMap::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("seed file");
        for (n, line) in text.lines().enumerate() {
            if !line.trim().is_empty() {
                records.insert(
                    (f.clone(), n + 1),
                    serde_json::from_str(line).expect("JSON"),
                );
            }
        }
    }
    let items: Vec<Item> = reference
        .iter()
        .map(|r| {
            let rec = &records[&(r.file.clone(), r.line)];
            let input = match rec.get("input") {
                Some(i) => i.as_str().unwrap_or_default().to_owned(),
                None => rec["inputs"][r.index]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            };
            Item::Run {
                program: rec["snippet"].as_str().unwrap_or_default().to_owned(),
                imports: common::record_imports(rec),
                input: Some(input),
                files: Default::default(),
            }
        })
        .collect();
    let limits = azr_sandbox::Limits::default();
    let outcomes = common::sandbox().run(items, &limits, &Rules::default());
    assert_eq!(outcomes.len(), reference.len());

    let mut judged = 0usize;
    let mut agreed = 0usize;
    let mut third_party = 0usize;
    let mut disagreements = Vec::new();
    for (r, o) in reference.iter().zip(&outcomes) {
        if !r.third_party.is_empty() {
            third_party += 1;
            continue;
        }
        judged += 1;
        let sandbox_ok = o.verdict == Verdict::Ok;
        let agree = match (r.ok, sandbox_ok) {
            (true, true) => r.value == o.value,
            (false, false) => true,
            _ => false,
        };
        if agree {
            agreed += 1;
        } else {
            let name = std::path::Path::new(&r.file)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let theirs = if r.ok {
                r.value.clone().unwrap_or_default()
            } else {
                r.error.clone().unwrap_or_default()
            };
            let ours = if sandbox_ok {
                o.value.clone().unwrap_or_default()
            } else {
                o.error_line().unwrap_or_default()
            };
            disagreements.push(format!(
                "{name}:{} input {}: CPython {theirs} | sandbox {ours} [{}]",
                r.line,
                r.index,
                cause(&theirs, &ours)
            ));
        }
    }
    let rate = agreed as f64 / judged.max(1) as f64;
    println!(
        "fidelity against PYTHONHASHSEED=0 CPython: {agreed}/{judged} agree ({:.2}%); set apart: \
         {third_party} importing third-party modules; {} disagreements:",
        rate * 100.0,
        disagreements.len()
    );
    for d in &disagreements {
        let short: String = d.chars().take(400).collect();
        println!("  {short}");
    }
    assert!(
        rate >= 0.998,
        "agreement {:.2}% is below 99.8%",
        rate * 100.0
    );
}

/// Users clone the repository alone: nothing it tracks may reach for a folder beside the
/// checkout, and the main job's first command (`azr-sandbox eval` over the seed programs the
/// checkout ships) runs from a clone with nothing beside it.
#[test]
fn a_clone_of_the_repository_alone_runs_the_main_jobs_first_command() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let git = |dir: &std::path::Path, args: &[&str]| {
        std::process::Command::new("git")
            .current_dir(dir)
            .args(args)
            .output()
            .expect("git runs")
    };
    // Spelled apart, so that this file does not list itself.
    let beside = format!("{}/{}", "..", "shared");
    let listed = git(&root, &["grep", "-l", "-F", &beside, "--", ":!*.md"]);
    let offenders = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(
        offenders.trim().is_empty(),
        "tracked files that read {beside}: {offenders}"
    );

    let scratch = std::env::temp_dir().join(format!("azr-alone-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).expect("scratch");
    let clone = scratch.join("azr-rs");
    let cloned = git(
        &scratch,
        &[
            "clone",
            "--quiet",
            "--no-hardlinks",
            &root.display().to_string(),
            "azr-rs",
        ],
    );
    assert!(
        cloned.status.success(),
        "{}",
        String::from_utf8_lossy(&cloned.stderr)
    );
    let out = scratch.join("answers.jsonl");
    let eval = std::process::Command::new(env!("CARGO_BIN_EXE_azr-sandbox"))
        .current_dir(&clone)
        .args([
            "eval",
            "--jsonl",
            "data/azr-seeds/7b_seed_io.jsonl",
            "--output",
        ])
        .arg(&out)
        .output()
        .expect("azr-sandbox runs");
    assert!(
        eval.status.success(),
        "{}",
        String::from_utf8_lossy(&eval.stderr)
    );
    let answers = std::fs::read_to_string(&out).expect("answers written");
    assert_eq!(answers.lines().count(), 256, "one answer per seed program");
    let _ = std::fs::remove_dir_all(&scratch);
}
