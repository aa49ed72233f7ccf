//! Every knob of the self-play loop, with the reference's 7B self-play defaults.
//!
//! Sources, in order of precedence: our design document (section 1), the reference's
//! `scripts/selfplay/7b.sh`, its `configs/azr_ppo_trainer.yaml`. A config file is TOML; every
//! field may be left out (its default is used) and an unknown field is an error, so a typo
//! cannot silently leave a default in place. `presets/azr-7b.toml` and `presets/tiny.toml`
//! write every field down.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::AzrError;
use super::prompts::PromptStyle;
use super::task::TaskType;

/// The whole configuration of a self-play run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AzrConfig {
    /// The policy's weights: a GGUF file or a Hugging Face directory. A bare file name is
    /// looked up among the models `scripts/models.sh` fetches.
    pub model: String,
    /// Seeds every random choice of the loop (references, solver tasks, sampling); the
    /// reference's `azr.seed`.
    pub seed: u64,
    /// Training steps to run; 0 runs until stopped (the reference counts 30 epochs of a
    /// dummy dataset instead).
    pub total_steps: u64,
    /// Save a checkpoint (weights, optimiser, buffers) every this many steps (`save_freq`).
    pub checkpoint_interval: u64,
    /// Checkpoints kept on disk; older ones are deleted once a newer one is complete (a
    /// checkpoint holds the weights and twice their size of optimiser state).
    pub checkpoint_keep: usize,
    pub tasks: TasksConfig,
    pub rollout: RolloutConfig,
    pub optim: OptimConfig,
    pub reward: RewardConfig,
    pub validation: ValidationConfig,
    pub parse: ParseConfig,
}

/// Which tasks are played, how many, and how buffers feed them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TasksConfig {
    /// Task types played (`code_i` abduction, `code_o` deduction, `code_f` induction).
    pub types: Vec<TaskType>,
    /// Rollouts per (task type × role) group and step (`data.train_batch_size`).
    pub batch_size: usize,
    /// Proposals per task type and step; 0 = `batch_size`, as in the reference (one batch
    /// size for both roles). Fewer proposals than solver answers is what a CPU affords: a
    /// propose prompt is several times a solve prompt's length, and the solver groups, not
    /// the proposer's, are where a small model's reward varies first.
    pub propose_batch_size: usize,
    /// K: reference programs shown in each deduction/abduction propose prompt (`io_n`);
    /// induction proposals always get exactly one program.
    pub references: usize,
    /// Inputs an induction proposal must give (`num_inputs`); half are shown to the solver.
    pub induction_inputs: usize,
    /// The seed buffers are grown to `batch_size × seed_batch_factor` programs before
    /// training starts (`seed_batch_factor`).
    pub seed_batch_factor: usize,
    /// Cap on each buffer (`max_programs`). As in the reference, the buffer keeps its
    /// *oldest* programs when it overflows.
    pub max_programs: usize,
    /// Drop a valid proposal that is already in its buffer. The reference de-duplicates only
    /// while seeding; ours does it always unless this is off.
    pub dedup: bool,
    /// How solver tasks are drawn from a buffer (`pred_data_mix_strategy`).
    pub solver_mix: SolverMix,
    /// Programs added within this many steps count as new for `max_new`/`half_new`
    /// (`past_epoch_window` = `update_iteration`).
    pub recent_window: u64,
    /// Which valid proposals join the buffer (`valid_program_filter`).
    pub valid_program_filter: ValidProgramFilter,
    /// Train on the proposer's rollouts too (`train_propose`); off trains the solver only.
    pub train_propose: bool,
    /// Seeding rounds (one batch of proposals per task type each) before training starts with
    /// whatever the buffers hold. The reference loops until the target is reached; a model
    /// that never proposes a valid program would then never start.
    pub max_seed_rounds: usize,
    /// Programs that start the deduction/abduction seed pool before any proposing
    /// (reference `azr.seed_dataset`): `""` none, `"builtin"` the 32 small programs in
    /// `azr/data/seed-programs.jsonl` (written for this project, not the held-out AZR
    /// programs), or a JSON-lines file of `{"snippet", "input"}` records. Each is run in the
    /// sandbox like a proposal (banned-import rules, determinism) and its output computed
    /// there; seeding rounds then propose only what the pool still lacks.
    pub seed_programs: String,
    /// Answers per solver task (G): each step's `batch_size` solver rollouts of a type
    /// answer `ceil(batch_size / G)` tasks G times each. 1 is the reference (every rollout a
    /// different task); with `optim.advantage = "task_group"`, G ≥ 2 lets a right answer be
    /// contrasted with wrong ones to the same task.
    pub solve_group_size: usize,
    /// The graded program families' cells (`family/level`, e.g. `"arithmetic/1"`) whose
    /// train-split programs seed the buffers when `seed_programs = "families"`.
    pub families: Vec<String>,
    /// Programs per family cell with `seed_programs = "families"`.
    pub family_programs: usize,
}

