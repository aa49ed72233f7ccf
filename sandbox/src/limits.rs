//! What one item may consume, and the rules a program must follow.
//!
//! Every field has a default written here and in `policies/sandbox.toml`; a request may lower
//! limits but the daemon caps them (see [`Limits::capped_by`]).

use serde::{Deserialize, Serialize};

/// Resource limits for one item (one program run or one check).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Deterministic instruction budget (wasmtime fuel, about one unit per wasm instruction).
    /// 20 billion is a few seconds of RustPython: far more than any AZR seed program needs,
    /// and it runs out before the wall clock on a CPU-bound loop, so the verdict is
    /// reproducible.
    pub fuel: u64,
    /// Hard wall-clock limit per item, in milliseconds (the AZR reference uses 10 s).
    pub timeout_ms: u64,
    /// Linear-memory cap of the guest, in bytes. The pre-initialised interpreter uses about
    /// 63 MiB of it (start-up state, and 4 MiB of free heap that keeps small programs from
    /// growing memory).
    pub memory_bytes: u64,
    /// Characters of stdout (and, separately, stderr) a program may write.
    pub stdout_chars: u64,
    /// Characters of the `repr` of a result.
    pub value_chars: u64,
    /// Python's recursion limit inside the guest (`sys.setrecursionlimit`).
    pub recursion_limit: u32,
    /// Native stack for wasm frames, in bytes (wasmtime's `max_wasm_stack`).
    pub wasm_stack_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            fuel: 20_000_000_000,
            timeout_ms: 10_000,
            memory_bytes: 512 << 20,
            stdout_chars: 64 << 10,
            value_chars: 1 << 20,
            recursion_limit: 1000,
            wasm_stack_bytes: 8 << 20,
        }
    }
}

impl Limits {
    /// The tighter of `self` and `cap`, field by field: a request may ask for less than the
    /// server allows, never more.
    /// These limits for a run given `time_ms` of wall clock (at most `ceiling_ms`), and
    /// `fuel_per_ms` of fuel for each of those milliseconds where that is more than `fuel`:
    /// a CPU-bound run then ends by time, not by fuel.
    pub fn for_run_time(&self, time_ms: u64, ceiling_ms: u64, fuel_per_ms: u64) -> Limits {
        let ms = time_ms.clamp(1, ceiling_ms.max(1));
        Limits {
            timeout_ms: ms,
            fuel: self.fuel.max(ms.saturating_mul(fuel_per_ms)),
            ..self.clone()
        }
    }

    pub fn capped_by(&self, cap: &Limits) -> Limits {
        Limits {
            fuel: self.fuel.min(cap.fuel),
            timeout_ms: self.timeout_ms.min(cap.timeout_ms),
            memory_bytes: self.memory_bytes.min(cap.memory_bytes),
            stdout_chars: self.stdout_chars.min(cap.stdout_chars),
            value_chars: self.value_chars.min(cap.value_chars),
            recursion_limit: self.recursion_limit.min(cap.recursion_limit),
            wasm_stack_bytes: self.wasm_stack_bytes.min(cap.wasm_stack_bytes),
        }
    }
}

/// Which programs validation accepts (the AZR reference's `checks.py`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rules {
    /// Banned words, matched against `import`/`from` module path components through the AST,
    /// or anywhere as whole words when the program does not parse.
    pub banned_words: Vec<String>,
    /// Statements refused anywhere in the program: any of "raise", "assert", "try", "except".
    pub banned_keywords: Vec<String>,
    /// Whether a program must define `f` (true for every AZR task type).
    pub require_f: bool,
}

/// The AZR reference's default banned words.
pub const DEFAULT_BANNED_WORDS: &[&str] = &[
    "logging",
    "random",
    "multiprocessing",
    "pebble",
    "subprocess",
    "threading",
    "datetime",
    "time",
    "hashlib",
    "hmac",
    "bcrypt",
    "os.sys",
    "os.path",
    "sys.exit",
    "os.environ",
    "calendar",
];

impl Default for Rules {
    fn default() -> Self {
        Self {
            banned_words: DEFAULT_BANNED_WORDS.iter().map(|s| s.to_string()).collect(),
            banned_keywords: Vec::new(),
            require_f: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_cannot_raise_a_limit_above_the_cap() {
        let cap = Limits::default();
        let asked = Limits {
            fuel: u64::MAX,
            timeout_ms: 1,
            ..Limits::default()
        };
        let got = asked.capped_by(&cap);
        assert_eq!(got.fuel, cap.fuel);
        assert_eq!(got.timeout_ms, 1);
    }

    #[test]
    fn limits_parse_from_partial_toml_with_defaults() {
        let limits: Limits = toml::from_str("timeout_ms = 500").expect("valid toml");
        assert_eq!(limits.timeout_ms, 500);
        assert_eq!(limits.fuel, Limits::default().fuel);
    }
}
