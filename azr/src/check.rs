//! What the loop asks the sandbox, and what it gets back.
//!
//! The AZR logic never executes code: it builds plain items ([`ValidateTask`] for proposals,
//! [`TaskCheck`] for solver answers), the loop sends them in batches through a [`Checker`]
//! (the sandbox client, or a fake in tests), and the verdicts flow back into `rewards`.
//!
//! Reference semantics (`python_executor.py`, `reward_managers.py`):
//! - a proposal is valid when `check_all` accepts it: it parses, has no banned import, runs,
//!   and `f(x)` is deterministic; its output is `repr(f(x))`;
//! - induction inputs are validated against the *reference* program with no banned-word check;
//! - an induction answer is checked pair by pair (`eval_input_prediction` per held-out pair);
//!   a pair without a verdict is left out of the mean, as the reference leaves out `None`.

use serde::{Deserialize, Serialize};

use super::config::InductionReward;
use super::task::{SolveTask, TaskType};

/// Validate a proposed program on one input: the sandbox's `validate` operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidateTask {
    pub program: String,
    pub imports: Vec<String>,
    /// The argument list of `f`, as Python source.
    pub input: String,
    /// Apply the banned-import rules. The reference checks them for deduction and abduction
    /// proposals but not for the inputs of an induction proposal (the program there is a
    /// buffered one, already checked), where it passes `banned_keywords=[]`.
    pub check_banned: bool,
}

/// The sandbox's answer to a [`ValidateTask`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validation {
    pub ok: bool,
    /// `repr(f(input))` when `ok`: the task's gold output.
    pub output: Option<String>,
    /// Why not, when not `ok` (verdict and error line), for logs and metrics.
    pub error: Option<String>,
}

/// One solver answer to check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskCheck {
    /// The gold program for deduction/abduction, the solver's program for induction.
    pub program: String,
    pub imports: Vec<String>,
    pub kind: CheckKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum CheckKind {
    /// Does the answer, evaluated, equal the gold output?
    Deduction { gold: String, answer: String },
    /// Does `f(<answer>)` equal the gold output?
    Abduction { gold: String, answer: String },
    /// Does the program map every input to its output?
    Induction {
        inputs: Vec<String>,
        outputs: Vec<String>,
    },
}

/// The sandbox's answer to a [`TaskCheck`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    pub passed: bool,
    /// The sandbox's verdict (`ok`, `error`, `timeout`, ...), for metrics.
    pub verdict: String,
    /// The answer was refused because it needs the program it predicts (it calls `f`, uses
    /// a helper or a constant of the program): an answer must state its value without
    /// running the program, and such an answer scores nothing.
    #[serde(default)]
    pub refused_answer: bool,
}

/// Batch access to an executor. Results come back in the order of the items.
pub trait Checker {
    type Error: std::error::Error;
    fn validate(&mut self, items: &[ValidateTask]) -> Result<Vec<Validation>, Self::Error>;
    fn check(&mut self, items: &[TaskCheck]) -> Result<Vec<CheckResult>, Self::Error>;
}

impl TaskCheck {
    /// The checks one solver answer needs: one for deduction/abduction, one per held-out pair
    /// for induction (so that the `accuracy` reward can count pairs, as the reference does).
    /// `answer` is the extracted answer: an output, an argument list, or a program.
    pub fn for_answer(task: &SolveTask, answer: &str) -> Vec<TaskCheck> {
        match task {
            SolveTask::Deduction(t) => vec![TaskCheck {
                program: t.program.clone(),
                imports: t.imports.clone(),
                kind: CheckKind::Deduction {
                    gold: t.output.clone(),
                    answer: answer.to_owned(),
                },
            }],
            SolveTask::Abduction(t) => vec![TaskCheck {
                program: t.program.clone(),
                imports: t.imports.clone(),
                kind: CheckKind::Abduction {
                    gold: t.output.clone(),
                    answer: answer.to_owned(),
                },
            }],
            SolveTask::Induction(t) => t
                .hidden()
                .into_iter()
                .map(|(i, o)| TaskCheck {
                    program: answer.to_owned(),
                    imports: t.imports.clone(),
                    kind: CheckKind::Induction {
                        inputs: vec![i.to_owned()],
                        outputs: vec![o.to_owned()],
                    },
                })
                .collect(),
        }
    }
}

