//! The sandbox's TOML configuration (`policies/sandbox.toml` is the documented default).

use std::path::{Path, PathBuf};

pub use azr_sandbox_hardening::HardeningConfig;
use serde::{Deserialize, Serialize};

use crate::{
    engine::{EngineConfig, InstanceReset, default_cache_dir},
    error::SandboxError,
    files::FileLimits,
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
    /// How an instance is made ready for the next program.
    pub instance_reset: InstanceReset,
    /// Default limits of a request, and the most a request may ask for.
    pub limits: Limits,
    /// Validation rules.
    pub rules: Rules,
    /// The daemon's socket and request limits (`azr-sandbox serve`).
    pub server: ServerConfig,
    /// How the daemon locks itself down at start-up.
    pub hardening: HardeningConfig,
}

/// The daemon's socket and request limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Unix socket the daemon binds, unless systemd passes one (`LISTEN_FDS`).
    pub socket: PathBuf,
    /// Permission bits of the socket file the daemon binds.
    pub socket_mode: u32,
    /// Peers allowed to call, by the uid/gid the kernel reports for the connection
    /// (`SO_PEERCRED`). A peer passes when its uid or its gid is listed; with both lists
    /// empty only the daemon's own uid passes.
    pub allow_uids: Vec<u32>,
    pub allow_gids: Vec<u32>,
    /// Largest encoded request, in bytes (larger: `INVALID_ARGUMENT`).
    pub max_request_bytes: usize,
    /// Most tasks in one batch request (more: `INVALID_ARGUMENT`).
    pub max_batch_tasks: usize,
    /// Most files one program may be sent (gRPC `Program.files`, HTTP `files`).
    pub files_max_count: usize,
    /// Most bytes of content (decoded) one program's files may hold, and one outcome's
    /// fetched files may carry back. The files live in the guest's memory, within
    /// `limits.memory_bytes`.
    pub files_max_bytes: u64,
    /// gRPC connections (the Unix socket) served at once; more wait in the listen backlog.
    /// HTTP connections have their own limit, so neither front end can starve the other.
    pub max_connections: usize,
    /// How long SIGTERM waits for in-flight requests before exiting anyway.
    pub drain_timeout_ms: u64,
    /// Address of the SandboxFusion-compatible HTTP endpoint (`POST /run_code`,
    /// `GET /v1/ping`); unset (the default): no HTTP listener. TCP carries no peer
    /// credentials, so anyone who can reach the address may run code: see SECURITY.md.
    pub http: Option<std::net::SocketAddr>,
    /// Allow `http` on an address other than loopback (a trust decision: SECURITY.md).
    pub http_allow_remote: bool,
    /// HTTP connections served at once; one more is accepted and closed at once.
    pub http_max_connections: usize,
    /// An HTTP connection with no traffic either way for this long is closed (ms); this
    /// covers idle keep-alive connections and bodies that stop arriving.
    pub http_idle_timeout_ms: u64,
    /// A request's headers must arrive whole within this (ms), or the connection is closed.
    pub http_header_timeout_ms: u64,
    /// A request's body must arrive whole within this (ms), or it is answered 408.
    pub http_body_timeout_ms: u64,
    /// Request bodies being read, all HTTP connections together, in bytes; a body that
    /// would pass it is answered 503. One body is at most `max_request_bytes` (413).
    pub http_body_budget_bytes: usize,
    /// How long an HTTP request waits for room in a full queue before it is answered 504
    /// (which SandboxFusion's clients retry); keep it below their deadline (veRL's:
    /// `compile_timeout + run_timeout + 10` s, 30 s by default).
    pub http_queue_wait_ms: u64,
    /// The longest `run_timeout` an HTTP request may ask for (ms); a longer one is cut to
    /// this. Within it the request's `run_timeout` is the time limit, above or below
    /// `limits.timeout_ms`.
    pub http_max_run_timeout_ms: u64,
    /// Fuel an HTTP request gets per millisecond of its time limit, when that is more than
    /// `limits.fuel`: a CPU-bound run then ends by time, as SandboxFusion's do, not by fuel
    /// (the guest burns at most about 6 million a millisecond on the machines measured).
    /// 0: `limits.fuel` always.
    pub http_fuel_per_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            socket: PathBuf::from("/run/azr-sandbox/sandbox.sock"),
            socket_mode: 0o660,
            allow_uids: Vec::new(),
            allow_gids: Vec::new(),
            max_request_bytes: 16 << 20,
            max_batch_tasks: 4096,
            files_max_count: FileLimits::default().max_count,
            files_max_bytes: FileLimits::default().max_bytes,
            max_connections: 256,
            drain_timeout_ms: 30_000,
            http: None,
            http_allow_remote: false,
            http_max_connections: 512,
            http_idle_timeout_ms: 60_000,
            http_header_timeout_ms: 10_000,
            http_body_timeout_ms: 30_000,
            http_body_budget_bytes: 256 << 20,
            http_queue_wait_ms: 10_000,
            http_max_run_timeout_ms: 60_000,
            http_fuel_per_ms: 20_000_000,
        }
    }
}

