//! The work the sandbox does (items) and what it says about each (outcomes).
//!
//! An item is one AZR operation on one program. Items travel to the guest as JSON; the guest
//! evaluates them in order in one fresh instance, and the host fills in what only it can know
//! (traps: time, fuel, memory) plus fuel used and time taken.

use std::sync::Arc;

use azr_guest_contract::{GuestVerdict, ItemResult, SentFile};
use serde::{Deserialize, Serialize};

pub use crate::files::{FileLimits, Files, FilesError};

/// One AZR operation. Every string in it is model-written and is only ever parsed or
/// evaluated inside the guest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Item {
    /// Execute `program`; with `input`, also evaluate `f(<input>)` and return its `repr`.
    Run {
        program: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        imports: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        input: Option<String>,
        #[serde(default, skip_serializing_if = "no_files")]
        files: Arc<Files>,
    },
    /// Validate a proposed program: rules, then `f(<input>)` twice in one namespace, equal
    /// results required; the value is `repr(f(<input>))`, the task's gold output.
    Validate {
        program: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        imports: Vec<String>,
        input: String,
    },
    /// Deduction (`code_o`): does `answer`, evaluated, equal the gold output?
    Deduction {
        program: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        imports: Vec<String>,
        gold: String,
        answer: String,
    },
    /// Abduction (`code_i`): does `f(<answer>)` equal the gold output?
    Abduction {
        program: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        imports: Vec<String>,
        gold: String,
        answer: String,
    },
    /// Induction (`code_f`): does the candidate `program` map every input to its output?
    Induction {
        program: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        imports: Vec<String>,
        inputs: Vec<String>,
        outputs: Vec<String>,
    },
    /// A stdin/stdout test case: the whole `program` runs as `python3 program.py < stdin`
    /// would (`__main__`, exit status from `SystemExit`). With `expected_stdout`, it passes
    /// when the exit status is 0 and stdout matches under `output_match`. The expected
    /// output never enters the guest's Python: the host compares.
    Script {
        program: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        imports: Vec<String>,
        #[serde(default)]
        stdin: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expected_stdout: Option<String>,
        #[serde(default)]
        output_match: OutputMatch,
        #[serde(default, skip_serializing_if = "no_files")]
        files: Arc<Files>,
    },
    /// A function-call test case: `function(<arguments>)` (a function of the program, else a
    /// method of its `Solution` class) compared with `expected` as the AZR checks compare.
    /// `arguments` and `expected` are evaluated before the program runs.
    Call {
        program: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        imports: Vec<String>,
        function: String,
        arguments: String,
        expected: String,
        #[serde(default, skip_serializing_if = "no_files")]
        files: Arc<Files>,
    },
    /// Assert-style test code, run after the program in its namespace; passes when it ends
    /// without an exception.
    Assert {
        program: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        imports: Vec<String>,
        test: String,
        #[serde(default, skip_serializing_if = "no_files")]
        files: Arc<Files>,
    },
}

fn no_files(files: &Arc<Files>) -> bool {
    files.is_none()
}

/// How a script's stdout is compared with the expected output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputMatch {
    /// Line by line, trailing whitespace of each line and trailing empty lines ignored (what
    /// most competitive-programming judges accept).
    #[default]
    Lines,
    /// Character for character.
    Exact,
    /// The whitespace-separated tokens, in order.
    Tokens,
}

impl OutputMatch {
    pub fn matches(self, actual: &str, expected: &str) -> bool {
        match self {
            OutputMatch::Exact => actual == expected,
            OutputMatch::Tokens => actual.split_whitespace().eq(expected.split_whitespace()),
            OutputMatch::Lines => {
                fn lines(text: &str) -> Vec<&str> {
                    let mut lines: Vec<&str> = text.lines().map(str::trim_end).collect();
                    while lines.last().is_some_and(|l| l.is_empty()) {
                        lines.pop();
                    }
                    lines
                }
                lines(actual) == lines(expected)
            }
        }
    }
}

impl Item {
    /// The program and its import lines: items that share them may share an instance.
    pub fn program(&self) -> (&str, &[String]) {
        match self {
            Item::Run {
                program, imports, ..
            }
            | Item::Validate {
                program, imports, ..
            }
            | Item::Deduction {
                program, imports, ..
            }
            | Item::Abduction {
                program, imports, ..
            }
            | Item::Induction {
                program, imports, ..
            }
            | Item::Script {
                program, imports, ..
            }
            | Item::Call {
                program, imports, ..
            }
            | Item::Assert {
                program, imports, ..
            } => (program, imports),
        }
    }

    /// The files the program runs with (none for the AZR operations).
    pub fn files(&self) -> &Files {
        match self {
            Item::Run { files, .. }
            | Item::Script { files, .. }
            | Item::Call { files, .. }
            | Item::Assert { files, .. } => files,
            _ => Files::none(),
        }
    }

