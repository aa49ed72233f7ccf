//! The guest's view of the outside world: one fixed clock, one fixed random stream.
//!
//! The same program and input must give the same answer on every run and every machine, so
//! nothing the guest can observe may vary: the wall clock starts at a fixed instant, both
//! clocks advance by a fixed step per reading (so `while time.time() < t` still ends), and
//! every random source is a seeded generator. Together with the interpreter's fixed hash seed
//! (set in the guest) this makes every run a pure function of its request.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use rand::{SeedableRng, rngs::StdRng};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtxBuilder, p1::WasiP1Ctx};

/// 2025-01-01T00:00:00Z, the wall-clock time of the first reading.
pub const EPOCH_SECS: u64 = 1_735_689_600;
/// How far a clock moves per reading.
pub const TICK: Duration = Duration::from_micros(1000);
/// Seed of every random source the guest sees.
pub const SEED: u64 = 0x5EED_A2A2;

/// A clock that moves by [`TICK`] on every reading, from a fixed start.
#[derive(Default)]
pub struct SteppingClock {
    readings: AtomicU64,
}

impl Clone for SteppingClock {
    fn clone(&self) -> Self {
        SteppingClock {
            readings: AtomicU64::new(self.readings.load(std::sync::atomic::Ordering::Relaxed)),
        }
    }
}

impl SteppingClock {
    /// A reading: the time since the start, then one tick more for the next reading.
    pub fn step(&self) -> Duration {
        let n = self.readings.fetch_add(1, Ordering::Relaxed);
        TICK.saturating_mul(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// What the next reading will say, without taking it.
    pub fn elapsed(&self) -> Duration {
        let n = self.readings.load(Ordering::Relaxed);
        TICK.saturating_mul(u32::try_from(n).unwrap_or(u32::MAX))
    }
}

impl HostWallClock for SteppingClock {
    fn resolution(&self) -> Duration {
        TICK
    }
    fn now(&self) -> Duration {
        Duration::from_secs(EPOCH_SECS) + self.step()
    }
}

impl HostMonotonicClock for SteppingClock {
    fn resolution(&self) -> u64 {
        TICK.as_nanos() as u64
    }
    fn now(&self) -> u64 {
        self.step().as_nanos() as u64
    }
}

/// The `wasmtime-wasi` context the snapshot is made under (initialisation runs before any
/// lock-down; at run time the guest gets [`crate::wasi`] instead, with the same clocks and
/// random stream). It grants nothing: no arguments, no environment, no preopened
/// directories, no sockets, no stdio, and only the deterministic clock and randomness.
pub fn wasi_ctx() -> WasiP1Ctx {
    WasiCtxBuilder::new()
        .wall_clock(SteppingClock::default())
        .monotonic_clock(SteppingClock::default())
        .secure_random(StdRng::seed_from_u64(SEED))
        .insecure_random(StdRng::seed_from_u64(SEED ^ 1))
        .insecure_random_seed(u128::from(SEED))
        .max_random_size(1 << 20)
        .allow_ip_name_lookup(false)
        .allow_tcp(false)
        .allow_udp(false)
        .build_p1()
}
