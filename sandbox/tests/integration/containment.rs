//! Hostile programs: each ends with a clean verdict within its limit, the host stays alive
//! with bounded memory, and the next program runs normally.

use crate::common;

use std::time::Duration;

use azr_sandbox::Verdict;
use common::{run, tight};

/// Runs a hostile program, then a normal one, and returns the hostile one's outcome.
///
/// The time asserted is the item's own (tests share two workers, so wall time includes
/// waiting behind other tests' programs).
fn contained(program: &str, input: Option<&str>) -> azr_sandbox::Outcome {
    let outcome = run(program, input);
    let took = Duration::from_micros(outcome.micros);
    let limit = Duration::from_millis(tight().timeout_ms) + Duration::from_secs(1);
    assert!(took < limit, "took {took:?} (limit {limit:?}): {outcome:?}");
    let next = run("def f(x):\n    return x + 1", Some("1"));
    assert_eq!(
        next.value.as_deref(),
        Some("2"),
        "the next program must run normally"
    );
    outcome
}

/// The memory cap stopped the program: the allocator's abort, or the `MemoryError` the
/// interpreter raises when it catches the refused allocation itself, are both
/// `out_of_memory`.
fn assert_out_of_memory(o: &azr_sandbox::Outcome) {
    assert_eq!(o.verdict, Verdict::OutOfMemory, "{o:?}");
}

fn resident_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[test]
fn an_infinite_loop_runs_out_of_fuel_or_time() {
    let o = contained("def f(x):\n    while True:\n        x += 1", Some("0"));
    assert!(
        matches!(o.verdict, Verdict::OutOfFuel | Verdict::Timeout),
        "{o:?}"
    );
}

#[test]
fn a_memory_bomb_is_refused() {
    // The guest is a 32-bit platform: 8 GiB is not even an index there (CPython on 32-bit
    // raises the same OverflowError); 1 GiB is an index but over the memory cap.
    let o = contained(
        "def f(x):\n    return len(bytearray(8 * 1024 ** 3))",
        Some("0"),
    );
    assert!(
        o.verdict == Verdict::OutOfMemory
            || (o.verdict == Verdict::Error && o.error_type.as_deref() == Some("OverflowError")),
        "{o:?}"
    );
    let o = contained("def f(x):\n    return len(bytearray(1024 ** 3))", Some("0"));
    assert_out_of_memory(&o);
}

#[test]
fn growing_a_list_past_the_cap_is_out_of_memory() {
    let o = contained(
        "def f(x):\n    xs = []\n    while True:\n        xs.append(bytearray(10 ** 6))",
        Some("0"),
    );
    assert_out_of_memory(&o);
}

#[test]
fn string_doubling_is_stopped_by_the_memory_cap() {
    let o = contained(
        "def f(x):\n    s = 'a'\n    while True:\n        s = s + s",
        Some("0"),
    );
    assert!(
        matches!(
            o.verdict,
            Verdict::OutOfMemory | Verdict::Error | Verdict::OutOfFuel
        ),
        "{o:?}"
    );
}

#[test]
fn unbounded_recursion_is_a_recursion_error() {
    let o = contained("def f(x):\n    return f(x + 1)", Some("0"));
    assert_eq!(o.verdict, Verdict::Error, "{o:?}");
    assert_eq!(o.error_type.as_deref(), Some("RecursionError"), "{o:?}");
}

#[test]
fn raising_the_recursion_limit_still_ends_cleanly() {
    let o = contained(
        "import sys\nsys.setrecursionlimit(10**6)\ndef f(x):\n    return f(x + 1)",
        Some("0"),
    );
    assert_ne!(o.verdict, Verdict::Ok, "{o:?}");
}

#[test]
fn reading_a_host_file_fails() {
    let o = contained(
        "def f(x):\n    return open('/etc/passwd').read()",
        Some("0"),
    );
    assert_eq!(o.verdict, Verdict::Error, "{o:?}");
    let o = contained(
        "import io\ndef f(x):\n    return io.FileIO('/etc/hostname').read()",
        Some("0"),
    );
    assert_eq!(o.verdict, Verdict::Error, "{o:?}");
}

#[test]
fn no_host_directory_is_visible() {
    // The only directory a program sees is the in-memory tree of the files sent with it
    // (none here): the host's root, its /etc and its files are not there.
    let o = contained(
        "import os\ndef f(x):\n    return (os.listdir('/'), os.path.exists('/etc/passwd'), \
         os.getcwd())",
        Some("0"),
    );
    assert_eq!(o.verdict, Verdict::Ok, "{o:?}");
    assert_eq!(o.value.as_deref(), Some("([], False, '/')"), "{o:?}");
    let o = contained(
        "import os\ndef f(x):\n    return os.listdir('/etc')",
        Some("0"),
    );
    assert_eq!(o.error_type.as_deref(), Some("FileNotFoundError"), "{o:?}");
}

