//! Errors of the sandbox itself. A program's own failure is never one of these: it is an
//! [`Outcome`](crate::Outcome) with a [`Verdict`](crate::Verdict).

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("configuring wasmtime: {0}")]
    Engine(String),
    #[error("pre-initialising the Python guest: {0}")]
    Snapshot(String),
    #[error("snapshot cache at {path}: {source}")]
    Cache {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

impl SandboxError {
    pub(crate) fn cache(path: &Path, source: std::io::Error) -> Self {
        SandboxError::Cache {
            path: path.to_owned(),
            source,
        }
    }
}
