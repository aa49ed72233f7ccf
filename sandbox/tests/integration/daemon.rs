//! The daemon as its users meet it: the real `azr-sandbox serve` binary on a real Unix
//! socket, called through the real client. Every RPC, every status code, the socket's
//! permissions and peer check, SIGTERM, seccomp on every thread, socket activation, a load
//! and hostile mix, and the recorded system calls of a workload against the policy.

use crate::support;

use std::{collections::BTreeSet, time::Duration};

use azr_sandbox_client::{CallOptions, Client, ClientError, RetryPolicy, v1};
use support::{Daemon, hostile_programs, seed_programs};
use tonic::Code;

fn program(source: &str) -> Option<v1::Program> {
    Some(v1::Program {
        source: source.into(),
        imports: vec![],
        ..Default::default()
    })
}

fn verdict(o: &v1::Outcome) -> v1::Verdict {
    v1::Verdict::try_from(o.verdict).unwrap_or(v1::Verdict::Unspecified)
}

fn no_retry(client: Client) -> Client {
    client.with_retry(RetryPolicy {
        attempts: 1,
        ..RetryPolicy::default()
    })
}

fn small_limits() -> Option<v1::Options> {
    Some(v1::Options {
        limits: Some(v1::Limits {
            fuel: Some(200_000_000),
            timeout_ms: Some(2_000),
            memory_bytes: Some(128 << 20),
            ..Default::default()
        }),
        rules: None,
    })
}

