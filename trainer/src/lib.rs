//! azr-trainer: the model side of azr-rs.
//!
//! Qwen2 and Llama decoders written against libtorch (tch), loaded from GGUF files (dequantised
//! once) or Hugging Face safetensors directories, with batched KV-cache generation, per-token
//! log-probs and teacher-forced log-probs of given responses (what the policy loss needs), and a
//! PPO-clip training step.
//!
//! # Building and testing
//!
//! tch links libtorch 2.11, which `scripts/libtorch.sh` assembles from the Python package
//! registry (cached under `~/.cache/azr-rs/`); the build finds it through `LIBTORCH`, and the
//! binaries through an rpath set by `build.rs` (no `LD_LIBRARY_PATH` at run time):
//!
//! ```text
//! export LIBTORCH=$(scripts/libtorch.sh | tail -n1)
//! scripts/models.sh            # the two real GGUF models, for the parity tests
//! scripts/reference-venv.sh    # torch + transformers, which the parity tests compare against
//! cargo test -p azr-trainer
//! ```
//!
//! # Layout
//!
//! - `model`: the decoder (`model/llama.rs`; Qwen2's differences in `model/qwen2.rs`).
//! - `loading`: GGUF (`gguf_file.rs` reads and dequantises, `gguf.rs` maps to a model) and
//!   Hugging Face safetensors directories (load and save).
//! - `tokenizer`: one `tokenizers::Tokenizer` whichever the source, plus the chat template.
//! - `generate`: batched KV-cache generation and teacher-forced log-probs.
//! - `train`: PPO-clip loss, AdamW, clipping, accumulation.
//! - `bench`: the throughput measurements behind `azr-trainer bench`, and `bench-selfplay`'s
//!   comparison of a self-play step's generation on the configured and the plain path.
//! - `selfplay`: the loop itself (model + sandbox daemon + the `azr` crate's logic),
//!   checkpoints, metrics.
//! - `eval`: deduction/abduction accuracy on a fixed program set, through the sandbox.
//! - `adamw`: the optimiser, with state that checkpoints can save.

pub mod adamw;
pub mod bench;
pub mod device;
pub mod error;
pub mod eval;
pub mod generate;
pub mod loading;
pub mod memory;
pub mod model;
pub mod report;
pub mod selfplay;
pub mod threads;
pub mod tokenizer;
pub mod train;
pub mod vector;

pub use error::{Error, Result};
pub use loading::{LoadedModel, load};
pub use model::{Arch, Config, Model};
pub use tokenizer::TextTokenizer;
