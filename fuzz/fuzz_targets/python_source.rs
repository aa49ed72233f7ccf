//! Arbitrary Python programs through the real engine (RustPython in wasmtime, pooling
//! allocator, snapshot, fuel, epoch deadline, memory cap).
//!
//! Input: the program's source (bytes, decoded as lossy UTF-8). Each input runs as one batch:
//! `run` (execute the program), `validate` (AZR's rules and `f(1)` twice), then a known-good
//! program `def f(x): return x + 1` on input `1`, in a fresh instance after the fuzzed ones.
//! Invariants: no panic (a panic on any thread aborts under libFuzzer, including the pool's
//! workers, whose `catch_unwind` would otherwise hide it); one outcome per item; `passed` only
//! on checks; `ok` run/validate items carry a value; stdout and values respect their caps;
//! and the known-good program still returns `2` (nothing leaks from one program to the next,
//! whatever the previous one did or how it ended).
//!
//! `fault` outcomes (the interpreter itself failed, contained) are reported on stderr once per
//! kind, and the input saved under `$AZR_FUZZ_FAULT_DIR` (scripts/fuzz.sh: fuzz/artifacts/
//! python_source/fault-*); with `AZR_FUZZ_FAULT=abort` they are crashes too.
//!
//! The worker runs under the daemon's production lock-down: its thread gets the `daemon`,
//! `refuse` and `worker` seccomp filters of `policies/seccomp/` (the rest of the process stays
//! free, as libFuzzer needs), so an input that makes the host side of a guest call refused
//! system calls ends the process, exactly as it would end the served daemon. The SIGSYS
//! handler then names the call and the program; libFuzzer cannot save that input itself (the
//! process is gone), so each input is first written to `$AZR_FUZZ_INPUT_FILE` when it is
//! set (scripts/fuzz.sh: fuzz/artifacts/python_source/last-input).

#![no_main]

use std::{
    collections::HashSet,
    sync::{Mutex, OnceLock},
};

use azr_sandbox::{
    EngineConfig, Item, Limits, PoolConfig, Rules, Sandbox, Verdict, hardening::seccomp::Filters,
};
use libfuzzer_sys::fuzz_target;

const KNOWN_GOOD: &str = "def f(x): return x + 1";

fn sandbox() -> &'static Sandbox {
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

fn limits() -> Limits {
    Limits {
        fuel: 50_000_000,
        timeout_ms: 1000,
        memory_bytes: 64 << 20,
        stdout_chars: 4096,
        value_chars: 4096,
        ..Limits::default()
    }
}

fn report_fault(data: &[u8], program: &str, item: usize, outcome: &azr_sandbox::Outcome) {
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
fn outcome_feature(item: usize, outcome: &azr_sandbox::Outcome) {
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
fn remember_input(data: &[u8]) {
    static PATH: OnceLock<Option<std::path::PathBuf>> = OnceLock::new();
    if let Some(path) = PATH.get_or_init(|| std::env::var_os("AZR_FUZZ_INPUT_FILE").map(Into::into))
    {
        let _ = std::fs::write(path, data);
    }
}

fuzz_target!(|data: &[u8]| {
    remember_input(data);
    let program = String::from_utf8_lossy(data).into_owned();
    let items = vec![
        Item::Run {
            program: program.clone(),
            imports: vec![],
            input: None,
        },
        Item::Validate {
            program: program.clone(),
            imports: vec![],
            input: "1".into(),
        },
        Item::Run {
            program: KNOWN_GOOD.into(),
            imports: vec![],
            input: Some("1".into()),
        },
    ];
    let limits = limits();
    let outcomes = sandbox().run(items.clone(), &limits, &Rules::default());

    assert_eq!(
        outcomes.len(),
        items.len(),
        "one outcome per item: {outcomes:#?}"
    );
    for (i, (item, outcome)) in items.iter().zip(&outcomes).enumerate() {
        assert!(Verdict::ALL.contains(&outcome.verdict));
        assert_eq!(
            outcome.passed, None,
            "item {i}: run/validate have no `passed`"
        );
        assert!(
            outcome.stdout.chars().count() as u64 <= limits.stdout_chars,
            "item {i}: stdout over its cap"
        );
        if let Some(value) = &outcome.value {
            assert!(
                value.chars().count() as u64 <= limits.value_chars,
                "item {i}: value over its cap"
            );
        }
        match outcome.verdict {
            Verdict::Ok => {
                if matches!(item, Item::Validate { .. }) {
                    assert!(
                        outcome.value.is_some(),
                        "item {i}: validated without a value"
                    );
                }
            }
            Verdict::Fault => report_fault(data, &program, i, outcome),
            _ => assert!(
                outcome.error_type.is_some(),
                "item {i}: a {} outcome without an error type: {outcome:?}",
                outcome.verdict
            ),
        }
    }
    for (i, outcome) in outcomes[..2].iter().enumerate() {
        outcome_feature(i, outcome);
    }
    let good = &outcomes[2];
    assert!(
        good.verdict == Verdict::Ok && good.value.as_deref() == Some("2"),
        "the known-good program after this input: {good:?}"
    );
});
