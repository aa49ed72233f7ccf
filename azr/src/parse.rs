//! Reading the model's answers, with the reference's extraction rules.
//!
//! Reference: `rewards/custom_evaluate.py` (`extract_answer`, `get_format_reward`),
//! `rewards/code_reward.py` (`parse_code_input_output`, `parse_inputs_message`,
//! `parse_code_function`), `rewards/reward_managers.py` (`extract_input_output`, how the
//! generation string is cut out), `utils/code_utils/parsers.py` (`parse_imports`).
//!
//! The pipeline for one rollout:
//! 1. [`generation_text`]: the text the format rule sees, `<think>` (the prompt's last word)
//!    followed by the response.
//! 2. [`format_ok`]: `<think>…</think>` then `<answer>…</answer>`.
//! 3. [`extract_answer`]: the content of the last `<answer>` tag ("" when there is none).
//! 4. A parser for what the role and task type expect inside the answer.
//!
//! Approximations (the reference uses Python's `ast`, which we do not have here; the sandbox
//! does all real parsing): imports are collected by line shape instead of from the syntax tree
//! (see [`parse_imports`]); `remove_print` works on whole lines. Everything else is the
//! reference's regular expressions, which the `regex` crate runs with the same leftmost-first
//! semantics (the two look-aheads are written out by hand).

use std::sync::LazyLock;

use regex::{NoExpand, Regex};

use super::config::{CodeLocation, FReplaceLocation, ParseConfig};
use super::task::TaskType;

/// Why an answer could not be read. Any of these earns the format penalty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("no <think>…</think> <answer>…</answer> layout")]
    Layout,
    #[error("no code block")]
    NoCodeBlock,
    #[error("no ```input block")]
    NoInputBlock,
    #[error("the program defines no function")]
    NoFunction,
    #[error("the program defines {0} functions (one allowed)")]
    MultipleFunctions(usize),
    #[error("the program seems to contain its test input")]
    TestInputInCode,
    #[error("{found} ```input blocks, {needed} needed")]
    TooFewInputs { found: usize, needed: usize },
    #[error("no ```message block")]
    NoMessage,
}

fn re(pattern: &str) -> Regex {
    // The patterns are constants of this file; a bad one is a bug caught by every test.
    Regex::new(pattern).unwrap_or_else(|e| panic!("bad built-in regex {pattern:?}: {e}"))
}

static FORMAT: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?s)\A<think>.*?</think>\s*<answer>.*?</answer>"));
static CODE_BLOCK: LazyLock<Regex> = LazyLock::new(|| re(r"(?si)```(?:python\s*)?\n?(.*?)\n?```"));
static INPUT_BLOCK: LazyLock<Regex> = LazyLock::new(|| re(r"(?si)```input\s*\n?(.*?)\n?```"));
static OUTPUT_BLOCK: LazyLock<Regex> = LazyLock::new(|| re(r"(?si)```output\s*\n?(.*?)\n?```"));
static MESSAGE_BLOCK: LazyLock<Regex> = LazyLock::new(|| re(r"(?si)```message\s*\n?(.*?)\n?```"));
static MESSAGE_TAG: LazyLock<Regex> = LazyLock::new(|| re(r"(?si)<message>\s*(.*?)\s*</message>"));
static DEF: LazyLock<Regex> = LazyLock::new(|| re(r"(?m)^\s*def\s+(\w+)\s*\("));
static INPUT_CALL: LazyLock<Regex> = LazyLock::new(|| re(r"(?si)input\s*\((.*?)\)"));
static OUTPUT_CALL: LazyLock<Regex> = LazyLock::new(|| re(r"(?si)output\s*\((.*?)\)"));
static INPUT_TAG: LazyLock<Regex> = LazyLock::new(|| re(r"(?si)<input>\s*(.*?)(?:</input>|\s*\z)"));
static OUTPUT_TAG: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?si)<output>\s*(.*?)(?:</output>|\s*\z)"));
static INPUT_IS: LazyLock<Regex> = LazyLock::new(|| re(r"(?si)the input is\s*(.*?)\.?\n?\z"));
static OUTPUT_IS: LazyLock<Regex> = LazyLock::new(|| re(r"(?si)the output is\s*(.*?)\.?\n?\z"));
static IMPORT_LINE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^import\s+[A-Za-z_][\w.]*(?:\s+as\s+\w+)?(?:\s*,\s*[A-Za-z_][\w.]*(?:\s+as\s+\w+)?)*\s*(?:#.*)?$",
    )
});
static FROM_LINE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^from\s+\.*[\w.]*\s+import\s+(?:\*|\(?\s*\w+(?:\s+as\s+\w+)?(?:\s*,\s*\w+(?:\s+as\s+\w+)?)*\s*,?\s*\)?)\s*(?:#.*)?$",
    )
});
static PRINT_STMT: LazyLock<Regex> = LazyLock::new(|| re(r"^print\s*\(.*\)\s*(?:#.*)?$"));
static TEST_INPUT: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    [
        r"(?mi)#\s*(test|example)",
        r"(?m)\b(input|test_input|sample_input)\b\s*=",
        r"(?m)\b\w*input\w*\s*=\s*",
        r"(?m)\b(expected|output|result)\s*=\s*",
        r"(?m)\bassert\b",
        r"(?m)print\s*\(\s*f\(",
        r"(?m)f\(\[.*\]\)",
        r"(?m)f\([^)]*\)\s*(#|$)",
        r"(?m)^\s*input\s*$",
    ]
    .iter()
    .map(|p| re(p))
    .collect()
});

