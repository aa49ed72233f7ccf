//! What the sandbox's host and its wasm guest agree on, in one place that both compile.
//!
//! The host (wasmtime, `azr-sandbox`) and the guest (RustPython for `wasm32-wasip1`,
//! `sandbox/guest`) are built by different compilers and meet only in linear memory: the host
//! writes a [`Request`] as JSON, the guest answers each item with an [`ItemResult`] as JSON.
//! Both sides use these types, so a field renamed or retyped on one side fails to build on
//! the other instead of silently reading as its default; and both refuse fields they do not
//! know, so a guest and host built from different revisions fail loudly.
//!
//! The calling convention is in [`abi`].

use serde::{Deserialize, Serialize};

pub mod abi;

/// One program's work, sent once per instance (`azr_prepare`). `S` is the string type: the
/// host serialises borrowed text (`&str`), the guest reads owned `String`s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request<S = String> {
    pub options: Options<S>,
    /// Items of one program (every item names the same program and imports).
    pub items: Vec<ItemSpec<S>>,
}

/// The rules and caps the guest applies while it runs a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options<S = String> {
    /// Words a validated program may not contain; `None` leaves the guest's own list.
    pub banned_words: Option<Vec<S>>,
    /// Python keywords a validated program may not use.
    pub banned_keywords: Vec<S>,
    /// Whether a validated program must define `f`.
    pub require_f: bool,
    /// Characters of stdout (and stderr) kept per item.
    pub stdout_cap: u64,
    /// Characters of a value's `repr` kept.
    pub value_cap: u64,
    /// Python's recursion limit.
    pub recursion_limit: u32,
    /// Files the program finds in its working directory, before it runs (SandboxFusion's
    /// `files`). They live in the interpreter's memory (`sandbox/guest/python/files.py`);
    /// the host has checked their paths (relative, no `..`) and their base64.
    pub files: Vec<SentFile<S>>,
    /// Paths whose files every item's result carries back, where they name a file
    /// (SandboxFusion's `fetch_files`).
    pub fetch_files: Vec<S>,
    /// Most bytes of files one result carries back: past it a file is left out, and the
    /// result's stderr says so.
    pub fetch_cap: u64,
}

/// One file, its content in standard base64 (as SandboxFusion's API carries it, so that the
/// JSON between host and guest stays text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SentFile<S = String> {
    pub path: S,
    pub base64: S,
}

/// One operation on the request's program, as the guest runs it. The host's public item
/// type carries more (a script's expected output, which never enters the guest) and adds
/// [`ItemSpec::EvaluateAnswer`] itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum ItemSpec<S = String> {
    /// Execute the program; with `input`, also evaluate `f(<input>)` and give its `repr`.
    Run {
        program: S,
        imports: Vec<S>,
        input: Option<S>,
    },
    /// Rules, then `f(<input>)` twice, equal results required; the value is the gold output.
    Validate {
        program: S,
        imports: Vec<S>,
        input: S,
    },
    /// Deduction: does `answer`, evaluated, equal the gold output?
    Deduction {
        program: S,
        imports: Vec<S>,
        gold: S,
        answer: S,
    },
    /// Abduction: does `f(<answer>)` equal the gold output?
    Abduction {
        program: S,
        imports: Vec<S>,
        gold: S,
        answer: S,
    },
    /// Induction: does the candidate program map every input to its output?
    Induction {
        program: S,
        imports: Vec<S>,
        inputs: Vec<S>,
        outputs: Vec<S>,
    },
    /// The whole program as `__main__`, reading `stdin` (a stdin/stdout test case; the host
    /// compares the output).
    Script {
        program: S,
        imports: Vec<S>,
        stdin: S,
    },
    /// `function(<arguments>)` of the program, compared with `expected`.
    Call {
        program: S,
        imports: Vec<S>,
        function: S,
        arguments: S,
        expected: S,
    },
    /// The program, then assert-style `test` code in its namespace.
    Assert {
        program: S,
        imports: Vec<S>,
        test: S,
    },
    /// The first stage of a deduction or abduction answer that is more than literals: the
    /// answer evaluated where the program never ran (only its imports did), reduced to
    /// portable plain data for the check in the program's instance.
    EvaluateAnswer {
        program: S,
        imports: Vec<S>,
        answer: S,
        role: AnswerRole,
    },
}

impl<S: AsRef<str>> ItemSpec<S> {
    /// The program and its imports (every variant has both).
    pub fn program(&self) -> (&str, &[S]) {
        match self {
            ItemSpec::Run {
                program, imports, ..
            }
            | ItemSpec::Validate {
                program, imports, ..
            }
            | ItemSpec::Deduction {
                program, imports, ..
            }
            | ItemSpec::Abduction {
                program, imports, ..
            }
            | ItemSpec::Induction {
                program, imports, ..
            }
            | ItemSpec::Script {
                program, imports, ..
            }
            | ItemSpec::Call {
                program, imports, ..
            }
            | ItemSpec::Assert {
                program, imports, ..
            }
            | ItemSpec::EvaluateAnswer {
                program, imports, ..
            } => (program.as_ref(), imports),
        }
    }

