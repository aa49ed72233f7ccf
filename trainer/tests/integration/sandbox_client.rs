//! The trainer's sandbox connection against the real daemon: an embedded daemon that dies is
//! restarted, the tasks of the call it failed count as failed, and later calls are answered.
//!
//! Needs the `azr-sandbox` binary in this target directory (`cargo test --workspace` builds it).

use azr::check::{CheckKind, Checker, TaskCheck, ValidateTask};
use azr::config::ValidationConfig;
use azr_trainer::selfplay::sandbox::{Sandbox, SandboxSpec};

fn embedded() -> Sandbox {
    let binary = SandboxSpec::find_binary(None).unwrap_or_else(|e| {
        panic!("{e} (cargo test --workspace builds it; so does cargo build -p azr-sandbox)")
    });
    Sandbox::connect(
        SandboxSpec::Embedded { binary, workers: 1 },
        ValidationConfig::default(),
    )
    .expect("embedded daemon starts")
}

fn deduction(answer: &str) -> TaskCheck {
    TaskCheck {
        program: "def f(a):\n    return a * 2".into(),
        imports: vec![],
        kind: CheckKind::Deduction {
            gold: "42".into(),
            answer: answer.into(),
        },
    }
}

#[test]
fn validation_and_checks_go_through_the_daemon_with_the_proposers_rules() {
    let mut sandbox = embedded();
    let items = [
        ValidateTask {
            program: "def f(a):\n    return a * 2".into(),
            imports: vec![],
            input: "21".into(),
            check_banned: true,
        },
        ValidateTask {
            program: "import random\ndef f(a):\n    return a".into(),
            imports: vec![],
            input: "1".into(),
            check_banned: true,
        },
        // Induction inputs run on a buffered program without the banned-import rules.
        ValidateTask {
            program: "import random\ndef f(a):\n    return a".into(),
            imports: vec![],
            input: "1".into(),
            check_banned: false,
        },
    ];
    let Ok(v) = sandbox.validate(&items);
    assert!(v[0].ok && v[0].output.as_deref() == Some("42"), "{v:?}");
    assert!(!v[1].ok, "banned import accepted: {v:?}");
    assert!(v[2].ok, "{v:?}");
    let Ok(c) = sandbox.check(&[deduction("42"), deduction("41"), deduction("6 * 7")]);
    let passed: Vec<bool> = c.iter().map(|r| r.passed).collect();
    assert_eq!(passed, [true, false, true]);
}

#[test]
fn a_killed_daemon_is_restarted_and_its_tasks_count_as_failed() {
    let mut sandbox = embedded();
    let Ok(before) = sandbox.check(&[deduction("42")]);
    assert!(before[0].passed);
    let pid = sandbox.daemon_pid().expect("embedded daemon pid");
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    std::thread::sleep(std::time::Duration::from_millis(200));
    let Ok(during) = sandbox.check(&[deduction("42"), deduction("42")]);
    assert!(during.iter().all(|r| !r.passed), "{during:?}");
    assert_eq!(sandbox.stats.failed_items, 2);
    assert_eq!(sandbox.stats.restarts, 1);
    assert_ne!(sandbox.daemon_pid(), Some(pid));
    let Ok(after) = sandbox.check(&[deduction("42")]);
    assert!(after[0].passed, "{after:?}");
}

#[test]
fn hostile_programs_of_every_verdict_kind_leave_the_embedded_daemon_up() {
    let binary = SandboxSpec::find_binary(None).expect("azr-sandbox binary");
    let mut sandbox = Sandbox::connect(
        SandboxSpec::Embedded { binary, workers: 1 },
        ValidationConfig {
            timeout_s: 5.0,
            ..ValidationConfig::default()
        },
    )
    .expect("embedded daemon starts");
    let pid = sandbox.daemon_pid().expect("embedded daemon pid");
    // (the verdicts a case may end in, the program): a busy loop meets the fuel budget or
    // the clock first depending on the machine's speed.
    let cases: [(&[&str], &str); 7] = [
        (&["error"], "def f(x):\n    return 1 / 0"),
        (&["rejected"], "import random\ndef f(x):\n    return x"),
        (
            &["timeout", "out_of_fuel"],
            "def f(x):\n    while True:\n        pass",
        ),
        (
            &["out_of_memory"],
            "def f(x):\n    return len(bytearray(1024 ** 3))",
        ),
        // Growing to the cap takes seconds: on a loaded machine the clock can come first.
        (
            &["out_of_memory", "timeout", "out_of_fuel"],
            "def f(x):\n    l = []\n    while True:\n        l.append([0] * 1000)",
        ),
        (
            &["output_limit"],
            "def f(x):\n    while True:\n        print('x' * 1000)",
        ),
        // A guest panic (RustPython's lexer on an unterminated string after a multibyte
        // character): the served daemon died of this one once.
        (&["fault"], "def f(x):\n    return \"é"),
    ];
    for (kinds, program) in cases {
        let Ok(v) = sandbox.validate(&[ValidateTask {
            program: program.into(),
            imports: vec![],
            input: "1".into(),
            check_banned: true,
        }]);
        let error = v[0].error.clone().unwrap_or_default();
        eprintln!("{kinds:?}: {error}");
        assert!(!v[0].ok, "{kinds:?}: {v:?}");
        assert!(
            kinds.iter().any(|k| error.starts_with(&format!("{k}:"))),
            "expected {kinds:?}, got {error}"
        );
        assert_eq!(sandbox.daemon_pid(), Some(pid), "after {kinds:?}");
        assert_eq!(sandbox.stats.restarts, 0, "after {kinds:?}");
        let Ok(benign) = sandbox.check(&[deduction("42")]);
        assert!(benign[0].passed, "after {kinds:?}: {benign:?}");
    }
    // The same panic as a solver's answer.
    let Ok(c) = sandbox.check(&[deduction("\"é"), deduction("42")]);
    assert_eq!(c[0].verdict, "fault", "{c:?}");
    assert!(c[1].passed, "{c:?}");
    assert_eq!(sandbox.daemon_pid(), Some(pid));
    assert_eq!(sandbox.stats.restarts, 0);
    assert_eq!(sandbox.stats.failed_items, 0);
}