/// The text the reference's format rule and answer extraction see for a trained rollout.
///
/// The reference decodes prompt and response together and keeps what follows the prompt's
/// closing `Assistant:` up to the next `Assistant:`; the prompt ends in `Assistant: <think>`,
/// so the kept text is `<think>` + the response, cut where the response itself writes
/// `Assistant:`, then stripped of whitespace and of quote characters at both ends.
pub fn generation_text(response: &str) -> String {
    let cut = response.split("Assistant:").next().unwrap_or("");
    let text = format!("<think>{cut}");
    text.trim()
        .trim_matches(|c| c == '"' || c == '\'')
        .to_owned()
}

/// The reference's format rule: the text starts with `<think>`, and some `</think>` is
/// followed (after whitespace) by `<answer>` and a later `</answer>`. Text after the last tag
/// is allowed.
pub fn format_ok(generation: &str) -> bool {
    FORMAT.is_match(generation)
}

/// The content of the last `<answer>` tag up to the next `</answer>` (or the end), trimmed;
/// "" when there is no `<answer>`.
pub fn extract_answer(text: &str) -> String {
    match text.rsplit_once("<answer>") {
        Some((_, tail)) => tail
            .split("</answer>")
            .next()
            .unwrap_or("")
            .trim()
            .to_owned(),
        None => String::new(),
    }
}

/// The reasoning inside the last `<think>` (the whole text when there is none).
pub fn extract_thought(text: &str) -> String {
    match text.rsplit_once("<think>") {
        Some((_, tail)) => tail.split("</think>").next().unwrap_or("").to_owned(),
        None => text.to_owned(),
    }
}

/// The format score of a trained rollout: 1 if [`format_ok`], else 0 (and 1 whatever the
/// layout when `format_reward` is off).
pub fn format_score(response: &str, format_reward: bool) -> f64 {
    if !format_reward || format_ok(&generation_text(response)) {
        1.0
    } else {
        0.0
    }
}

/// A proposer rollout, read: the layout check and the parsed proposal (or why not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadProposal<T> {
    /// The `<think>`/`<answer>` layout is right (always true when `format_reward` is off).
    pub format_ok: bool,
    pub parsed: Result<T, FormatError>,
    /// The reasoning, for logs.
    pub thought: String,
}

/// Reads a deduction/abduction proposer rollout: the proposal inside `<answer>`.
pub fn read_triplet_proposal(
    response: &str,
    config: &ParseConfig,
    format_reward: bool,
) -> ReadProposal<TripletProposal> {
    let text = generation_text(response);
    ReadProposal {
        format_ok: !format_reward || format_ok(&text),
        parsed: parse_triplet_proposal(&extract_answer(&text), config),
        thought: extract_thought(&text),
    }
}

/// [`read_triplet_proposal`] for a prompt of `style`: a brief proposal is read from the
/// whole response (no `<answer>` tag), its layout being a program and an input that parse.
pub fn read_triplet_proposal_in(
    response: &str,
    config: &ParseConfig,
    format_reward: bool,
    style: crate::prompts::PromptStyle,
) -> ReadProposal<TripletProposal> {
    match style {
        crate::prompts::PromptStyle::Reference => {
            read_triplet_proposal(response, config, format_reward)
        }
        crate::prompts::PromptStyle::Brief => {
            let parsed = parse_triplet_proposal(response, config);
            ReadProposal {
                format_ok: !format_reward || parsed.is_ok(),
                parsed,
                thought: String::new(),
            }
        }
    }
}