    /// Whether the item checks an answer against the program (rather than running it).
    pub fn is_check(&self) -> bool {
        matches!(
            self,
            ItemSpec::Deduction { .. }
                | ItemSpec::Abduction { .. }
                | ItemSpec::Induction { .. }
                | ItemSpec::Call { .. }
                | ItemSpec::Assert { .. }
        )
    }
}

/// What an answer stands for: an output (deduction) or an argument list (abduction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerRole {
    Deduction,
    Abduction,
}

/// How an item ended, as far as the guest can tell (the host adds what only it sees: time,
/// fuel and memory traps).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuestVerdict {
    Ok,
    /// The judged code raised.
    Error,
    /// A validation rule refused the program.
    Rejected,
    /// Output or a value outgrew its cap.
    OutputLimit,
    /// The guest itself failed (a request it could not read, an interpreter that did not
    /// start).
    Fault,
}

/// One item's result, written by the guest through the host's `item_done` import.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemResult {
    pub verdict: GuestVerdict,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passed: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stdout: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// A deduction or abduction answer that is more than literals: the host evaluates it
    /// where the program never ran (an [`ItemSpec::EvaluateAnswer`]) and runs this item
    /// again with what that gave.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub needs_evaluation: bool,
    /// An `EvaluateAnswer` item's result, opaque to the host, which hands it back to the
    /// guest with the item it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluated: Option<String>,
    /// A script's stderr (other items fold it into `stdout`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stderr: String,
    /// A script's exit status, as `python3` would end with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The request's `fetch_files` that named a file when the item ended, in their order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<SentFile>,
}

impl ItemResult {
    /// A result with only a verdict.
    pub fn new(verdict: GuestVerdict) -> Self {
        ItemResult {
            verdict,
            passed: None,
            value: None,
            stdout: String::new(),
            error_type: None,
            error_message: None,
            needs_evaluation: false,
            evaluated: None,
            stderr: String::new(),
            exit_code: None,
            files: Vec::new(),
        }
    }

    /// The guest's own failure, named `GuestError`.
    pub fn fault(message: String) -> Self {
        ItemResult {
            error_type: Some("GuestError".to_owned()),
            error_message: Some(message),
            ..ItemResult::new(GuestVerdict::Fault)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_the_host_writes_with_borrowed_text_reads_back_as_owned_text() {
        let program = "def f(x):\n    return x";
        let sent: Request<&str> = Request {
            options: Options {
                banned_words: Some(vec!["open"]),
                banned_keywords: vec![],
                require_f: true,
                stdout_cap: 10,
                value_cap: 20,
                recursion_limit: 30,
                files: vec![SentFile {
                    path: "cases.json",
                    base64: "WzFd",
                }],
                fetch_files: vec!["out.txt"],
                fetch_cap: 1 << 20,
            },
            items: vec![
                ItemSpec::Validate {
                    program,
                    imports: vec!["import math"],
                    input: "1",
                },
                ItemSpec::EvaluateAnswer {
                    program,
                    imports: vec![],
                    answer: "f(1)",
                    role: AnswerRole::Deduction,
                },
            ],
        };
        let bytes = serde_json::to_vec(&sent).unwrap();
        let read: Request = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            read.items[0].program(),
            (program, &["import math".to_owned()][..])
        );
        assert!(matches!(
            &read.items[1],
            ItemSpec::EvaluateAnswer { role: AnswerRole::Deduction, answer, .. } if answer == "f(1)"
        ));
        assert_eq!(read.options.banned_words, Some(vec!["open".to_owned()]));
        assert_eq!(read.options.files[0].path, "cases.json");
    }

    #[test]
    fn a_field_one_side_does_not_know_is_refused_by_the_other() {
        let unknown_result = r#"{"verdict":"ok","stdout":"","passd":true}"#;
        assert!(serde_json::from_str::<ItemResult>(unknown_result).is_err());
        let unknown_item = r#"{"op":"run","program":"x=1","imports":[],"input":null,"extra":1}"#;
        assert!(serde_json::from_str::<ItemSpec>(unknown_item).is_err());
        let unknown_verdict = r#"{"verdict":"maybe"}"#;
        assert!(serde_json::from_str::<ItemResult>(unknown_verdict).is_err());
    }

    #[test]
    fn a_result_omits_what_it_does_not_have_and_reads_back_equal() {
        let result = ItemResult {
            passed: Some(true),
            value: Some("3".into()),
            ..ItemResult::new(GuestVerdict::Ok)
        };
        let text = serde_json::to_string(&result).unwrap();
        assert_eq!(text, r#"{"verdict":"ok","passed":true,"value":"3"}"#);
        assert_eq!(serde_json::from_str::<ItemResult>(&text).unwrap(), result);
    }
}
