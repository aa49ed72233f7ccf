//! `azr-sandbox eval`: AZR seed records in, one JSON answer per line out.
//!
//! A record is `{"snippet": ..., "input": ..., "imports": [...]}` (deduction/abduction seeds)
//! or `{"snippet": ..., "inputs": [...], ...}` (induction seeds). Every input line gets exactly
//! one output line, in order: a malformed line gets an error line, never a crash or a gap.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::item::{Item, Outcome, Verdict};

/// A parsed record: the items to run for it.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// One `f(input)`.
    Single(Item),
    /// One `f(input)` per input of an induction record.
    Multi(Vec<Item>),
}

impl Record {
    pub fn items(&self) -> &[Item] {
        match self {
            Record::Single(item) => std::slice::from_ref(item),
            Record::Multi(items) => items,
        }
    }
}

#[derive(Deserialize)]
struct RawRecord {
    snippet: Option<Value>,
    input: Option<Value>,
    inputs: Option<Value>,
    #[serde(default)]
    imports: Option<Value>,
}

fn string_list(value: Option<Value>, field: &str) -> Result<Vec<String>, String> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s),
                other => Err(format!(
                    "`{field}[{i}]` must be a string, not {}",
                    kind(&other)
                )),
            })
            .collect(),
        Some(other) => Err(format!(
            "`{field}` must be a list of strings, not {}",
            kind(&other)
        )),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Parses one line of a seed file. The error is a message for the output line.
pub fn parse_record(line: &str) -> Result<Record, String> {
    if line.trim().is_empty() {
        return Err("empty line".to_owned());
    }
    let raw: RawRecord =
        serde_json::from_str(line).map_err(|e| format!("not a JSON object: {e}"))?;
    let program = match raw.snippet {
        Some(Value::String(s)) => s,
        Some(other) => return Err(format!("`snippet` must be a string, not {}", kind(&other))),
        None => return Err("missing `snippet`".to_owned()),
    };
    let imports = string_list(raw.imports, "imports")?;
    match (raw.input, raw.inputs) {
        (Some(Value::String(input)), _) => Ok(Record::Single(Item::Run {
            program,
            imports,
            input: Some(input),
            files: Default::default(),
        })),
        (Some(other), _) => Err(format!("`input` must be a string, not {}", kind(&other))),
        (None, Some(inputs)) => {
            let inputs = string_list(Some(inputs), "inputs")?;
            Ok(Record::Multi(
                inputs
                    .into_iter()
                    .map(|input| Item::Run {
                        program: program.clone(),
                        imports: imports.clone(),
                        input: Some(input),
                        files: Default::default(),
                    })
                    .collect(),
            ))
        }
        (None, None) => Err("missing `input` (or `inputs`)".to_owned()),
    }
}

/// `{"ok": true, "output": ...}` or `{"ok": false, "error": "<Type>: <message>"}`.
pub fn answer(outcome: &Outcome) -> Value {
    if outcome.verdict == Verdict::Ok {
        json!({"ok": true, "output": outcome.value.clone().unwrap_or_default()})
    } else {
        json!({"ok": false, "error": outcome.error_line().unwrap_or_else(|| outcome.verdict.to_string())})
    }
}

/// The output line of a record, from the outcomes of its items.
pub fn render(record: &Record, outcomes: &[Outcome]) -> Value {
    match record {
        Record::Single(_) => outcomes
            .first()
            .map(answer)
            .unwrap_or_else(|| json!({"ok": false, "error": "SandboxFault: no outcome"})),
        Record::Multi(_) => {
            let answers: Vec<Value> = outcomes.iter().map(answer).collect();
            json!({"ok": true, "outputs": answers})
        }
    }
}

/// The output line of a line that could not be parsed.
pub fn render_error(message: &str) -> Value {
    json!({"ok": false, "error": format!("InvalidRecord: {message}")})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_record_becomes_one_run_item() {
        let r =
            parse_record(r#"{"snippet": "def f(a):\n    return a", "input": "1", "imports": []}"#)
                .expect("valid");
        assert_eq!(r.items().len(), 1);
    }

    #[test]
    fn an_induction_record_becomes_one_item_per_input() {
        let r = parse_record(r#"{"snippet": "def f(a): return a", "inputs": ["1", "2"]}"#)
            .expect("valid");
        assert_eq!(r.items().len(), 2);
    }

    #[test]
    fn malformed_lines_are_errors_not_panics() {
        for line in [
            "",
            "   ",
            "{",
            "[]",
            "null",
            r#"{"snippet": 3, "input": "1"}"#,
            r#"{"snippet": "x"}"#,
            r#"{"snippet": "x", "input": 1}"#,
            r#"{"snippet": "x", "input": "1", "imports": "import os"}"#,
            r#"{"snippet": "x", "inputs": [1]}"#,
        ] {
            assert!(parse_record(line).is_err(), "{line:?} should be refused");
        }
    }
}