/// Reads an induction proposer rollout: `num_inputs` inputs and a message inside `<answer>`.
pub fn read_induction_proposal(
    response: &str,
    num_inputs: usize,
    format_reward: bool,
) -> ReadProposal<InductionProposal> {
    let text = generation_text(response);
    ReadProposal {
        format_ok: !format_reward || format_ok(&text),
        parsed: parse_induction_proposal(&extract_answer(&text), num_inputs),
        thought: extract_thought(&text),
    }
}

/// A solver rollout, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SolverAnswer {
    /// Layout right and, for induction, a code block found: the rollout is not penalised
    /// with −1.
    pub format_ok: bool,
    /// What to check (see [`super::check::TaskCheck::for_answer`]); `None` when the format is
    /// wrong, since the reference then scores the answer 0 without checking it.
    pub answer: Option<String>,
}

/// Reads a trained solver rollout (reference `_get_data_dict` for `pred_*`): the answer is
/// the output (deduction), the input (abduction) or the program (induction) inside
/// `<answer>`. Deduction/abduction answers always extract (falling back to the whole answer
/// text); an induction answer without a code block is a format error.
pub fn read_solver_answer(response: &str, task: TaskType, format_reward: bool) -> SolverAnswer {
    let text = generation_text(response);
    let layout = !format_reward || format_ok(&text);
    let answer = answer_for(&extract_answer(&text), task);
    let format_ok = layout && answer.is_some();
    SolverAnswer {
        format_ok,
        answer: if format_ok { answer } else { None },
    }
}

/// [`read_solver_answer`] for a prompt of `style`: a brief prompt's answer is read from the
/// response as it is (there is no `<think>` prefix), its layout being an `<answer>` tag that
/// closes.
pub fn read_solver_answer_in(
    response: &str,
    task: TaskType,
    format_reward: bool,
    style: crate::prompts::PromptStyle,
) -> SolverAnswer {
    match style {
        crate::prompts::PromptStyle::Reference => read_solver_answer(response, task, format_reward),
        crate::prompts::PromptStyle::Brief => {
            let layout = !format_reward || style.layout_ok(response);
            let answer = answer_for(&extract_answer(response), task);
            let format_ok = layout && answer.is_some();
            SolverAnswer {
                format_ok,
                answer: if format_ok { answer } else { None },
            }
        }
    }
}

/// Reads one of the `n_samples` solver answers that estimate a proposal's solve rate. As in
/// the reference, no layout is required and the raw response is read (no `<think>` prefix,
/// no cut); `None` (accuracy 0) only for an induction answer without a code block.
pub fn read_estimate_answer(response: &str, task: TaskType) -> Option<String> {
    answer_for(&extract_answer(response), task)
}

fn answer_for(extracted: &str, task: TaskType) -> Option<String> {
    match task {
        TaskType::Deduction => Some(extract_output(extracted)),
        TaskType::Abduction => Some(extract_input(extracted)),
        TaskType::Induction => parse_program_answer(extracted).ok(),
    }
}

/// A deduction or abduction proposal: a program and one input (the sandbox computes the
/// output).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TripletProposal {
    /// The program, its entry function renamed to `f`.
    pub program: String,
    pub input: String,
    /// Import lines found in the program (see [`parse_imports`]).
    pub imports: Vec<String>,
}

/// An induction proposal: inputs for a buffered program, and a message to the solver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InductionProposal {
    pub inputs: Vec<String>,
    pub message: String,
}

