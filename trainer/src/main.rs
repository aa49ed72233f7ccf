//! `azr-trainer`: command-line entry to the trainer. Errors are printed as one line with their
//! context chain; progress and timings go to stderr, results to stdout.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use azr_trainer::device::{Placement, set_threads};
use azr_trainer::generate::{SamplingParams, generate_text};
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
        /// libtorch intra-op threads (default: one per core).
        #[arg(long)]
        threads: Option<usize>,
        /// cpu (f32) or cuda[:N] (bf16).
        #[arg(long, default_value = "cpu")]
        device: String,
    },
    /// Measure prefill and decode throughput and a training step; with --compare, take the same
    /// measurements with transformers (reference venv) and print the ratios.
    Bench {
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        threads: Option<usize>,
        #[arg(long, default_value_t = 3)]
        repeats: usize,
        /// Skip the training step (it needs about four times the model's memory).
        #[arg(long)]
        no_train: bool,
        /// Also run bench/reference.py with this python (the reference venv's).
        #[arg(long)]
        compare: Option<PathBuf>,
        #[arg(long, default_value = "cpu")]
        device: String,
    },
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
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
            threads,
            device,
        } => {
            let threads = set_threads(threads);
            let placement = Placement::parse(&device)?;
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
            };
            let t1 = Instant::now();
            let out = generate_text(&loaded.model, &loaded.tokenizer, &prompt, chat, &params)
                .context("generating")?;
            let secs = t1.elapsed().as_secs_f64();
            println!("{}", out.text);
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
            threads,
            repeats,
            no_train,
            compare,
            device,
        } => {
            let threads = set_threads(threads);
            let placement = Placement::parse(&device)?;
            let loaded = azr_trainer::load(&model, placement).context("loading the model")?;
            let spec = azr_trainer::bench::BenchSpec {
                repeats,
                ..Default::default()
            };
            eprintln!("azr-trainer bench: {threads} threads, {spec:?}");
            let ours = azr_trainer::bench::run(&loaded.model, &spec, !no_train)
                .context("running the benchmark")?;
            drop(loaded);
            let ours = serde_json::to_value(&ours)?;
            println!("azr-trainer:  {ours}");
            if let Some(python) = compare {
                let script =
                    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/reference.py");
                let mut cmd = std::process::Command::new(&python);
                cmd.arg(&script).arg("--model").arg(&model).args([
                    "--threads",
                    &threads.to_string(),
                    "--repeats",
                    &repeats.to_string(),
                ]);
                if no_train {
                    cmd.arg("--no-train");
                }
                let out = cmd
                    .output()
                    .with_context(|| format!("running {}", python.display()))?;
                if !out.status.success() {
                    anyhow::bail!(
                        "bench/reference.py failed: {}",
                        String::from_utf8_lossy(&out.stderr)
                            .lines()
                            .last()
                            .unwrap_or("")
                    );
                }
                let stdout = String::from_utf8_lossy(&out.stdout);
                let theirs: serde_json::Value =
                    serde_json::from_str(stdout.lines().last().unwrap_or(""))
                        .context("parsing bench/reference.py output")?;
                println!("transformers: {theirs}");
                for key in [
                    "prefill_tokens_per_s",
                    "decode_b1_tokens_per_s",
                    "decode_b8_tokens_per_s",
                ] {
                    if let (Some(a), Some(b)) = (ours[key].as_f64(), theirs[key].as_f64()) {
                        println!("{key}: {a:.1} vs {b:.1} -> {:.2}x", a / b);
                    }
                }
                if let (Some(a), Some(b)) = (
                    ours["train_step_s"].as_f64(),
                    theirs["train_step_s"].as_f64(),
                ) {
                    println!("train_step_s: {a:.2} vs {b:.2} -> {:.2}x", b / a);
                }
            }
            Ok(())
        }
    }
}
