//! The daemon as Python RL stacks meet it: stock clients, default options, a real daemon on
//! a real socket. Needs `scripts/client-venv.sh` (run by `scripts/test.sh`; the test runs it
//! too, which is instant once the venv exists).

use crate::support;

use std::{path::PathBuf, process::Command};

use support::Daemon;

/// The python of the client venv, created if needed.
fn client_python() -> PathBuf {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/client-venv.sh");
    let out = Command::new("bash")
        .arg(script)
        .output()
        .expect("run scripts/client-venv.sh");
    assert!(
        out.status.success(),
        "scripts/client-venv.sh failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    PathBuf::from(stdout.lines().last().expect("the venv's python").trim())
}

fn run_python(script: &str, args: &[&str]) -> serde_json::Value {
    let path = format!("{}/tests/python/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(client_python())
        .arg(&path)
        .args(args)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{script} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{script} printed no JSON ({e}):\n{stdout}"))
}

#[test]
fn stock_grpcio_clients_with_default_options_are_served() {
    let daemon = Daemon::start("");
    let socket = daemon.socket.to_string_lossy().into_owned();
    let proto = concat!(env!("CARGO_MANIFEST_DIR"), "/../proto");
    let result = run_python("grpc_clients.py", &[&socket, proto]);
    for kind in ["sync", "aio"] {
        let calls = &result[kind];
        assert_eq!(calls["health"], "serving", "{kind}: {result}");
        assert_eq!(calls["run"]["verdict"], "VERDICT_OK", "{kind}: {result}");
        assert_eq!(calls["run"]["value"], "42", "{kind}: {result}");
        assert_eq!(calls["run"]["stdout"], "hi\n", "{kind}: {result}");
        assert_eq!(calls["check"]["passed"], true, "{kind}: {result}");
        // Precise status codes survive the rewrite of the request's headers.
        assert_eq!(calls["invalid"], "INVALID_ARGUMENT", "{kind}: {result}");
    }
}

/// A free loopback port (bound, read, released: the daemon binds it next).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

#[test]
fn verls_own_sandbox_fusion_client_scores_through_the_http_endpoint() {
    let port = free_port();
    let daemon = Daemon::start(&format!("[server]\nhttp = \"127.0.0.1:{port}\"\n"));
    let url = format!("http://127.0.0.1:{port}/run_code");
    let result = run_python("verl_sandbox_fusion.py", &[&url]);
    let score = |name: &str| result[name]["score"].as_f64().unwrap_or(-1.0);
    assert_eq!(score("stdin_right"), 1.0, "{result}");
    assert_eq!(score("stdin_wrong"), 0.0, "{result}");
    assert_eq!(score("fn_right"), 1.0, "{result}");
    assert_eq!(score("fn_solution_class"), 1.0, "{result}");
    assert_eq!(score("fn_wrong"), 0.0, "{result}");
    let statuses = |name: &str| result[name]["statuses"].clone();
    assert_eq!(
        statuses("stdin_wrong"),
        serde_json::json!(["wrong_answer", "wrong_answer", "wrong_answer"])
    );
    assert_eq!(statuses("runtime_error")[0], "runtime_error", "{result}");
    let traceback = result["runtime_error"]["stderr"][0]
        .as_str()
        .unwrap_or_default();
    assert!(traceback.contains("ValueError: boom"), "{result}");
    assert_eq!(statuses("timeout")[0], "timeout", "{result}");
    drop(daemon);
}

#[test]
fn sandbox_fusions_own_client_sends_files_and_fetches_them_back() {
    let port = free_port();
    let daemon = Daemon::start(&format!("[server]\nhttp = \"127.0.0.1:{port}\"\n"));
    let result = run_python(
        "sandbox_fusion_files.py",
        &[&format!("http://127.0.0.1:{port}")],
    );
    // A harness module imported, test cases read from JSON, a report written and fetched
    // (the path never written is left out, as SandboxFusion leaves it).
    assert_eq!(result["right"]["status"], "Success", "{result}");
    assert_eq!(result["right"]["stdout"], "3 3\n", "{result}");
    assert_eq!(
        result["right"]["files"],
        serde_json::json!({"report/summary.txt": "passed 3 of 3\n"}),
        "{result}"
    );
    assert_eq!(result["wrong"]["status"], "Failed", "{result}");
    assert!(
        result["wrong"]["stderr"]
            .as_str()
            .is_some_and(|s| s.contains("TypeError")),
        "{result}"
    );
    assert_eq!(
        result["reads"]["stdout"], "['harness.py', 'tests']\n['cases.json']\nTrue\nFalse\n",
        "{result}"
    );
    // Paths that leave the working directory: SandboxError, which the client raises.
    for (case, why) in [("escape", "`..`"), ("absolute", "absolute paths")] {
        assert!(
            result[case]["error"]
                .as_str()
                .is_some_and(|e| e.contains("Sandbox responded with error") && e.contains(why)),
            "{case}: {result}"
        );
    }
    assert_eq!(result["fresh"]["stdout"], "False\n", "{result}");
    drop(daemon);
}

#[test]
fn the_http_endpoint_refuses_what_it_cannot_run_and_stays_on_loopback() {
    let port = free_port();
    let daemon = Daemon::start(&format!("[server]\nhttp = \"127.0.0.1:{port}\"\n"));
    let result = run_python("http_edges.py", &[&format!("http://127.0.0.1:{port}")]);
    assert_eq!(result["ping"], "pong", "{result}");
    assert_eq!(result["cpp"]["status"], "SandboxError", "{result}");
    assert!(
        result["cpp"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Python only"),
        "{result}"
    );
    assert_eq!(result["bad_json"], 422, "{result}");
    assert_eq!(result["not_found"], 404, "{result}");
    assert_eq!(result["unknown_language"], 422, "{result}");
    let metrics = &result["metrics"];
    assert!(
        metrics["content_type"]
            .as_str()
            .unwrap_or_default()
            .starts_with("text/plain; version=0.0.4"),
        "{result}"
    );
    for family in [
        "azr_sandbox_requests",
        "azr_sandbox_tasks",
        "azr_sandbox_request_duration_seconds",
        "azr_sandbox_queue_depth",
        "azr_sandbox_workers",
        "azr_sandbox_workers_busy",
        "azr_sandbox_queue_wait_seconds",
        "azr_sandbox_tasks_in_flight",
        "azr_sandbox_uptime_seconds",
    ] {
        assert!(
            metrics["families"]
                .as_array()
                .is_some_and(|f| f.iter().any(|n| n == family)),
            "{family}: {result}"
        );
    }
    // exit_3 and stdin ran (one error, one ok) before /metrics was read.
    assert!(
        metrics["tasks_ok"].as_f64().unwrap_or(0.0) >= 1.0,
        "{result}"
    );
    assert!(
        metrics["tasks_error"].as_f64().unwrap_or(0.0) >= 1.0,
        "{result}"
    );
    assert!(
        metrics["duration_count"].as_f64().unwrap_or(0.0) >= 2.0,
        "{result}"
    );
    assert_eq!(
        result["missing_code"]["detail"][0]["loc"],
        serde_json::json!(["body", "code"]),
        "{result}"
    );
    assert_eq!(result["exit_3"]["status"], "Failed", "{result}");
    assert_eq!(result["exit_3"]["run_result"]["return_code"], 3, "{result}");
    assert_eq!(result["stdin"]["run_result"]["stdout"], "6\n", "{result}");
    drop(daemon);

    // A non-loopback address needs the explicit switch: start-up fails, naming it.
    let dir = std::env::temp_dir().join(format!("azr-http-remote-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let config = dir.join("sandbox.toml");
    std::fs::write(&config, "workers = 1\n[server]\nhttp = \"0.0.0.0:0\"\n").expect("config");
    let out = Command::new(env!("CARGO_BIN_EXE_azr-sandbox"))
        .arg("--config")
        .arg(&config)
        .args(["serve", "--no-seccomp", "--socket"])
        .arg(dir.join("s.sock"))
        .output()
        .expect("run the daemon");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("http_allow_remote"), "{stderr}");
}
