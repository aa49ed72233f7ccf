//! The task buffers: where valid proposals go, where references and solver tasks come from.
//!
//! Reference: `DatasetManager` and `_create_train_code_{gen,pred}_dataloader`,
//! `_init_seed_dataset` in `trainer/ppo/azr_ray_trainer.py`, `get_gen_code_io_data` in
//! `data_construction/constructor.py`.
//!
//! - Seeding: a `seed` pool starts with the identity triplet and grows from deduction/
//!   abduction proposals (de-duplicated) up to `batch_size × seed_batch_factor`; then the
//!   deduction and abduction buffers both start as copies of it (step 0). The induction buffer
//!   starts with the identity induction task and grows from induction proposals.
//! - References: K programs drawn uniformly *without* replacement from the task's own buffer
//!   (the seed pool while seeding); an induction proposal gets one program drawn from the
//!   deduction and abduction buffers together.
//! - Solver tasks (`max_new`): programs added in the recent window first, then uniform draws
//!   from the whole buffer; a short selection is topped up by draws with replacement.
//! - Randomness comes from a caller-owned seeded [`StdRng`]; [`step_rng`] derives one per
//!   step and purpose, so a resumed run draws what an uninterrupted one would have.
//!
//! Everything here (de)serialises for checkpoints.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use super::AzrError;
use super::config::{SolverMix, TasksConfig};
use super::intrinsic::TypeCounter;
use super::task::{InductionTask, SolveTask, TaskType, Triplet};
use crate::rng::SplitMix64;

/// A buffered item and the step it was added at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry<T> {
    pub item: T,
    pub step: u64,
}

/// A solver task drawn from a buffer, and the step it joined the buffer at (0: the seeding,
/// before training).
#[derive(Debug, Clone, PartialEq)]
pub struct Drawn {
    pub task: SolveTask,
    pub added_at: u64,
}

/// All buffers of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Buffers {
    /// The seeding pool of deduction/abduction triplets (empty once seeding has finished).
    pub seed: Vec<Triplet>,
    pub deduction: Vec<Entry<Triplet>>,
    pub abduction: Vec<Entry<Triplet>>,
    pub induction: Vec<Entry<InductionTask>>,
    /// Every input that joined a buffer (abduction inputs, induction inputs), by type: the
    /// answer-diversity reward's statistics.
    pub input_types: TypeCounter,
    /// Every output that joined a buffer (deduction outputs, induction outputs).
    pub output_types: TypeCounter,
}

impl Default for Buffers {
    fn default() -> Self {
        Buffers::new()
    }
}

/// Where `push` put an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    Added,
    Duplicate,
    /// The buffer was full; as in the reference, its oldest items are kept.
    Full,
}

impl Buffers {
    /// Fresh buffers: the identity triplet in the seed pool, the identity induction task in
    /// the induction buffer, deduction and abduction empty until [`Buffers::finish_seeding`].
    pub fn new() -> Self {
        let mut b = Buffers {
            seed: vec![],
            deduction: vec![],
            abduction: vec![],
            induction: vec![],
            input_types: TypeCounter::default(),
            output_types: TypeCounter::default(),
        };
        b.add_seed(Triplet::identity());
        b.push_induction(InductionTask::identity(), 0, true, usize::MAX);
        b
    }

    /// Whether the deduction/abduction buffers still wait for the seed pool.
    pub fn seeding(&self) -> bool {
        self.deduction.is_empty() && self.abduction.is_empty()
    }

    /// Adds a triplet to the seed pool unless it is already there; true if added.
    pub fn add_seed(&mut self, t: Triplet) -> bool {
        if self.seed.contains(&t) {
            return false;
        }
        self.seed.push(t);
        true
    }

    /// Ends seeding: the seed pool, cut to `target`, becomes the deduction and abduction
    /// buffers at step 0, and the induction buffer is cut to `target` (reference
    /// `truncate_datasets(target_size, ...)`).
    pub fn finish_seeding(&mut self, target: usize) {
        self.seed.truncate(target);
        self.induction.truncate(target);
        for t in std::mem::take(&mut self.seed) {
            self.push_triplet(TaskType::Abduction, t.clone(), 0, false, usize::MAX);
            self.push_triplet(TaskType::Deduction, t, 0, false, usize::MAX);
        }
    }

