//! The pre-initialised guest: made once with wizer, precompiled once, cached on disk.
//!
//! Interpreter start-up (builtins, frozen stdlib imports, the harness) costs ≈ 12 ms per
//! program; doing it once and snapshotting the guest's memory is what makes a fresh instance
//! per program affordable. The snapshot and the machine code compiled from it are cached under
//! `<cache_dir>/snapshot/`, keyed by the guest's hash, the wasmtime version and the engine's
//! compatibility hash (which changes with every setting that affects compiled code).

use std::{
    fs::{self, File},
    hash::{DefaultHasher, Hash, Hasher},
    io::Write,
    path::{Path, PathBuf},
    time::Instant,
};

use azr_guest_contract::abi;
use wasmtime::{Config, Engine, Linker, Module, Store};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wizer::Wizer;

use crate::{determinism, error::SandboxError};

/// The RustPython guest, built by `scripts/build-guest.sh` and embedded at compile time.
pub static GUEST_WASM: &[u8] = include_bytes!(env!("AZR_GUEST_WASM_PATH"));
/// A short hash of [`GUEST_WASM`], computed at compile time.
pub const GUEST_KEY: &str = env!("AZR_GUEST_KEY");

/// Loads the precompiled snapshot for `engine`, making and caching it first if needed.
pub fn load(engine: &Engine, cache_dir: &Path) -> Result<Module, SandboxError> {
    let path = cache_path(engine, cache_dir);
    if path.exists() {
        // SAFETY: the file was written by `Engine::precompile_module` of an engine with the
        // same compatibility hash (it is in the file name), by this code, under a cache
        // directory that only this user writes; wasmtime still checks its header.
        match unsafe { Module::deserialize_file(engine, &path) } {
            Ok(module) => return Ok(module),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cached snapshot unusable; rebuilding")
            }
        }
    }
    let dir = path.parent().unwrap_or(cache_dir);
    fs::create_dir_all(dir).map_err(|e| SandboxError::cache(dir, e))?;
    // One process makes the snapshot; others wait for it instead of repeating a minute of work.
    let lock_path = path.with_extension("lock");
    let lock = File::create(&lock_path).map_err(|e| SandboxError::cache(&lock_path, e))?;
    lock.lock()
        .map_err(|e| SandboxError::cache(&lock_path, e))?;
    if path.exists()
        // SAFETY: the file is this cache's own compilation of the guest, written by this code under the same key (guest hash, wasmtime version, engine settings) and read under the lock.
        && let Ok(module) = unsafe { Module::deserialize_file(engine, &path) }
    {
        return Ok(module);
    }
    let started = Instant::now();
    tracing::info!("pre-initialising the Python guest (once per guest and wasmtime version)");
    let snapshot = make_snapshot(GUEST_WASM)?;
    tracing::info!(
        bytes = snapshot.len(),
        secs = started.elapsed().as_secs_f32(),
        "snapshot made; compiling it"
    );
    let compiled = engine
        .precompile_module(&snapshot)
        .map_err(|e| SandboxError::Snapshot(format!("compiling the snapshot: {e:#}")))?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut file = File::create(&tmp).map_err(|e| SandboxError::cache(&tmp, e))?;
    file.write_all(&compiled)
        .and_then(|()| file.sync_all())
        .map_err(|e| SandboxError::cache(&tmp, e))?;
    fs::rename(&tmp, &path).map_err(|e| SandboxError::cache(&path, e))?;
    tracing::info!(
        path = %path.display(),
        secs = started.elapsed().as_secs_f32(),
        "snapshot cached"
    );
    // SAFETY: just written above by `precompile_module` of this engine.
    unsafe { Module::deserialize_file(engine, &path) }
        .map_err(|e| SandboxError::Snapshot(format!("loading the compiled snapshot: {e:#}")))
}

fn cache_path(engine: &Engine, cache_dir: &Path) -> PathBuf {
    let mut hasher = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    let engine_hash = hasher.finish();
    // The compatibility hash covers the wasmtime version and every compiled-code setting.
    cache_dir
        .join("snapshot")
        .join(format!("guest-{GUEST_KEY}-engine-{engine_hash:016x}.cwasm"))
}

/// Runs the guest's `azr_init` under wizer and returns the snapshotted module bytes.
pub fn make_snapshot(guest: &[u8]) -> Result<Vec<u8>, SandboxError> {
    let mut config = Config::new();
    // The init function recurses deeply while importing the stdlib; wizer runs it on an
    // async fiber, whose stack must hold the wasm stack.
    config.max_wasm_stack(8 << 20).async_stack_size(16 << 20);
    let engine =
        Engine::new(&config).map_err(|e| SandboxError::Snapshot(format!("engine: {e:#}")))?;
    let mut linker: Linker<WasiP1Ctx> = Linker::new(&engine);
    wasmtime_wasi::p1::add_to_linker_async(&mut linker, |ctx| ctx)
        .map_err(|e| SandboxError::Snapshot(format!("linking WASI: {e:#}")))?;
    // The guest's result hook is never called during initialisation.
    linker
        .func_wrap(abi::HOST_MODULE, abi::ITEM_DONE, |_: u32, _: u32| {})
        .map_err(|e| SandboxError::Snapshot(format!("linking hooks: {e:#}")))?;
    let mut store = Store::new(&engine, determinism::wasi_ctx());
    let mut wizer = Wizer::new();
    wizer.init_func(abi::INIT);
    let future = wizer.run(&mut store, guest, async |store, module| {
        linker.instantiate_async(store, module).await
    });
    pollster::block_on(future).map_err(|e| SandboxError::Snapshot(format!("{e:#}")))
}