/// Generation settings for every rollout (proposals, solver answers, learnability samples).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RolloutConfig {
    /// Longest prompt, in tokens (`data.max_prompt_length`).
    pub max_prompt_tokens: usize,
    /// Longest response, in tokens (`data.max_response_length`).
    pub max_response_tokens: usize,
    /// A propose prompt longer than this (tokens) is redrawn with other references
    /// (`content_max_length`).
    pub content_max_length: usize,
    /// Sampling temperature (`rollout.temperature`).
    pub temperature: f64,
    /// Nucleus sampling threshold; 1.0 samples from the whole distribution (`rollout.top_p`).
    pub top_p: f64,
    /// Wrap the prompt in the model's chat template. Off is the reference's setting for base
    /// models (`pretrained_tokenizer=True` replaces the template with plain concatenation):
    /// the model continues the text `... Assistant: <think>`.
    pub chat_template: bool,
    /// Text that opens the assistant's turn after the chat template (with `chat_template`
    /// only): `"<think>"` starts the response inside its reasoning, as the plain text's
    /// closing `Assistant: <think>` does; `""` leaves the first token to the model. Brief
    /// prompts (`prompt_style = "brief"`; induction proposals excepted) open with nothing.
    pub assistant_prefix: String,
    /// Sequences decoded together (bounds the KV cache's memory); a phase's prompts beyond it
    /// wait, each taking the row of a finished sequence (continuous batching).
    pub generation_batch: usize,
    /// The weights rollouts are sampled from: `"int8"`, a per-row int8 copy of the f32
    /// weights made again after every update (a quarter of the bytes a CPU decode step
    /// streams); `"int4"`, 4-bit blocks against int8 activations (five bits per weight:
    /// faster at batch 1, slower at batch 8 on AVX2, and far more rounding: docs/measurements.md);
    /// or `"f32"`. Log-probs for the update are recomputed in f32 either way. Where the
    /// kernel cannot run (no AVX2, a GPU) decoding reads f32.
    pub precision: Precision,
    /// Compute the prompts' common opening tokens (chat template, instructions) once per
    /// generation batch and copy their keys and values to each prompt, instead of once per
    /// prompt. The samples are the same up to float rounding.
    pub share_prefix: bool,
    /// How solver tasks and deduction/abduction proposals are asked: `"reference"` (the
    /// reference's `<think>`/`<answer>` layout, fenced answers, an example value) or
    /// `"brief"` (for small models, which copy the example and the one-word layout: solver
    /// tasks asked plainly with the bare answer between answer tags, proposals as the
    /// references with their inputs and a request for one new function and input in fenced
    /// blocks; a departure from the reference). Induction proposals keep the reference's.
    pub prompt_style: PromptStyle,
}

/// The policy update: PPO-clip on TRR++ advantages, AdamW.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimConfig {
    /// AdamW learning rate, constant (`actor.optim.lr`).
    pub lr: f64,
    /// AdamW weight decay (`actor.optim.weight_decay`).
    pub weight_decay: f64,
    /// PPO clip range ε: ratios are clipped to [1 − ε, 1 + ε] (design document: 0.2).
    pub ppo_clip: f64,
    /// Global gradient-norm bound (`actor.grad_clip`); 0 disables clipping.
    pub grad_clip: f64,
    /// Samples per optimiser step (`ppo_mini_batch_size`); a step's rollouts of all groups
    /// are split into mini-batches of this size.
    pub mini_batch: usize,
    /// Samples per forward/backward pass (`ppo_micro_batch_size_per_gpu`).
    pub micro_batch: usize,
    /// Passes over a step's rollouts (`ppo_epochs`).
    pub ppo_epochs: usize,
    /// Recompute activations in the backward pass (`enable_gradient_checkpointing`).
    pub gradient_checkpointing: bool,
    /// Discount of the returns (`algorithm.gamma`); 1 gives every token the sequence reward.
    pub gamma: f64,
    /// Coefficient of a token-level KL penalty in the reward (`kl_ctrl.kl_coef`); 0 = none
    /// and no reference model is needed.
    pub kl_coef: f64,
    /// Truncated importance sampling for rollouts sampled from other weights than the f32
    /// policy (the int8 copy): each token's term is weighted by
    /// min(p_f32 / p_sampled, tis_cap). 0 = off (the default; the metrics'
    /// `rollout_logprob_gap` says when it is worth turning on; 2 is a common cap).
    pub tis_cap: f64,
    /// Which rollouts a solver answer's advantage is measured against: `"trrpp"`, the
    /// reference's Task-Relative REINFORCE++ (every rollout of its task type and role), or
    /// `"task_group"`, the other answers to the same task (GRPO/RLOO style, with
    /// `tasks.solve_group_size` ≥ 2; proposals keep TRR++). A departure from the reference.
    pub advantage: AdvantageEstimator,
    /// Train low-rank adapters of this rank on every projection of every layer, the model's
    /// own weights frozen (PEFT's `r`; veRL's `lora_rank`); 0 trains every weight. A departure
    /// from the reference, which fine-tunes fully: optimiser state of megabytes instead of
    /// gigabytes, and rollout copies of the frozen weights made once.
    pub lora_rank: i64,
    /// The adapters' product is scaled by `lora_alpha / lora_rank` (PEFT's `lora_alpha`).
    pub lora_alpha: f64,
}

