//! azr-sandbox: runs model-written Python in RustPython compiled to wasm, inside wasmtime.
//!
//! Every program gets a fresh instance of a pre-initialised interpreter snapshot (no state
//! crosses programs), a deterministic instruction budget (fuel), a wall-clock deadline, a
//! memory cap, output caps, and a WASI context that grants nothing: no files, no environment,
//! no network, a fixed clock and seeded randomness. The AZR operations (validate a proposed
//! program, check deduction/abduction/induction answers) run *inside* the guest, so no
//! model-written string is ever evaluated by the host.
//!
//! ```no_run
//! use azr_sandbox::{Item, Limits, PoolConfig, Rules, Sandbox};
//! let sandbox = Sandbox::new(&PoolConfig::default()).unwrap();
//! let outcomes = sandbox.run(
//!     vec![Item::Validate {
//!         program: "def f(x):\n    return x * 2".into(),
//!         imports: vec![],
//!         input: "21".into(),
//!     }],
//!     &Limits::default(),
//!     &Rules::default(),
//! );
//! assert_eq!(outcomes[0].value.as_deref(), Some("42"));
//! ```

pub mod config;
pub mod determinism;
pub mod dirty;
pub mod engine;
pub mod error;
pub mod eval;
pub mod files;
pub mod histogram;
pub mod item;
pub mod limits;
pub mod pool;
pub mod queue;
pub mod server;
pub mod snapshot;
pub mod wasi;

pub use engine::{EngineConfig, Executor, InstanceReset, RunControl, Worker, default_cache_dir};
pub use error::SandboxError;
pub use item::{Item, Outcome, OutputMatch, Verdict};
pub use limits::{Limits, Rules};
pub use pool::{Batch, PoolConfig, Sandbox, SubmitError, ThreadInit};

impl Default for EngineConfig {
    fn default() -> Self {
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        EngineConfig {
            cache_dir: default_cache_dir(),
            max_instances: (workers as u32).saturating_mul(2).saturating_add(2),
            cap: Limits::default(),
            reset: InstanceReset::default(),
            fuel_metering: true,
            perf_map: false,
        }
    }
}

impl Default for PoolConfig {
    fn default() -> Self {
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        PoolConfig {
            engine: EngineConfig::default(),
            workers,
            queue: workers * 64,
            worker_init: None,
        }
    }
}
