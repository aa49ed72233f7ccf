//! Test-case programs: stdin/stdout scripts as `python3 prog.py < input` runs them,
//! function-call cases compared natively, assert-style tests that a program cannot talk its
//! way through; the hostile programs stay contained when they run as scripts; and the same
//! operations over the daemon's `Test`/`TestBatch` RPCs.

use crate::common;
use crate::support;

use azr_sandbox::{Item, Outcome, OutputMatch, Verdict};
use azr_sandbox_client::{CallOptions, v1};
use common::items;

fn script(program: &str, stdin: &str) -> Item {
    Item::Script {
        program: program.into(),
        imports: vec![],
        stdin: stdin.into(),
        expected_stdout: None,
        output_match: OutputMatch::Lines,
        files: Default::default(),
    }
}

fn one(item: Item) -> Outcome {
    items(vec![item]).pop().expect("one outcome")
}

fn call(program: &str, function: &str, arguments: &str, expected: &str) -> Item {
    Item::Call {
        program: program.into(),
        imports: vec![],
        function: function.into(),
        arguments: arguments.into(),
        expected: expected.into(),
        files: Default::default(),
    }
}

fn asserts(program: &str, test: &str) -> Item {
    Item::Assert {
        program: program.into(),
        imports: vec![],
        test: test.into(),
        files: Default::default(),
    }
}

#[test]
fn a_script_reads_stdin_every_way_python3_does() {
    let cases = [
        (
            "a = input()\nb = input()\nprint(int(a) + int(b))",
            "2\n3\n",
            "5\n",
        ),
        (
            "import sys\nprint(sum(map(int, sys.stdin.read().split())))",
            "1 2\n3\n",
            "6\n",
        ),
        (
            "import sys\nfor line in sys.stdin:\n    print(line.strip()[::-1])",
            "ab\ncd\n",
            "ba\ndc\n",
        ),
        (
            "import sys\ndata = sys.stdin.buffer.read()\nprint(len(data), type(data).__name__)",
            "héllo",
            "6 bytes\n",
        ),
        (
            "import sys\nprint(repr(sys.stdin.readline()))\nprint(repr(sys.stdin.readline()))",
            "x\r\n",
            "'x\\n'\n''\n",
        ),
        (
            "try:\n    input()\nexcept EOFError:\n    print('eof')",
            "",
            "eof\n",
        ),
        ("print(__name__)", "", "__main__\n"),
        (
            "if __name__ == '__main__':\n    print('main')",
            "",
            "main\n",
        ),
    ];
    for (program, stdin, stdout) in cases {
        let o = one(script(program, stdin));
        assert_eq!(o.verdict, Verdict::Ok, "{program}: {o:?}");
        assert_eq!(o.exit_code, Some(0), "{program}: {o:?}");
        assert_eq!(o.stdout, stdout, "{program}: {o:?}");
    }
}

#[test]
fn exit_status_and_stderr_are_python3s() {
    let cases: [(&str, i32, &str); 7] = [
        ("import sys\nsys.exit()", 0, ""),
        ("import sys\nsys.exit(3)", 3, ""),
        ("import sys\nsys.exit(-1)", 255, ""),
        ("import sys\nsys.exit(256 + 7)", 7, ""),
        ("import sys\nsys.exit('bad input')", 1, "bad input\n"),
        ("exit(0)", 0, ""),
        (
            "import sys\nprint('x', file=sys.stderr)\nsys.exit(2)",
            2,
            "x\n",
        ),
    ];
    for (program, code, stderr) in cases {
        let o = one(script(program, ""));
        assert_eq!(o.exit_code, Some(code), "{program}: {o:?}");
        assert_eq!(o.stderr, stderr, "{program}: {o:?}");
        let expected = if code == 0 {
            Verdict::Ok
        } else {
            Verdict::Error
        };
        assert_eq!(o.verdict, expected, "{program}: {o:?}");
    }
    let o = one(script("print('before')\nx = 1 / 0", ""));
    assert_eq!((o.verdict, o.exit_code), (Verdict::Error, Some(1)), "{o:?}");
    assert_eq!(o.stdout, "before\n");
    assert_eq!(o.error_type.as_deref(), Some("ZeroDivisionError"));
    assert!(
        o.stderr.starts_with("Traceback (most recent call last):"),
        "{o:?}"
    );
    assert!(
        o.stderr
            .trim_end()
            .ends_with("ZeroDivisionError: division by zero"),
        "{o:?}"
    );
    let o = one(script("def f(:\n    pass", ""));
    assert_eq!((o.verdict, o.exit_code), (Verdict::Error, Some(1)), "{o:?}");
    assert!(o.stderr.contains("SyntaxError"), "{o:?}");
}

