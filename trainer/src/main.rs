//! `azr-trainer`: command-line entry to the trainer. Each command lives in `commands/`; errors
//! are printed as one line with their context chain; progress and timings go to stderr,
//! results to stdout.

mod commands;

use anyhow::Result;
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
    Generate(commands::generate::Args),
    /// Run Absolute Zero self-play: propose, validate, solve, reward, TRR++ update.
    Train(commands::train::Args),
    /// Draw runs' curves over each other (PNG) and print their table: format-valid rate,
    /// mean reward, valid proposals, solve rate, zero-variance groups and step time per step.
    Report(commands::report::Args),
    /// Score a model's deduction and abduction accuracy on a set of programs, checked in the
    /// sandbox.
    Eval(commands::eval::Args),
    /// Write programs of the graded families (arithmetic to recursion, levels 1 to 3), run and
    /// validated in the sandbox, as program records for `eval --programs`.
    Families(commands::families::Args),
    /// Write a tiny random-weight model (Hugging Face layout, word-level tokenizer) for tests
    /// and smoke runs of the loop; it produces noise, quickly.
    InitModel(commands::init_model::Args),
    /// Time one self-play step's generation phase on the current path against the path
    /// before the rollout work (f32 weights, every prompt row computed, decode steps through
    /// libtorch's operators), the two taking turns from the same seeds.
    BenchSelfplay(commands::bench_selfplay::Args),
    /// Measure prefill and decode throughput and a training step; with --compare, take the same
    /// measurements with transformers (reference venv) and print the ratios.
    Bench(commands::bench::Args),
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
        Command::Generate(args) => commands::generate::run(args),
        Command::Train(args) => commands::train::run(args),
        Command::Report(args) => commands::report::run(args),
        Command::Eval(args) => commands::eval::run(args),
        Command::Families(args) => commands::families::run(args),
        Command::InitModel(args) => commands::init_model::run(args),
        Command::BenchSelfplay(args) => commands::bench_selfplay::run(args),
        Command::Bench(args) => commands::bench::run(args),
    }
}
