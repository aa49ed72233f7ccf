//! Requests of `azr.sandbox.v1` into engine batches, and outcomes back.
//!
//! Everything a client can get wrong is caught here, before any work is queued, with an
//! `INVALID_ARGUMENT` that names the field: a missing task kind, a zero limit, an unknown
//! banned keyword, induction inputs and outputs of different lengths, too many tasks.

use std::sync::Arc;

use azr_proto::v1;
use base64::Engine as _;
use tonic::Status;

use crate::{
    files::{FileLimits, Files},
    item::{Item, Outcome, OutputMatch, Verdict},
    limits::{Limits, Rules},
};

/// The server-side bounds a request is checked against.
#[derive(Debug, Clone)]
pub struct RequestBounds {
    /// Defaults of unset limits and the most a request may ask for.
    pub limits: Limits,
    /// Rules used when a request brings none.
    pub rules: Rules,
    pub max_batch_tasks: usize,
    /// Most bytes of program text after a batch's shared program is copied into each task.
    pub max_expanded_bytes: usize,
    /// Caps on a program's files.
    pub files: FileLimits,
}

/// Statements a request may ban (the AZR reference's optional checks).
const BANNABLE_KEYWORDS: &[&str] = &["raise", "assert", "try", "except"];

pub fn options(
    options: Option<&v1::Options>,
    bounds: &RequestBounds,
) -> Result<(Limits, Rules), Status> {
    let limits = limits(options.and_then(|o| o.limits.as_ref()), &bounds.limits)?;
    let rules = match options.and_then(|o| o.rules.as_ref()) {
        None => bounds.rules.clone(),
        Some(r) => {
            for keyword in &r.banned_keywords {
                if !BANNABLE_KEYWORDS.contains(&keyword.as_str()) {
                    return Err(Status::invalid_argument(format!(
                        "options.rules.banned_keywords: {keyword:?} is not one of {BANNABLE_KEYWORDS:?}"
                    )));
                }
            }
            Rules {
                banned_words: r.banned_words.clone(),
                banned_keywords: r.banned_keywords.clone(),
                require_f: r.require_f.unwrap_or(true),
            }
        }
    };
    Ok((limits, rules))
}

fn limits(asked: Option<&v1::Limits>, cap: &Limits) -> Result<Limits, Status> {
    let Some(asked) = asked else {
        return Ok(cap.clone());
    };
    fn field<T: Copy + PartialEq + Default + Ord>(
        name: &str,
        asked: Option<T>,
        cap: T,
    ) -> Result<T, Status> {
        match asked {
            None => Ok(cap),
            Some(v) if v == T::default() => Err(Status::invalid_argument(format!(
                "options.limits.{name} must be positive (leave it unset for the default)"
            ))),
            Some(v) => Ok(v.min(cap)),
        }
    }
    Ok(Limits {
        fuel: field("fuel", asked.fuel, cap.fuel)?,
        timeout_ms: field("timeout_ms", asked.timeout_ms, cap.timeout_ms)?,
        memory_bytes: field("memory_bytes", asked.memory_bytes, cap.memory_bytes)?,
        stdout_chars: field("stdout_chars", asked.stdout_chars, cap.stdout_chars)?,
        value_chars: field("value_chars", asked.value_chars, cap.value_chars)?,
        recursion_limit: field(
            "recursion_limit",
            asked.recursion_limit,
            cap.recursion_limit,
        )?,
        wasm_stack_bytes: cap.wasm_stack_bytes,
    })
}

/// A program as the engine's items carry it.
struct Program {
    source: String,
    imports: Vec<String>,
    files: Arc<Files>,
}