    /// Items with equal keys run from one preparation of their program (with its files).
    /// Scripts run the whole program in each item, so they never share a preparation that
    /// ran it.
    pub fn instance_key(&self) -> (&str, &[String], bool, &Files) {
        let (program, imports) = self.program();
        (
            program,
            imports,
            matches!(self, Item::Script { .. }),
            self.files(),
        )
    }

    /// A script's verdict on its output, which only the host sees: passes when it ran to
    /// the end with exit status 0 and its stdout matches.
    pub fn judge_output(&self, mut outcome: Outcome) -> Outcome {
        if let Item::Script {
            expected_stdout: Some(expected),
            output_match,
            ..
        } = self
        {
            outcome.passed = Some(
                outcome.verdict == Verdict::Ok
                    && outcome.exit_code == Some(0)
                    && output_match.matches(&outcome.stdout, expected),
            );
        }
        outcome
    }

    /// Bytes of model-written text in the item, for request size limits.
    pub fn text_len(&self) -> usize {
        self.own_text_len() + self.files().text_len()
    }

    fn own_text_len(&self) -> usize {
        let imports = |v: &Vec<String>| v.iter().map(String::len).sum::<usize>();
        match self {
            Item::Run {
                program,
                imports: i,
                input,
                ..
            } => program.len() + imports(i) + input.as_ref().map_or(0, String::len),
            Item::Validate {
                program,
                imports: i,
                input,
            } => program.len() + imports(i) + input.len(),
            Item::Deduction {
                program,
                imports: i,
                gold,
                answer,
            }
            | Item::Abduction {
                program,
                imports: i,
                gold,
                answer,
            } => program.len() + imports(i) + gold.len() + answer.len(),
            Item::Induction {
                program,
                imports: i,
                inputs,
                outputs,
            } => program.len() + imports(i) + imports(inputs) + imports(outputs),
            Item::Script {
                program,
                imports: i,
                stdin,
                expected_stdout,
                ..
            } => {
                program.len()
                    + imports(i)
                    + stdin.len()
                    + expected_stdout.as_ref().map_or(0, String::len)
            }
            Item::Call {
                program,
                imports: i,
                function,
                arguments,
                expected,
                ..
            } => program.len() + imports(i) + function.len() + arguments.len() + expected.len(),
            Item::Assert {
                program,
                imports: i,
                test,
                ..
            } => program.len() + imports(i) + test.len(),
        }
    }
}

/// How an item ended. RL stacks usually fold all of these into a reward of 0; keeping them
/// apart is what lets a user tell a hung sandbox from a wrong answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The program ran to the end (for checks: `passed` says whether the answer is right).
    Ok,
    /// The program raised a Python exception (`error_type`/`error_message` say which).
    Error,
    /// A validation rule refused the program: banned import, no `f`, not deterministic.
    Rejected,
    /// The wall-clock deadline passed.
    Timeout,
    /// The deterministic instruction budget ran out.
    OutOfFuel,
    /// The program asked for more memory than its cap (the allocator failed, or the
    /// `MemoryError` the interpreter raised for the refused allocation went uncaught).
    OutOfMemory,
    /// The program wrote more than its stdout/stderr cap, or returned a too long `repr`.
    OutputLimit,
    /// The interpreter itself failed (a wasm trap that is none of the above, e.g. native
    /// stack exhaustion or an interpreter bug); the host stayed unaffected.
    Fault,
    /// Not run: an earlier item of a stop-on-failure batch failed, or the request's deadline
    /// passed before the item's turn came.
    Skipped,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Error => "error",
            Verdict::Rejected => "rejected",
            Verdict::Timeout => "timeout",
            Verdict::OutOfFuel => "out_of_fuel",
            Verdict::OutOfMemory => "out_of_memory",
            Verdict::OutputLimit => "output_limit",
            Verdict::Fault => "fault",
            Verdict::Skipped => "skipped",
        }
    }

    pub const ALL: [Verdict; 9] = [
        Verdict::Ok,
        Verdict::Error,
        Verdict::Rejected,
        Verdict::Timeout,
        Verdict::OutOfFuel,
        Verdict::OutOfMemory,
        Verdict::OutputLimit,
        Verdict::Fault,
        Verdict::Skipped,
    ];
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The result of one item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub verdict: Verdict,
    /// For checks: whether the answer is right (false unless the verdict is `ok`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passed: Option<bool>,
    /// `repr` of the result: of `f(input)` for run/validate, of the answer's value for checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// What the program printed (capped); for items other than scripts, stderr too.
    #[serde(default)]
    pub stdout: String,
    /// A script's stderr (capped): its traceback, for one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stderr: String,
    /// A script's exit status as `python3` would end with it (`None` when the host stopped
    /// it: a timeout, the memory cap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// Fuel the item consumed (0 when unknown).
    #[serde(default)]
    pub fuel_used: u64,
    /// Wall-clock time of the item, in microseconds.
    #[serde(default)]
    pub micros: u64,
    /// The item's `fetch_files` that named a file when it ended (base64), in their order;
    /// none when the host stopped it (a time-out, fuel, the memory cap).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<SentFile>,
}

