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

#[path = "engine.rs"]
mod engine;

use azr_sandbox::{Item, Rules, Verdict};
use engine::{limits, outcome_feature, remember_input, report_fault, sandbox};
use libfuzzer_sys::fuzz_target;

const KNOWN_GOOD: &str = "def f(x): return x + 1";

fuzz_target!(|data: &[u8]| {
    remember_input(data);
    let program = String::from_utf8_lossy(data).into_owned();
    let items = vec![
        Item::Run {
            program: program.clone(),
            imports: vec![],
            input: None,
            files: Default::default(),
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
            files: Default::default(),
        },
        // The same text as a whole script reading stdin (a test-case program).
        Item::Script {
            program: program.clone(),
            imports: vec![],
            stdin: "1\n2 3\n".into(),
            expected_stdout: None,
            output_match: Default::default(),
            files: Default::default(),
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
        assert!(
            outcome.stderr.chars().count() as u64 <= limits.stdout_chars,
            "item {i}: stderr over its cap"
        );
        if matches!(item, Item::Script { .. }) && outcome.verdict == Verdict::Ok {
            assert_eq!(outcome.exit_code, Some(0), "item {i}: ok with exit status");
        }
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
