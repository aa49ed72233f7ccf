//! Arbitrary answers through the judge (issue 15), with the real engine.
//!
//! Input: the first byte picks how the answer is judged (deduction or abduction against
//! `def f(x): return [x, x]` with gold `[1, 1]`), the rest is the answer (lossy UTF-8). Each
//! input runs as one batch: the fuzzed answer, a right answer, a wrong answer, the fuzzed
//! answer again, a right answer. Invariants: no panic on any thread; one outcome per item;
//! every check has `passed`, true only when the verdict is `ok`; the right answers pass and
//! the wrong one fails whatever the fuzzed answer did (nothing it does reaches the items
//! after it); the fuzzed answer gets the same `passed` both times (each item starts from the
//! same state). Same lock-down and fault reporting as `python_source`.

#![no_main]

use std::{
    collections::HashSet,
    sync::{Mutex, OnceLock},
};

use azr_sandbox::{
    EngineConfig, Item, Limits, PoolConfig, Rules, Sandbox, Verdict, hardening::seccomp::Filters,
};
use libfuzzer_sys::fuzz_target;

const PROGRAM: &str = "def f(x):\n    return [x, x]";

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

fn check(abduction: bool, answer: &str) -> Item {
    if abduction {
        Item::Abduction {
            program: PROGRAM.into(),
            imports: vec![],
            gold: "[1, 1]".into(),
            answer: answer.into(),
        }
    } else {
        Item::Deduction {
            program: PROGRAM.into(),
            imports: vec![],
            gold: "[1, 1]".into(),
            answer: answer.into(),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    remember_input(data);
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let abduction = kind & 1 == 1;
    let answer = String::from_utf8_lossy(rest).into_owned();
    let (right, wrong) = if abduction {
        ("1", "2")
    } else {
        ("[1, 1]", "[2, 2]")
    };
    let items = vec![
        check(abduction, &answer),
        check(abduction, right),
        check(abduction, wrong),
        check(abduction, &answer),
        check(abduction, right),
    ];
    let limits = limits();
    let outcomes = sandbox().run(items.clone(), &limits, &Rules::default());
    assert_eq!(
        outcomes.len(),
        items.len(),
        "one outcome per item: {outcomes:#?}"
    );
    for (i, outcome) in outcomes.iter().enumerate() {
        assert!(Verdict::ALL.contains(&outcome.verdict));
        outcome_feature(i, outcome);
        if outcome.verdict == Verdict::Fault {
            report_fault(data, &answer, i, outcome);
        }
        if outcome.verdict == Verdict::Ok {
            assert!(
                outcome.passed.is_some(),
                "item {i}: a check without `passed`"
            );
        } else {
            assert_ne!(
                outcome.passed,
                Some(true),
                "item {i}: passed without finishing"
            );
        }
    }
    assert_eq!(
        outcomes[1].passed,
        Some(true),
        "a right answer after the fuzzed one: {outcomes:#?}"
    );
    assert_eq!(
        outcomes[2].passed,
        Some(false),
        "a wrong answer after the fuzzed one: {outcomes:#?}"
    );
    assert_eq!(
        outcomes[4].passed,
        Some(true),
        "a right answer after the fuzzed one: {outcomes:#?}"
    );
    // Time and fuel are the only things that may end the same answer differently.
    let decided = |o: &azr_sandbox::Outcome| {
        !matches!(
            o.verdict,
            Verdict::Timeout | Verdict::OutOfFuel | Verdict::Fault
        )
    };
    if decided(&outcomes[0]) && decided(&outcomes[3]) {
        assert_eq!(
            outcomes[0].passed, outcomes[3].passed,
            "the same answer judged twice: {outcomes:#?}"
        );
    }
});
