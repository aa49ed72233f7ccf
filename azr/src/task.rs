//! The vocabulary of AZR: three task types, two roles, six groups, and the tasks themselves.
//!
//! Reference: `azr_ray_trainer.py` (`seed_program`, `_init_seed_dataset`) and the record
//! layout of `data/7b_seed_io.jsonl` / `data/7b_code_f_seed_io.jsonl`, which our types read
//! directly (`snippet` is accepted for `program`; unknown fields are ignored).

use serde::{Deserialize, Serialize};

/// What the solver has to infer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TaskType {
    /// `code_o`: given `f` and `x`, predict `y = f(x)`.
    #[serde(rename = "code_o")]
    Deduction,
    /// `code_i`: given `f` and `y`, find some `x` with `f(x) == y`.
    #[serde(rename = "code_i")]
    Abduction,
    /// `code_f`: given some input/output pairs and a message, write `f`.
    #[serde(rename = "code_f")]
    Induction,
}

impl TaskType {
    /// In the reference's training order (`fit`: code_i, code_o, code_f).
    pub const ALL: [TaskType; 3] = [
        TaskType::Abduction,
        TaskType::Deduction,
        TaskType::Induction,
    ];

    /// The reference's name (`code_o`, `code_i`, `code_f`), used in metrics and configs.
    pub fn code(self) -> &'static str {
        match self {
            TaskType::Deduction => "code_o",
            TaskType::Abduction => "code_i",
            TaskType::Induction => "code_f",
        }
    }

    pub fn from_code(code: &str) -> Option<TaskType> {
        TaskType::ALL.into_iter().find(|t| t.code() == code)
    }
}

impl std::fmt::Display for TaskType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// Which half of self-play a rollout belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Writes a task (the reference's `gen_*` batches).
    Propose,
    /// Answers a task (the reference's `pred_*` batches).
    Solve,
}

/// One of the six (task type × role) batches. TRR++ normalises advantages within a group, so
/// the group is what a rollout carries into the update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Group {
    pub task: TaskType,
    pub role: Role,
}

impl Group {
    pub const fn new(task: TaskType, role: Role) -> Self {
        Group { task, role }
    }

    /// All six groups, in the reference's order (propose before solve, code_i, code_o, code_f).
    pub const ALL: [Group; 6] = [
        Group::new(TaskType::Abduction, Role::Propose),
        Group::new(TaskType::Abduction, Role::Solve),
        Group::new(TaskType::Deduction, Role::Propose),
        Group::new(TaskType::Deduction, Role::Solve),
        Group::new(TaskType::Induction, Role::Propose),
        Group::new(TaskType::Induction, Role::Solve),
    ];

    /// The reference's batch name: `gen_code_i`, `pred_code_o`, ...
    pub fn name(self) -> String {
        let prefix = match self.role {
            Role::Propose => "gen",
            Role::Solve => "pred",
        };
        format!("{prefix}_{}", self.task.code())
    }
}

/// A program, one input and its output: a deduction or abduction task, and the unit the
/// deduction/abduction buffers hold.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Triplet {
    /// Python source defining `f` (imports are kept apart, in `imports`).
    #[serde(alias = "snippet")]
    pub program: String,
    /// The argument list of `f`, as Python source (`'ab', 3`).
    pub input: String,
    /// `repr(f(input))` as the sandbox computed it (absent from a seed-program file, whose
    /// outputs the sandbox computes).
    #[serde(default)]
    pub output: String,
    /// Import lines the program needs, prepended before it runs.
    #[serde(default)]
    pub imports: Vec<String>,
}

/// The identity program every buffer starts from (reference `seed_program`).
pub const IDENTITY_PROGRAM: &str = "def f(a):\n    return a";

impl Triplet {
    /// The identity triplet the deduction/abduction buffers are seeded with; input and output
    /// are written exactly as the reference writes them (`"Hello world"`, double quotes).
    pub fn identity() -> Self {
        Triplet {
            program: IDENTITY_PROGRAM.to_owned(),
            input: "\"Hello world\"".to_owned(),
            output: "\"Hello world\"".to_owned(),
            imports: vec![],
        }
    }
}