/// What `python3 -c program < stdin` prints and how it ends: (stdout, stderr, status).
fn python3(program: &str, stdin: &str) -> (String, String, i32) {
    let output = common::python3(program, stdin.as_bytes());
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
        output.status.code().unwrap_or(-1),
    )
}

#[test]
fn scripts_end_print_and_read_as_python3_does() {
    // Exit statuses, what the streams accept, the ways competitive programs read and write,
    // and `atexit`: stdout, exit status and the last line of stderr compared with CPython.
    let cases = [
        ("import sys\nsys.exit(2**64)", ""),
        ("import sys\nsys.exit(2**31)", ""),
        ("import sys\nsys.exit(2**32 + 3)", ""),
        ("import sys\nsys.exit(-2**70)", ""),
        ("import sys\nsys.exit(True)", ""),
        ("print('a\\ud800b')", ""),
        ("import sys\nprint(sys.stdout.write('h\\u00e9llo\\n'))", ""),
        ("import sys\nsys.stdout.buffer.write(b'hi\\n')", ""),
        (
            "import sys\nprint('a')\nsys.stdout.flush()\nsys.stdout.buffer.write('b\\n'.encode())",
            "",
        ),
        ("import sys\nsys.stdout.buffer.write('text')", ""),
        ("print(open(0).read().split())", "3 4\n5\n"),
        (
            "data = open(0, 'rb').read()\nprint(len(data), type(data).__name__)",
            "h\u{e9}\n",
        ),
        (
            "import sys\nprint(sys.__stdout__ is sys.stdout, sys.__stdin__ is sys.stdin)",
            "",
        ),
        (
            "import atexit\natexit.register(print, 'bye')\nprint('x')",
            "",
        ),
        (
            "import atexit, sys\natexit.register(print, 'bye')\nsys.exit(3)",
            "",
        ),
        ("import atexit\natexit.register(print, 'bye')\n1 / 0", ""),
    ];
    for (program, stdin) in cases {
        let (stdout, stderr, status) = python3(program, stdin);
        let o = one(script(program, stdin));
        assert_eq!(o.exit_code, Some(status), "{program}: {o:?}");
        assert_eq!(o.stdout, stdout, "{program}: {o:?}");
        let last = |text: &str| text.trim_end().lines().last().unwrap_or("").to_owned();
        assert_eq!(last(&o.stderr), last(&stderr), "{program}: {o:?}");
    }
}

#[test]
fn no_write_path_escapes_the_output_cap() {
    // The cap is counted natively on what reaches the streams: a `str` subclass that says it
    // is empty, the bytes buffer, a program that swaps in its own class all end at it.
    let programs = [
        "class S(str):\n    def __len__(self):\n        return 0\nfor _ in range(200):\n    print(S('x' * 1000))",
        "import sys\nfor _ in range(200):\n    sys.stdout.buffer.write(b'x' * 1000)",
        "import sys\nfor _ in range(200):\n    sys.stderr.write('x' * 1000)",
        "import sys\ntype(sys.stdout).writelines = lambda self, lines: None\nfor _ in range(200):\n    print('x' * 1000)",
        "import sys\ns = sys.stdout\ns.__dict__.clear()\nfor _ in range(200):\n    try:\n        print('x' * 1000)\n    except Exception:\n        break\nprint('y' * 200000, file=sys.stderr)",
    ];
    for program in programs {
        for item in [script(program, ""), asserts(program, "pass")] {
            let o = one(item);
            assert_eq!(o.verdict, Verdict::OutputLimit, "{program}: {o:?}");
        }
    }
}