/// The task's own program, else the batch's, with its files checked.
fn program(
    own: Option<&v1::Program>,
    shared: Option<&v1::Program>,
    bounds: &RequestBounds,
    at: &str,
) -> Result<Program, Status> {
    let (p, at) = match (own, shared) {
        (Some(p), _) => (p, format!("{at}.program")),
        (None, Some(p)) => (p, "program".to_owned()),
        (None, None) => {
            return Err(Status::invalid_argument(format!(
                "{at}.program is unset (and the request has no shared program)"
            )));
        }
    };
    // In path order: a map's order on the wire is the sender's, and the guest writes
    // them in this order.
    let mut sent: Vec<(&str, &[u8])> = p
        .files
        .iter()
        .map(|(path, content)| (path.as_str(), content.as_slice()))
        .collect();
    sent.sort_unstable_by_key(|(path, _)| *path);
    let files = Files::from_bytes(sent, p.fetch_files.clone(), bounds.files)
        .map_err(|e| Status::invalid_argument(format!("{at}.files: {e}")))?;
    Ok(Program {
        source: p.source.clone(),
        imports: p.imports.clone(),
        files: Arc::new(files),
    })
}

/// The AZR checks and validation run the program alone: files there are a mistake.
fn program_alone(
    own: Option<&v1::Program>,
    shared: Option<&v1::Program>,
    bounds: &RequestBounds,
    at: &str,
) -> Result<(String, Vec<String>), Status> {
    let p = program(own, shared, bounds, at)?;
    if !p.files.is_none() {
        return Err(Status::invalid_argument(format!(
            "{at}: files and fetch_files are for Run and Test; validation and the AZR checks \
             run the program alone"
        )));
    }
    Ok((p.source, p.imports))
}

pub fn run_item(
    task: &v1::RunTask,
    shared: Option<&v1::Program>,
    bounds: &RequestBounds,
    at: &str,
) -> Result<Item, Status> {
    let p = program(task.program.as_ref(), shared, bounds, at)?;
    Ok(Item::Run {
        program: p.source,
        imports: p.imports,
        input: task.input.clone(),
        files: p.files,
    })
}

pub fn validate_item(
    task: &v1::ValidateTask,
    shared: Option<&v1::Program>,
    bounds: &RequestBounds,
    at: &str,
) -> Result<Item, Status> {
    let (program, imports) = program_alone(task.program.as_ref(), shared, bounds, at)?;
    Ok(Item::Validate {
        program,
        imports,
        input: task.input.clone(),
    })
}

pub fn check_item(
    task: &v1::CheckTask,
    shared: Option<&v1::Program>,
    bounds: &RequestBounds,
    at: &str,
) -> Result<Item, Status> {
    use v1::check_task::Kind;
    let (program, imports) = program_alone(task.program.as_ref(), shared, bounds, at)?;
    match &task.kind {
        None => Err(Status::invalid_argument(format!(
            "{at}.kind is unset: give one of deduction, abduction, induction"
        ))),
        Some(Kind::Deduction(d)) => Ok(Item::Deduction {
            program,
            imports,
            gold: d.gold_output.clone(),
            answer: d.answer.clone(),
        }),
        Some(Kind::Abduction(a)) => Ok(Item::Abduction {
            program,
            imports,
            gold: a.gold_output.clone(),
            answer: a.answer.clone(),
        }),
        Some(Kind::Induction(i)) => {
            if i.inputs.len() != i.outputs.len() {
                return Err(Status::invalid_argument(format!(
                    "{at}.induction has {} inputs but {} outputs",
                    i.inputs.len(),
                    i.outputs.len()
                )));
            }
            if i.inputs.is_empty() {
                return Err(Status::invalid_argument(format!(
                    "{at}.induction has no input/output pairs (it would pass vacuously)"
                )));
            }
            Ok(Item::Induction {
                program,
                imports,
                inputs: i.inputs.clone(),
                outputs: i.outputs.clone(),
            })
        }
    }
}