#[test]
fn every_rpc_answers_over_a_real_socket() {
    let daemon = Daemon::start("");
    daemon.block_on(async {
        let client = daemon.client();
        let health = client.health().await.expect("health");
        assert_eq!(health.status, "serving");
        assert_eq!(health.workers, 2);

        let call = CallOptions::default();
        let run = client
            .run(
                v1::RunTask {
                    program: program("def f(x):\n    print('hi')\n    return x * 2"),
                    input: Some("21".into()),
                },
                &call,
            )
            .await
            .expect("run");
        assert_eq!(verdict(&run), v1::Verdict::Ok);
        assert_eq!(run.value.as_deref(), Some("42"));
        assert_eq!(run.stdout, "hi\n");

        let valid = client
            .validate(
                v1::ValidateTask {
                    program: program("import random\ndef f(x):\n    return x"),
                    input: "1".into(),
                },
                &call,
            )
            .await
            .expect("validate");
        assert_eq!(verdict(&valid), v1::Verdict::Rejected, "{valid:?}");

        use v1::check_task::Kind;
        let f = "def f(a, b):\n    return a + b";
        let checks = [
            (
                Kind::Deduction(v1::Deduction {
                    gold_output: "3".into(),
                    answer: "3".into(),
                }),
                true,
            ),
            (
                Kind::Abduction(v1::Abduction {
                    gold_output: "3".into(),
                    answer: "2, 2".into(),
                }),
                false,
            ),
            (
                Kind::Induction(v1::Induction {
                    inputs: vec!["1, 2".into(), "'a', 'b'".into()],
                    outputs: vec!["3".into(), "'ab'".into()],
                }),
                true,
            ),
        ];
        for (kind, expected) in checks {
            let o = client
                .check(
                    v1::CheckTask {
                        program: program(f),
                        kind: Some(kind),
                    },
                    &call,
                )
                .await
                .expect("check");
            assert_eq!(o.passed, Some(expected), "{o:?}");
        }

        // One program against many inputs, sent once.
        let tasks = (0..5)
            .map(|i| v1::RunTask {
                program: None,
                input: Some(i.to_string()),
            })
            .collect();
        let outs = client
            .run_batch(tasks, program("def f(x):\n    return 10 // (3 - x)"), &call)
            .await
            .expect("run batch");
        let values: Vec<_> = outs.iter().map(|o| o.value.clone()).collect();
        assert_eq!(values[0].as_deref(), Some("3"));
        assert_eq!(verdict(&outs[3]), v1::Verdict::Error, "ZeroDivisionError");
        assert_eq!(values[4].as_deref(), Some("-10"));

        let stop = CallOptions {
            stop_on_failure: true,
            ..CallOptions::default()
        };
        let tasks = (0..5)
            .map(|i| v1::RunTask {
                program: None,
                input: Some(i.to_string()),
            })
            .collect();
        let outs = client
            .run_batch(tasks, program("def f(x):\n    return 10 // (3 - x)"), &stop)
            .await
            .expect("run batch");
        assert_eq!(verdict(&outs[2]), v1::Verdict::Ok);
        assert_eq!(verdict(&outs[3]), v1::Verdict::Error);
        assert_eq!(verdict(&outs[4]), v1::Verdict::Skipped);

        let tasks = vec![
            v1::ValidateTask {
                program: program("def f(x):\n    return sorted(x)"),
                input: "[3, 1, 2]".into(),
            },
            v1::ValidateTask {
                program: program("def g(x):\n    return x"),
                input: "1".into(),
            },
        ];
        let outs = client
            .validate_batch(tasks, None, &call)
            .await
            .expect("validate batch");
        assert_eq!(outs[0].value.as_deref(), Some("[1, 2, 3]"));
        assert_eq!(verdict(&outs[1]), v1::Verdict::Rejected);

        let tasks = ["3", "4", "(1+2)", "f(1, 2)", "int('3')"]
            .iter()
            .map(|answer| v1::CheckTask {
                program: None,
                kind: Some(Kind::Deduction(v1::Deduction {
                    gold_output: "3".into(),
                    answer: answer.to_string(),
                })),
            })
            .chain(
                ["1, 2", "*[n for n in range(5) if f(n, 2) == 3], 2"]
                    .iter()
                    .map(|answer| v1::CheckTask {
                        program: None,
                        kind: Some(Kind::Abduction(v1::Abduction {
                            gold_output: "3".into(),
                            answer: answer.to_string(),
                        })),
                    }),
            )
            .collect();
        let outs = client
            .check_batch(tasks, program(f), &call)
            .await
            .expect("check batch");
        let passed: Vec<_> = outs.iter().map(|o| o.passed).collect();
        assert_eq!(
            passed,
            [
                Some(true),
                Some(false),
                Some(true),
                Some(false),
                Some(true),
                Some(true),
                Some(false)
            ]
        );
        // An answer that runs the program is wrong, and says so.
        for refused in [&outs[3], &outs[6]] {
            assert_eq!(verdict(refused), v1::Verdict::Error, "{refused:?}");
            assert_eq!(
                refused.error_type.as_deref(),
                Some("AnswerUsesProgram"),
                "{refused:?}"
            );
            assert!(
                refused
                    .error_message
                    .as_deref()
                    .is_some_and(|m| m.contains("`f`")),
                "{refused:?}"
            );
        }

        let stats = client.stats().await.expect("stats");
        assert!(stats.tasks >= 15, "{stats:?}");
        assert!(stats.verdicts["ok"] > 0);
        assert_eq!(
            stats.latency_count.iter().sum::<u64>(),
            stats.requests_ok,
            "every answered request is in the histogram"
        );
    });
}