#[test]
fn a_script_with_an_expected_output_passes_only_on_a_match_with_status_zero() {
    let case = |program: &str, expected: &str, output_match| Item::Script {
        program: program.into(),
        imports: vec![],
        stdin: "4\n".into(),
        expected_stdout: Some(expected.into()),
        output_match,
        files: Default::default(),
    };
    let double = "print(int(input()) * 2)";
    let outcomes = items(vec![
        case(double, "8", OutputMatch::Lines),
        case(double, "8\n\n", OutputMatch::Lines),
        case(double, "9", OutputMatch::Lines),
        case(double, "8", OutputMatch::Exact),
        case(
            "print(int(input()) * 2, end='  \\n')",
            "8",
            OutputMatch::Lines,
        ),
        case("print(8)\nimport sys\nsys.exit(1)", "8", OutputMatch::Lines),
        case("print(' 8 ')", "8", OutputMatch::Tokens),
    ]);
    let passed: Vec<_> = outcomes.iter().map(|o| o.passed).collect();
    assert_eq!(
        passed,
        [
            Some(true),
            Some(true),
            Some(false),
            Some(false),
            Some(true),
            Some(false),
            Some(true)
        ],
        "{outcomes:#?}"
    );
}

#[test]
fn the_scripts_of_one_program_never_see_each_other() {
    // The same program against several inputs (one preparation): module state, builtins
    // and stdin start afresh for every case.
    let program = "import math, builtins\nn = int(input())\nprint(n, getattr(math, 'seen', None))\n\
                   math.seen = n\nbuiltins.print = None";
    let outcomes = items(
        (1..=3)
            .map(|n| script(program, &format!("{n}\n")))
            .collect(),
    );
    let stdout: Vec<_> = outcomes.iter().map(|o| o.stdout.as_str()).collect();
    assert_eq!(
        stdout,
        ["1 None\n", "2 None\n", "3 None\n"],
        "{outcomes:#?}"
    );
}

#[test]
fn hostile_programs_run_as_scripts_stay_contained() {
    let limit = std::time::Duration::from_millis(common::tight().timeout_ms + 1_000);
    for program in support::hostile_programs() {
        let o = one(script(&program, "1\n2\n"));
        assert!(
            std::time::Duration::from_micros(o.micros) < limit,
            "{program}: {o:?}"
        );
        // Reaching outside the interpreter fails as CPython fails without the permission.
        if ["open(", "os.", "socket"]
            .iter()
            .any(|s| program.contains(s))
        {
            assert_eq!(o.verdict, Verdict::Error, "{program}: {o:?}");
            assert_eq!(o.exit_code, Some(1), "{program}: {o:?}");
        }
        assert_ne!(o.verdict, Verdict::Fault, "{program}: {o:?}");
        let next = one(script("print(int(input()) + 1)", "41\n"));
        assert_eq!(next.stdout, "42\n", "after {program}: {next:?}");
    }
}

#[test]
fn function_call_cases_compare_natively() {
    let add = "def add(a, b):\n    return a + b";
    let outcomes = items(vec![
        call(add, "add", "1, 2", "3"),
        call(add, "add", "[1], [2]", "[1, 2]"),
        call(add, "add", "a='x', b='y'", "'xy'"),
        call(add, "add", "1, 2", "4"),
        call(add, "add", "0.1, 0.2", "0.30000000000000004"),
        call(add, "missing", "1, 2", "3"),
        call(
            "class Solution:\n    def add(self, a, b):\n        return a + b",
            "add",
            "2, 2",
            "4",
        ),
        call(
            "def add(a, b):\n    raise ValueError('no')",
            "add",
            "1, 2",
            "3",
        ),
    ]);
    let passed: Vec<_> = outcomes.iter().map(|o| o.passed).collect();
    assert_eq!(
        passed,
        [
            Some(true),
            Some(true),
            Some(true),
            Some(false),
            Some(true),
            Some(false),
            Some(true),
            Some(false)
        ],
        "{outcomes:#?}"
    );
    assert_eq!(outcomes[5].error_type.as_deref(), Some("NameError"));
    assert_eq!(outcomes[7].error_type.as_deref(), Some("ValueError"));
}

