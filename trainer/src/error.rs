//! The library's error type: every failure that input data (a model file, a prompt, a config)
//! can cause is reported as a value, never as a panic.

use std::path::PathBuf;

/// What went wrong, with enough context to print as one line.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // The I/O error is part of the message rather than a `source`, so that printing the
    // chain does not repeat it.
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: invalid GGUF file: {reason}")]
    Gguf { path: PathBuf, reason: String },
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error("model config: {0}")]
    Config(String),
    #[error("missing weight `{0}`")]
    MissingWeight(String),
    #[error("weight `{name}` has shape {got:?}, expected {want:?}")]
    Shape {
        name: String,
        got: Vec<i64>,
        want: Vec<i64>,
    },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("chat template: {0}")]
    Template(String),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// The transformers side of `bench --compare` failed (its stderr's last line).
    #[error("bench reference: {0}")]
    Reference(String),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// Generation stopped early because its cancel flag was set (a run being stopped).
    #[error("cancelled")]
    Cancelled,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error with the path it concerns (std's errors do not carry it).
    pub fn io(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            error,
        }
    }
}
