//! The trainer's integration tests, as modules of one test binary: one link of libtorch
//! instead of one per file. `cargo test -p azr-trainer --test integration parity::` runs
//! one suite.

mod support;

mod adapters;
mod cli;
mod fake_judge;
mod parity;
mod sandbox_client;
mod tiny_model;
mod update_sign;