#[test]
fn a_function_call_case_cannot_be_forged() {
    let forgeries = [
        // An object equal to everything.
        "class A:\n    def __eq__(self, o):\n        return True\n    __hash__ = None\n\
         def add(a, b):\n    return A()",
        // A subclass of the expected type with a lying __eq__.
        "class I(int):\n    def __eq__(self, o):\n        return True\n    __hash__ = int.__hash__\n\
         def add(a, b):\n    return I(0)",
        // Rewriting what the expected value was built from.
        "import builtins\nbuiltins.int = lambda *a: 0\ndef add(a, b):\n    return 0",
        // Ending the interpreter with success before the comparison.
        "import sys\ndef add(a, b):\n    sys.exit(0)",
        // Mutating the shared arguments of a later case.
        "def add(a, b):\n    a.append(99)\n    return a + b",
    ];
    for program in forgeries {
        let outcomes = items(vec![
            call(program, "add", "[1], [2]", "[1, 2, 3]"),
            call(program, "add", "[1], [2]", "[1, 2, 3]"),
        ]);
        for o in &outcomes {
            assert_ne!(o.passed, Some(true), "{program}: {o:?}");
        }
    }
    // The arguments are a fresh copy for every case.
    let program = "def add(a, b):\n    a.append(99)\n    return a";
    let outcomes = items(vec![
        call(program, "add", "[1], [2]", "[1, 99]"),
        call(program, "add", "[1], [2]", "[1, 99]"),
    ]);
    assert!(
        outcomes.iter().all(|o| o.passed == Some(true)),
        "{outcomes:#?}"
    );
}

#[test]
fn assert_tests_pass_and_fail_as_written() {
    let program = "def add(a, b):\n    return a + b";
    let outcomes = items(vec![
        asserts(
            program,
            "assert add(1, 2) == 3\nassert add('a', 'b') == 'ab'",
        ),
        asserts(program, "assert add(1, 2) == 4"),
        asserts(
            program,
            "def check(candidate):\n    assert candidate(2, 2) == 4\n    assert abs(candidate(0.1, 0.2) - 0.3) < 1e-9\ncheck(add)",
        ),
        asserts(
            program,
            "import math\nassert math.isclose(add(0.1, 0.2), 0.3)",
        ),
        asserts(program, "assert add(1) == 1"),
    ]);
    let passed: Vec<_> = outcomes.iter().map(|o| o.passed).collect();
    assert_eq!(
        passed,
        [Some(true), Some(false), Some(true), Some(true), Some(false)],
        "{outcomes:#?}"
    );
    assert_eq!(outcomes[1].error_type.as_deref(), Some("AssertionError"));
    assert_eq!(outcomes[4].error_type.as_deref(), Some("TypeError"));
}

