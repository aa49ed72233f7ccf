//! `azr-trainer families`: programs of the graded families (`azr::families`), each run and
//! validated in the sandbox as a proposal is, written as program records that `eval
//! --programs` scores per family and level.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use azr::check::{Checker, ValidateTask};
use azr::config::ValidationConfig;
use azr::families::{self, Family, FamilyProgram, LEVELS, Split};
use azr_trainer::selfplay::sandbox::Sandbox;
use serde::Serialize;

use super::SandboxArgs;

/// The arguments of `azr-trainer families` (the command's help is its doc in `main.rs`).
#[derive(clap::Args)]
pub struct Args {
    /// The program records to write (JSON lines: id, family, level, split, program, input,
    /// output).
    #[arg(long)]
    pub output: PathBuf,
    /// `held-out` (the programs evaluations score), `train` (the programs runs learn on) or
    /// `validation` (programs of the training side no run learns on, to choose settings
    /// by); a program's side is fixed by its text, so no two sides share one.
    #[arg(long, default_value = "held-out")]
    pub split: String,
    /// Valid programs per family and level.
    #[arg(long, default_value_t = 32)]
    pub per_level: usize,
    /// Families (comma-separated; default all): arithmetic, strings, comprehension, loop,
    /// dict, sorting, recursion.
    #[arg(long, value_delimiter = ',')]
    pub families: Vec<String>,
    /// Levels (comma-separated), 1 to 3.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    pub levels: Vec<u8>,
    /// Seed of the constants and inputs drawn.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Per-execution limit in the sandbox, seconds.
    #[arg(long, default_value_t = 10.0)]
    pub timeout_s: f64,
    #[command(flatten)]
    pub sandbox: SandboxArgs,
}

/// A validated program as the file holds it (readable as an AZR program record).
#[derive(Serialize)]
struct Record<'a> {
    #[serde(flatten)]
    program: &'a FamilyProgram,
    output: &'a str,
    imports: [&'a str; 0],
}

/// Candidates drawn per program asked: the templates are written to run, so few are
/// refused, but a cell must not come up short for one that is.
const DRAW_FACTOR: usize = 2;

pub fn run(args: Args) -> Result<()> {
    let split = Split::from_name(&args.split).with_context(|| {
        format!(
            "--split {}: expected held-out, validation or train",
            args.split
        )
    })?;
    let chosen: Vec<Family> = if args.families.is_empty() {
        Family::ALL.to_vec()
    } else {
        args.families
            .iter()
            .map(|name| {
                Family::from_name(name.trim()).with_context(|| {
                    let known: Vec<&str> = Family::ALL.iter().map(|f| f.name()).collect();
                    format!("--families: unknown family `{name}` ({})", known.join(", "))
                })
            })
            .collect::<Result<_>>()?
    };
    if let Some(bad) = args.levels.iter().find(|l| !(1..=LEVELS).contains(*l)) {
        bail!("--levels: {bad} is not a level (1 to {LEVELS})");
    }
    if args.per_level == 0 {
        bail!("--per-level must be at least 1");
    }
    let validation = ValidationConfig {
        timeout_s: args.timeout_s,
        ..Default::default()
    };
    let mut sandbox =
        Sandbox::connect(args.sandbox.spec()?, validation).context("connecting to the sandbox")?;
    let file = std::fs::File::create(&args.output)
        .with_context(|| format!("creating {}", args.output.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let mut written = 0usize;
    for &family in &chosen {
        for &level in &args.levels {
            let candidates = families::generate(
                family,
                level,
                split,
                args.per_level * DRAW_FACTOR,
                args.seed,
            )?;
            let tasks: Vec<ValidateTask> = candidates
                .iter()
                .map(|p| ValidateTask {
                    program: p.program.clone(),
                    imports: vec![],
                    input: p.input.clone(),
                    check_banned: true,
                })
                .collect();
            let Ok(validations) = sandbox.validate(&tasks);
            let mut kept = 0usize;
            let mut refused = Vec::new();
            for (p, v) in candidates.iter().zip(&validations) {
                if kept == args.per_level {
                    break;
                }
                match (&v.output, v.ok) {
                    (Some(output), true) => {
                        serde_json::to_writer(
                            &mut out,
                            &Record {
                                program: p,
                                output,
                                imports: [],
                            },
                        )?;
                        out.write_all(b"\n")?;
                        kept += 1;
                    }
                    _ => refused.push(format!(
                        "{}: {}",
                        p.id,
                        v.error.as_deref().unwrap_or("no output")
                    )),
                }
            }
            eprintln!(
                "{family} level {level}: {kept} programs ({} refused)",
                refused.len()
            );
            for r in refused.iter().take(3) {
                eprintln!("  refused {r}");
            }
            if kept < args.per_level {
                bail!(
                    "{family} level {level}: only {kept} of {} programs passed validation",
                    args.per_level
                );
            }
            written += kept;
        }
    }
    out.flush()
        .with_context(|| format!("writing {}", args.output.display()))?;
    println!("{written} programs: {}", args.output.display());
    Ok(())
}