impl ServerConfig {
    /// The limits on a program's files.
    pub fn file_limits(&self) -> FileLimits {
        FileLimits {
            max_count: self.files_max_count,
            max_bytes: self.files_max_bytes,
        }
    }
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            workers: 0,
            queue: 0,
            cache_dir: PathBuf::new(),
            instance_reset: InstanceReset::default(),
            limits: Limits::default(),
            rules: Rules::default(),
            server: ServerConfig::default(),
            hardening: HardeningConfig::default(),
        }
    }
}

impl SandboxConfig {
    pub fn from_file(path: &Path) -> Result<Self, SandboxError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            SandboxError::InvalidRequest(format!("reading config {}: {e}", path.display()))
        })?;
        let config: SandboxConfig = toml::from_str(&text)
            .map_err(|e| SandboxError::InvalidRequest(format!("config {}: {e}", path.display())))?;
        config
            .check()
            .map_err(|e| SandboxError::InvalidRequest(format!("config {}: {e}", path.display())))?;
        Ok(config)
    }

    /// Settings that parse but cannot work together.
    pub fn check(&self) -> Result<(), String> {
        let s = &self.server;
        if s.http_body_budget_bytes < s.max_request_bytes {
            return Err(format!(
                "server.http_body_budget_bytes ({}) is below server.max_request_bytes ({}): \
                 a request of the largest size could never be read",
                s.http_body_budget_bytes, s.max_request_bytes
            ));
        }
        for (name, value) in [
            ("http_max_connections", s.http_max_connections as u64),
            ("http_idle_timeout_ms", s.http_idle_timeout_ms),
            ("http_header_timeout_ms", s.http_header_timeout_ms),
            ("http_body_timeout_ms", s.http_body_timeout_ms),
        ] {
            if value == 0 {
                return Err(format!("server.{name} must be above 0"));
            }
        }
        Ok(())
    }

    pub fn workers(&self) -> usize {
        if self.workers > 0 {
            self.workers
        } else {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        }
    }

    /// The most the engine runs any item with: `limits`, with the time and fuel an HTTP
    /// request may ask for ([`SandboxConfig::http_run_limits`]) on top. gRPC requests stay
    /// within `limits` (their service refuses to raise it).
    pub fn engine_cap(&self) -> Limits {
        let longest = self.http_run_limits(self.server.http_max_run_timeout_ms);
        Limits {
            fuel: self.limits.fuel.max(longest.fuel),
            timeout_ms: self.limits.timeout_ms.max(longest.timeout_ms),
            ..self.limits.clone()
        }
    }

    /// The limits of an HTTP request that asked for `run_timeout_ms`: that time limit, up to
    /// `server.http_max_run_timeout_ms`, and the fuel for it (`server.http_fuel_per_ms`).
    pub fn http_run_limits(&self, run_timeout_ms: u64) -> Limits {
        self.limits.for_run_time(
            run_timeout_ms,
            self.server.http_max_run_timeout_ms,
            self.server.http_fuel_per_ms,
        )
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
                cap: self.engine_cap(),
                reset: self.instance_reset,
                fuel_metering: true,
                perf_map: false,
            },
            workers,
            queue: if self.queue > 0 {
                self.queue
            } else {
                workers * 64
            },
            worker_init: None,
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
    fn an_http_run_gets_the_time_it_asks_for_within_the_ceiling_and_fuel_to_match() {
        let config = SandboxConfig::default();
        let long = config.http_run_limits(40_000);
        assert_eq!(long.timeout_ms, 40_000);
        assert_eq!(long.fuel, 40_000 * 20_000_000);
        let capped = config.http_run_limits(600_000);
        assert_eq!(capped.timeout_ms, 60_000);
        let short = config.http_run_limits(500);
        assert_eq!((short.timeout_ms, short.fuel), (500, config.limits.fuel));
        let cap = config.engine_cap();
        assert_eq!((cap.timeout_ms, cap.fuel), (60_000, 60_000 * 20_000_000));
        assert_eq!(cap.memory_bytes, config.limits.memory_bytes);
    }

    #[test]
    fn a_body_budget_below_the_largest_request_is_refused() {
        let mut config = SandboxConfig::default();
        assert!(config.check().is_ok());
        config.server.http_body_budget_bytes = config.server.max_request_bytes - 1;
        let error = config.check().expect_err("refused");
        assert!(error.contains("http_body_budget_bytes"), "{error}");
        config.server.http_body_budget_bytes = config.server.max_request_bytes;
        config.server.http_idle_timeout_ms = 0;
        assert!(config.check().is_err());
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<SandboxConfig>("wrokers = 3").is_err());
    }
}