#[test]
fn an_assert_test_cannot_be_forged() {
    // Every `add` below is wrong (add(1, 2) is not 3); each tries to pass anyway.
    let test = "import math\nassert math.isclose(add(1, 2), 3)\nassert add(1, 2) == 3";
    let forgeries = [
        // An object equal to everything, and a lying subclass of int.
        "class A:\n    def __eq__(self, o):\n        return True\n    __hash__ = None\n\
         def add(a, b):\n    return A()",
        "class I(int):\n    def __eq__(self, o):\n        return True\n    __hash__ = int.__hash__\n\
         def add(a, b):\n    return I(4)",
        // Patching what the test calls, and the exception `assert` raises.
        "import math\nmath.isclose = lambda *a, **k: True\nimport builtins\n\
         builtins.AssertionError = type('E', (Exception,), {})\ndef add(a, b):\n    return 4",
        "import sys\nclass M:\n    def __getattr__(self, n):\n        return lambda *a, **k: True\n\
         sys.modules['math'] = M()\ndef add(a, b):\n    return 4",
        // Leaving with success, before or during the test.
        "import sys\nsys.exit(0)\ndef add(a, b):\n    return 3",
        "import sys\ndef add(a, b):\n    sys.exit(0)",
        // Functions made some other way than a top-level `def`, returning a liar.
        "class A:\n    def __eq__(self, o):\n        return True\n    __hash__ = None\n\
         exec('def add(a, b):\\n    return A()', {'A': A}, globals())",
        "import functools\nclass A:\n    def __eq__(self, o):\n        return True\n    \
         __hash__ = None\n@functools.lru_cache\ndef add(a, b):\n    return A()",
        "class A:\n    def __eq__(self, o):\n        return True\n    __hash__ = None\n\
         class Add:\n    def __call__(self, a, b):\n        return A()\nadd = Add()",
    ];
    for program in forgeries {
        let o = one(asserts(program, test));
        assert_ne!(o.passed, Some(true), "{program}: {o:?}");
    }
    // A first call that is right and then changes what the rest of the test runs with (the
    // second answer, 3, is wrong): hooks, the test's own names, builtins.
    let test = "assert add(1, 2) == 3\nassert abs(add(2, 2) - 4) < 1e-9";
    let forgeries = [
        "import sys\ndef add(a, b):\n    def hook(frame, event, arg):\n        \
         frame.f_lineno = frame.f_lineno + 1\n        return hook\n    sys.settrace(hook)\n    \
         return 3",
        "import sys\ndef add(a, b):\n    sys._getframe(1).f_globals['add'] = lambda a, b: a + b\n    \
         return 3",
        "import sys\ndef add(a, b):\n    sys._getframe(1).f_globals['abs'] = lambda x: 0\n    \
         return 3",
        "import builtins\ndef add(a, b):\n    builtins.abs = lambda x: 0\n    return 3",
        "def add(a, b):\n    __builtins__.__dict__['abs'] = lambda x: 0\n    return 3",
        "import sys\ndef hook(*a):\n    return hook\nsys.settrace(hook)\ndef add(a, b):\n    return 3",
    ];
    for program in forgeries {
        let o = one(asserts(program, test));
        assert_ne!(o.passed, Some(true), "{program}: {o:?}");
    }
    let honest = "def add(a, b):\n    return a + b";
    assert_eq!(one(asserts(honest, test)).passed, Some(true));
    // The right answer still passes after a program patched the same things.
    let honest =
        "import math\nmath.isclose = lambda *a, **k: False\ndef add(a, b):\n    return a + b";
    assert_eq!(one(asserts(honest, test)).passed, Some(true));
}

/// Assert cases of one program share its preparation; what one case's test code patches
/// (builtins, a module's namespace, `sys.modules`) is put back before the next case runs.
#[test]
fn an_assert_case_cannot_change_what_the_next_case_sees() {
    let program = "import math\ndef add(a, b):\n    return a + b";
    let patch = "import builtins, math, sys\nbuiltins.abs = lambda x: 0\n\
                 math.isclose = lambda *a, **k: True\ndel math.floor\n\
                 sys.modules['json'] = None\nassert add(1, 2) == 3";
    let check = "import json, math\nassert abs(-2) == 2\nassert not math.isclose(add(1, 2), 4)\n\
                 assert math.floor(2.5) == 2\nassert json.dumps([1]) == '[1]'";
    let outcomes = items(vec![
        asserts(program, check),
        asserts(program, patch),
        asserts(program, check),
        asserts(program, patch),
        asserts(program, check),
    ]);
    let passed: Vec<_> = outcomes.iter().map(|o| o.passed).collect();
    assert_eq!(passed, [Some(true); 5], "{outcomes:#?}");
}

