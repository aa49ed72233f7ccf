//! Arbitrary answers through the judge, with the real engine.
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

#[path = "engine.rs"]
mod engine;

use azr_sandbox::{Item, Rules, Verdict};
use engine::{limits, outcome_feature, remember_input, report_fault, sandbox};
use libfuzzer_sys::fuzz_target;

const PROGRAM: &str = "def f(x):\n    return [x, x]";

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