    pub fn len(&self, task: TaskType) -> usize {
        match task {
            TaskType::Deduction => self.deduction.len(),
            TaskType::Abduction => self.abduction.len(),
            TaskType::Induction => self.induction.len(),
        }
    }

    pub fn is_empty(&self, task: TaskType) -> bool {
        self.len(task) == 0
    }

    /// Adds a valid deduction or abduction proposal; counts its answer's type.
    pub fn push_triplet(
        &mut self,
        task: TaskType,
        t: Triplet,
        step: u64,
        dedup: bool,
        max_programs: usize,
    ) -> Pushed {
        let buffer = match task {
            TaskType::Deduction => &mut self.deduction,
            TaskType::Abduction => &mut self.abduction,
            TaskType::Induction => return Pushed::Duplicate,
        };
        if dedup && buffer.iter().any(|e| e.item == t) {
            return Pushed::Duplicate;
        }
        if buffer.len() >= max_programs {
            return Pushed::Full;
        }
        match task {
            TaskType::Abduction => self.input_types.count(&t.input),
            _ => self.output_types.count(&t.output),
        }
        buffer.push(Entry { item: t, step });
        Pushed::Added
    }

    /// Adds a valid induction proposal; counts its inputs' and outputs' types.
    pub fn push_induction(
        &mut self,
        t: InductionTask,
        step: u64,
        dedup: bool,
        max_programs: usize,
    ) -> Pushed {
        if dedup && self.induction.iter().any(|e| e.item == t) {
            return Pushed::Duplicate;
        }
        if self.induction.len() >= max_programs {
            return Pushed::Full;
        }
        for i in &t.inputs {
            self.input_types.count(i);
        }
        for o in &t.outputs {
            self.output_types.count(o);
        }
        self.induction.push(Entry { item: t, step });
        Pushed::Added
    }

    /// K reference triplets for a deduction/abduction propose prompt, or the one program an
    /// induction proposal works on (`k` is then ignored). Empty only if every source is empty.
    pub fn references(&self, task: TaskType, k: usize, rng: &mut StdRng) -> Vec<Triplet> {
        let pool: Vec<&Triplet> = match task {
            _ if self.seeding() => self.seed.iter().collect(),
            TaskType::Deduction => self.deduction.iter().map(|e| &e.item).collect(),
            TaskType::Abduction => self.abduction.iter().map(|e| &e.item).collect(),
            TaskType::Induction => self
                .abduction
                .iter()
                .chain(&self.deduction)
                .map(|e| &e.item)
                .collect(),
        };
        let k = if task == TaskType::Induction { 1 } else { k };
        sample_without_replacement(pool.len(), k, rng)
            .into_iter()
            .map(|i| pool[i].clone())
            .collect()
    }

    /// `n` solver tasks of one type, each with the step it joined its buffer at (0: the
    /// seeding). The recent window counts steps `s` with `step − s ≤ window`. Fails only
    /// if the buffer is empty.
    pub fn solver_tasks(
        &self,
        task: TaskType,
        n: usize,
        step: u64,
        window: u64,
        mix: SolverMix,
        rng: &mut StdRng,
    ) -> Result<Vec<Drawn>, AzrError> {
        let task_at = |i: usize| -> SolveTask {
            match task {
                TaskType::Deduction => SolveTask::Deduction(self.deduction[i].item.clone()),
                TaskType::Abduction => SolveTask::Abduction(self.abduction[i].item.clone()),
                TaskType::Induction => SolveTask::Induction(self.induction[i].item.clone()),
            }
        };
        let steps: Vec<u64> = match task {
            TaskType::Deduction => self.deduction.iter().map(|e| e.step).collect(),
            TaskType::Abduction => self.abduction.iter().map(|e| e.step).collect(),
            TaskType::Induction => self.induction.iter().map(|e| e.step).collect(),
        };
        if steps.is_empty() {
            return Err(AzrError::Buffer(format!("the {task} buffer is empty")));
        }
        let recent: Vec<usize> = (0..steps.len())
            .filter(|&i| step.saturating_sub(steps[i]) <= window)
            .collect();
        let pick = |pool: &[usize], k: usize, rng: &mut StdRng| -> Vec<usize> {
            sample_without_replacement(pool.len(), k, rng)
                .into_iter()
                .map(|j| pool[j])
                .collect()
        };
        let all: Vec<usize> = (0..steps.len()).collect();
        let mut chosen = match mix {
            SolverMix::MaxNew => pick(&recent, n, rng),
            SolverMix::HalfNew => pick(&recent, n / 2, rng),
            SolverMix::UniformTotal => vec![],
        };
        let rest = pick(&all, n - chosen.len(), rng);
        chosen.extend(rest);
        // Top up a short selection with draws (with replacement) from what was chosen.
        let base = chosen.len();
        while base > 0 && chosen.len() < n {
            let j = rng.random_range(0..base);
            chosen.push(chosen[j]);
        }
        Ok(chosen
            .into_iter()
            .map(|i| Drawn {
                task: task_at(i),
                added_at: steps[i],
            })
            .collect())
    }

