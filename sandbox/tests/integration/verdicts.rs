//! The served daemon, seccomp on, through every verdict kind: after each program of
//! `tests/data/verdicts.toml` and each fuzzer regression input, the same daemon process
//! still answers `Health` and runs a benign program correctly.
//!
//! The in-process engine ends these programs cleanly too; what this pins is the daemon
//! under its lock-down, where a guest's first write to stderr once needed a system call the
//! filter forbids, and a ten-character program killed the service.

use crate::support;

use azr_sandbox_client::{CallOptions, Client, v1};
use support::{Daemon, VerdictCase, fuzz_regressions, verdict_cases, verdict_name};

/// Asserts that the daemon is the same process as before and serves normally.
fn still_serving(daemon: &mut Daemon, pid: u32, client: &Client, after: &str) {
    assert!(
        daemon.alive(),
        "the daemon died after {after}:\n{}",
        daemon.stderr()
    );
    assert_eq!(daemon.pid(), pid, "after {after}");
    let stderr = daemon.stderr();
    daemon.block_on(async {
        let health = client.health().await.unwrap_or_else(|e| {
            panic!("health after {after}: {e}\n{stderr}");
        });
        assert_eq!(health.status, "serving", "after {after}");
        let benign = client
            .run(
                v1::RunTask {
                    program: Some(v1::Program {
                        source: "def f(x):\n    return sorted(x)[::-1]".into(),
                        imports: vec![],
                        ..Default::default()
                    }),
                    input: Some("[3, 1, 2]".into()),
                },
                &CallOptions::default(),
            )
            .await
            .unwrap_or_else(|e| panic!("a benign program after {after}: {e}"));
        assert_eq!(benign.value.as_deref(), Some("[3, 2, 1]"), "after {after}");
    });
}

#[test]
fn every_verdict_kind_leaves_the_served_daemon_up() {
    let cases = verdict_cases();
    let kinds: std::collections::BTreeSet<&str> =
        cases.iter().map(|c| c.verdict.as_str()).collect();
    for kind in support::verdict_kinds() {
        assert!(kinds.contains(kind), "verdicts.toml has no {kind} case");
    }
    let mut daemon = Daemon::start("");
    let pid = daemon.pid();
    let client = daemon.client();
    let mut failures = Vec::new();
    for case in &cases {
        let VerdictCase { name, verdict, .. } = case;
        let outcome = daemon.block_on(case.send(&client));
        let outcome = outcome.unwrap_or_else(|e| {
            panic!("{name}: the request failed: {e}\n{}", daemon.stderr());
        });
        let got = verdict_name(&outcome);
        eprintln!(
            "{name}: {got} ({}: {})",
            outcome.error_type.as_deref().unwrap_or("-"),
            outcome.error_message.as_deref().unwrap_or("-")
        );
        if &got != verdict {
            failures.push(format!(
                "{name}: expected {verdict}, got {got}: {outcome:?}"
            ));
        }
        if got == "fault" {
            // A guest panic's own message reaches the caller.
            let message = outcome.error_message.as_deref().unwrap_or("");
            assert!(
                message.contains("the interpreter said:"),
                "{name}: {message}"
            );
        }
        still_serving(&mut daemon, pid, &client, name);
    }
    assert!(failures.is_empty(), "{failures:#?}");
    let stats = daemon.block_on(client.stats()).expect("stats");
    eprintln!("tasks by verdict: {:?}", stats.verdicts);
}

#[test]
fn the_fuzzers_regression_inputs_leave_the_served_daemon_up() {
    let inputs = fuzz_regressions("python_source");
    assert!(
        !inputs.is_empty(),
        "fuzz/regressions/python_source is empty"
    );
    let mut daemon = Daemon::start("");
    let pid = daemon.pid();
    let client = daemon.client();
    for (name, bytes) in inputs {
        let source = String::from_utf8_lossy(&bytes).into_owned();
        // As the fuzz target sends it: run, then validate with input 1.
        let call = CallOptions::default();
        let program = Some(v1::Program {
            source,
            imports: vec![],
            ..Default::default()
        });
        let ran = daemon.block_on(client.run(
            v1::RunTask {
                program: program.clone(),
                input: None,
            },
            &call,
        ));
        assert!(ran.is_ok(), "{name}: {ran:?}\n{}", daemon.stderr());
        let validated = daemon.block_on(client.validate(
            v1::ValidateTask {
                program,
                input: "1".into(),
            },
            &call,
        ));
        assert!(
            validated.is_ok(),
            "{name}: {validated:?}\n{}",
            daemon.stderr()
        );
        still_serving(&mut daemon, pid, &client, &name);
    }
}

#[test]
fn a_daemon_that_dies_names_the_programs_it_was_running() {
    // gdb makes the daemon call socket(AF_INET, ...) while a program runs, standing in for a
    // bug nobody has found yet: the report must name the program, so it can be reported.
    let mut daemon = Daemon::start("");
    let client = daemon.client();
    let request = {
        let running = daemon.client();
        daemon.runtime().spawn(async move {
            let client = running;
            client
                .run(
                    v1::RunTask {
                        program: Some(v1::Program {
                            source: "# AZR_CRASH_MARKER\nwhile True:\n    pass".into(),
                            imports: vec![],
                            ..Default::default()
                        }),
                        input: None,
                    },
                    &CallOptions::default(),
                )
                .await
        })
    };
    // Until a worker has the program (its stats count it as in flight).
    let started = std::time::Instant::now();
    loop {
        let stats = daemon.block_on(client.stats()).expect("stats");
        if stats.in_flight_tasks > 0 {
            break;
        }
        assert!(
            started.elapsed().as_secs() < 30,
            "the program never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    daemon.call_forbidden_socket();
    let status = daemon.wait();
    assert_eq!(status.code(), Some(128 + 31), "{}", daemon.stderr());
    let stderr = daemon.stderr();
    assert!(
        stderr.contains("seccomp refused system call 41"),
        "{stderr}"
    );
    assert!(
        stderr.contains("was running program") && stderr.contains("# AZR_CRASH_MARKER"),
        "{stderr}"
    );
    let answer = daemon.block_on(request).expect("task");
    assert!(
        answer.is_err(),
        "the request cannot be answered: {answer:?}"
    );
}