#[test]
fn malformed_and_oversized_requests_are_invalid_arguments() {
    let daemon = Daemon::start("[server]\nmax_request_bytes = 65536\nmax_batch_tasks = 8\n");
    daemon.block_on(async {
        let client = no_retry(daemon.client());
        let expect_invalid = |r: Result<v1::Outcome, ClientError>, needle: &str| match r {
            Err(e) => {
                assert_eq!(e.code(), Some(Code::InvalidArgument), "{e}");
                assert!(e.to_string().contains(needle), "{e}");
            }
            Ok(o) => panic!("accepted: {o:?}"),
        };
        let call = CallOptions::default();
        expect_invalid(
            client
                .check(
                    v1::CheckTask {
                        program: program("def f(x): return x"),
                        kind: None,
                    },
                    &call,
                )
                .await,
            "kind is unset",
        );
        let zero = CallOptions {
            options: Some(v1::Options {
                limits: Some(v1::Limits {
                    fuel: Some(0),
                    ..Default::default()
                }),
                rules: None,
            }),
            ..CallOptions::default()
        };
        expect_invalid(
            client
                .run(
                    v1::RunTask {
                        program: program("x = 1"),
                        input: None,
                    },
                    &zero,
                )
                .await,
            "fuel",
        );
        expect_invalid(
            client
                .run(
                    v1::RunTask {
                        program: program(&"#".repeat(100_000)),
                        input: None,
                    },
                    &call,
                )
                .await,
            "",
        );
        let many = (0..9)
            .map(|_| v1::RunTask {
                program: program("x = 1"),
                input: None,
            })
            .collect();
        let err = client
            .with_max_batch_tasks(100)
            .run_batch(many, None, &call)
            .await
            .expect_err("too many tasks");
        assert_eq!(err.code(), Some(Code::InvalidArgument), "{err}");
    });
    // A program's own failure is a result, not an RPC error.
    daemon.block_on(async {
        let o = daemon
            .client()
            .run(
                v1::RunTask {
                    program: program("raise ValueError('mine')"),
                    input: None,
                },
                &CallOptions::default(),
            )
            .await
            .expect("answered");
        assert_eq!(verdict(&o), v1::Verdict::Error);
        assert_eq!(o.error_type.as_deref(), Some("ValueError"));
    });
}

#[test]
fn a_full_queue_is_resource_exhausted_and_a_passed_deadline_is_deadline_exceeded() {
    let daemon = Daemon::start("workers = 1\nqueue = 1\n");
    daemon.block_on(async {
        let client = no_retry(daemon.client());
        let slow = CallOptions {
            options: Some(v1::Options {
                limits: Some(v1::Limits {
                    timeout_ms: Some(1_500),
                    ..Default::default()
                }),
                rules: None,
            }),
            ..CallOptions::default()
        };
        let task = || v1::RunTask {
            program: program("while True:\n    pass"),
            input: None,
        };
        let calls = (0..6).map(|_| client.run(task(), &slow));
        let answers = futures_join(calls).await;
        let busy = answers
            .iter()
            .filter(|a| matches!(a, Err(e) if e.code() == Some(Code::ResourceExhausted)))
            .count();
        let ran = answers.iter().filter(|a| a.is_ok()).count();
        assert!(busy >= 1, "{answers:?}");
        assert!(ran >= 1, "{answers:?}");

        let deadline = CallOptions {
            timeout: Some(Duration::from_millis(300)),
            ..slow.clone()
        };
        let err = client
            .run(task(), &deadline)
            .await
            .expect_err("deadline passes first");
        assert_eq!(err.code(), Some(Code::DeadlineExceeded), "{err}");
        // Whichever side noticed the deadline first: the daemon answers DEADLINE_EXCEEDED, or
        // the client's channel resets the stream and the daemon counts it cancelled once it
        // sees the reset, which may be after our next call: ask again for a while.
        let mut stats = client.stats().await.expect("stats");
        for _ in 0..40 {
            if stats.requests_deadline_exceeded + stats.requests_cancelled >= 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            stats = client.stats().await.expect("stats");
        }
        assert!(stats.requests_rejected_busy >= 1);
        assert!(stats.requests_deadline_exceeded + stats.requests_cancelled >= 1);
    });
}

#[test]
fn a_peer_not_on_the_allow_list_is_refused() {
    let daemon = Daemon::start("[server]\nallow_uids = [4242]\n");
    daemon.block_on(async {
        let err = no_retry(daemon.client())
            .health()
            .await
            .expect_err("refused");
        assert_eq!(err.code(), Some(Code::PermissionDenied), "{err}");
    });
}

#[test]
fn the_socket_is_group_accessible_only() {
    use std::os::unix::fs::PermissionsExt;
    let daemon = Daemon::start("");
    let mode = std::fs::metadata(&daemon.socket)
        .expect("socket exists")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o660);
}

