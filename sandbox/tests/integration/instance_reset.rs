//! The in-place reset gives every program the snapshot's exact state: after each program the
//! kept instance's linear memory is byte for byte the snapshot's, and every outcome (down to
//! the fuel used, i.e. the exact instructions executed) equals the one a fresh instance gives.

use crate::common;

use std::sync::Arc;

use azr_sandbox::{
    EngineConfig, Executor, InstanceReset, Item, Limits, Outcome, Rules, Verdict, Worker,
};

/// Runs `f` on a thread with room for the wasm stack, as the worker pool does.
fn on_worker_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(f)
        .expect("thread starts")
        .join()
        .expect("thread finishes")
}

fn worker(reset: InstanceReset) -> Worker {
    let config = EngineConfig {
        reset,
        ..EngineConfig::default()
    };
    Worker::new(Arc::new(Executor::new(&config).expect("engine starts")))
}

fn seed_validations(n: usize) -> Vec<Item> {
    let text = std::fs::read_to_string(common::seeds_dir().join("7b_seed_io.jsonl"))
        .expect("the seed programs are beside the repository");
    text.lines()
        .take(n)
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            Item::Validate {
                program: v["snippet"].as_str().unwrap_or_default().to_owned(),
                imports: common::record_imports(&v),
                input: v["input"].as_str().unwrap_or_default().to_owned(),
            }
        })
        .collect()
}

fn run(program: &str, input: &str) -> Item {
    Item::Run {
        program: program.into(),
        imports: vec![],
        input: Some(input.into()),
        files: Default::default(),
    }
}

/// Programs that change interpreter state every way we could think of, and ones that end
/// the instance or grow its memory (which must then be discarded, not reset).
fn hostile() -> Vec<Item> {
    vec![
        run(
            "import math, builtins, sys\nmath.pi = 3\nbuiltins.len = lambda x: -1\nsys.modules['json'] = None\nsys.setrecursionlimit(50)\nint.__dict__\nLEAK = [0] * 100000\ndef f(x):\n    return x",
            "1",
        ),
        run(
            "import math, json, sys\ndef f(x):\n    return (math.pi, len('ab'), json.dumps(1), sys.getrecursionlimit())",
            "0",
        ),
        run("def f(x):\n    return 'x' * x", "10_000_000"),
        run("def f(x):\n    while True:\n        pass", "0"),
        run("def f(x):\n    return bytearray(x)", "300_000_000"),
        run("def f(x):\n    return f(x + 1)", "0"),
        run(
            "def f(x):\n    return [str(i) * 10 for i in range(x)][-1]",
            "200_000",
        ),
    ]
}

fn limits() -> Limits {
    Limits {
        timeout_ms: 500,
        memory_bytes: 256 << 20,
        ..Limits::default()
    }
}

#[test]
fn an_instance_reset_in_place_is_byte_identical_to_the_snapshot_after_every_program() {
    on_worker_thread(|| {
        let mut worker = worker(InstanceReset::InPlace);
        if !worker.executor().resets_in_place() {
            eprintln!("skipped: this kernel cannot track dirty pages (needs Linux >= 6.7)");
            return;
        }
        let mut programs = seed_validations(40);
        programs.extend(hostile());
        let mut kept = 0;
        for item in &programs {
            let out = worker.run_items(std::slice::from_ref(item), &limits(), &Rules::default());
            match worker.kept_instance_is_pristine() {
                Some(pristine) => {
                    assert!(
                        pristine,
                        "memory differs from the snapshot after {item:?}: {out:?}"
                    );
                    kept += 1;
                }
                // Discarded: it trapped, or grew its memory (a wasm memory cannot shrink).
                None => eprintln!("discarded after {:?}", out[0].verdict),
            }
        }
        assert!(kept >= 40, "only {kept} instances were kept");
    });
}

#[test]
fn in_place_and_fresh_instances_give_identical_outcomes() {
    fn key(o: &Outcome) -> impl PartialEq + std::fmt::Debug + use<> {
        (
            o.verdict,
            o.value.clone(),
            o.stdout.clone(),
            o.error_type.clone(),
            o.fuel_used,
        )
    }
    on_worker_thread(|| {
        let mut programs = seed_validations(256);
        programs.extend(hostile());
        programs.extend(seed_validations(20));
        let mut fresh = worker(InstanceReset::Fresh);
        let mut in_place = worker(InstanceReset::InPlace);
        for item in &programs {
            let items = std::slice::from_ref(item);
            let a = fresh.run_items(items, &limits(), &Rules::default());
            let b = in_place.run_items(items, &limits(), &Rules::default());
            if a[0].verdict == Verdict::Timeout || b[0].verdict == Verdict::Timeout {
                // Where a wall-clock limit cuts a run is not deterministic: a program near
                // the limit (`'x' * 10_000_000`'s repr) may end by time in either mode on a
                // loaded machine, and by its output cap in the other.
                continue;
            }
            assert_eq!(key(&a[0]), key(&b[0]), "{item:?}");
        }
    });
}
