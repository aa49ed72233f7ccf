//! A second stock gRPC implementation against a real daemon: Node's `@grpc/grpc-js` with
//! default options (`scripts/node-clients.sh` installs it; run by `scripts/test.sh`, and by
//! the test itself, instant once cached). grpc-go and grpcurl cannot be installed here (no
//! Go module proxy), so this stands in for clients that are not grpcio.

use crate::support;

use std::process::Command;

use support::Daemon;

#[test]
fn a_stock_grpc_js_client_with_default_options_is_served() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/node-clients.sh");
    let out = Command::new("bash")
        .arg(script)
        .output()
        .expect("run node-clients.sh");
    assert!(
        out.status.success(),
        "scripts/node-clients.sh failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let modules = format!(
        "{}/node_modules",
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or_default()
            .trim()
    );
    let daemon = Daemon::start("");
    let out = Command::new("node")
        .env("NODE_PATH", &modules)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/node/grpc_js_client.js"
        ))
        .arg(&daemon.socket)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../proto"))
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "grpc_js_client.js failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("no JSON ({e}): {stdout}"));
    assert_eq!(r["health"], "serving", "{r}");
    assert_eq!(
        r["run"],
        serde_json::json!(["VERDICT_OK", "42", "hi\n"]),
        "{r}"
    );
    assert_eq!(
        r["batch"],
        serde_json::json!([["VERDICT_OK", true, 0], ["VERDICT_ERROR", false, 1]]),
        "{r}"
    );
    // Precise status codes reach this client too.
    assert_eq!(r["invalid"], "INVALID_ARGUMENT", "{r}");
}