    pub fn to_json(&self) -> Result<String, AzrError> {
        Ok(serde_json::to_string(self)?)
    }

    pub fn from_json(text: &str) -> Result<Self, AzrError> {
        Ok(serde_json::from_str(text)?)
    }

    /// A fingerprint of the whole content (FNV-1a over the JSON form), stable across runs and
    /// builds: metrics record it so a resumed run can be shown to hold the saved buffers.
    pub fn digest(&self) -> Result<String, AzrError> {
        Ok(fnv1a_hex(self.to_json()?.bytes()))
    }
}

/// 64-bit FNV-1a of `bytes` as 16 hex digits: a fingerprint stable across runs and builds
/// (to tell contents apart, not a checksum against tampering).
pub fn fnv1a_hex(bytes: impl IntoIterator<Item = u8>) -> String {
    format!("{:016x}", fnv1a(bytes))
}

/// FNV-1a, 64 bits.
pub fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The built-in seed programs (`tasks.seed_programs = "builtin"`): 32 small programs
/// written for this project, from a one-line arithmetic function to a two-pointer scan, so
/// that a small model's solve rates differ from task to task.
pub const BUILTIN_SEED_PROGRAMS: &str = include_str!("../data/seed-programs.jsonl");

/// Reads the seed programs a config names (see `TasksConfig::seed_programs`): none for
/// `""`, the built-in set for `"builtin"`, the train split of the graded families
/// `tasks.families` for `"families"`, else a JSON-lines file of `{"snippet", "input"}`
/// records (AZR's seed format; an `output` there is ignored, the sandbox computes it).
pub fn seed_programs(tasks: &TasksConfig, seed: u64) -> Result<Vec<Triplet>, AzrError> {
    let spec = tasks.seed_programs.as_str();
    let (text, origin) = match spec {
        "" => return Ok(vec![]),
        "families" => {
            return crate::families::seed_triplets(&tasks.families, tasks.family_programs, seed);
        }
        "builtin" => (
            BUILTIN_SEED_PROGRAMS.to_owned(),
            "the built-in seed programs".to_owned(),
        ),
        path => (
            std::fs::read_to_string(path)
                .map_err(|e| AzrError::Config(format!("tasks.seed_programs: {path}: {e}")))?,
            path.to_owned(),
        ),
    };
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut t: Triplet = serde_json::from_str(line).map_err(|e| {
            AzrError::Config(format!(
                "tasks.seed_programs: {origin}, line {}: {e}",
                i + 1
            ))
        })?;
        t.output.clear();
        out.push(t);
    }
    Ok(out)
}

/// `min(k, len)` distinct indices in `0..len`, uniformly (a partial Fisher–Yates shuffle).
pub fn sample_without_replacement(len: usize, k: usize, rng: &mut StdRng) -> Vec<usize> {
    let k = k.min(len);
    let mut idx: Vec<usize> = (0..len).collect();
    for i in 0..k {
        let j = rng.random_range(i..len);
        idx.swap(i, j);
    }
    idx.truncate(k);
    idx
}

