//! The sandbox's integration tests, as modules of one test binary: one link of wasmtime
//! and the engine instead of one per file, which is most of a cold test build's time.
//! Each module is one suite; `cargo test -p azr-sandbox --test integration judge_rules::`
//! runs one.

mod common;
mod support;

mod containment;
mod daemon;
mod fidelity;
mod files;
mod humaneval;
mod instance_reset;
mod judge_attacks;
mod judge_parity;
mod judge_rules;
mod node_client;
mod operations;
mod python_clients;
mod python_package;
mod set_order;
mod test_cases;
mod verdicts;
mod wasi;
