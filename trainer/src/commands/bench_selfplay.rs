//! `azr-trainer bench-selfplay`: one self-play step's generation phase, the current path
//! against the plain one, taking turns from the same seeds.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result, bail};
use azr::config::AzrConfig;
use azr_trainer::selfplay::{RunOptions, SelfPlay};

use super::{PlacementArgs, SandboxArgs, with_overrides};

/// The arguments of `azr-trainer bench-selfplay` (the command's help is its doc in `main.rs`).
#[derive(clap::Args)]
pub struct Args {
    /// A config file (TOML), instead of the preset.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// A built-in preset (ignored with --config).
    #[arg(long, default_value = "tiny")]
    pub preset: String,
    /// Override the config's model.
    #[arg(long)]
    pub model: Option<String>,
    /// Override any config field, as for `train` (e.g. `--set rollout.precision='"f32"'` to
    /// sample from f32 on the new path too, for identical tokens).
    #[arg(long = "set", value_name = "FIELD=VALUE")]
    pub set: Vec<String>,
    /// Rounds; each runs the phase once on each path.
    #[arg(long, default_value_t = 2)]
    pub repeats: usize,
    /// Scratch run directory (the effective config, the rollouts written).
    #[arg(long, default_value = "runs/bench-selfplay")]
    pub output: PathBuf,
    /// Skip the f32 teacher-forced pass that measures the new path's log-prob gap.
    #[arg(long)]
    pub no_mismatch: bool,
    #[command(flatten)]
    pub sandbox: SandboxArgs,
    #[command(flatten)]
    pub placement: PlacementArgs,
}

pub fn run(args: Args) -> Result<()> {
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