/// Reads a deduction/abduction proposal from the extracted answer (reference
/// `parse_code_input_output` with `parse_output=False`).
///
/// - The program is the first code block (`code_location = "first"`) of *any* language, as the
///   reference's pattern makes `python` optional; the input is the first ```` ```input ````
///   block, else the text after `# Input:`.
/// - The program must contain a `def` line; with `reject_multiple_functions`, exactly one
///   (nested functions and methods count, as in the reference).
/// - The chosen function is renamed to `f`, calls to it too.
pub fn parse_triplet_proposal(
    answer: &str,
    config: &ParseConfig,
) -> Result<TripletProposal, FormatError> {
    let code = match config.code_location {
        CodeLocation::First => CODE_BLOCK.captures(answer),
        CodeLocation::Last => CODE_BLOCK.captures_iter(answer).last(),
    }
    .and_then(|c| c.get(1))
    .map(|m| m.as_str())
    .ok_or(FormatError::NoCodeBlock)?;
    let input = match INPUT_BLOCK.captures(answer).and_then(|c| c.get(1)) {
        Some(m) => m.as_str(),
        None => after_heading(answer, "# input:").ok_or(FormatError::NoInputBlock)?,
    };
    let mut program = code.trim().to_owned();
    let input = input.trim().to_owned();

    let names: Vec<String> = DEF
        .captures_iter(&program)
        .filter_map(|c| c.get(1).map(|m| m.as_str().to_owned()))
        .collect();
    if names.is_empty() {
        return Err(FormatError::NoFunction);
    }
    if config.reject_multiple_functions && names.len() > 1 {
        return Err(FormatError::MultipleFunctions(names.len()));
    }
    if config.reject_test_input_in_code && has_test_input(&program) {
        return Err(FormatError::TestInputInCode);
    }
    let has_f = names.iter().any(|n| n == "f");
    let (first, last) = (&names[0], &names[names.len() - 1]);
    let original = match config.f_replace_location {
        FReplaceLocation::NotFirst => first,
        FReplaceLocation::NotLast => last,
        FReplaceLocation::AnyLast if !has_f => last,
        FReplaceLocation::AnyFirst if !has_f => first,
        FReplaceLocation::AnyLast | FReplaceLocation::AnyFirst => "f",
    };
    if original != "f" {
        program = rename_function(&program, original);
    }
    let imports = parse_imports(&program);
    if config.remove_print {
        program = remove_print_statements(&program);
    }
    Ok(TripletProposal {
        program,
        input,
        imports,
    })
}

/// Renames the definition of `name` and every call `name(` to `f` (reference: two
/// `re.sub`s, the second on word boundaries, so `obj.name(` is renamed too).
fn rename_function(program: &str, name: &str) -> String {
    let name = regex::escape(name);
    let (Ok(def), Ok(call)) = (
        Regex::new(&format!(r"def\s+{name}\s*\(")),
        Regex::new(&format!(r"\b{name}\s*\(")),
    ) else {
        // Unreachable for an escaped identifier; leave the program as it is.
        return program.to_owned();
    };
    let program = def.replace_all(program, NoExpand("def f("));
    call.replace_all(&program, NoExpand("f(")).into_owned()
}

/// Reads an induction proposal (reference `parse_inputs_message`): every ```` ```input ````
/// block, of which the *last* `num_inputs` are kept (fewer is an error); the message is the
/// first ```` ```message ```` block, else a `<message>` tag, else the text after `# Message:`.
pub fn parse_induction_proposal(
    answer: &str,
    num_inputs: usize,
) -> Result<InductionProposal, FormatError> {
    let inputs: Vec<String> = INPUT_BLOCK
        .captures_iter(answer)
        .filter_map(|c| c.get(1).map(|m| m.as_str().trim().to_owned()))
        .collect();
    if inputs.len() < num_inputs {
        return Err(FormatError::TooFewInputs {
            found: inputs.len(),
            needed: num_inputs,
        });
    }
    let inputs = inputs[inputs.len() - num_inputs..].to_vec();
    let message = MESSAGE_BLOCK
        .captures(answer)
        .or_else(|| MESSAGE_TAG.captures(answer))
        .and_then(|c| c.get(1))
        .map(|m| m.as_str())
        .or_else(|| after_heading(answer, "# message:"))
        .ok_or(FormatError::NoMessage)?;
    Ok(InductionProposal {
        inputs,
        message: message.trim().to_owned(),
    })
}

/// Reads an induction solver's program (reference `parse_code_function`): the *last* code
/// block of any language, trimmed. Whether it defines `f` is left to the sandbox.
pub fn parse_program_answer(answer: &str) -> Result<String, FormatError> {
    CODE_BLOCK
        .captures_iter(answer)
        .last()
        .and_then(|c| c.get(1))
        .map(|m| m.as_str().trim().to_owned())
        .ok_or(FormatError::NoCodeBlock)
}

/// An abduction solver's input (reference `extract_input_output(return_input=True)`): the
/// last ```` ```input ```` block, else `# Input:`, else `input(...)`, else an `<input>` tag,
/// else "the input is ...", else the whole answer. Not trimmed (quotes matter).
pub fn extract_input(answer: &str) -> String {
    extract_io(
        answer,
        &INPUT_BLOCK,
        "# input:",
        &INPUT_CALL,
        &INPUT_TAG,
        &INPUT_IS,
    )
}

