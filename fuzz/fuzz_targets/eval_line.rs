//! `azr-sandbox eval`'s record parser and answer renderer on arbitrary lines.
//!
//! Input: one line of a seed file (any bytes; non-UTF-8 is skipped, as `eval` reads text).
//! Invariants: `parse_record` never panics and is deterministic; a parsed record has at least
//! one `run` item per input, all of the same program, each with an input; `render` never
//! panics, whatever outcomes it gets (fabricated from the line's bytes: every verdict, too few
//! or too many outcomes), and its answer (and `render_error`'s) is a JSON object with a
//! boolean `ok` that survives a round trip through text.

#![no_main]

use azr_sandbox::{
    Item, Outcome, Verdict,
    eval::{Record, parse_record, render, render_error},
};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = parse_record(line);
    assert_eq!(
        parsed,
        parse_record(line),
        "parse_record is not deterministic"
    );
    let record = match parsed {
        Ok(record) => record,
        Err(message) => {
            check_answer(&render_error(&message));
            return;
        }
    };

    let items = record.items();
    if let Record::Single(_) = record {
        assert_eq!(items.len(), 1);
    }
    let first = items.first().map(Item::program);
    for item in items {
        match item {
            Item::Run { input, .. } => assert!(input.is_some(), "a record item without input"),
            other => panic!("a record became a non-run item: {other:?}"),
        }
        assert_eq!(
            Some(item.program()),
            first,
            "items of one record differ in program"
        );
    }

    // Outcomes fabricated from the line: one per item, then one fewer, none, and one more.
    let seed: u64 = data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let fabricated: Vec<Outcome> = (0..items.len() + 1)
        .map(|i| fabricate(seed.rotate_left(i as u32 * 7), line, i))
        .collect();
    for n in [
        items.len(),
        items.len().saturating_sub(1),
        0,
        items.len() + 1,
    ] {
        let answer = render(&record, &fabricated[..n]);
        check_answer(&answer);
        match &record {
            Record::Single(_) => {
                let ok = answer["ok"].as_bool().expect("checked");
                match fabricated[..n].first() {
                    Some(o) => assert_eq!(ok, o.verdict == Verdict::Ok),
                    None => assert!(!ok, "no outcome must not be a success"),
                }
            }
            Record::Multi(_) => {
                let outputs = answer["outputs"]
                    .as_array()
                    .expect("induction answers list");
                assert_eq!(outputs.len(), n, "one answer per outcome");
            }
        }
    }
});

fn fabricate(seed: u64, line: &str, index: usize) -> Outcome {
    let verdict = Verdict::ALL[(seed % Verdict::ALL.len() as u64) as usize];
    let text = |shift: u32| -> Option<String> {
        if (seed >> shift) & 3 == 0 {
            return None;
        }
        // A slice of the line on char boundaries (may be empty or the whole line).
        let chars: Vec<char> = line.chars().collect();
        let a = ((seed >> (shift + 2)) as usize)
            .checked_rem(chars.len() + 1)
            .unwrap_or(0);
        let b = ((seed >> (shift + 12)) as usize)
            .checked_rem(chars.len() + 1)
            .unwrap_or(0);
        Some(chars[a.min(b)..a.max(b)].iter().collect())
    };
    Outcome {
        verdict,
        passed: match (seed >> 60) & 3 {
            0 => None,
            1 => Some(false),
            _ => Some(verdict == Verdict::Ok),
        },
        value: text(4),
        stdout: text(20).unwrap_or_default(),
        stderr: String::new(),
        exit_code: None,
        // Real error types are never empty (Python type names, host trap names).
        error_type: text(36).map(|t| if t.is_empty() { "E".to_owned() } else { t }),
        error_message: text(44),
        fuel_used: seed.wrapping_mul(index as u64 + 1),
        micros: seed >> 32,
        files: Vec::new(),
    }
}

fn check_answer(answer: &Value) {
    let object = answer.as_object().expect("an answer is a JSON object");
    let ok = object
        .get("ok")
        .and_then(Value::as_bool)
        .expect("with a boolean `ok`");
    if !ok {
        let error = object
            .get("error")
            .and_then(Value::as_str)
            .expect("a failure says why");
        assert!(!error.is_empty(), "an empty error message");
    }
    let text = answer.to_string();
    assert!(!text.contains('\n'), "an answer must stay on one line");
    let back: Value = serde_json::from_str(&text).expect("an answer is valid JSON");
    assert_eq!(&back, answer, "an answer does not survive a round trip");
}