/// The family cells of the `learn` preset: those where Qwen2.5-Coder-0.5B-Instruct's greedy
/// held-out accuracy, asked briefly, is between about 10 and 60 % in deduction or abduction
/// (measured 2026-12-07, docs/program-families.md).
pub const LEARN_FAMILIES: [&str; 6] = [
    "arithmetic/1",
    "comprehension/1",
    "dict/1",
    "dict/3",
    "loop/1",
    "recursion/1",
];

/// See [`OptimConfig::advantage`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdvantageEstimator {
    #[default]
    Trrpp,
    TaskGroup,
}

/// Rewards of both roles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RewardConfig {
    /// Solver rollouts per valid proposal that estimate its solve rate (`n_samples`).
    pub n_samples: usize,
    /// Require the `<think>…</think><answer>…</answer>` layout (`format_reward`); off
    /// treats every response as well formatted.
    pub format_reward: bool,
    /// How an induction answer is scored from its held-out pairs (`code_f_reward_type`).
    pub induction: InductionReward,
    /// How the solve rate becomes the proposer's reward (`generation_accuracy_convertion`).
    pub learnability: Learnability,
    /// How enabled intrinsic rewards join the learnability reward (`intrinsic_combine_method`).
    pub intrinsic_combine: IntrinsicCombine,
    /// Proposer bonus for cognitive complexity of the program (approximate, see `intrinsic`).
    pub complexity: IntrinsicReward,
    /// Proposer bonus for distance from its reference programs (approximate).
    pub mean_edit_distance: IntrinsicReward,
    /// Proposer bonus for the program's Halstead metrics (approximate).
    pub halstead: IntrinsicReward,
    /// Proposer bonus for a rare answer (input for abduction, output for deduction).
    pub answer_diversity: DiversityReward,
}

/// One optional intrinsic reward: `min(coef · x, max)` when enabled.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IntrinsicReward {
    pub enabled: bool,
    pub coef: f64,
    pub max: f64,
}

/// The answer-diversity reward, which can also weigh the rarity of the answer's type.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiversityReward {
    pub enabled: bool,
    pub coef: f64,
    pub max: f64,
    /// Average the surprise of the answer's type and of the answer within its type, instead
    /// of the surprise of the answer among all answers.
    pub hierarchical: bool,
}

/// What the sandbox is asked to enforce on proposals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ValidationConfig {
    /// Wall-clock limit per execution, seconds (`execute_max_timeout`).
    pub timeout_s: f64,
    /// Modules a program may not import (matched on dotted-path components), also listed in
    /// the propose prompt (`banned_words`).
    pub banned_words: Vec<String>,
    /// Statements a program may not contain (`banned_keywords_for_errors_and_exceptions`;
    /// the 7B script bans `raise`).
    pub banned_keywords: Vec<String>,
    /// Evaluate `f(x)` twice and require equal results (`check_determinism`).
    pub check_determinism: bool,
}

