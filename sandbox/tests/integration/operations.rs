//! The AZR operations through the real guest: validation, the three checks, isolation,
//! determinism and the stdlib the guest provides.

use crate::common;

use azr_sandbox::{Item, Rules, Verdict};
use common::{items, run, sandbox, tight};

fn validate(program: &str, input: &str) -> azr_sandbox::Outcome {
    items(vec![Item::Validate {
        program: program.into(),
        imports: vec![],
        input: input.into(),
    }])
    .remove(0)
}

#[test]
fn validation_returns_the_repr_of_f_of_the_input() {
    let o = validate("def f(a, b):\n    return {'s': a * b}", "'ab', 2");
    assert_eq!(o.verdict, Verdict::Ok, "{o:?}");
    assert_eq!(o.value.as_deref(), Some("{'s': 'abab'}"));
    assert!(o.fuel_used > 0);
}

#[test]
fn validation_rejects_banned_imports_by_module_path_component() {
    let o = validate("import random\ndef f(x):\n    return x", "1");
    assert_eq!(o.verdict, Verdict::Rejected);
    assert_eq!(o.error_type.as_deref(), Some("BannedImport"));
    let o = validate("from numpy import random\ndef f(x):\n    return x", "1");
    assert_eq!(o.verdict, Verdict::Rejected);
    // As in the reference, a dotted banned word never equals one component.
    let o = validate("import os.path\ndef f(x):\n    return x", "1");
    assert_eq!(o.verdict, Verdict::Ok, "{o:?}");
}

#[test]
fn validation_falls_back_to_words_when_the_program_does_not_parse() {
    let o = validate("import time\ndef f(x) return x", "1");
    assert_eq!(o.verdict, Verdict::Rejected);
}

#[test]
fn validation_bans_raise_only_when_asked() {
    let program = "def f(x):\n    if x < 0:\n        raise ValueError('neg')\n    return x";
    let rules = Rules {
        banned_keywords: vec!["raise".into()],
        ..Rules::default()
    };
    let item = Item::Validate {
        program: program.into(),
        imports: vec![],
        input: "1".into(),
    };
    let banned = sandbox()
        .run(vec![item.clone()], &tight(), &rules)
        .remove(0);
    assert_eq!(banned.verdict, Verdict::Rejected);
    let allowed = sandbox()
        .run(vec![item], &tight(), &Rules::default())
        .remove(0);
    assert_eq!(allowed.verdict, Verdict::Ok);
}

#[test]
fn validation_requires_f() {
    let o = validate("def g(x):\n    return x", "1");
    assert_eq!(o.verdict, Verdict::Rejected);
    assert_eq!(o.error_type.as_deref(), Some("MissingFunction"));
}

#[test]
fn validation_rejects_state_carried_between_two_calls() {
    let o = validate(
        "def f(x, seen=[]):\n    seen.append(x)\n    return len(seen)",
        "1",
    );
    assert_eq!(o.verdict, Verdict::Rejected);
    assert_eq!(o.error_type.as_deref(), Some("NonDeterministic"));
}

#[test]
fn inputs_that_are_more_than_an_argument_list_are_refused() {
    let o = validate("def f(x):\n    return x", "1) or (2");
    assert_eq!(o.verdict, Verdict::Error);
    assert_eq!(o.error_type.as_deref(), Some("SyntaxError"));
}

#[test]
fn a_python_exception_is_an_error_verdict_with_type_and_message() {
    let o = run("def f(x):\n    return 1 // x", Some("0"));
    assert_eq!(o.verdict, Verdict::Error);
    assert_eq!(o.error_type.as_deref(), Some("ZeroDivisionError"));
    assert!(
        o.error_line()
            .is_some_and(|l| l.starts_with("ZeroDivisionError: "))
    );
}

#[test]
fn deduction_passes_an_equal_value_and_fails_a_different_one() {
    let program = "def f(x):\n    return [x, x]";
    let check = |answer: &str| Item::Deduction {
        program: program.into(),
        imports: vec![],
        gold: "[2, 2]".into(),
        answer: answer.into(),
    };
    let out = items(vec![
        check("[2, 2]"),
        check("[2,2]"),
        check("(2, 2)"),
        check("[2, 3]"),
        check("[2,"),
    ]);
    let passed: Vec<_> = out.iter().map(|o| o.passed).collect();
    assert_eq!(
        passed,
        vec![
            Some(true),
            Some(true),
            Some(false),
            Some(false),
            Some(false)
        ]
    );
    assert_eq!(out[4].verdict, Verdict::Error);
}

#[test]
fn an_answer_object_that_claims_equality_with_everything_does_not_pass() {
    let hack = "type('X', (), {'__eq__': lambda s, o: True, '__hash__': lambda s: 0})()";
    let out = items(vec![
        Item::Deduction {
            program: "def f(x):\n    return x".into(),
            imports: vec![],
            gold: "5".into(),
            answer: hack.into(),
        },
        Item::Deduction {
            program: "def f(x):\n    return x".into(),
            imports: vec![],
            gold: "[5]".into(),
            answer: format!("[{hack}]"),
        },
    ]);
    assert_eq!(out[0].passed, Some(false));
    assert_eq!(out[1].passed, Some(false));
}

