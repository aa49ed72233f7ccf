//! The guest's WASI (`sandbox/src/wasi.rs`): every function the guest imports is ours, none
//! blocks or reaches the host, and what Python sees through them is deterministic.

use crate::common;

use std::time::Duration;

use azr_sandbox::{EngineConfig, Executor, Verdict, snapshot, wasi};
use common::run;
use wasmtime::{ExternType, Linker};

struct Io(wasi::GuestIo);

impl wasi::HasGuestIo for Io {
    fn guest_io(&mut self) -> &mut wasi::GuestIo {
        &mut self.0
    }
}

#[test]
fn every_function_the_guest_imports_is_answered_by_our_wasi() {
    let config = EngineConfig::default();
    let executor = Executor::new(&config).expect("engine");
    let module = snapshot::load(executor.engine(), &config.cache_dir).expect("snapshot");
    let mut linker: Linker<Io> = Linker::new(executor.engine());
    wasi::add_to_linker(&mut linker).expect("our WASI links");
    linker
        .func_wrap("azr", "item_start", |_: u32| {})
        .and_then(|l| l.func_wrap("azr", "item_done", |_: u32, _: u32| {}))
        .expect("hooks");
    // Nothing else is defined: if the guest imported a function we do not answer (one that
    // `wasmtime-wasi` would run on a tokio runtime, say), this would fail.
    linker
        .instantiate_pre(&module)
        .expect("every import of the guest is defined by sandbox/src/wasi.rs");
    let imported: Vec<String> = module
        .imports()
        .filter(|i| i.module() == wasi::MODULE)
        .map(|i| {
            assert!(matches!(i.ty(), ExternType::Func(_)), "{}", i.name());
            i.name().to_owned()
        })
        .collect();
    eprintln!(
        "the guest imports {} WASI functions: {imported:?}",
        imported.len()
    );
    assert!(imported.iter().any(|n| n == "fd_write"), "{imported:?}");
}

#[test]
fn sleeping_returns_at_once_and_moves_both_clocks() {
    let o = run(
        "import time\ndef f(x):\n    t, m = time.time(), time.monotonic()\n    time.sleep(x)\n    \
         return round(time.time() - t), round(time.monotonic() - m)",
        Some("3600"),
    );
    assert_eq!(o.value.as_deref(), Some("(3600, 3600)"), "{o:?}");
    assert!(
        Duration::from_micros(o.micros) < Duration::from_secs(2),
        "an hour's sleep took {} µs",
        o.micros
    );
}

#[test]
fn standard_input_is_empty() {
    let o = run(
        "import sys\ndef f(x):\n    return sys.stdin.read() if sys.stdin else None",
        Some("0"),
    );
    assert_eq!(o.verdict, Verdict::Ok, "{o:?}");
    assert!(
        matches!(o.value.as_deref(), Some("''") | Some("None")),
        "{o:?}"
    );
}

#[test]
fn random_bytes_are_the_same_on_every_run() {
    let program =
        "import os, random\ndef f(x):\n    return os.urandom(x).hex(), random.Random().random()";
    let a = run(program, Some("16"));
    let b = run(program, Some("16"));
    assert_eq!(a.verdict, Verdict::Ok, "{a:?}");
    assert_eq!(a.value, b.value);
}