impl Outcome {
    /// An outcome that the host decided (a trap, or a failure before the guest ran).
    pub fn host(verdict: Verdict, error_type: &str, message: impl Into<String>) -> Self {
        Outcome {
            verdict,
            passed: None,
            value: None,
            stdout: String::new(),
            stderr: String::new(),
            exit_code: None,
            error_type: Some(error_type.to_owned()),
            error_message: Some(message.into()),
            fuel_used: 0,
            micros: 0,
            files: Vec::new(),
        }
    }

    /// Whether the item did not succeed: any verdict but `ok`, or a check that did not pass.
    pub fn failed(&self) -> bool {
        self.verdict != Verdict::Ok || self.passed == Some(false)
    }

    /// `"<Type>: <message>"`, the way CPython prints the last line of a traceback.
    pub fn error_line(&self) -> Option<String> {
        let ty = self.error_type.as_deref()?;
        Some(match self.error_message.as_deref() {
            Some(msg) if !msg.is_empty() => format!("{ty}: {msg}"),
            _ => ty.to_owned(),
        })
    }
}

impl Outcome {
    /// The guest's result for an item (the host adds fuel and time).
    pub(crate) fn from_guest(result: ItemResult) -> Outcome {
        let verdict = match result.verdict {
            GuestVerdict::Ok => Verdict::Ok,
            GuestVerdict::Error => Verdict::Error,
            GuestVerdict::Rejected => Verdict::Rejected,
            GuestVerdict::OutputLimit => Verdict::OutputLimit,
            GuestVerdict::Fault => Verdict::Fault,
        };
        // Only an item that ran to the end can have passed.
        let passed = result.passed.map(|p| p && verdict == Verdict::Ok);
        Outcome {
            verdict,
            passed,
            value: result.value,
            stdout: result.stdout,
            stderr: result.stderr,
            exit_code: result.exit_code,
            error_type: result.error_type,
            error_message: result.error_message,
            fuel_used: 0,
            micros: 0,
            files: result.files,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_serialise_with_an_op_tag_the_guest_dispatches_on() {
        let item = Item::Validate {
            program: "def f(x): return x".into(),
            imports: vec![],
            input: "1".into(),
        };
        let json = serde_json::to_value(&item).expect("serialisable");
        assert_eq!(json["op"], "validate");
        assert!(json.get("imports").is_none());
    }

    #[test]
    fn output_matching_ignores_what_judges_ignore_and_nothing_more() {
        let lines = OutputMatch::Lines;
        assert!(lines.matches("1 2\n3\n", "1 2\n3"));
        assert!(lines.matches("1 2   \r\n3\n\n\n", "1 2\n3\n"));
        assert!(!lines.matches("1  2\n3\n", "1 2\n3\n"));
        assert!(!lines.matches(" 1 2\n3\n", "1 2\n3\n"));
        assert!(!lines.matches("1 2\n\n3\n", "1 2\n3\n"));
        assert!(OutputMatch::Tokens.matches("1  2\n\n3", "1 2 3\n"));
        assert!(!OutputMatch::Tokens.matches("1 2 3 4", "1 2 3"));
        assert!(!OutputMatch::Exact.matches("1\n", "1"));
        assert!(OutputMatch::Exact.matches("1\n", "1\n"));
    }

    #[test]
    fn a_script_passes_only_with_exit_status_zero_and_matching_output() {
        let item = Item::Script {
            program: "print(input())".into(),
            imports: vec![],
            stdin: "5\n".into(),
            expected_stdout: Some("5".into()),
            output_match: OutputMatch::Lines,
            files: Default::default(),
        };
        let ran = |verdict, exit_code, stdout: &str| Outcome {
            stdout: stdout.into(),
            exit_code,
            ..Outcome::host(verdict, "", "")
        };
        assert_eq!(
            item.judge_output(ran(Verdict::Ok, Some(0), "5\n")).passed,
            Some(true)
        );
        assert_eq!(
            item.judge_output(ran(Verdict::Ok, Some(0), "6\n")).passed,
            Some(false)
        );
        assert_eq!(
            item.judge_output(ran(Verdict::Error, Some(3), "5\n"))
                .passed,
            Some(false)
        );
        assert_eq!(
            item.judge_output(ran(Verdict::Timeout, None, "5\n")).passed,
            Some(false)
        );
    }

    #[test]
    fn only_an_item_that_ran_to_the_end_can_have_passed() {
        for verdict in [
            GuestVerdict::Fault,
            GuestVerdict::Error,
            GuestVerdict::OutputLimit,
        ] {
            let outcome = Outcome::from_guest(ItemResult {
                passed: Some(true),
                ..ItemResult::new(verdict)
            });
            assert_eq!(outcome.passed, Some(false), "{verdict:?}");
        }
    }
}
