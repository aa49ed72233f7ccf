//! What the engine-driving fuzz targets share (`python_source`, `check_answer`): one real
//! sandbox under the production lock-down, small limits, and the reporting of contained
//! interpreter faults. Included with `#[path]`; not a target itself.

use std::{
    collections::HashSet,
    sync::{Mutex, OnceLock},
};

use azr_sandbox::{EngineConfig, Limits, PoolConfig, Sandbox};
use azr_sandbox_hardening::seccomp::Filters;

pub fn sandbox() -> &'static Sandbox {
    static SANDBOX: OnceLock<Sandbox> = OnceLock::new();
    SANDBOX.get_or_init(|| {
        // One worker (libFuzzer runs one input at a time); the engine's cap is the shipped
        // default, so the snapshot cache is the one every other build uses.
        let mut config = PoolConfig::default();
        config.engine = EngineConfig {
            max_instances: 4,
            ..EngineConfig::default()
        };
        config.workers = 1;
        config.queue = 4;
        let filters = std::sync::Arc::new(
            Filters::compile(None).expect("the production seccomp policy compiles"),
        );
        config.worker_init = Some(std::sync::Arc::new(move || {
            filters
                .apply_worker_lockdown_to_this_thread()
                .map_err(|e| e.to_string())
        }));
        Sandbox::new(&config).expect("the sandbox starts")
    })
}

pub fn limits() -> Limits {
    Limits {
        fuel: 50_000_000,
        timeout_ms: 1000,
        memory_bytes: 64 << 20,
        stdout_chars: 4096,
        value_chars: 4096,
        ..Limits::default()
    }
}

pub fn report_fault(data: &[u8], program: &str, item: usize, outcome: &azr_sandbox::Outcome) {
    static SEEN: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    // Long enough to reach a panic's location (`…/compile.rs:686:26`), so that distinct
    // interpreter panics count as distinct kinds.
    let kind = format!(
        "{}: {}",
        outcome.error_type.as_deref().unwrap_or("?"),
        outcome
            .error_message
            .as_deref()
            .unwrap_or("")
            .chars()
            .take(240)
            .collect::<String>()
    );
    let abort = std::env::var_os("AZR_FUZZ_FAULT").is_some_and(|v| v == "abort");
    let new = SEEN
        .get_or_init(Default::default)
        .lock()
        .expect("not poisoned")
        .insert(kind.clone());
    if new || abort {
        let shown: String = program.chars().take(400).collect();
        eprintln!("azr-fuzz: fault in item {item}: {kind}\n--- program ---\n{shown}\n---");
        // The whole input, to reproduce it (`scripts/fuzz.sh` sets the directory).
        if new && let Some(dir) = std::env::var_os("AZR_FUZZ_FAULT_DIR") {
            use std::hash::{Hash, Hasher};
            let mut hasher = std::hash::DefaultHasher::new();
            data.hash(&mut hasher);
            let path = std::path::Path::new(&dir).join(format!("fault-{:016x}", hasher.finish()));
            if std::fs::create_dir_all(&dir)
                .and_then(|()| std::fs::write(&path, data))
                .is_ok()
            {
                eprintln!("azr-fuzz: saved as {}", path.display());
            }
        }
    }
    assert!(!abort, "fault outcome (AZR_FUZZ_FAULT=abort)");
}

/// libFuzzer sees coverage of host code only: the interpreter runs as wasm, compiled by
/// Cranelift, uninstrumented. To steer it towards programs that end differently, every
/// (item, verdict, error type) maps to one of 128 distinct branches here, each a coverage
/// feature of its own.
pub fn outcome_feature(item: usize, outcome: &azr_sandbox::Outcome) {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    (item, outcome.verdict, &outcome.error_type).hash(&mut hasher);
    let bucket = hasher.finish() % 128;
    macro_rules! branches {
        ($($n:literal)*) => {
            $( if bucket == $n { std::hint::black_box($n); return; } )*
        };
    }
    branches!(
        0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31
        32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60
        61 62 63 64 65 66 67 68 69 70 71 72 73 74 75 76 77 78 79 80 81 82 83 84 85 86 87 88 89
        90 91 92 93 94 95 96 97 98 99 100 101 102 103 104 105 106 107 108 109 110 111 112 113
        114 115 116 117 118 119 120 121 122 123 124 125 126 127
    );
}

/// Keeps the input where `$AZR_FUZZ_INPUT_FILE` says, before it runs: if the process dies
/// under the lock-down, that file holds the input that killed it.
pub fn remember_input(data: &[u8]) {
    static PATH: OnceLock<Option<std::path::PathBuf>> = OnceLock::new();
    if let Some(path) = PATH.get_or_init(|| std::env::var_os("AZR_FUZZ_INPUT_FILE").map(Into::into))
    {
        let _ = std::fs::write(path, data);
    }
}