/// How a proposal's code block is read (`parse_code_input_output`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ParseConfig {
    /// Refuse a program with more than one `def` line, nested and method ones included
    /// (`reject_multiple_functions`).
    pub reject_multiple_functions: bool,
    /// Which defined function is renamed to `f` (`f_replace_location`).
    pub f_replace_location: FReplaceLocation,
    /// Which code block holds the program (`code_location`).
    pub code_location: CodeLocation,
    /// Replace print-call statements by `pass` (`remove_print`; line-based here).
    pub remove_print: bool,
    /// Refuse programs that look like they contain their test input (`reject_test_input_in_code`).
    pub reject_test_input_in_code: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InductionReward {
    /// 1 when every held-out pair is reproduced, else 0.
    Binary,
    /// The fraction of held-out pairs reproduced.
    Accuracy,
    /// 1 when at least one held-out pair is reproduced.
    IfOneCorrect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Learnability {
    /// `1 − s` if `s > 0`, else 0: unsolvable and trivial tasks both earn nothing.
    OneMinus,
    /// `1 − s`: unsolvable tasks earn the most.
    Inverse,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntrinsicCombine {
    /// `r + Σ cᵢ`
    Sum,
    /// `r · Π cᵢ`
    Multiply,
    /// `r + Π cᵢ`
    SumMultiply,
    /// `r · Σ cᵢ`
    MultiplySum,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SolverMix {
    /// Programs added in the recent window first, then uniform draws from the whole buffer.
    MaxNew,
    /// At most half from the recent window, the rest uniform from the whole buffer.
    HalfNew,
    /// Uniform draws from the whole buffer.
    UniformTotal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValidProgramFilter {
    /// Every valid proposal joins the buffer.
    All,
    /// All but those the solver always solved.
    NonOne,
    /// All but those the solver always or never solved.
    NonExtremes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FReplaceLocation {
    /// The first defined function becomes `f`.
    NotFirst,
    /// The last defined function becomes `f`, unless one is already called `f`.
    AnyLast,
    /// The first defined function becomes `f`, unless one is already called `f`.
    AnyFirst,
    /// The last defined function becomes `f`.
    NotLast,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CodeLocation {
    First,
    Last,
}

/// The reference's banned import words (design document, section 1).
pub const BANNED_WORDS: [&str; 16] = [
    "logging",
    "random",
    "multiprocessing",
    "pebble",
    "subprocess",
    "threading",
    "datetime",
    "time",
    "hashlib",
    "hmac",
    "bcrypt",
    "os.sys",
    "os.path",
    "sys.exit",
    "os.environ",
    "calendar",
];

impl Default for AzrConfig {
    fn default() -> Self {
        AzrConfig {
            model: "Qwen/Qwen2.5-7B".into(),
            seed: 1,
            total_steps: 0,
            checkpoint_interval: 10,
            checkpoint_keep: 2,
            tasks: TasksConfig::default(),
            rollout: RolloutConfig::default(),
            optim: OptimConfig::default(),
            reward: RewardConfig::default(),
            validation: ValidationConfig::default(),
            parse: ParseConfig::default(),
        }
    }
}

impl Default for TasksConfig {
    fn default() -> Self {
        TasksConfig {
            types: TaskType::ALL.to_vec(),
            batch_size: 64,
            references: 6,
            induction_inputs: 10,
            seed_batch_factor: 4,
            max_programs: 16384,
            dedup: true,
            solver_mix: SolverMix::MaxNew,
            recent_window: 1,
            valid_program_filter: ValidProgramFilter::All,
            train_propose: true,
            max_seed_rounds: 64,
            propose_batch_size: 0,
            seed_programs: String::new(),
            solve_group_size: 1,
            families: vec![],
            family_programs: 64,
        }
    }
}

impl Default for RolloutConfig {
    fn default() -> Self {
        RolloutConfig {
            max_prompt_tokens: 6144,
            max_response_tokens: 8096,
            content_max_length: 5600,
            temperature: 1.0,
            top_p: 1.0,
            chat_template: false,
            assistant_prefix: String::new(),
            generation_batch: 64,
            precision: Precision::Int8,
            share_prefix: true,
            prompt_style: PromptStyle::Reference,
        }
    }
}

impl Default for OptimConfig {
    fn default() -> Self {
        OptimConfig {
            lr: 1e-6,
            weight_decay: 0.0,
            ppo_clip: 0.2,
            grad_clip: 1.0,
            mini_batch: 128,
            micro_batch: 16,
            ppo_epochs: 1,
            gradient_checkpointing: true,
            gamma: 1.0,
            kl_coef: 0.0,
            tis_cap: 0.0,
            advantage: AdvantageEstimator::Trrpp,
            lora_rank: 0,
            lora_alpha: 32.0,
        }
    }
}

impl Default for RewardConfig {
    fn default() -> Self {
        RewardConfig {
            n_samples: 8,
            format_reward: true,
            induction: InductionReward::Binary,
            learnability: Learnability::OneMinus,
            intrinsic_combine: IntrinsicCombine::Sum,
            complexity: IntrinsicReward::default(),
            mean_edit_distance: IntrinsicReward::default(),
            halstead: IntrinsicReward::default(),
            answer_diversity: DiversityReward::default(),
        }
    }
}

impl Default for IntrinsicReward {
    /// Off, as the 7B script sets it (coef 0, max 0).
    fn default() -> Self {
        IntrinsicReward {
            enabled: false,
            coef: 0.0,
            max: 0.0,
        }
    }
}

impl Default for DiversityReward {
    fn default() -> Self {
        DiversityReward {
            enabled: false,
            coef: 0.0,
            max: 0.0,
            hierarchical: false,
        }
    }
}

impl Default for ValidationConfig {
    fn default() -> Self {
        ValidationConfig {
            timeout_s: 10.0,
            banned_words: BANNED_WORDS.iter().map(|s| (*s).to_owned()).collect(),
            banned_keywords: vec!["raise".into()],
            check_determinism: true,
        }
    }
}

impl Default for ParseConfig {
    fn default() -> Self {
        ParseConfig {
            reject_multiple_functions: true,
            f_replace_location: FReplaceLocation::NotFirst,
            code_location: CodeLocation::First,
            remove_print: false,
            reject_test_input_in_code: false,
        }
    }
}

impl AzrConfig {
    /// The reference's 7B self-play settings (the defaults).
    pub fn azr_7b() -> Self {
        AzrConfig::default()
    }

    /// Self-play that fits a 2-core CPU: Qwen2.5-Coder-0.5B-Instruct on deduction and
    /// abduction, 4 solver answers per group (a group of 2 almost always scores one reward for
    /// both and teaches nothing) and 1 proposal per type, the buffers started from the 32
    /// built-in seed programs (the base model rarely proposes a valid program), the chat
    /// template with `<think>` opening the answer (as format-valid as the plain route, and the
    /// instruct model's own mode), 256-token answers, the reference's lr of 1e-6 (2e-5 and
    /// 5e-6 collapsed every answer to the format's placeholder after one AdamW step), and one
    /// mini-batch per step (its old log-probs are the step's own).
    /// `docs/selfplay-tiny-2026-11-30.md` has the runs behind these choices.
    pub fn tiny() -> Self {
        let d = AzrConfig::default();
        AzrConfig {
            model: "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf".into(),
            total_steps: 20,
            checkpoint_interval: 5,
            checkpoint_keep: 1,
            tasks: TasksConfig {
                types: vec![TaskType::Abduction, TaskType::Deduction],
                batch_size: 4,
                propose_batch_size: 1,
                references: 2,
                induction_inputs: 4,
                seed_batch_factor: 8,
                max_programs: 1024,
                max_seed_rounds: 8,
                seed_programs: "builtin".into(),
                ..d.tasks
            },
            rollout: RolloutConfig {
                max_prompt_tokens: 2048,
                max_response_tokens: 256,
                content_max_length: 1536,
                chat_template: true,
                assistant_prefix: "<think>".into(),
                generation_batch: 16,
                ..d.rollout
            },
            optim: OptimConfig {
                lr: 1e-6,
                mini_batch: 16,
                micro_batch: 2,
                gradient_checkpointing: false,
                ..d.optim
            },
            reward: RewardConfig {
                n_samples: 4,
                ..d.reward
            },
            ..d
        }
    }

    /// Self-play for a small model on this CPU, set up so that it can learn the tasks and
    /// not only the layout (`presets/learn.toml` says why each value departs from `tiny`):
    /// the buffers start from the graded program families where the default model's greedy
    /// accuracy is between about 10 and 60 % (docs/program-families.md), solver tasks are
    /// asked briefly, each is answered four times and the answers are contrasted with each
    /// other, and the proposer's group holds four rollouts.
    pub fn learn() -> Self {
        let tiny = AzrConfig::tiny();
        AzrConfig {
            total_steps: 20,
            tasks: TasksConfig {
                batch_size: 8,
                propose_batch_size: 4,
                seed_batch_factor: 8,
                seed_programs: "families".into(),
                families: LEARN_FAMILIES.iter().map(|c| (*c).to_owned()).collect(),
                family_programs: 64,
                solve_group_size: 4,
                ..tiny.tasks
            },
            rollout: RolloutConfig {
                prompt_style: PromptStyle::Brief,
                ..tiny.rollout
            },
            optim: OptimConfig {
                lr: 1e-5,
                advantage: AdvantageEstimator::TaskGroup,
                lora_rank: 16,
                lora_alpha: 32.0,
                ..tiny.optim
            },
            ..tiny
        }
    }

    /// A preset by name: `tiny`, `learn`, or `7b` (also `azr-7b`).
    pub fn by_name(name: &str) -> Result<Self, AzrError> {
        match name {
            "tiny" => Ok(AzrConfig::tiny()),
            "learn" => Ok(AzrConfig::learn()),
            "7b" | "azr-7b" => Ok(AzrConfig::azr_7b()),
            other => Err(AzrError::UnknownPreset(other.to_owned())),
        }
    }

    /// Parses and checks a TOML config.
    pub fn from_toml(text: &str) -> Result<Self, AzrError> {
        let config: AzrConfig = toml::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    pub fn load(path: &Path) -> Result<Self, AzrError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| AzrError::Config(format!("{}: {e}", path.display())))?;
        AzrConfig::from_toml(&text)
    }

    /// This config with one field changed: `assignment` is `dotted.field=VALUE`, the value
    /// TOML (`4`, `0.8`, `"f32"`, `["code_o"]`) or, where it does not parse as TOML, a bare
    /// string. Only existing fields can be set, and the result is checked, so a typo or an
    /// out-of-range value is an error rather than a silently ignored key.
    pub fn with_field(self, assignment: &str) -> Result<Self, AzrError> {
        let bad = |m: String| AzrError::Config(format!("{assignment}: {m}"));
        let (field, text) = assignment
            .split_once('=')
            .ok_or_else(|| bad("expected FIELD=VALUE".into()))?;
        let field = field.trim();
        let value = toml::from_str::<toml::Table>(&format!("v = {text}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(text.to_owned()));
        let mut root =
            toml::Value::try_from(&self).map_err(|e| bad(format!("the config as TOML: {e}")))?;
        let parts: Vec<&str> = field.split('.').collect();
        let (last, tables) = parts.split_last().ok_or_else(|| bad("no field".into()))?;
        let mut node = &mut root;
        for (i, part) in tables.iter().enumerate() {
            node = node
                .as_table_mut()
                .and_then(|t| t.get_mut(*part))
                .ok_or_else(|| bad(format!("no field `{}`", parts[..=i].join("."))))?;
        }
        let table = node
            .as_table_mut()
            .ok_or_else(|| bad(format!("`{}` is not a table", tables.join("."))))?;
        if !table.contains_key(*last) {
            return Err(bad(format!("no field `{field}`")));
        }
        table.insert((*last).to_owned(), value);
        let config: AzrConfig = root.try_into().map_err(|e| bad(format!("{e}")))?;
        config.validate().map_err(|e| bad(format!("{e}")))?;
        Ok(config)
    }

    /// Proposals per task type and step.
    pub fn propose_batch_size(&self) -> usize {
        match self.tasks.propose_batch_size {
            0 => self.tasks.batch_size,
            n => n,
        }
    }

    /// Seed buffer size the loop grows the buffers to before training
    /// (`data_len × seed_batch_factor`).
    pub fn seed_buffer_size(&self) -> usize {
        self.tasks.batch_size * self.tasks.seed_batch_factor
    }

    /// Refuses values the loop cannot run with.
    pub fn validate(&self) -> Result<(), AzrError> {
        let bad = |m: &str| Err(AzrError::Config(m.to_owned()));
        let t = &self.tasks;
        if t.types.is_empty() {
            return bad("tasks.types is empty");
        }
        for (i, ty) in t.types.iter().enumerate() {
            if t.types[..i].contains(ty) {
                return bad(&format!("tasks.types lists {ty} twice"));
            }
        }
        for cell in &t.families {
            crate::families::parse_cell(cell)?;
        }
        if t.seed_programs == "families" && (t.families.is_empty() || t.family_programs == 0) {
            return bad(
                "tasks.seed_programs = \"families\" needs tasks.families and tasks.family_programs",
            );
        }
        if t.solve_group_size == 0 {
            return bad("tasks.solve_group_size must be at least 1");
        }
        if t.batch_size == 0 {
            return bad("tasks.batch_size must be at least 1");
        }
        if t.induction_inputs < 2 {
            return bad("tasks.induction_inputs must be at least 2 (half are held out)");
        }
        if self.checkpoint_keep == 0 {
            return bad("checkpoint_keep must be at least 1");
        }
        if self.rollout.generation_batch == 0 {
            return bad("rollout.generation_batch must be at least 1");
        }
        if self.optim.kl_coef != 0.0 {
            return bad(
                "optim.kl_coef: a KL penalty needs a reference model, which is not supported; use 0",
            );
        }
        if !(self.optim.tis_cap == 0.0 || self.optim.tis_cap >= 1.0) {
            return bad("optim.tis_cap must be 0 (off) or at least 1 (a cap on p_f32 / p_sampled)");
        }
        if !self.validation.check_determinism {
            return bad("validation.check_determinism: the sandbox always re-runs f(x); use true");
        }
        if t.seed_batch_factor == 0 || t.max_programs == 0 {
            return bad("tasks.seed_batch_factor and tasks.max_programs must be at least 1");
        }
        let r = &self.rollout;
        if !(r.top_p > 0.0 && r.top_p <= 1.0) {
            return bad("rollout.top_p must be in (0, 1]");
        }
        if !non_negative(r.temperature) {
            return bad("rollout.temperature must be >= 0");
        }
        if r.max_response_tokens == 0 || r.max_prompt_tokens == 0 {
            return bad("rollout token limits must be at least 1");
        }
        let o = &self.optim;
        if !(o.lr.is_finite() && o.lr >= 0.0) {
            // 0 is a control run: everything as in training, the weights left as they are.
            return bad("optim.lr must be >= 0 (0: a control run that does not update)");
        }
        if o.lora_rank < 0 {
            return bad("optim.lora_rank must be 0 (full fine-tuning) or positive");
        }
        if o.lora_rank > 0 && !(o.lora_alpha.is_finite() && o.lora_alpha > 0.0) {
            return bad("optim.lora_alpha must be a positive number");
        }
        if !(o.ppo_clip > 0.0 && o.ppo_clip < 1.0) {
            return bad("optim.ppo_clip must be in (0, 1)");
        }
        if ![o.grad_clip, o.weight_decay, o.kl_coef]
            .into_iter()
            .all(non_negative)
        {
            return bad("optim.grad_clip, weight_decay and kl_coef must be >= 0");
        }
        if !(0.0..=1.0).contains(&o.gamma) {
            return bad("optim.gamma must be in [0, 1]");
        }
        if o.mini_batch == 0 || o.micro_batch == 0 || o.ppo_epochs == 0 {
            return bad("optim.mini_batch, micro_batch and ppo_epochs must be at least 1");
        }
        if self.reward.n_samples == 0 {
            return bad("reward.n_samples must be at least 1");
        }
        if !positive(self.validation.timeout_s) {
            return bad("validation.timeout_s must be > 0");
        }
        Ok(())
    }
}

/// `x > 0`, false for NaN.
fn positive(x: f64) -> bool {
    x > 0.0
}

/// `x >= 0`, false for NaN.
fn non_negative(x: f64) -> bool {
    x >= 0.0
}

/// The weights rollouts are decoded from: the f32 ones, or a quantised copy where its kernel
/// runs (products of up to 16 rows outside autograd). Training, teacher-forced log-probs and
/// checkpoints always use f32.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    F32,
    /// Per-row int8 weights, f32 activations.
    Int8,
    /// 4-bit weights in 32-blocks (scale and minimum in f16), activations rounded to int8
    /// per 32-block: the smallest copy, and the most rounding.
    Int4,
}

impl Precision {
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Int8 => "int8",
            Precision::Int4 => "int4",
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = AzrError;

    fn from_str(s: &str) -> Result<Self, AzrError> {
        match s {
            "f32" => Ok(Precision::F32),
            "int8" => Ok(Precision::Int8),
            "int4" => Ok(Precision::Int4),
            other => Err(AzrError::Config(format!(
                "unknown precision `{other}` (expected f32, int8 or int4)"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    const TINY: &str = include_str!("../presets/tiny.toml");
    const AZR_7B: &str = include_str!("../presets/azr-7b.toml");
    const LEARN: &str = include_str!("../presets/learn.toml");

    #[test]
    fn preset_files_parse_and_equal_the_rust_presets() {
        assert_eq!(
            AzrConfig::from_toml(AZR_7B).expect("azr-7b.toml"),
            AzrConfig::azr_7b()
        );
        assert_eq!(
            AzrConfig::from_toml(TINY).expect("tiny.toml"),
            AzrConfig::tiny()
        );
        assert_eq!(
            AzrConfig::from_toml(LEARN).expect("learn.toml"),
            AzrConfig::learn()
        );
    }

    #[test]
    fn preset_files_write_every_field() {
        // Serialising a preset and dropping the values must leave exactly the keys the file
        // sets: a field added to the structs but not to the files fails here.
        fn keys(v: &toml::Value, prefix: &str, out: &mut Vec<String>) {
            if let toml::Value::Table(t) = v {
                for (k, v) in t {
                    let name = format!("{prefix}{k}");
                    if v.is_table() {
                        keys(v, &format!("{name}."), out);
                    } else {
                        out.push(name);
                    }
                }
            }
        }
        for (text, preset) in [
            (AZR_7B, AzrConfig::azr_7b()),
            (TINY, AzrConfig::tiny()),
            (LEARN, AzrConfig::learn()),
        ] {
            let file: toml::Value = toml::from_str(text).expect("preset file");
            let full = toml::Value::try_from(&preset).expect("serialise preset");
            let (mut a, mut b) = (vec![], vec![]);
            keys(&file, "", &mut a);
            keys(&full, "", &mut b);
            a.sort();
            b.sort();
            assert_eq!(a, b);
        }
    }

    #[test]
    fn defaults_are_the_reference_7b_values() {
        let c = AzrConfig::default();
        assert_eq!(c.tasks.batch_size, 64);
        assert_eq!(c.tasks.references, 6);
        assert_eq!(c.tasks.induction_inputs, 10);
        assert_eq!(c.seed_buffer_size(), 256);
        assert_eq!(c.reward.n_samples, 8);
        assert_eq!(c.optim.lr, 1e-6);
        assert_eq!(c.optim.ppo_clip, 0.2);
        assert_eq!(c.rollout.max_prompt_tokens, 6144);
        assert_eq!(c.rollout.max_response_tokens, 8096);
        assert_eq!(c.reward.induction, InductionReward::Binary);
        assert!(!c.reward.complexity.enabled);
        assert!(!c.reward.mean_edit_distance.enabled);
        assert!(!c.reward.halstead.enabled);
        assert!(!c.reward.answer_diversity.enabled);
        assert_eq!(c.validation.banned_words.len(), 16);
        assert_eq!(c.validation.banned_keywords, ["raise"]);
    }

    #[test]
    fn empty_file_gives_defaults_and_unknown_fields_are_refused() {
        assert_eq!(
            AzrConfig::from_toml("").expect("empty"),
            AzrConfig::default()
        );
        let partial = AzrConfig::from_toml("[reward]\nn_samples = 3\n").expect("partial");
        assert_eq!(partial.reward.n_samples, 3);
        assert_eq!(partial.tasks, TasksConfig::default());
        assert!(AzrConfig::from_toml("[reward]\nn_sample = 3\n").is_err());
        assert!(AzrConfig::from_toml("lr = 1e-6\n").is_err());
        assert!(AzrConfig::from_toml("[reward]\ninduction = \"sometimes\"\n").is_err());
    }

    #[test]
    fn invalid_values_are_refused() {
        assert!(AzrConfig::from_toml("[optim]\nppo_clip = 1.5\n").is_err());
        assert!(AzrConfig::from_toml("[tasks]\nbatch_size = 0\n").is_err());
        assert!(AzrConfig::from_toml("[tasks]\ntypes = [\"code_i\", \"code_i\"]\n").is_err());
        assert!(AzrConfig::from_toml("[tasks]\ntypes = []\n").is_err());
        assert!(AzrConfig::from_toml("[rollout]\ntop_p = 0.0\n").is_err());
    }

    #[test]
    fn presets_by_name() {
        assert_eq!(AzrConfig::by_name("tiny").expect("tiny"), AzrConfig::tiny());
        assert_eq!(AzrConfig::by_name("7b").expect("7b"), AzrConfig::default());
        assert!(matches!(
            AzrConfig::by_name("70b"),
            Err(AzrError::UnknownPreset(_))
        ));
        AzrConfig::tiny().validate().expect("tiny validates");
    }

    #[test]
    fn a_field_is_set_by_its_dotted_name_with_a_toml_value() {
        let c = AzrConfig::tiny()
            .with_field("tasks.batch_size=3")
            .and_then(|c| c.with_field("rollout.temperature = 0.5"))
            .and_then(|c| c.with_field("rollout.precision=\"f32\""))
            .unwrap();
        assert_eq!(c.tasks.batch_size, 3);
        assert_eq!(c.rollout.temperature, 0.5);
        assert_eq!(c.rollout.precision, Precision::F32);
    }

    #[test]
    fn a_bare_word_is_taken_as_a_string() {
        let c = AzrConfig::tiny()
            .with_field("model=some/model.gguf")
            .unwrap();
        assert_eq!(c.model, "some/model.gguf");
    }

    #[test]
    fn setting_an_unknown_field_or_a_bad_value_is_an_error_that_names_it() {
        for (assignment, names) in [
            ("tasks.batch_sise=3", "tasks.batch_sise"),
            ("task.batch_size=3", "task"),
            ("tasks=3", "tasks"),
            ("tasks.batch_size", "FIELD=VALUE"),
            ("tasks.batch_size.x=1", "tasks.batch_size"),
            ("tasks.batch_size=\"many\"", "tasks.batch_size"),
        ] {
            let e = AzrConfig::tiny()
                .with_field(assignment)
                .unwrap_err()
                .to_string();
            assert!(e.contains(names), "{assignment}: {e}");
        }
    }
}
