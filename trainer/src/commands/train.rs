//! `azr-trainer train`: a self-play run, and its lr-0 control beside it when asked.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result, bail};
use azr::config::AzrConfig;
use azr_trainer::selfplay::{RunOptions, SelfPlay};

use super::{PlacementArgs, SandboxArgs, with_overrides};

/// The arguments of `azr-trainer train` (the command's help is its doc in `main.rs`).
#[derive(clap::Args)]
pub struct Args {
    /// A config file (TOML; see azr/presets/ for every field and its default).
    #[arg(long, conflicts_with = "preset")]
    pub config: Option<PathBuf>,
    /// A built-in preset: `tiny` (this CPU, minutes), `learn` (this CPU, set up to learn the
    /// tasks: graded program families, brief prompts, answers contrasted per task) or `7b`
    /// (the reference's settings).
    #[arg(long)]
    pub preset: Option<String>,
    /// Run directory: checkpoints/, metrics.jsonl, config.toml (default: runs/<preset>).
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Continue from the newest checkpoint in the run directory (its config.toml is used
    /// unless --config/--preset is given).
    #[arg(long)]
    pub resume: bool,
    /// Override the config's model.
    #[arg(long)]
    pub model: Option<String>,
    /// Override total_steps.
    #[arg(long)]
    pub total_steps: Option<u64>,
    /// Override any config field: `--set tasks.batch_size=4 --set rollout.temperature=0.8`
    /// (values are TOML; repeatable).
    #[arg(long = "set", value_name = "FIELD=VALUE")]
    pub set: Vec<String>,
    /// Stop before a step that would end past this many minutes of training (seeding not
    /// counted), judged by the last step's time; checkpointed like the last step. With
    /// `--control`, the control runs the steps this run ended with.
    #[arg(long)]
    pub max_minutes: Option<f64>,
    /// Run the control beside this run: the same config and seeds at lr 0, in OUTPUT-control,
    /// as a second process with half the threads (its log: OUTPUT-control/train.log).
    /// Compare them with `azr-trainer report OUTPUT OUTPUT-control`.
    #[arg(long)]
    pub control: bool,
    #[command(flatten)]
    pub sandbox: SandboxArgs,
    #[command(flatten)]
    pub placement: PlacementArgs,
}

pub fn run(mut args: Args) -> Result<()> {
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
            .args(control_argv(std::env::args_os().skip(1), &dir, theirs))
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
fn run_dir(args: &Args) -> PathBuf {
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

/// One run; whether it was stopped early.
fn train_one(args: Args) -> Result<bool> {
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
            bail!("give --config FILE or --preset tiny|learn|7b (or --resume an existing --output)")
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

/// The control run's arguments, from this run's (`args`, without the program name): without
/// `--control`, `--output` and `--threads`, then with the control's and lr 0.
fn control_argv(
    args: impl IntoIterator<Item = OsString>,
    output: &Path,
    threads: usize,
) -> Vec<OsString> {
    let mut argv: Vec<OsString> = Vec::new();
    let mut skip_value = false;
    for arg in args {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(argv: &[OsString]) -> Vec<&str> {
        argv.iter().map(|a| a.to_str().unwrap()).collect()
    }

    #[test]
    fn the_control_keeps_the_runs_arguments_at_lr_0_with_its_own_output_and_threads() {
        let run = [
            "train",
            "--preset",
            "tiny",
            "--control",
            "--output",
            "runs/a",
            "--threads=2",
        ];
        let argv = control_argv(run.map(OsString::from), Path::new("runs/a-control"), 1);
        assert_eq!(
            strings(&argv),
            [
                "train",
                "--preset",
                "tiny",
                "--output",
                "runs/a-control",
                "--threads",
                "1",
                "--set",
                "optim.lr=0.0"
            ]
        );
    }

    #[test]
    fn the_control_drops_the_runs_output_given_with_an_equals_sign() {
        let run = [
            "train",
            "--output=runs/a",
            "--set",
            "tasks.batch_size=2",
            "--threads",
            "4",
        ];
        let argv = control_argv(run.map(OsString::from), Path::new("c"), 2);
        assert_eq!(
            strings(&argv),
            [
                "train",
                "--set",
                "tasks.batch_size=2",
                "--output",
                "c",
                "--threads",
                "2",
                "--set",
                "optim.lr=0.0"
            ]
        );
    }
}