#[test]
fn sigterm_finishes_work_in_flight_removes_the_socket_and_exits_zero() {
    let mut daemon = Daemon::start("");
    let socket = daemon.socket.clone();
    let result = daemon.block_on(async {
        let client = daemon.client();
        let call = CallOptions::default();
        let long = client.run(
            v1::RunTask {
                program: program("import time\nx = 0\nfor i in range(3_000_000):\n    x += i\ndef f(a):\n    return a"),
                input: Some("'done'".into()),
            },
            &call,
        );
        let term = async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            daemon.terminate();
        };
        let (answer, ()) = tokio::join!(long, term);
        answer
    });
    let outcome = result.expect("the request in flight is answered");
    assert_eq!(outcome.value.as_deref(), Some("'done'"), "{outcome:?}");
    let status = daemon.wait();
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(!socket.exists(), "socket removed");
}

#[test]
fn every_thread_of_the_daemon_runs_under_seccomp() {
    let daemon = Daemon::start("");
    let tasks = std::fs::read_dir(format!("/proc/{}/task", daemon.pid())).expect("proc");
    let mut seen = 0;
    for task in tasks.flatten() {
        let status = std::fs::read_to_string(task.path().join("status")).expect("status");
        let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        assert!(
            status
                .lines()
                .any(|l| l.split_whitespace().eq(["Seccomp:", "2"])),
            "thread {} ({}) is not filtered:\n{status}",
            task.file_name().to_string_lossy(),
            name.trim()
        );
        seen += 1;
    }
    assert!(seen >= 5, "main, epoch, 2 I/O and 2 worker threads");
}

#[test]
fn a_forbidden_system_call_inside_the_daemon_stops_it() {
    let mut daemon = Daemon::start("");
    let out = daemon.call_forbidden_socket();
    let status = daemon.wait();
    let stderr = daemon.stderr();
    assert_eq!(
        status.code(),
        Some(128 + 31),
        "stopped by the SIGSYS handler: {status:?}\n{out}\n{stderr}",
    );
    assert!(
        stderr.contains("seccomp refused system call 41"),
        "names the call (41 = socket): {stderr}"
    );
}

#[test]
fn systemd_socket_activation_is_served() {
    let daemon = Daemon::start_activated("");
    daemon.block_on(async {
        let health = daemon.client().health().await.expect("health");
        assert_eq!(health.status, "serving");
    });
}

