//! One real sandbox per test binary (the snapshot is made once and cached on disk).

#![allow(dead_code)]

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
    };
    sandbox()
        .run(vec![item], limits, &Rules::default())
        .pop()
        .expect("one outcome per item")
}

pub fn items(items: Vec<Item>) -> Vec<Outcome> {
    sandbox().run(items, &tight(), &Rules::default())
}

/// The seed data shipped beside the repository.
pub fn seeds_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/azr-seeds")
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