#[test]
fn test_case_rpcs_answer_over_the_socket() {
    let daemon = support::Daemon::start("");
    daemon.block_on(async {
        let client = daemon.client();
        let call_options = CallOptions::default();
        let program = Some(v1::Program {
            source: "n = int(input())\nprint(n * n)".into(),
            imports: vec![],
            ..Default::default()
        });
        let one = client
            .test(
                v1::TestTask {
                    program: program.clone(),
                    kind: Some(v1::test_task::Kind::Stdio(v1::StdioCase {
                        stdin: "7\n".into(),
                        expected_stdout: Some("49".into()),
                        output_match: v1::OutputMatch::Lines as i32,
                    })),
                },
                &call_options,
            )
            .await
            .expect("test");
        assert_eq!(one.passed, Some(true), "{one:?}");
        assert_eq!(one.exit_code, Some(0));
        assert_eq!(one.stdout, "49\n");

        let stdio = |stdin: &str, expected: &str| v1::TestTask {
            program: None,
            kind: Some(v1::test_task::Kind::Stdio(v1::StdioCase {
                stdin: stdin.into(),
                expected_stdout: Some(expected.into()),
                output_match: v1::OutputMatch::Lines as i32,
            })),
        };
        let stop = CallOptions {
            stop_on_failure: true,
            ..CallOptions::default()
        };
        let outcomes = client
            .test_batch(
                vec![stdio("2\n", "4"), stdio("3\n", "10"), stdio("4\n", "16")],
                program,
                &stop,
            )
            .await
            .expect("test batch");
        let passed: Vec<_> = outcomes.iter().map(|o| o.passed).collect();
        assert_eq!(passed[..2], [Some(true), Some(false)], "{outcomes:?}");
        assert_eq!(outcomes[2].verdict, v1::Verdict::Skipped as i32);

        let call = client
            .test(
                v1::TestTask {
                    program: Some(v1::Program {
                        source: "def sq(x):\n    return x * x".into(),
                        imports: vec![],
                        ..Default::default()
                    }),
                    kind: Some(v1::test_task::Kind::Call(v1::CallCase {
                        function: "sq".into(),
                        arguments: "12".into(),
                        expected: "144".into(),
                    })),
                },
                &call_options,
            )
            .await
            .expect("call case");
        assert_eq!(call.passed, Some(true), "{call:?}");

        let unset = client
            .test(
                v1::TestTask {
                    program: Some(v1::Program::default()),
                    kind: None,
                },
                &call_options,
            )
            .await
            .expect_err("no kind");
        assert_eq!(unset.code(), Some(tonic::Code::InvalidArgument));
    });
}

/// The modules veRL's test-case wrapper imports (`from X import *` and `import X`, in its
/// order, `verl/utils/reward_score/sandbox_fusion/utils.py`): docs/python.md says which work.
#[test]
fn the_modules_verls_wrapper_imports_all_load() {
    let modules = [
        "string",
        "re",
        "datetime",
        "collections",
        "heapq",
        "bisect",
        "copy",
        "math",
        "random",
        "statistics",
        "itertools",
        "functools",
        "operator",
        "io",
        "sys",
        "json",
        "typing",
    ];
    let mut program = String::from("import traceback\n");
    for m in modules {
        program.push_str(&format!(
            "try:\n    from {m} import *\n    import {m}\n    print('{m} ok')\nexcept BaseException as e:\n    print('{m}', type(e).__name__, e)\n"
        ));
    }
    let o = one(script(&program, ""));
    let expected: String = modules.iter().map(|m| format!("{m} ok\n")).collect();
    assert_eq!(o.stdout, expected, "{o:?}");
}

/// Scripts of every verdict kind through the served daemon (seccomp on): each is answered
/// and the daemon stays the same process.
#[test]
fn the_served_daemon_answers_scripts_of_every_verdict_kind_and_stays_up() {
    let mut daemon = support::Daemon::start("");
    let pid = daemon.pid();
    let cases: [(&[v1::Verdict], &str); 6] = [
        (&[v1::Verdict::Ok], "print(input())"),
        (&[v1::Verdict::Error], "raise ValueError('x')"),
        (
            &[v1::Verdict::Timeout, v1::Verdict::OutOfFuel],
            "while True:\n    pass",
        ),
        (&[v1::Verdict::OutOfMemory], "x = bytearray(1024 ** 3)"),
        (
            &[v1::Verdict::OutputLimit],
            "while True:\n    print('x' * 1000)",
        ),
        (&[v1::Verdict::Fault], "x = \"é"),
    ];
    daemon.block_on(async {
        let client = daemon.client();
        let options = CallOptions {
            options: Some(v1::Options {
                limits: Some(v1::Limits {
                    timeout_ms: Some(3_000),
                    ..Default::default()
                }),
                rules: None,
            }),
            ..CallOptions::default()
        };
        for (kinds, source) in cases {
            let task = v1::TestTask {
                program: Some(v1::Program {
                    source: source.into(),
                    imports: vec![],
                    ..Default::default()
                }),
                kind: Some(v1::test_task::Kind::Stdio(v1::StdioCase {
                    stdin: "1\n".into(),
                    expected_stdout: None,
                    output_match: 0,
                })),
            };
            let o = client.test(task, &options).await.expect("answered");
            assert!(
                kinds.iter().any(|k| *k as i32 == o.verdict),
                "{source}: {o:?}"
            );
        }
    });
    assert!(daemon.alive(), "the daemon died");
    assert_eq!(daemon.pid(), pid);
}

