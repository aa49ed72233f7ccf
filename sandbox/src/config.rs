//! The sandbox's TOML configuration (`policies/sandbox.toml` is the documented default).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{
    engine::{EngineConfig, default_cache_dir},
    error::SandboxError,
    limits::{Limits, Rules},
    pool::PoolConfig,
};

/// Everything the sandbox reads from its configuration file. Every field has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxConfig {
    /// Worker threads; 0 means one per CPU core.
    pub workers: usize,
    /// Batches that may wait for a worker; 0 means 64 per worker.
    pub queue: usize,
    /// Where the pre-initialised guest is cached; empty means `$AZR_CACHE_DIR`,
    /// `$XDG_CACHE_HOME/azr-rs` or `$HOME/.cache/azr-rs`.
    pub cache_dir: PathBuf,
    /// Default limits of a request, and the most a request may ask for.
    pub limits: Limits,
    /// Validation rules.
    pub rules: Rules,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            workers: 0,
            queue: 0,
            cache_dir: PathBuf::new(),
            limits: Limits::default(),
            rules: Rules::default(),
        }
    }
}

impl SandboxConfig {
    pub fn from_file(path: &Path) -> Result<Self, SandboxError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            SandboxError::InvalidRequest(format!("reading config {}: {e}", path.display()))
        })?;
        toml::from_str(&text)
            .map_err(|e| SandboxError::InvalidRequest(format!("config {}: {e}", path.display())))
    }

    pub fn workers(&self) -> usize {
        if self.workers > 0 {
            self.workers
        } else {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        }
    }

    pub fn pool_config(&self) -> PoolConfig {
        let workers = self.workers();
        PoolConfig {
            engine: EngineConfig {
                cache_dir: if self.cache_dir.as_os_str().is_empty() {
                    default_cache_dir()
                } else {
                    self.cache_dir.clone()
                },
                max_instances: u32::try_from(workers * 2 + 2).unwrap_or(u32::MAX),
                cap: self.limits.clone(),
            },
            workers,
            queue: if self.queue > 0 {
                self.queue
            } else {
                workers * 64
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_policy_file_is_the_default_config() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/sandbox.toml");
        let config = SandboxConfig::from_file(&path).expect("policies/sandbox.toml parses");
        assert_eq!(config, SandboxConfig::default());
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<SandboxConfig>("wrokers = 3").is_err());
    }
}
