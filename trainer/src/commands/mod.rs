//! One module per `azr-trainer` command: its arguments (clap) and its `run`. The argument
//! groups several commands share, and the config overrides, are here.

pub mod bench;
pub mod bench_selfplay;
pub mod eval;
pub mod families;
pub mod generate;
pub mod init_model;
pub mod report;
pub mod train;

use std::path::PathBuf;

use anyhow::{Context, Result};
use azr::config::AzrConfig;
use azr_trainer::device::{Placement, set_threads};
use azr_trainer::selfplay::sandbox::SandboxSpec;

#[derive(clap::Args)]
pub struct SandboxArgs {
    /// A running daemon (`unix:/run/azr-sandbox/sandbox.sock`); without it the trainer starts
    /// its own on a private socket and stops it on exit.
    #[arg(long)]
    pub sandbox: Option<String>,
    /// The azr-sandbox binary for the embedded daemon (default: next to this binary, then
    /// $AZR_SANDBOX_BIN, then PATH).
    #[arg(long)]
    pub sandbox_bin: Option<PathBuf>,
    /// Worker threads of the embedded daemon (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub sandbox_workers: usize,
}

impl SandboxArgs {
    pub fn spec(&self) -> Result<SandboxSpec> {
        Ok(match &self.sandbox {
            Some(s) => SandboxSpec::parse_socket(s)?,
            None => SandboxSpec::Embedded {
                binary: SandboxSpec::find_binary(self.sandbox_bin.as_deref())?,
                workers: self.sandbox_workers,
            },
        })
    }
}

/// Where the model runs: shared by every command that loads one.
#[derive(clap::Args)]
pub struct PlacementArgs {
    /// libtorch intra-op threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// cpu or cuda[:N].
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// auto (f32 on CPU, bf16 on CUDA), f32 or bf16.
    #[arg(long, default_value = "auto")]
    pub dtype: String,
}

impl PlacementArgs {
    /// Sets libtorch's thread count and parses the device and dtype; returns the threads.
    pub fn apply(&self) -> Result<(usize, Placement)> {
        let threads = set_threads(self.threads);
        Ok((
            threads,
            Placement::parse_with_dtype(&self.device, &self.dtype)?,
        ))
    }
}

/// `config` with `--model` and every `--set` applied, checked.
pub fn with_overrides(
    mut config: AzrConfig,
    model: Option<&str>,
    set: &[String],
) -> Result<AzrConfig> {
    if let Some(m) = model {
        config.model = m.to_owned();
    }
    for s in set {
        config = config.with_field(s).context("--set")?;
    }
    config.validate().context("checking the config")?;
    Ok(config)
}