pub fn test_item(
    task: &v1::TestTask,
    shared: Option<&v1::Program>,
    bounds: &RequestBounds,
    at: &str,
) -> Result<Item, Status> {
    use v1::test_task::Kind;
    let Program {
        source: program,
        imports,
        files,
    } = program(task.program.as_ref(), shared, bounds, at)?;
    match &task.kind {
        None => Err(Status::invalid_argument(format!(
            "{at}.kind is unset: give one of stdio, call, asserts"
        ))),
        Some(Kind::Stdio(case)) => {
            let output_match = match v1::OutputMatch::try_from(case.output_match) {
                Ok(v1::OutputMatch::Lines) => OutputMatch::Lines,
                Ok(v1::OutputMatch::Exact) => OutputMatch::Exact,
                Ok(v1::OutputMatch::Tokens) => OutputMatch::Tokens,
                Err(_) => {
                    return Err(Status::invalid_argument(format!(
                        "{at}.stdio.output_match: {} is not an OutputMatch",
                        case.output_match
                    )));
                }
            };
            Ok(Item::Script {
                program,
                imports,
                stdin: case.stdin.clone(),
                expected_stdout: case.expected_stdout.clone(),
                output_match,
                files,
            })
        }
        Some(Kind::Call(case)) => {
            if case.function.is_empty() {
                return Err(Status::invalid_argument(format!(
                    "{at}.call.function is empty"
                )));
            }
            Ok(Item::Call {
                program,
                imports,
                function: case.function.clone(),
                arguments: case.arguments.clone(),
                expected: case.expected.clone(),
                files,
            })
        }
        Some(Kind::Asserts(case)) => Ok(Item::Assert {
            program,
            imports,
            test: case.test.clone(),
            files,
        }),
    }
}

/// Converts the task of a single-task request.
pub fn single<T>(
    task: Option<&T>,
    bounds: &RequestBounds,
    convert: impl Fn(&T, Option<&v1::Program>, &RequestBounds, &str) -> Result<Item, Status>,
) -> Result<Item, Status> {
    let task = task.ok_or_else(|| Status::invalid_argument("task is unset"))?;
    convert(task, None, bounds, "task")
}

/// Converts every task of a batch, checking the batch-wide bounds.
pub fn batch<T>(
    tasks: &[T],
    shared: Option<&v1::Program>,
    bounds: &RequestBounds,
    convert: impl Fn(&T, Option<&v1::Program>, &RequestBounds, &str) -> Result<Item, Status>,
) -> Result<Vec<Item>, Status> {
    if tasks.is_empty() {
        return Err(Status::invalid_argument("tasks is empty"));
    }
    if tasks.len() > bounds.max_batch_tasks {
        return Err(Status::invalid_argument(format!(
            "tasks has {} entries; at most {} per request",
            tasks.len(),
            bounds.max_batch_tasks
        )));
    }
    // A shared program is copied into every task: bound the copies before making them.
    let shared_len = shared.map_or(0, |p| {
        p.source.len()
            + p.imports.iter().map(String::len).sum::<usize>()
            + p.files
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
    });
    if shared_len.saturating_mul(tasks.len()) > bounds.max_expanded_bytes {
        return Err(Status::invalid_argument(format!(
            "program of {shared_len} bytes shared by {} tasks exceeds {} bytes in all",
            tasks.len(),
            bounds.max_expanded_bytes
        )));
    }
    tasks
        .iter()
        .enumerate()
        .map(|(i, t)| convert(t, shared, bounds, &format!("tasks[{i}]")))
        .collect()
}

pub fn verdict(v: Verdict) -> v1::Verdict {
    match v {
        Verdict::Ok => v1::Verdict::Ok,
        Verdict::Error => v1::Verdict::Error,
        Verdict::Rejected => v1::Verdict::Rejected,
        Verdict::Timeout => v1::Verdict::Timeout,
        Verdict::OutOfFuel => v1::Verdict::OutOfFuel,
        Verdict::OutOfMemory => v1::Verdict::OutOfMemory,
        Verdict::OutputLimit => v1::Verdict::OutputLimit,
        Verdict::Fault => v1::Verdict::Fault,
        Verdict::Skipped => v1::Verdict::Skipped,
    }
}