#[test]
fn abduction_passes_an_input_that_reproduces_the_output() {
    let program = "def f(s, n):\n    return s * n";
    let check = |answer: &str| Item::Abduction {
        program: program.into(),
        imports: vec![],
        gold: "'abab'".into(),
        answer: answer.into(),
    };
    let out = items(vec![
        check("'ab', 2"),
        check("'abab', 1"),
        check("('ab', 2)"),
        check("'a', 2"),
    ]);
    let passed: Vec<_> = out.iter().map(|o| o.passed).collect();
    assert_eq!(
        passed,
        vec![Some(true), Some(true), Some(false), Some(false)]
    );
}

#[test]
fn an_answer_that_needs_the_program_is_wrong_and_says_why() {
    let program = "K = 2\n\ndef helper(x):\n    return x * K\n\ndef f(x):\n    return [helper(x)]";
    let deduction = |answer: &str| Item::Deduction {
        program: program.into(),
        imports: vec![],
        gold: "[6]".into(),
        answer: answer.into(),
    };
    let abduction = |answer: &str| Item::Abduction {
        program: program.into(),
        imports: vec![],
        gold: "[6]".into(),
        answer: answer.into(),
    };
    let out = items(vec![
        deduction("f(3)"),
        deduction("[helper(3)]"),
        deduction("[3 * K]"),
        deduction("[6]"),
        deduction("[2 * 3]"),
        abduction("next(n for n in range(10) if f(n) == [6])"),
        abduction("3"),
        abduction("int('3')"),
    ]);
    for (i, name) in [(0, "f"), (1, "helper"), (2, "K"), (5, "f")] {
        let o = &out[i];
        assert_eq!(o.verdict, Verdict::Error, "{o:?}");
        assert_eq!(o.passed, Some(false), "{o:?}");
        assert_eq!(o.error_type.as_deref(), Some("AnswerUsesProgram"), "{o:?}");
        let message = o.error_message.as_deref().unwrap_or_default();
        assert!(message.contains(&format!("`{name}`")), "{message}");
    }
    for i in [3, 4, 6, 7] {
        assert_eq!(out[i].passed, Some(true), "{:?}", out[i]);
    }
}

#[test]
fn answers_may_use_the_tasks_imports_and_the_programs_own_imports() {
    let program = "from collections import deque\n\ndef f(x):\n    return deque([x, x])";
    let check = |imports: &[&str], answer: &str| Item::Deduction {
        program: program.into(),
        imports: imports.iter().map(|s| (*s).to_owned()).collect(),
        gold: "deque([1, 1])".into(),
        answer: answer.into(),
    };
    let out = items(vec![
        check(&[], "deque([1, 1])"),
        check(&[], "deque([1, 2])"),
        check(&["import collections"], "collections.deque([1, 1])"),
        check(&[], "[1, 1]"),
    ]);
    let passed: Vec<_> = out.iter().map(|o| o.passed).collect();
    assert_eq!(
        passed,
        [Some(true), Some(false), Some(true), Some(false)],
        "{out:?}"
    );
}

#[test]
fn an_answers_nan_is_never_the_golds_nan() {
    // CPython: a NaN equals nothing, and inside containers only the same object.
    let check = |gold: &str, answer: &str| Item::Deduction {
        program: "def f(x):\n    return x".into(),
        imports: vec![],
        gold: gold.into(),
        answer: answer.into(),
    };
    let out = items(vec![
        check("float('nan')", "float('nan')"),
        check("[float('nan')]", "[float('nan')]"),
        check("[1.5]", "[float('1.5')]"),
    ]);
    let passed: Vec<_> = out.iter().map(|o| o.passed).collect();
    assert_eq!(passed, [Some(false), Some(false), Some(true)], "{out:?}");
}

#[test]
fn instances_differ_when_different_slots_are_set() {
    // Slots are compared by name and position, an unset slot as unset: one instance with only
    // `_numerator` set never equals one with only `_denominator` set.
    let made = |slot: &str| {
        format!("(lambda a: (setattr(a, '{slot}', 1), a)[1])(object.__new__(Fraction))")
    };
    let check = |gold: &str, answer: &str| Item::Deduction {
        program: "from fractions import Fraction\n\ndef f(x):\n    return x".into(),
        imports: vec![],
        gold: gold.into(),
        answer: answer.into(),
    };
    let out = items(vec![
        check(&made("_numerator"), &made("_denominator")),
        check(&made("_numerator"), &made("_numerator")),
        check("Fraction(1, 3)", "Fraction(2, 6)"),
    ]);
    let passed: Vec<_> = out.iter().map(|o| o.passed).collect();
    assert_eq!(passed, [Some(false), Some(true), Some(true)], "{out:?}");
}

