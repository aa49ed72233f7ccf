//! The red-team suite of the judge: answers, inputs and candidate programs that
//! try to make a check pass without being right (`tests/data/judge_attacks.toml`), grouped
//! by technique. Each attack must fail, and the items after it in the same batch must get
//! exactly the verdicts they would get alone: batching must not be a channel.

use crate::common;

use std::collections::BTreeMap;

use azr_sandbox::{Item, Outcome, Verdict};

const PROGRAM: &str = "def f(x):\n    return [x, x]";

#[derive(serde::Deserialize)]
struct Attack {
    technique: String,
    name: String,
    #[serde(default = "deduction")]
    op: String,
    program: Option<String>,
    answer: Option<String>,
    gold: Option<String>,
    right: Option<String>,
    wrong: Option<String>,
}

fn deduction() -> String {
    "deduction".into()
}

fn attacks() -> Vec<Attack> {
    #[derive(serde::Deserialize)]
    struct File {
        attack: Vec<Attack>,
    }
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/judge_attacks.toml");
    let text = std::fs::read_to_string(&path).expect("tests/data/judge_attacks.toml");
    toml::from_str::<File>(&text)
        .expect("judge_attacks.toml parses")
        .attack
}

impl Attack {
    fn program(&self) -> String {
        self.program.clone().unwrap_or_else(|| PROGRAM.into())
    }

    fn gold(&self) -> String {
        self.gold.clone().unwrap_or_else(|| "[1, 1]".into())
    }

    /// The check item of `answer` (for induction: of the candidate program `answer`).
    fn check(&self, answer: &str) -> Item {
        let gold = self.gold();
        match self.op.as_str() {
            "abduction" => Item::Abduction {
                program: self.program(),
                imports: vec![],
                gold,
                answer: answer.into(),
            },
            "induction" => Item::Induction {
                program: answer.into(),
                imports: vec![],
                inputs: vec!["1".into()],
                outputs: vec![gold],
            },
            _ => Item::Deduction {
                program: self.program(),
                imports: vec![],
                gold,
                answer: answer.into(),
            },
        }
    }

    fn right(&self) -> String {
        self.right.clone().unwrap_or_else(|| {
            match self.op.as_str() {
                "abduction" => "1",
                "induction" => PROGRAM,
                _ => "[1, 1]",
            }
            .into()
        })
    }

    fn wrong(&self) -> String {
        self.wrong.clone().unwrap_or_else(|| {
            match self.op.as_str() {
                "abduction" => "2",
                "induction" => "def f(x):\n    return [x, 2]",
                _ => "[2, 2]",
            }
            .into()
        })
    }

    /// `[attack, right, wrong, attack, right]`.
    fn batch(&self) -> Vec<Item> {
        let attack = match self.op.as_str() {
            "validate" => Item::Validate {
                program: self.program(),
                imports: vec![],
                input: "1".into(),
            },
            "induction" => self.check(&self.program()),
            _ => self.check(self.answer.as_deref().expect("an attack answer")),
        };
        let (right, wrong) = if self.op == "validate" {
            // The items after a validation: deductions on the same program.
            let check = |answer: String| Item::Deduction {
                program: self.program(),
                imports: vec![],
                gold: self.gold(),
                answer,
            };
            (check(self.right()), check(self.wrong()))
        } else {
            (self.check(&self.right()), self.check(&self.wrong()))
        };
        vec![attack.clone(), right.clone(), wrong, attack, right]
    }

    /// What is wrong with the outcomes, if anything.
    fn judge(&self, outcomes: &[Outcome]) -> Option<String> {
        let attack_held = |o: &Outcome| {
            if self.op == "validate" {
                o.verdict == Verdict::Rejected
            } else {
                o.passed != Some(true)
            }
        };
        let passes = |o: &Outcome| o.verdict == Verdict::Ok && o.passed == Some(true);
        let expect = [
            ("the attack", attack_held(&outcomes[0])),
            ("a right answer after it", passes(&outcomes[1])),
            ("a wrong answer after it", outcomes[2].passed == Some(false)),
            ("the attack again", attack_held(&outcomes[3])),
            ("a right answer after that", passes(&outcomes[4])),
        ];
        let broken: Vec<String> = expect
            .iter()
            .zip(outcomes)
            .filter(|((_, ok), _)| !ok)
            .map(|((what, _), o)| format!("{what}: {o:?}"))
            .collect();
        (!broken.is_empty()).then(|| broken.join("\n    "))
    }
}

#[test]
fn no_attack_passes_or_changes_the_verdicts_after_it() {
    let attacks = attacks();
    let mut by_technique: BTreeMap<&str, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for attack in &attacks {
        let outcomes = common::items(attack.batch());
        assert_eq!(outcomes.len(), 5, "{}: one outcome per item", attack.name);
        *by_technique.entry(&attack.technique).or_default() += 1;
        if let Some(broken) = attack.judge(&outcomes) {
            failures.push(format!(
                "{} / {}:\n    {broken}",
                attack.technique, attack.name
            ));
        }
    }
    eprintln!(
        "{} attacks held by technique: {by_technique:?}",
        attacks.len() - failures.len()
    );
    assert!(attacks.len() >= 40, "the suite keeps at least 40 attacks");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_right_answer_passes_however_it_is_written() {
    // The same value by other means than a literal: the judge compares values, not text.
    let answers = [
        "[1, 1]",
        "[1] * 2",
        "list((1, 1))",
        "[1.0, True]",
        "[int('1')] * 2",
    ];
    let items = answers
        .iter()
        .map(|a| Item::Deduction {
            program: PROGRAM.into(),
            imports: vec![],
            gold: "[1, 1]".into(),
            answer: (*a).into(),
        })
        .chain(
            ["1", "True", "1.0", "x=1", "*[1]", "int('1')"]
                .iter()
                .map(|a| Item::Abduction {
                    program: PROGRAM.into(),
                    imports: vec![],
                    gold: "[1, 1]".into(),
                    answer: (*a).into(),
                }),
        )
        .collect();
    for outcome in common::items(items) {
        assert_eq!(outcome.passed, Some(true), "{outcome:?}");
    }
}