pub fn outcome(o: Outcome) -> v1::Outcome {
    v1::Outcome {
        verdict: verdict(o.verdict) as i32,
        passed: o.passed,
        value: o.value,
        stdout: o.stdout,
        stderr: o.stderr,
        exit_code: o.exit_code,
        error_type: o.error_type,
        error_message: o.error_message,
        fuel_used: o.fuel_used,
        micros: o.micros,
        files: o
            .files
            .into_iter()
            .filter_map(|f| {
                // The guest encoded these itself; one that does not decode is left out.
                let content = base64::engine::general_purpose::STANDARD
                    .decode(f.base64.as_bytes())
                    .ok()?;
                Some((f.path, content))
            })
            .collect(),
    }
}

pub fn limits_message(l: &Limits) -> v1::Limits {
    v1::Limits {
        fuel: Some(l.fuel),
        timeout_ms: Some(l.timeout_ms),
        memory_bytes: Some(l.memory_bytes),
        stdout_chars: Some(l.stdout_chars),
        value_chars: Some(l.value_chars),
        recursion_limit: Some(l.recursion_limit),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds() -> RequestBounds {
        RequestBounds {
            limits: Limits::default(),
            rules: Rules::default(),
            max_batch_tasks: 4,
            max_expanded_bytes: 1000,
            files: FileLimits::default(),
        }
    }

    #[test]
    fn a_limit_above_the_cap_is_lowered_not_refused() {
        let asked = v1::Options {
            limits: Some(v1::Limits {
                fuel: Some(u64::MAX),
                timeout_ms: Some(5),
                ..Default::default()
            }),
            rules: None,
        };
        let (limits, rules) = options(Some(&asked), &bounds()).expect("valid");
        assert_eq!(limits.fuel, Limits::default().fuel);
        assert_eq!(limits.timeout_ms, 5);
        assert_eq!(rules, Rules::default());
    }

    #[test]
    fn a_zero_limit_is_an_invalid_argument_naming_the_field() {
        let asked = v1::Options {
            limits: Some(v1::Limits {
                memory_bytes: Some(0),
                ..Default::default()
            }),
            rules: None,
        };
        let err = options(Some(&asked), &bounds()).expect_err("zero refused");
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(err.message().contains("memory_bytes"), "{}", err.message());
    }

    #[test]
    fn an_unknown_banned_keyword_is_refused() {
        let asked = v1::Options {
            limits: None,
            rules: Some(v1::Rules {
                banned_keywords: vec!["while".into()],
                ..Default::default()
            }),
        };
        assert!(options(Some(&asked), &bounds()).is_err());
    }

    #[test]
    fn tasks_without_a_program_take_the_batch_program() {
        let shared = v1::Program {
            source: "def f(x): return x".into(),
            imports: vec![],
            ..Default::default()
        };
        let tasks = vec![
            v1::RunTask {
                program: None,
                input: Some("1".into()),
            };
            3
        ];
        let items = batch(&tasks, Some(&shared), &bounds(), run_item).expect("valid");
        assert_eq!(items.len(), 3);
        assert_eq!(items[2].program().0, "def f(x): return x");
        let err = batch(&tasks, None, &bounds(), run_item).expect_err("no program");
        assert!(
            err.message().contains("tasks[0].program"),
            "{}",
            err.message()
        );
    }

    #[test]
    fn batch_size_and_expanded_size_are_bounded() {
        let task = v1::RunTask {
            program: None,
            input: None,
        };
        let shared = v1::Program {
            source: "x".repeat(400),
            imports: vec![],
            ..Default::default()
        };
        assert!(batch(&vec![task.clone(); 5], Some(&shared), &bounds(), run_item).is_err());
        assert!(batch(&vec![task.clone(); 3], Some(&shared), &bounds(), run_item).is_err());
        assert!(batch(&vec![task; 2], Some(&shared), &bounds(), run_item).is_ok());
    }

    #[test]
    fn induction_with_unequal_pairs_is_refused() {
        let task = v1::CheckTask {
            program: Some(v1::Program::default()),
            kind: Some(v1::check_task::Kind::Induction(v1::Induction {
                inputs: vec!["1".into(), "2".into()],
                outputs: vec!["1".into()],
            })),
        };
        let err = check_item(&task, None, &bounds(), "task").expect_err("unequal");
        assert!(err.message().contains("2 inputs but 1 outputs"));
    }
}