#[test]
fn each_class_of_the_judges_second_round_holds_through_the_served_daemon() {
    let daemon = support::Daemon::start("");
    daemon.block_on(async {
        let client = daemon.client();
        let call = CallOptions::default();
        let program = |source: &str| {
            Some(v1::Program {
                source: source.into(),
                imports: vec![],
                ..Default::default()
            })
        };
        let deduction = |gold: &str, answer: &str| v1::CheckTask {
            program: None,
            kind: Some(v1::check_task::Kind::Deduction(v1::Deduction {
                gold_output: gold.into(),
                answer: answer.into(),
            })),
        };
        // Comparison rules: order between OrderedDicts, big integers in sets, values deeper
        // than 128 levels, math.nan's identity; and an answer that calls the program.
        let outcomes = client
            .check_batch(
                vec![
                    deduction(
                        "OrderedDict([(1, 2), (3, 4)])",
                        "OrderedDict([(3, 4), (1, 2)])",
                    ),
                    deduction("OrderedDict([(1, 2), (3, 4)])", "{3: 4, 1: 2}"),
                    deduction("{10**5000, 1}", "{1, 10**5000}"),
                    deduction("eval('[' * 150 + ']' * 150)", "eval('[' * 150 + ']' * 150)"),
                    deduction("[math.nan]", "[math.nan]"),
                    deduction("[1, 2]", "f([1, 2])"),
                ],
                program(
                    "import math\nfrom collections import OrderedDict\ndef f(x):\n    return x",
                ),
                &call,
            )
            .await
            .expect("check batch");
        let passed: Vec<_> = outcomes.iter().map(|o| o.passed).collect();
        assert_eq!(
            passed,
            [
                Some(false),
                Some(true),
                Some(true),
                Some(true),
                Some(true),
                Some(false)
            ],
            "{outcomes:#?}"
        );
        assert_eq!(outcomes[5].error_type.as_deref(), Some("AnswerUsesProgram"));
        // Validation: an output that repr cannot show, and one no answer could state.
        for source in [
            "def f(x):\n    return 10**5000",
            "class P:\n    pass\n\ndef f(x):\n    return P()",
        ] {
            let o = client
                .validate(
                    v1::ValidateTask {
                        program: program(source),
                        input: "1".into(),
                    },
                    &call,
                )
                .await
                .expect("validate");
            assert_ne!(o.verdict, v1::Verdict::Ok as i32, "{source}: {o:?}");
            assert!(o.value.is_none(), "{o:?}");
        }
        // An assert case forged through a function that is not a top-level `def`, and a
        // script ending as CPython does.
        let forged = client
            .test(
                v1::TestTask {
                    program: program(
                        "class A:\n    def __eq__(self, o):\n        return True\n    \
                         __hash__ = None\nclass Add:\n    def __call__(self, a, b):\n        \
                         return A()\nadd = Add()",
                    ),
                    kind: Some(v1::test_task::Kind::Asserts(v1::AssertCase {
                        test: "assert add(1, 2) == 3".into(),
                    })),
                },
                &call,
            )
            .await
            .expect("test");
        assert_ne!(forged.passed, Some(true), "{forged:?}");
        let exit = client
            .test(
                v1::TestTask {
                    program: program("import sys\nsys.exit(2**64)"),
                    kind: Some(v1::test_task::Kind::Stdio(v1::StdioCase {
                        stdin: String::new(),
                        expected_stdout: None,
                        output_match: v1::OutputMatch::Lines as i32,
                    })),
                },
                &call,
            )
            .await
            .expect("test");
        assert_eq!(exit.exit_code, Some(255), "{exit:?}");
    });
}