#[test]
fn validation_refuses_an_output_no_answer_could_state() {
    // An answer may not use the program, so an instance of its class (or a function, a
    // generator, ...) could never be stated: such a task is refused, with the reason.
    for program in [
        "class P:\n    def __init__(self, x):\n        self.x = x\n\ndef f(x):\n    return P(x)",
        "def g():\n    pass\n\ndef f(x):\n    return [g]",
        "def f(x):\n    return (i for i in range(x))",
    ] {
        let o = validate(program, "1");
        assert_eq!(o.verdict, Verdict::Rejected, "{program}: {o:?}");
        assert_eq!(o.error_type.as_deref(), Some("UnanswerableOutput"), "{o:?}");
    }
    // Library classes and builtins are in every instance: an answer can state them.
    for (program, value) in [
        (
            "import collections\ndef f(x):\n    return collections.deque([x])",
            "deque([1])",
        ),
        (
            "from fractions import Fraction\ndef f(x):\n    return Fraction(x, 3)",
            "Fraction(1, 3)",
        ),
        (
            "def f(x):\n    return [len, int]",
            "[<built-in function len>, <class 'int'>]",
        ),
    ] {
        let o = validate(program, "1");
        assert_eq!(o.verdict, Verdict::Ok, "{o:?}");
        assert_eq!(o.value.as_deref(), Some(value));
    }
}

#[test]
fn induction_needs_every_held_out_output() {
    let check = |program: &str| Item::Induction {
        program: program.into(),
        imports: vec![],
        inputs: vec!["1".into(), "2".into(), "3".into()],
        outputs: vec!["2".into(), "4".into(), "6".into()],
    };
    let out = items(vec![
        check("def f(x):\n    return x * 2"),
        check("def f(x):\n    return x + 1"),
        check("def f(x):\n    return x + x"),
    ]);
    let passed: Vec<_> = out.iter().map(|o| o.passed).collect();
    assert_eq!(passed, vec![Some(true), Some(false), Some(true)]);
}

#[test]
fn no_state_crosses_programs_in_one_batch_or_across_batches() {
    let polluter = "import math, builtins\nmath.pi = 3\nbuiltins.len = lambda x: -1\nLEAK = 1\ndef f(x):\n    return x";
    let observer = "import math\ndef f(x):\n    return (math.pi, len('ab'), 'LEAK' in globals())";
    let batch = vec![
        Item::Run {
            program: polluter.into(),
            imports: vec![],
            input: Some("1".into()),
            files: Default::default(),
        },
        Item::Run {
            program: observer.into(),
            imports: vec![],
            input: Some("0".into()),
            files: Default::default(),
        },
    ];
    let out = items(batch);
    assert_eq!(
        out[1].value.as_deref(),
        Some("(3.141592653589793, 2, False)"),
        "{out:?}"
    );
    let again = run(observer, Some("0"));
    assert_eq!(
        again.value.as_deref(),
        Some("(3.141592653589793, 2, False)")
    );
}

#[test]
fn the_same_program_gives_the_same_answer_on_every_run() {
    let program = "import random, time, os\n\
def f(n):\n    \
random.seed()\n    \
return (random.random(), time.time(), hash('azr'), list({'a', 'b', 'c', 'd'}), os.urandom(4).hex(), id(object()) % 1000)";
    let first = run(program, Some("1"));
    assert_eq!(first.verdict, Verdict::Ok, "{first:?}");
    for _ in 0..3 {
        assert_eq!(run(program, Some("1")).value, first.value);
    }
}

#[test]
fn stdlib_modules_that_need_os_import_and_work() {
    let program = "import random, statistics, contextlib, dataclasses, os, os.path, collections, fractions, decimal, json, re, itertools, functools, heapq, string, typing, copy, bisect\n\
@dataclasses.dataclass\nclass P:\n    x: int\n\
def f(xs):\n    \
with contextlib.suppress(ValueError):\n        int('x')\n    \
return (statistics.mean(xs), os.path.join('a', 'b'), P(1).x, random.Random(1).randint(1, 10), str(fractions.Fraction(1, 3)))";
    let o = run(program, Some("[1, 2, 3]"));
    assert_eq!(o.verdict, Verdict::Ok, "{o:?}");
    assert!(
        o.value
            .as_deref()
            .unwrap_or("")
            .starts_with("(2, 'a/b', 1, "),
        "{o:?}"
    );
}

#[test]
fn stdout_is_captured() {
    let o = run("def f(x):\n    print('hello', x)\n    return x", Some("7"));
    assert_eq!(o.stdout, "hello 7\n");
    assert_eq!(o.value.as_deref(), Some("7"));
}

#[test]
fn items_of_one_program_run_in_fresh_namespaces() {
    let program = "counter = [0]\ndef f(x):\n    counter[0] += 1\n    return counter[0]";
    let run_item = || Item::Run {
        program: program.into(),
        imports: vec![],
        input: Some("0".into()),
        files: Default::default(),
    };
    let out = items(vec![run_item(), run_item(), run_item()]);
    for o in out {
        assert_eq!(o.value.as_deref(), Some("1"));
    }
}