/// The accuracy of one solver answer from the results of its checks (in the order
/// [`TaskCheck::for_answer`] made them); `None` marks a check that got no verdict.
///
/// Deduction/abduction: 1 or 0 (no verdict: 0). Induction: the mean over the pairs that got a
/// verdict (0 when none did), then `binary` → 1 only if that mean is exactly 1,
/// `if_one_correct` → 1 if it is above 0, `accuracy` → the mean itself.
pub fn answer_accuracy(
    task: TaskType,
    results: &[Option<bool>],
    induction_reward: InductionReward,
) -> f64 {
    match task {
        TaskType::Deduction | TaskType::Abduction => match results.first() {
            Some(Some(true)) => 1.0,
            _ => 0.0,
        },
        TaskType::Induction => {
            let judged: Vec<f64> = results
                .iter()
                .flatten()
                .map(|&p| if p { 1.0 } else { 0.0 })
                .collect();
            let mean = if judged.is_empty() {
                0.0
            } else {
                judged.iter().sum::<f64>() / judged.len() as f64
            };
            match induction_reward {
                InductionReward::Binary => {
                    if mean == 1.0 {
                        1.0
                    } else {
                        0.0
                    }
                }
                InductionReward::IfOneCorrect => {
                    if mean > 0.0 {
                        1.0
                    } else {
                        0.0
                    }
                }
                InductionReward::Accuracy => mean,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::{InductionTask, Triplet};

    #[test]
    fn deduction_and_abduction_answers_make_one_check_against_the_gold_program() {
        let t = Triplet {
            program: "def f(a, b):\n    return a * b".into(),
            input: "'ab', 3".into(),
            output: "'ababab'".into(),
            imports: vec!["import math".into()],
        };
        let d = TaskCheck::for_answer(&SolveTask::Deduction(t.clone()), "'ababab'");
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].program, t.program);
        assert_eq!(d[0].imports, t.imports);
        assert_eq!(
            d[0].kind,
            CheckKind::Deduction {
                gold: "'ababab'".into(),
                answer: "'ababab'".into()
            }
        );
        let a = TaskCheck::for_answer(&SolveTask::Abduction(t), "'a', 6");
        assert_eq!(
            a[0].kind,
            CheckKind::Abduction {
                gold: "'ababab'".into(),
                answer: "'a', 6".into()
            }
        );
    }

    #[test]
    fn induction_answer_makes_one_check_per_held_out_pair_with_the_solver_program() {
        let task = SolveTask::Induction(InductionTask::identity());
        let checks = TaskCheck::for_answer(&task, "def f(x):\n    return x");
        assert_eq!(checks.len(), 3);
        assert!(
            checks
                .iter()
                .all(|c| c.program == "def f(x):\n    return x")
        );
        assert_eq!(
            checks[0].kind,
            CheckKind::Induction {
                inputs: vec!["(1.1, 1.2, 1.3)".into()],
                outputs: vec!["(1.1, 1.2, 1.3)".into()]
            }
        );
    }

    #[test]
    fn induction_accuracy_modes_and_missing_verdicts() {
        use InductionReward::*;
        let r = [Some(true), Some(false), Some(true), Some(true)];
        assert_eq!(answer_accuracy(TaskType::Induction, &r, Binary), 0.0);
        assert_eq!(answer_accuracy(TaskType::Induction, &r, Accuracy), 0.75);
        assert_eq!(answer_accuracy(TaskType::Induction, &r, IfOneCorrect), 1.0);
        // A pair without a verdict is left out of the mean.
        let r = [Some(true), None, Some(true)];
        assert_eq!(answer_accuracy(TaskType::Induction, &r, Binary), 1.0);
        assert_eq!(answer_accuracy(TaskType::Induction, &[None], Accuracy), 0.0);
        assert_eq!(answer_accuracy(TaskType::Induction, &[], Binary), 0.0);
        assert_eq!(
            answer_accuracy(TaskType::Deduction, &[Some(true)], Binary),
            1.0
        );
        assert_eq!(answer_accuracy(TaskType::Abduction, &[None], Binary), 0.0);
    }
}