#[test]
fn starting_a_process_fails() {
    let o = contained(
        "import os\ndef f(x):\n    return os.system('touch /tmp/azr-pwned')",
        Some("0"),
    );
    assert_eq!(o.verdict, Verdict::Error, "{o:?}");
    assert!(!std::path::Path::new("/tmp/azr-pwned").exists());
    let o = contained(
        "import subprocess\ndef f(x):\n    return subprocess.run(['id'])",
        Some("0"),
    );
    assert_eq!(o.verdict, Verdict::Error, "{o:?}");
}

#[test]
fn the_host_environment_is_invisible() {
    let o = contained(
        "import os\ndef f(x):\n    return dict(os.environ)",
        Some("0"),
    );
    assert_eq!(o.value.as_deref(), Some("{}"), "{o:?}");
}

#[test]
fn a_socket_connection_fails() {
    let o = contained(
        "import socket\ndef f(x):\n    s = socket.socket()\n    s.connect(('127.0.0.1', 22))\n    return 'connected'",
        Some("0"),
    );
    assert_eq!(o.verdict, Verdict::Error, "{o:?}");
}

#[test]
fn walking_subclasses_finds_nothing_that_reaches_the_host() {
    let program = "def f(x):\n    found = []\n    for c in ().__class__.__base__.__subclasses__():\n        name = c.__name__\n        if name in ('FileIO', 'Popen', 'socket', 'BuiltinImporter'):\n            found.append(name)\n            try:\n                if name == 'FileIO':\n                    c('/etc/passwd').read()\n                    return 'read a host file'\n            except Exception:\n                pass\n    return 'contained'";
    let o = contained(program, Some("0"));
    assert_eq!(o.value.as_deref(), Some("'contained'"), "{o:?}");
}

#[test]
fn a_huge_power_is_stopped() {
    let o = contained("def f(x):\n    return len(str(10 ** 10 ** 10))", Some("0"));
    assert_ne!(o.verdict, Verdict::Ok, "{o:?}");
}

#[test]
fn a_catastrophic_regex_is_stopped() {
    let o = contained(
        "import re\ndef f(x):\n    return re.match('(a+)+$', 'a' * 64 + 'b')",
        Some("0"),
    );
    assert!(
        matches!(o.verdict, Verdict::OutOfFuel | Verdict::Timeout),
        "{o:?}"
    );
}

#[test]
fn a_print_bomb_hits_the_output_limit() {
    let o = contained(
        "def f(x):\n    while True:\n        print('x' * 1000)",
        Some("0"),
    );
    assert_eq!(o.verdict, Verdict::OutputLimit, "{o:?}");
    assert!(o.stdout.len() <= 65536);
}

#[test]
fn catching_the_output_limit_does_not_escape_it() {
    let o = contained(
        "def f(x):\n    for i in range(200):\n        try:\n            print('y' * 1000)\n        except BaseException:\n            pass\n    return 1",
        Some("0"),
    );
    assert_eq!(o.verdict, Verdict::OutputLimit, "{o:?}");
}

#[test]
fn host_memory_stays_bounded_over_many_hostile_programs() {
    let bombs = [
        "def f(x):\n    return len(bytearray(8 * 1024 ** 3))",
        "def f(x):\n    s = 'a'\n    while True:\n        s = s + s",
        "def f(x):\n    return [0] * (10 ** 7)",
    ];
    // Warm up: the first runs map the pool's slots.
    for bomb in bombs {
        run(bomb, Some("0"));
    }
    let before = resident_kib();
    for _ in 0..5 {
        for bomb in bombs {
            run(bomb, Some("0"));
        }
    }
    let after = resident_kib();
    assert!(
        after < before + 256 * 1024,
        "resident memory grew from {before} KiB to {after} KiB"
    );
}

/// The interpreter's own memory (start-up state plus the free heap it keeps, see the guest's
/// `HEAP_SLACK`) stays below 64 MiB, so a 64 MiB cap (the fuzz targets use one) still runs
/// programs, and a 64 MiB program in a 64 MiB cap is refused, not the interpreter.
#[test]
fn a_64_mib_memory_cap_leaves_the_interpreter_room_to_run() {
    let limits = azr_sandbox::Limits {
        memory_bytes: 64 << 20,
        ..tight()
    };
    let o = common::run_with("def f():\n    return sum(range(1000))", Some(""), &limits);
    assert_eq!(o.verdict, Verdict::Ok, "{:?}", o.error_line());
    assert_eq!(o.value.as_deref(), Some("499500"));
}