/// A deduction solver's output: as [`extract_input`] with `output` for `input`.
pub fn extract_output(answer: &str) -> String {
    extract_io(
        answer,
        &OUTPUT_BLOCK,
        "# output:",
        &OUTPUT_CALL,
        &OUTPUT_TAG,
        &OUTPUT_IS,
    )
}

fn extract_io(
    answer: &str,
    block: &Regex,
    heading: &str,
    call: &Regex,
    tag: &Regex,
    phrase: &Regex,
) -> String {
    let last = |r: &Regex| {
        r.captures_iter(answer)
            .last()
            .and_then(|c| c.get(1))
            .map(|m| m.as_str().to_owned())
    };
    last(block)
        .or_else(|| last_after_heading(answer, heading).map(str::to_owned))
        .or_else(|| last(call))
        .or_else(|| last(tag))
        .or_else(|| last(phrase))
        .unwrap_or_else(|| answer.to_owned())
}

/// The reference's fallback `HEADING\s*(.*?)(?=\n```|$)` (case-insensitive, first match): the
/// text after the heading and any whitespace, up to the next "\n```" or the end (before a
/// final newline).
fn after_heading<'a>(text: &'a str, heading: &str) -> Option<&'a str> {
    let at = text.to_ascii_lowercase().find(heading)?;
    let (start, end) = heading_span(text, at + heading.len());
    Some(&text[start..end])
}

/// As [`after_heading`] but the last of the non-overlapping matches (`finditer(...)[-1]`).
fn last_after_heading<'a>(text: &'a str, heading: &str) -> Option<&'a str> {
    // ASCII lower-casing keeps byte offsets, so positions found in `lower` index `text`.
    let lower = text.to_ascii_lowercase();
    let mut from = 0;
    let mut found = None;
    while let Some(at) = lower.get(from..).and_then(|rest| rest.find(heading)) {
        let (start, end) = heading_span(text, from + at + heading.len());
        found = Some(&text[start..end]);
        from = end.max(from + at + heading.len());
    }
    found
}

/// Byte range of the span after a heading that ends at `start`: leading whitespace skipped,
/// up to the next "\n```", or the end of the text less one final newline.
fn heading_span(text: &str, start: usize) -> (usize, usize) {
    let skipped = text[start..].len() - text[start..].trim_start().len();
    let start = start + skipped;
    let rest = &text[start..];
    let end = match rest.find("\n```") {
        Some(e) => e,
        None if rest.ends_with('\n') => rest.len() - 1,
        None => rest.len(),
    };
    (start, start + end)
}

/// The program's import statements, one per entry, whitespace normalised.
///
/// Approximates the reference's `ast.walk` over `Import`/`ImportFrom` nodes by line shape:
/// lines (at any indentation, outside triple-quoted strings) that look like a complete
/// `import a.b as c, d` or `from .m import x as y, z` statement; a parenthesised `from` import
/// may span lines. Unlike the reference's regex fallback, prose such as a docstring line
/// "from the list, ..." is not taken for an import.
pub fn parse_imports(program: &str) -> Vec<String> {
    let mut imports = Vec::new();
    let mut in_string: Option<&str> = None;
    let mut pending: Option<String> = None;
    for line in program.lines() {
        let trimmed = line.trim();
        if let Some(mut acc) = pending.take() {
            acc.push(' ');
            acc.push_str(trimmed);
            if trimmed.contains(')') {
                push_import(&mut imports, &acc);
            } else {
                pending = Some(acc);
            }
            continue;
        }
        if let Some(q) = in_string {
            if trimmed.matches(q).count() % 2 == 1 {
                in_string = None;
            }
            continue;
        }
        for q in ["\"\"\"", "'''"] {
            if trimmed.matches(q).count() % 2 == 1 {
                in_string = Some(q);
                break;
            }
        }
        if in_string.is_some() {
            continue;
        }
        if trimmed.starts_with("from ") && trimmed.contains("import (") && !trimmed.contains(')') {
            pending = Some(trimmed.to_owned());
        } else if IMPORT_LINE.is_match(trimmed) || FROM_LINE.is_match(trimmed) {
            push_import(&mut imports, trimmed);
        }
    }
    imports
}