#[test]
fn sixteen_clients_and_hostile_programs_of_every_verdict_are_all_answered_by_one_process() {
    const REQUESTS: usize = 4_000;
    const CLIENTS: usize = 16;
    // One request in eight is hostile, drawn in turn from every non-`ok` case of
    // tests/data/verdicts.toml with the limits that make it end that way.
    const HOSTILE_EVERY: usize = 8;
    let mut daemon = Daemon::start("");
    let pid = daemon.pid();
    let seeds = seed_programs();
    let hostile: Vec<support::VerdictCase> = support::verdict_cases()
        .into_iter()
        .filter(|c| c.verdict != "ok")
        .collect();
    // Warm-up: every case once, so that what is measured afterwards is steady state (the
    // workers' memory slots and instances exist).
    daemon.block_on(async {
        let client = daemon.client();
        for case in &hostile {
            case.send(&client).await.expect("warm-up answered");
        }
    });
    let fds_before = daemon.open_fds();
    let threads_before = support::threads(pid);
    let rss_before = support::rss_kib(pid).unwrap_or(0);
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let watcher = {
        let peak = peak.clone();
        std::thread::spawn(move || {
            while let Some(kib) = support::rss_kib(pid) {
                peak.fetch_max(kib, std::sync::atomic::Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let started = std::time::Instant::now();
    let verdicts = daemon.block_on(async {
        let client = std::sync::Arc::new(daemon.client());
        let mut handles = Vec::new();
        for c in 0..CLIENTS {
            let client = client.clone();
            let seeds = seeds.clone();
            let hostile = hostile.clone();
            handles.push(tokio::spawn(async move {
                let mut verdicts = Vec::new();
                let mut i = c;
                while i < REQUESTS {
                    let outcome = if i % HOSTILE_EVERY == 0 {
                        hostile[(i / HOSTILE_EVERY) % hostile.len()]
                            .send(&client)
                            .await
                    } else {
                        let (s, x) = &seeds[i % seeds.len()];
                        let call = CallOptions {
                            options: small_limits(),
                            ..CallOptions::default()
                        };
                        client
                            .run(
                                v1::RunTask {
                                    program: program(s),
                                    input: Some(x.clone()),
                                },
                                &call,
                            )
                            .await
                    };
                    verdicts.push(
                        outcome
                            .map(|o| support::verdict_name(&o))
                            .map_err(|e| e.to_string()),
                    );
                    i += CLIENTS;
                }
                verdicts
            }));
        }
        let mut all = Vec::new();
        for h in handles {
            all.extend(h.await.expect("client task"));
        }
        all
    });
    let secs = started.elapsed().as_secs_f64();
    let failures: BTreeSet<String> = verdicts
        .iter()
        .filter_map(|v| v.as_ref().err().cloned())
        .collect();
    let answered = verdicts.iter().filter(|v| v.is_ok()).count();
    assert_eq!(answered, REQUESTS, "every request answered: {failures:?}");
    assert!(daemon.alive(), "daemon alive:\n{}", daemon.stderr());
    let fds_after = daemon.open_fds();
    let threads_after = support::threads(pid);
    let rss_after = support::rss_kib(pid).unwrap_or(0);
    let peak_mib = peak.load(std::sync::atomic::Ordering::Relaxed) / 1024;
    let mut by_verdict = std::collections::BTreeMap::new();
    for v in verdicts.iter().flatten() {
        *by_verdict.entry(v.clone()).or_insert(0) += 1;
    }
    eprintln!(
        "load: {REQUESTS} requests from {CLIENTS} clients in {secs:.1} s ({:.0}/s); verdicts \
         {by_verdict:?}; daemon pid {pid} throughout; RSS {} -> {} MiB (peak {peak_mib} MiB); \
         fds {fds_before} -> {fds_after}; threads {threads_before:?} -> {threads_after:?}",
        REQUESTS as f64 / secs,
        rss_before / 1024,
        rss_after / 1024,
    );
    for kind in support::verdict_kinds() {
        assert!(
            by_verdict.get(kind).copied().unwrap_or(0) > 0,
            "no {kind} among {by_verdict:?}"
        );
    }
    assert_eq!(daemon.pid(), pid);
    assert_eq!(threads_after, threads_before, "no thread came or went");
    assert!(
        fds_after <= fds_before + 2,
        "no descriptor leak: {fds_before} -> {fds_after}"
    );
    assert!(peak_mib < 2048, "daemon RSS bounded: peak {peak_mib} MiB");
    assert!(
        rss_after <= rss_before + (128 << 10),
        "RSS back to steady state: {} -> {} MiB",
        rss_before / 1024,
        rss_after / 1024
    );
    drop(daemon);
    let _ = watcher.join();
}

#[test]
fn a_recorded_workload_stays_inside_the_seccomp_policy() {
    let Some(strace) = support::which("strace") else {
        panic!("strace is needed for this test (scripts/apt-deps.sh daemon installs it)");
    };
    let trace = tempfile_path("trace");
    let mut daemon = Daemon::start_traced(&strace, &trace, "");
    daemon.block_on(async {
        let client = daemon.client();
        let call = CallOptions {
            options: small_limits(),
            ..CallOptions::default()
        };
        for (source, input) in seed_programs().into_iter().take(40) {
            let _ = client
                .validate(
                    v1::ValidateTask {
                        program: program(&source),
                        input,
                    },
                    &call,
                )
                .await;
        }
        for source in hostile_programs() {
            let _ = client
                .run(
                    v1::RunTask {
                        program: program(&source),
                        input: None,
                    },
                    &call,
                )
                .await;
        }
        // Every verdict kind, guest panics and allocation failures included.
        for case in support::verdict_cases() {
            let _ = case.send(&client).await;
        }
        client.stats().await.expect("stats");
    });
    daemon.terminate();
    let status = daemon.wait();
    assert_eq!(status.code(), Some(0), "{}", daemon.stderr());
    let text = std::fs::read_to_string(&trace).expect("trace written");
    let used = support::syscalls_after_lockdown(&text);
    let allowed = support::policy_syscalls("daemon");
    let drift: Vec<_> = used.difference(&allowed).cloned().collect();
    assert!(
        drift.is_empty(),
        "system calls made under the filter but not in policies/seccomp/x86_64.json: {drift:?}"
    );
    assert!(
        used.contains("accept4") && used.contains("futex"),
        "{used:?}"
    );
    let _ = std::fs::remove_file(&trace);
}

fn tempfile_path(what: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("azr-daemon-{what}-{}", std::process::id()))
}

/// Polls all futures concurrently on this task.
async fn futures_join<F: std::future::Future>(fs: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let handles: Vec<_> = fs.into_iter().map(Box::pin).collect();
    let mut results = Vec::new();
    let mut pending: Vec<_> = handles.into_iter().map(Some).collect();
    let mut outputs: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (i, slot) in pending.iter_mut().enumerate() {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        outputs[i] = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => done = false,
                }
            }
        }
        if done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    results.extend(outputs.into_iter().flatten());
    results
}

#[test]
fn the_systemd_units_pass_systemd_analyze_verify() {
    let Some(analyze) = support::which("systemd-analyze") else {
        panic!("systemd-analyze is needed (scripts/apt-deps.sh daemon installs systemd)");
    };
    let units = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd");
    let dir = tempfile_path("units");
    std::fs::create_dir_all(&dir).expect("temp dir");
    // verify checks that ExecStart exists: point it at the binary under test.
    let service = std::fs::read_to_string(units.join("azr-sandbox.service")).expect("unit");
    for directive in [
        "ProtectSystem=strict",
        "PrivateNetwork=yes",
        "NoNewPrivileges=yes",
        "RestrictAddressFamilies=AF_UNIX",
        "MemoryMax=",
    ] {
        assert!(service.contains(directive), "missing {directive}");
    }
    let service = service.replace(
        "/usr/local/bin/azr-sandbox",
        env!("CARGO_BIN_EXE_azr-sandbox"),
    );
    std::fs::write(dir.join("azr-sandbox.service"), service).expect("write");
    std::fs::copy(
        units.join("azr-sandbox.socket"),
        dir.join("azr-sandbox.socket"),
    )
    .expect("copy");
    let out = std::process::Command::new(analyze)
        .args(["verify", "--man=no"])
        .arg(dir.join("azr-sandbox.socket"))
        .arg(dir.join("azr-sandbox.service"))
        .output()
        .expect("systemd-analyze runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // Unknown keys are only warnings: any output is a finding.
    assert!(stderr.trim().is_empty(), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Reads from an HTTP connection until the daemon closes it (or `limit` passes): what it
/// said, and how long that took.
fn read_until_closed(stream: &mut std::net::TcpStream, limit: Duration) -> (String, Duration) {
    use std::io::Read;
    let started = std::time::Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let mut said = Vec::new();
    let mut buf = [0u8; 4096];
    while started.elapsed() < limit {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => said.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => break,
        }
    }
    (
        String::from_utf8_lossy(&said).into_owned(),
        started.elapsed(),
    )
}

#[test]
fn http_connections_are_bounded_in_number_silence_headers_and_bodies_and_grpc_is_not_starved() {
    use std::io::Write;
    let port = free_port();
    let daemon = Daemon::start(&format!(
        "[server]\nhttp = \"127.0.0.1:{port}\"\nmax_request_bytes = 65536\n\
         http_max_connections = 6\nhttp_idle_timeout_ms = 1500\nhttp_header_timeout_ms = 1500\n\
         http_body_timeout_ms = 1500\nhttp_body_budget_bytes = 131072\n"
    ));
    let connect = || {
        let stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        stream
    };
    let head = |length: usize| {
        format!(
            "POST /run_code HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
             Content-Length: {length}\r\n\r\n"
        )
    };
    let long = Duration::from_secs(15);

    // A body declared past the bound: 413 at once, before any of it is read.
    let mut big = connect();
    big.write_all(head(100_000).as_bytes()).expect("written");
    let (said, _) = read_until_closed(&mut big, Duration::from_secs(5));
    assert!(said.starts_with("HTTP/1.1 413"), "{said}");

    // A body that stops arriving: 408 once the body time-out passes, though the client
    // keeps the connection busy with a byte now and then.
    let mut slow = connect();
    slow.write_all(head(1000).as_bytes()).expect("written");
    slow.write_all(b"{\"code\": ").expect("written");
    let started = std::time::Instant::now();
    let mut said = String::new();
    while started.elapsed() < long && said.is_empty() {
        let _ = slow.write_all(b" ");
        let (s, _) = read_until_closed(&mut slow, Duration::from_millis(300));
        said = s;
    }
    assert!(said.starts_with("HTTP/1.1 408"), "{said}");
    assert!(
        started.elapsed() >= Duration::from_millis(1000),
        "{:?}",
        started.elapsed()
    );

    // Headers trickled a byte at a time (never idle): closed at the header time-out.
    let mut trickle = connect();
    let started = std::time::Instant::now();
    let mut closed = false;
    for byte in b"POST /run_code HTTP/1.1\r\nHost: t\r\nX-Padding: "
        .iter()
        .chain(std::iter::repeat(&b'a'))
    {
        if started.elapsed() > long {
            break;
        }
        if trickle.write_all(&[*byte]).is_err() {
            closed = true;
            break;
        }
        let (said, took) = read_until_closed(&mut trickle, Duration::from_millis(150));
        if took < Duration::from_millis(150) || !said.is_empty() {
            closed = true;
            break;
        }
    }
    assert!(closed, "a trickle of headers kept its connection");
    assert!(
        started.elapsed() >= Duration::from_millis(1000),
        "closed after {:?}",
        started.elapsed()
    );

    // Bodies held together past the budget: the one that would pass it is answered 503.
    let mut holders: Vec<_> = (0..2)
        .map(|_| {
            let mut s = connect();
            s.write_all(head(65_000).as_bytes()).expect("written");
            s.write_all(&[b' '; 60_000]).expect("written");
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut third = connect();
    third.write_all(head(65_000).as_bytes()).expect("written");
    let _ = third.write_all(&[b' '; 20_000]);
    let (said, _) = read_until_closed(&mut third, Duration::from_secs(5));
    assert!(said.starts_with("HTTP/1.1 503"), "{said}");
    holders.clear();

    // A silent connection is closed at the idle time-out; connections past the limit at once,
    // and meanwhile gRPC clients are served.
    std::thread::sleep(Duration::from_millis(300));
    let opened = std::time::Instant::now();
    let mut silent: Vec<_> = (0..6).map(|_| connect()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut over = connect();
    let (_, took) = read_until_closed(&mut over, Duration::from_secs(5));
    assert!(
        took < Duration::from_secs(1),
        "over the limit: closed after {took:?}"
    );
    daemon.block_on(async {
        let client = daemon.client();
        for _ in 0..20 {
            let health = client.health().await.expect("gRPC is served");
            assert_eq!(health.status, "serving");
        }
    });
    let (said, _) = read_until_closed(&mut silent[0], long);
    let took = opened.elapsed();
    assert!(said.is_empty(), "{said}");
    assert!(
        took >= Duration::from_millis(1400) && took < Duration::from_secs(10),
        "idle connection closed after {took:?}"
    );
    silent.clear();

    // And a well-behaved request after all that is answered.
    std::thread::sleep(Duration::from_millis(300));
    let body = r#"{"code": "print(6 * 7)", "language": "python"}"#;
    let mut good = connect();
    good.write_all(format!("{}{body}", head(body.len())).as_bytes())
        .expect("written");
    let (said, _) = read_until_closed(&mut good, Duration::from_secs(10));
    assert!(said.starts_with("HTTP/1.1 200"), "{said}");
    assert!(said.contains("42"), "{said}");
}

#[test]
fn an_http_request_that_finds_no_room_is_answered_504_within_the_configured_wait() {
    use std::io::Write;
    let port = free_port();
    let daemon = Daemon::start(&format!(
        "workers = 1\nqueue = 1\n[server]\nhttp = \"127.0.0.1:{port}\"\nhttp_queue_wait_ms = 300\n"
    ));
    // Each request keeps the one worker busy until its 2 s time limit; one more may queue.
    let body = r#"{"code": "while True:\n    pass", "language": "python", "run_timeout": 2}"#;
    let request = format!(
        "POST /run_code HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
         Connection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let clients: Vec<_> = (0..5)
        .map(|_| {
            let request = request.clone();
            std::thread::spawn(move || {
                let started = std::time::Instant::now();
                let mut stream =
                    std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
                stream.write_all(request.as_bytes()).expect("written");
                let (said, _) = read_until_closed(&mut stream, Duration::from_secs(30));
                (said, started.elapsed())
            })
        })
        .collect();
    let answers: Vec<(String, Duration)> = clients
        .into_iter()
        .map(|c| c.join().expect("client thread"))
        .collect();
    let refused: Vec<&(String, Duration)> = answers
        .iter()
        .filter(|(said, _)| said.starts_with("HTTP/1.1 504"))
        .collect();
    assert!(!refused.is_empty(), "{answers:#?}");
    for (_, took) in &refused {
        assert!(*took < Duration::from_millis(1900), "504 after {took:?}");
    }
    assert!(
        answers
            .iter()
            .all(|(said, _)| said.starts_with("HTTP/1.1 504") || said.starts_with("HTTP/1.1 200")),
        "{answers:#?}"
    );
    drop(daemon);
}

#[test]
fn an_http_run_gets_the_time_it_asks_for_up_to_the_ceiling() {
    use std::io::Write;
    let port = free_port();
    // The daemon's own limit is 500 ms; HTTP requests may ask for up to 3 s.
    let daemon = Daemon::start(&format!(
        "[limits]\ntimeout_ms = 500\n[server]\nhttp = \"127.0.0.1:{port}\"\n\
         http_max_run_timeout_ms = 3000\n"
    ));
    let post = |run_timeout: f64| {
        let body = format!(
            r#"{{"code": "import time\nt = time.perf_counter()\nx = 0\nfor i in range(4000000):\n    x += i\nprint(x)", "language": "python", "run_timeout": {run_timeout}}}"#
        );
        let request = format!(
            "POST /run_code HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
             Connection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.write_all(request.as_bytes()).expect("written");
        let (said, _) = read_until_closed(&mut stream, Duration::from_secs(30));
        said
    };
    // Several times the daemon's limit of work, asked for with time to spare: it finishes.
    let long = post(10.0);
    assert!(long.contains("\"status\":\"Success\""), "{long}");
    assert!(long.contains("7999998000000"), "{long}");
    let body = long.split("\r\n\r\n").nth(1).unwrap_or_default();
    let response: serde_json::Value = serde_json::from_str(body).expect("a JSON body");
    let took = response["run_result"]["execution_time"]
        .as_f64()
        .unwrap_or(0.0);
    assert!(
        took > 0.5,
        "the run took {took} s: not past the daemon's own limit"
    );
    // The same work with less time than it needs: a time limit, not a fuel or memory one.
    let short = post(0.05);
    assert!(short.contains("TimeLimitExceeded"), "{short}");
    drop(daemon);
}