/// An induction task: a program, inputs the proposer chose, the outputs the sandbox computed,
/// and the proposer's message. The solver sees the first half of the pairs and the message;
/// the second half is held out and decides whether its program is right.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InductionTask {
    #[serde(alias = "snippet")]
    pub program: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub message: String,
    #[serde(default)]
    pub imports: Vec<String>,
}

impl InductionTask {
    /// The identity induction task the reference seeds its induction buffer with (six pairs).
    pub fn identity() -> Self {
        let io: Vec<String> = [
            "\"Hello world\"",
            "1",
            "dict(a=1, b=2)",
            "(1.1, 1.2, 1.3)",
            "\"[[1, 0, 0], [0, 0, 0], [0, 0, 0]]\"",
            "1001101100010001",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        InductionTask {
            program: IDENTITY_PROGRAM.to_owned(),
            inputs: io.clone(),
            outputs: io,
            message: "Write a function that returns whatever you input".to_owned(),
            imports: vec![],
        }
    }

    /// How many pairs the solver sees: `len / 2`, rounded down (reference `constructor.py`).
    fn split(&self) -> usize {
        self.inputs.len().min(self.outputs.len()) / 2
    }

    /// The pairs shown to the solver.
    pub fn given(&self) -> Vec<(&str, &str)> {
        let n = self.split();
        self.pairs().take(n).collect()
    }

    /// The held-out pairs the solver's program must reproduce.
    pub fn hidden(&self) -> Vec<(&str, &str)> {
        let n = self.split();
        self.pairs().skip(n).collect()
    }

    fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.inputs
            .iter()
            .zip(&self.outputs)
            .map(|(i, o)| (i.as_str(), o.as_str()))
    }
}

/// A task put to the solver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SolveTask {
    Deduction(Triplet),
    Abduction(Triplet),
    Induction(InductionTask),
}

impl SolveTask {
    pub fn task_type(&self) -> TaskType {
        match self {
            SolveTask::Deduction(_) => TaskType::Deduction,
            SolveTask::Abduction(_) => TaskType::Abduction,
            SolveTask::Induction(_) => TaskType::Induction,
        }
    }

    pub fn program(&self) -> &str {
        match self {
            SolveTask::Deduction(t) | SolveTask::Abduction(t) => &t.program,
            SolveTask::Induction(t) => &t.program,
        }
    }

    pub fn imports(&self) -> &[String] {
        match self {
            SolveTask::Deduction(t) | SolveTask::Abduction(t) => &t.imports,
            SolveTask::Induction(t) => &t.imports,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn six_groups_with_reference_names() {
        let names: Vec<String> = Group::ALL.iter().map(|g| g.name()).collect();
        assert_eq!(
            names,
            [
                "gen_code_i",
                "pred_code_i",
                "gen_code_o",
                "pred_code_o",
                "gen_code_f",
                "pred_code_f"
            ]
        );
        for t in TaskType::ALL {
            assert_eq!(TaskType::from_code(t.code()), Some(t));
        }
    }

    #[test]
    fn induction_split_gives_floor_half_to_the_solver() {
        let mut t = InductionTask::identity();
        assert_eq!(t.given().len(), 3);
        assert_eq!(t.hidden().len(), 3);
        assert_eq!(t.given()[0], ("\"Hello world\"", "\"Hello world\""));
        t.inputs.push("7".into());
        t.outputs.push("7".into());
        assert_eq!(t.given().len(), 3);
        assert_eq!(t.hidden().len(), 4);
        assert_eq!(t.hidden()[3], ("7", "7"));
    }

    #[test]
    fn reference_seed_records_deserialise() {
        let line = r#"{"snippet": "def f(a):\n    return a", "input": "\"Hello world\"", "output": "\"Hello world\"", "imports": [], "original_snippet": "def f(a):\n    return a", "composite_functions": []}"#;
        let t: Triplet = serde_json::from_str(line).expect("reference triplet");
        assert_eq!(t, Triplet::identity());
        let line = r#"{"snippet": "def f(a):\n    return a", "inputs": ["1"], "outputs": ["1"], "message": "m", "imports": []}"#;
        let t: InductionTask = serde_json::from_str(line).expect("reference induction task");
        assert_eq!(t.program, IDENTITY_PROGRAM);
        assert_eq!(t.message, "m");
    }
}