fn push_import(imports: &mut Vec<String>, statement: &str) {
    let code = statement.split('#').next().unwrap_or("");
    let normalised = code
        .replace(['(', ')'], " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace(" ,", ",")
        .trim_end_matches(',')
        .to_owned();
    if FROM_LINE.is_match(&normalised) || IMPORT_LINE.is_match(&normalised) {
        imports.push(normalised);
    }
}

/// Replaces every line that is a single `print(...)` call statement by `pass` at the same
/// indentation (so no block is left empty). The reference removes print calls from the syntax
/// tree, also inside expressions; this line-based version leaves those in place.
pub fn remove_print_statements(program: &str) -> String {
    program
        .lines()
        .map(|line| {
            let body = line.trim_start();
            if PRINT_STMT.is_match(body.trim_end()) {
                format!("{}pass", &line[..line.len() - body.len()])
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The reference's heuristic for a program that embeds its test input (`has_test_input`).
pub fn has_test_input(program: &str) -> bool {
    TEST_INPUT.iter().any(|r| r.is_match(program))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> ParseConfig {
        ParseConfig::default()
    }

    const GOOD: &str = "<think>I will write a reversal.</think>\n<answer>\n```python\ndef f(s):\n    return s[::-1]\n```\n\n```input\n'abc'\n```\n</answer>";

    #[test]
    fn generation_text_prefixes_think_and_cuts_at_a_second_assistant_turn() {
        assert_eq!(
            generation_text(" plan </think> <answer>1</answer>"),
            "<think> plan </think> <answer>1</answer>"
        );
        assert_eq!(
            generation_text("a</think><answer>x</answer>\nUser: more\nAssistant: again"),
            "<think>a</think><answer>x</answer>\nUser: more"
        );
        // Quote characters at the ends are stripped, as `.strip('"\'')` does.
        assert_eq!(generation_text("x'\"\n"), "<think>x");
    }

    #[test]
    fn format_rule_needs_think_then_answer() {
        assert!(format_ok(&generation_text(GOOD)));
        assert!(format_ok(&generation_text(
            " r </think>\n\n<answer>1</answer> trailing"
        )));
        assert!(!format_ok(&generation_text(" r <answer>1</answer>")));
        assert!(!format_ok(&generation_text(
            " r </think> text <answer>1</answer>"
        )));
        assert!(!format_ok(&generation_text(" r </think><answer>1")));
        assert!(!format_ok("no think <think>a</think><answer>b</answer>"));
        // Some `</think>` followed by `<answer>` suffices (the lazy `.*?` backtracks).
        assert!(format_ok("<think>a</think> b </think><answer>c</answer>"));
    }

    #[test]
    fn answer_is_the_last_answer_tag_trimmed() {
        assert_eq!(extract_answer("<answer> 1 </answer>"), "1");
        assert_eq!(extract_answer("<answer>1</answer><answer>2</answer>"), "2");
        assert_eq!(
            extract_answer("<answer> open to the end "),
            "open to the end"
        );
        assert_eq!(extract_answer("no tags"), "");
        assert_eq!(
            extract_thought("<think>why</think><answer>1</answer>"),
            "why"
        );
    }

    #[test]
    fn well_formed_triplet_proposal_parses() {
        let p = parse_triplet_proposal(&extract_answer(GOOD), &cfg()).expect("parses");
        assert_eq!(p.program, "def f(s):\n    return s[::-1]");
        assert_eq!(p.input, "'abc'");
        assert!(p.imports.is_empty());
    }

    #[test]
    fn triplet_proposal_without_code_or_input_is_refused() {
        assert_eq!(
            parse_triplet_proposal("```input\n1\n```", &cfg()).map(|_| ()),
            // The reference's code pattern takes any block, so the input block is read as
            // the program, which defines no function.
            Err(FormatError::NoFunction)
        );
        assert_eq!(
            parse_triplet_proposal("just text", &cfg()),
            Err(FormatError::NoCodeBlock)
        );
        assert_eq!(
            parse_triplet_proposal("```python\ndef f(x):\n    return x\n```", &cfg()),
            Err(FormatError::NoInputBlock)
        );
    }

    #[test]
    fn triplet_proposal_without_a_function_is_refused() {
        let a = "```python\nx = 1\n```\n```input\n1\n```";
        assert_eq!(
            parse_triplet_proposal(a, &cfg()),
            Err(FormatError::NoFunction)
        );
    }

    #[test]
    fn nested_functions_count_as_multiple_functions() {
        let a = "```python\ndef f(x):\n    def g(y):\n        return y\n    return g(x)\n```\n```input\n1\n```";
        assert_eq!(
            parse_triplet_proposal(a, &cfg()),
            Err(FormatError::MultipleFunctions(2))
        );
        let lenient = ParseConfig {
            reject_multiple_functions: false,
            ..cfg()
        };
        assert!(parse_triplet_proposal(a, &lenient).is_ok());
    }

    #[test]
    fn first_function_is_renamed_to_f_with_its_recursive_calls() {
        let a = "```python\ndef fact(n):\n    return 1 if n < 2 else n * fact(n - 1)\n```\n```input\n5\n```";
        let p = parse_triplet_proposal(a, &cfg()).expect("parses");
        assert_eq!(
            p.program,
            "def f(n):\n    return 1 if n < 2 else n * f(n - 1)"
        );
    }

    #[test]
    fn extra_text_and_multiple_blocks_take_the_first_program_and_first_input() {
        let a = "Here is my idea.\n```python\nimport math\ndef f(x):\n    return math.floor(x)\n```\nSome words.\n```input\n1.5\n```\n```python\ndef g(y):\n    return y\n```\n```input\n2\n```\nBye.";
        let p = parse_triplet_proposal(a, &cfg()).expect("parses");
        assert_eq!(
            p.program,
            "import math\ndef f(x):\n    return math.floor(x)"
        );
        assert_eq!(p.input, "1.5");
        assert_eq!(p.imports, ["import math"]);
        let last = ParseConfig {
            code_location: CodeLocation::Last,
            ..cfg()
        };
        // `last` takes the last block of any language: here the second input block.
        assert_eq!(
            parse_triplet_proposal(a, &last),
            Err(FormatError::NoFunction)
        );
    }

    #[test]
    fn input_falls_back_to_an_input_heading() {
        let a = "```python\ndef f(x):\n    return x\n```\n# Input: 'hi'\n";
        let p = parse_triplet_proposal(a, &cfg()).expect("parses");
        assert_eq!(p.input, "'hi'");
    }

    #[test]
    fn imports_are_collected_by_statement_shape() {
        let program = "import math, collections as c\nfrom itertools import (\n    chain,\n    product,\n)\nfrom . import x\ndef f(a):\n    \"\"\"\n    from the list, import nothing\n    \"\"\"\n    import heapq  # local\n    return a";
        assert_eq!(
            parse_imports(program),
            [
                "import math, collections as c",
                "from itertools import chain, product",
                "from . import x",
                "import heapq"
            ]
        );
    }

    #[test]
    fn print_lines_become_pass() {
        let p = "def f(x):\n    print(x)\n    y = print\n    return x";
        assert_eq!(
            remove_print_statements(p),
            "def f(x):\n    pass\n    y = print\n    return x"
        );
    }

    #[test]
    fn test_input_heuristic() {
        assert!(has_test_input("def f(x):\n    return x\nassert f(1) == 1"));
        assert!(has_test_input("def f(x):\n    return x\nf(3)"));
        assert!(!has_test_input("def f(x):\n    return x + 1"));
    }

    #[test]
    fn induction_proposal_keeps_the_last_inputs_and_the_message() {
        let a = "```input\n1\n```\n```input\n2\n```\n```input\n3\n```\n```message\nadds one\n```";
        let p = parse_induction_proposal(a, 2).expect("parses");
        assert_eq!(p.inputs, ["2", "3"]);
        assert_eq!(p.message, "adds one");
        assert_eq!(
            parse_induction_proposal(a, 4),
            Err(FormatError::TooFewInputs {
                found: 3,
                needed: 4
            })
        );
        let tag = "```input\n1\n```\n<message> hi </message>";
        assert_eq!(parse_induction_proposal(tag, 1).expect("tag").message, "hi");
        let heading = "```input\n1\n```\n# Message: think about it\n";
        assert_eq!(
            parse_induction_proposal(heading, 1)
                .expect("heading")
                .message,
            "think about it"
        );
        assert_eq!(
            parse_induction_proposal("```input\n1\n```", 1),
            Err(FormatError::NoMessage)
        );
    }

    #[test]
    fn induction_answer_is_the_last_code_block() {
        let a = "```python\ndef f(x):\n    return 1\n```\nbetter:\n```python\ndef f(x):\n    return 2\n```";
        assert_eq!(
            parse_program_answer(a).expect("parses"),
            "def f(x):\n    return 2"
        );
        assert_eq!(
            parse_program_answer("def f(x): return x"),
            Err(FormatError::NoCodeBlock)
        );
    }

    #[test]
    fn reading_rollouts_end_to_end() {
        let r = read_triplet_proposal(&GOOD["<think>".len()..], &cfg(), true);
        assert!(r.format_ok);
        assert_eq!(r.thought, "I will write a reversal.");
        assert_eq!(r.parsed.expect("parses").input, "'abc'");
        // Valid program outside the layout: parsed, but the format check fails.
        let bare = " ```python\ndef f(x):\n    return x\n```\n```input\n1\n```";
        let r = read_triplet_proposal(bare, &cfg(), true);
        assert!(!r.format_ok);
        assert_eq!(r.parsed, Err(FormatError::NoCodeBlock));
        assert!(read_triplet_proposal(bare, &cfg(), false).format_ok);
        assert_eq!(format_score(bare, true), 0.0);
        assert_eq!(format_score(bare, false), 1.0);

        let r = read_induction_proposal(
            " plan </think><answer>```input\n1\n```\n```input\n2\n```\n```message\nm\n```</answer>",
            2,
            true,
        );
        assert!(r.format_ok);
        assert_eq!(r.parsed.expect("parses").inputs, ["1", "2"]);

        let s = read_solver_answer(
            " x </think> <answer>```output\n42\n```</answer>",
            TaskType::Deduction,
            true,
        );
        assert_eq!(
            s,
            SolverAnswer {
                format_ok: true,
                answer: Some("42".into())
            }
        );
        let s = read_solver_answer(
            " x </think> <answer>'a', 1</answer>",
            TaskType::Abduction,
            true,
        );
        assert_eq!(s.answer.as_deref(), Some("'a', 1"));
        // No layout: -1, nothing to check.
        let s = read_solver_answer("```output\n42\n```", TaskType::Deduction, true);
        assert_eq!(
            s,
            SolverAnswer {
                format_ok: false,
                answer: None
            }
        );
        // Induction without a code block is a format error even in the right layout.
        let s = read_solver_answer(
            " x </think> <answer>def f(a): return a</answer>",
            TaskType::Induction,
            true,
        );
        assert!(!s.format_ok);

        // Estimation samples: no layout needed, an answer tag still is.
        assert_eq!(
            read_estimate_answer("<answer>```output\n1\n```</answer>", TaskType::Deduction)
                .as_deref(),
            Some("1")
        );
        assert_eq!(
            read_estimate_answer("```output\n1\n```", TaskType::Deduction).as_deref(),
            Some("")
        );
        assert_eq!(
            read_estimate_answer("<answer>no code</answer>", TaskType::Induction),
            None
        );
    }

    #[test]
    fn solver_io_extraction_fallbacks() {
        assert_eq!(extract_output("```output\n'a'\n```"), "'a'");
        assert_eq!(extract_output("```output\n1\n```\n```output\n2\n```"), "2");
        assert_eq!(extract_input("# Input: [1, 2]\n"), "[1, 2]");
        assert_eq!(extract_input("call input(3, 4) please"), "3, 4");
        assert_eq!(extract_output("<output> 5 </output>"), "5 ");
        assert_eq!(extract_output("So the output is 42."), "42");
        // Nothing recognisable: the whole answer, untrimmed.
        assert_eq!(extract_output(" 'x' "), " 'x' ");
    }

    #[test]
    fn a_brief_proposal_is_read_from_the_whole_response() {
        use crate::prompts::PromptStyle;
        let config = ParseConfig::default();
        let good = "```python\ndef g(a):\n    return a * 2\n```\n```input\n3\n```";
        let read = read_triplet_proposal_in(good, &config, true, PromptStyle::Brief);
        assert!(read.format_ok);
        let p = read.parsed.expect("parsed");
        assert!(p.program.starts_with("def f(a):"), "{}", p.program);
        assert_eq!(p.input, "3");
        let prose = read_triplet_proposal_in(
            "A function that doubles.",
            &config,
            true,
            PromptStyle::Brief,
        );
        assert!(!prose.format_ok && prose.parsed.is_err());
    }

    #[test]
    fn a_brief_answer_is_read_from_the_response_as_it_is() {
        use crate::prompts::PromptStyle;
        let read =
            |text: &str| read_solver_answer_in(text, TaskType::Deduction, true, PromptStyle::Brief);
        let right = read("4 + 3 is 7.\n<answer>7</answer>");
        assert!(right.format_ok);
        assert_eq!(right.answer.as_deref(), Some("7"));
        let strings = read("<answer>'abc'</answer>");
        assert_eq!(strings.answer.as_deref(), Some("'abc'"));
        let unclosed = read("so <answer>7");
        assert!(!unclosed.format_ok && unclosed.answer.is_none());
        let abduction = read_solver_answer_in(
            "<answer>'ab', 3</answer>",
            TaskType::Abduction,
            true,
            PromptStyle::Brief,
        );
        assert_eq!(abduction.answer.as_deref(), Some("'ab', 3"));
    }
}