/// The generator for one purpose at one step of a run: a function of (seed, step, stream)
/// only, so a run resumed from a checkpoint makes the same draws.
pub fn step_rng(seed: u64, step: u64, stream: u64) -> StdRng {
    let mut mix = SplitMix64::new(seed);
    let a = mix.next_u64() ^ step.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut mix = SplitMix64::new(a);
    let b = mix.next_u64() ^ stream.wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
    StdRng::seed_from_u64(SplitMix64::new(b).next_u64())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_seed_programs(spec: &str) -> Result<Vec<Triplet>, AzrError> {
        let tasks = TasksConfig {
            seed_programs: spec.to_owned(),
            ..TasksConfig::default()
        };
        seed_programs(&tasks, 1)
    }

    #[test]
    fn family_seed_programs_are_the_named_cells_train_programs() {
        let tasks = TasksConfig {
            seed_programs: "families".into(),
            families: vec!["loop/1".into(), "dict/3".into()],
            family_programs: 3,
            ..TasksConfig::default()
        };
        let programs = seed_programs(&tasks, 4).unwrap();
        assert_eq!(programs.len(), 6);
        assert_eq!(programs, seed_programs(&tasks, 4).unwrap());
    }

    #[test]
    fn builtin_seed_programs_are_32_single_function_programs_without_outputs() {
        let programs = read_seed_programs("builtin").expect("builtin");
        assert_eq!(programs.len(), 32);
        for t in &programs {
            assert_eq!(t.program.matches("def ").count(), 1, "{}", t.program);
            assert!(t.program.starts_with("def f("), "{}", t.program);
            assert!(t.output.is_empty() && !t.input.is_empty());
        }
        assert!(read_seed_programs("").expect("none").is_empty());
    }

    #[test]
    fn a_bad_seed_program_file_is_an_error_that_names_the_line() {
        let dir = std::env::temp_dir().join(format!("azr-seeds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("seeds.jsonl");
        std::fs::write(
            &path,
            "{\"snippet\": \"def f(a):\\n    return a\", \"input\": \"1\", \"output\": \"9\"}\n\n{\"input\": \"2\"}\n",
        )
        .unwrap();
        let err = read_seed_programs(path.to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 3"), "{err}");
        std::fs::write(
            &path,
            "{\"snippet\": \"def f(a):\\n    return a\", \"input\": \"1\", \"output\": \"9\"}\n",
        )
        .unwrap();
        let read = read_seed_programs(path.to_str().unwrap()).unwrap();
        assert_eq!(
            read[0].output, "",
            "a file's outputs are recomputed, not trusted"
        );
        let missing = read_seed_programs("/nonexistent/seeds.jsonl").unwrap_err();
        assert!(missing.to_string().contains("/nonexistent/seeds.jsonl"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn trip(n: usize) -> Triplet {
        Triplet {
            program: format!("def f(a):\n    return a + {n}"),
            input: "1".into(),
            output: format!("{}", 1 + n),
            imports: vec![],
        }
    }

    fn seeded(n: usize) -> Buffers {
        let mut b = Buffers::new();
        for i in 1..n {
            b.add_seed(trip(i));
        }
        b.finish_seeding(n);
        b
    }

    #[test]
    fn new_buffers_hold_the_identity_seeds() {
        let b = Buffers::new();
        assert!(b.seeding());
        assert_eq!(b.seed, [Triplet::identity()]);
        assert_eq!(b.induction.len(), 1);
        assert_eq!(b.induction[0].item, InductionTask::identity());
        let mut rng = step_rng(1, 0, 0);
        assert_eq!(
            b.references(TaskType::Deduction, 6, &mut rng),
            [Triplet::identity()]
        );
        assert_eq!(
            b.references(TaskType::Induction, 6, &mut rng),
            [Triplet::identity()]
        );
    }

    #[test]
    fn seeding_deduplicates_then_copies_into_both_buffers() {
        let mut b = Buffers::new();
        assert!(b.add_seed(trip(1)));
        assert!(!b.add_seed(trip(1)));
        assert!(!b.add_seed(Triplet::identity()));
        b.add_seed(trip(2));
        b.finish_seeding(2);
        assert!(!b.seeding());
        assert!(b.seed.is_empty());
        let programs: Vec<&Triplet> = b.deduction.iter().map(|e| &e.item).collect();
        assert_eq!(programs, [&Triplet::identity(), &trip(1)]);
        assert_eq!(b.abduction.len(), 2);
        assert!(b.deduction.iter().all(|e| e.step == 0));
    }

    #[test]
    fn push_deduplicates_and_keeps_the_oldest_when_full() {
        let mut b = seeded(2);
        assert_eq!(
            b.push_triplet(TaskType::Deduction, trip(5), 3, true, 4),
            Pushed::Added
        );
        assert_eq!(
            b.push_triplet(TaskType::Deduction, trip(5), 4, true, 4),
            Pushed::Duplicate
        );
        assert_eq!(
            b.push_triplet(TaskType::Deduction, trip(5), 4, false, 4),
            Pushed::Added
        );
        assert_eq!(
            b.push_triplet(TaskType::Deduction, trip(6), 4, true, 4),
            Pushed::Full
        );
        assert_eq!(b.deduction.len(), 4);
        assert_eq!(b.abduction.len(), 2);
    }

    #[test]
    fn references_are_distinct_and_seeded() {
        let b = seeded(10);
        let mut rng = step_rng(7, 3, 1);
        let refs = b.references(TaskType::Abduction, 6, &mut rng);
        assert_eq!(refs.len(), 6);
        for (i, r) in refs.iter().enumerate() {
            assert!(!refs[..i].contains(r));
        }
        let again = b.references(TaskType::Abduction, 6, &mut step_rng(7, 3, 1));
        assert_eq!(refs, again);
        let other = b.references(TaskType::Abduction, 6, &mut step_rng(7, 4, 1));
        assert_ne!(refs, other);
        // Fewer programs than K: all of them.
        let small = seeded(3);
        assert_eq!(small.references(TaskType::Deduction, 6, &mut rng).len(), 3);
    }

    #[test]
    fn induction_references_come_from_deduction_and_abduction_buffers() {
        let mut b = seeded(1);
        b.push_triplet(TaskType::Abduction, trip(9), 1, true, 100);
        let mut seen = std::collections::HashSet::new();
        for s in 0..50 {
            let r = b.references(TaskType::Induction, 6, &mut step_rng(1, s, 0));
            assert_eq!(r.len(), 1);
            seen.insert(r[0].program.clone());
        }
        assert_eq!(seen.len(), 2);
    }

    #[test]
    fn max_new_takes_recent_programs_first() {
        let mut b = seeded(8);
        for i in 0..3 {
            b.push_triplet(TaskType::Deduction, trip(100 + i), 10, true, 100);
        }
        let mut rng = step_rng(1, 10, 2);
        let tasks = b
            .solver_tasks(TaskType::Deduction, 5, 10, 1, SolverMix::MaxNew, &mut rng)
            .expect("tasks");
        assert_eq!(tasks.len(), 5);
        let recent: Vec<String> = (0..3).map(|i| trip(100 + i).program).collect();
        let first3: Vec<String> = tasks[..3]
            .iter()
            .map(|t| t.task.program().to_owned())
            .collect();
        for p in &recent {
            assert!(first3.contains(p));
        }
        assert!(tasks[..3].iter().all(|t| t.added_at == 10));
        assert!(
            tasks
                .iter()
                .all(|t| matches!(t.task, SolveTask::Deduction(_)))
        );
    }

    #[test]
    fn short_buffers_are_topped_up_and_empty_ones_refused() {
        let b = seeded(2);
        let mut rng = step_rng(1, 1, 2);
        let tasks = b
            .solver_tasks(
                TaskType::Abduction,
                5,
                1,
                1,
                SolverMix::UniformTotal,
                &mut rng,
            )
            .expect("tasks");
        assert_eq!(tasks.len(), 5);
        let mut empty = Buffers::new();
        empty.induction.clear();
        assert!(
            empty
                .solver_tasks(TaskType::Induction, 2, 1, 1, SolverMix::MaxNew, &mut rng)
                .is_err()
        );
    }

    #[test]
    fn buffers_round_trip_through_json() {
        let mut b = seeded(3);
        b.push_triplet(TaskType::Abduction, trip(42), 5, true, 100);
        let back = Buffers::from_json(&b.to_json().expect("json")).expect("parse");
        assert_eq!(back, b);
    }

    #[test]
    fn reference_seed_files_load_into_buffers() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/azr-seeds");
        let text = std::fs::read_to_string(dir.join("7b_seed_io.jsonl"))
            .expect("the seed file the checkout ships");
        let mut b = Buffers::new();
        for line in text.lines() {
            let t: Triplet = serde_json::from_str(line).expect("triplet line");
            b.add_seed(t);
        }
        assert_eq!(b.seed.len(), 256);
        b.finish_seeding(256);
        assert_eq!(b.deduction.len(), 256);
        let text = std::fs::read_to_string(dir.join("7b_code_f_seed_io.jsonl")).expect("code_f");
        for line in text.lines() {
            let t: InductionTask = serde_json::from_str(line).expect("induction line");
            b.push_induction(t, 0, true, usize::MAX);
        }
        assert_eq!(b.induction.len(), 256);
    }
}
