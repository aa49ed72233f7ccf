//! `azr-trainer report`: runs' curves over each other and their table.

use std::path::PathBuf;

use anyhow::{Result, bail};

/// The arguments of `azr-trainer report` (the command's help is its doc in `main.rs`).
#[derive(clap::Args)]
pub struct Args {
    /// Run directories (or metrics.jsonl files), e.g. a run and its control.
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// The PNG to write (default: report.png in the first run's directory).
    #[arg(long)]
    pub png: Option<PathBuf>,
    /// Steps at the end that the table's means and bootstrap intervals cover.
    #[arg(long, default_value_t = 5)]
    pub last: usize,
}

pub fn run(args: Args) -> Result<()> {
    let Args { runs, png, last } = args;
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
