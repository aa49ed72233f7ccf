//! The judge compares as CPython's `==` does on plain data: each pair below is judged by the
//! sandbox (a deduction check) and by `python3` (`eval(gold) == eval(answer)` after the
//! program), and the verdicts must agree, except for the documented differences in
//! [`DIFFERENCES`] (SECURITY.md, *The judge*).

mod common;

use azr_sandbox::Item;

/// `(program, gold, answer)`.
const PAIRS: &[(&str, &str, &str)] = &[
    ("", "1", "1.0"),
    ("", "1", "True"),
    ("", "0", "-0.0"),
    ("", "1", "1+0j"),
    ("", "2**53 + 1", "2.0**53"),
    ("", "0.1 + 0.2", "0.3"),
    ("", "10**400", "10**400"),
    ("", "10**400", "10**400 + 1"),
    ("", "float('inf')", "1e999"),
    ("", "float('nan')", "float('nan')"),
    ("", "[float('nan')]", "[float('nan')]"),
    ("import math", "[math.nan]", "[math.nan]"),
    ("import math", "math.nan", "math.nan"),
    ("", "1", "'1'"),
    ("", "b'a'", "bytearray(b'a')"),
    ("", "'a'", "b'a'"),
    ("", "[1, 2]", "(1, 2)"),
    ("", "(1, 2)", "(1, 2)"),
    ("", "(1,)", "[1]"),
    ("", "{1: 2, 3: 4}", "{3: 4, 1: 2}"),
    ("", "{1: 'a'}", "{1.0: 'a'}"),
    ("", "{1: 'a'}", "{True: 'a'}"),
    ("", "{1: 2}", "{1: 3}"),
    ("", "{1, 2}", "frozenset({2, 1})"),
    ("", "{1, 2}", "{1, 2, 3}"),
    ("", "{1, 2}", "{1.0, 2}"),
    ("", "set()", "frozenset()"),
    ("", "{}", "dict()"),
    ("", "{}", "set()"),
    ("", "range(0)", "range(5, 2)"),
    ("", "range(0, 3)", "range(0, 3, 1)"),
    ("", "range(0, 1, 2)", "range(0, 1, 3)"),
    ("", "range(0, 4, 2)", "range(0, 4, 1)"),
    ("", "range(3)", "[0, 1, 2]"),
    ("", "None", "None"),
    ("", "None", "0"),
    ("", "...", "Ellipsis"),
    ("", "[[1, [2, [3]]]]", "[[1, [2, [3]]]]"),
    ("", "{'a': [1, {2: 3}]}", "{'a': [1, {2: 3}]}"),
    ("", "{'a': [1, {2: 3}]}", "{'a': [1, {2: 4}]}"),
    ("", "'é'", "'e\\u0301'"),
    ("", "'\\ud800'", "'\\ud800'"),
    ("", "[1, [2]]", "[1, (2,)]"),
    ("", "complex(1, 2)", "1+2j"),
    ("", "complex(1, 2)", "1-2j"),
    ("", "{(1, 2): 3}", "{(1.0, 2): 3}"),
    ("", "{frozenset({1}): 2}", "{frozenset({1.0}): 2}"),
    ("", "''", "str()"),
    ("", "1e16", "10**16"),
    ("", "2**63", "9223372036854775808.0"),
    ("", "[True]", "[1.0]"),
    ("", "[1, 2, 3]", "[1, 2]"),
    ("", "[[]] * 3", "[[], [], []]"),
    ("", "True", "1 == 1"),
    ("", "{1: 2}.keys()", "{1}"),
    ("", "{1: 2, 3: 4}.keys()", "{3: 0, 1: 0}.keys()"),
    ("", "{1: 2}.items()", "{(1, 2)}"),
    ("", "{1: 2}.items()", "{(1, 3)}"),
    ("", "{1: 2}.values()", "{1: 2}.values()"),
    ("", "int", "int"),
    ("", "int", "type(1)"),
    ("", "len", "len"),
    ("", "len", "max"),
    (
        "from collections import deque",
        "deque([1, 2])",
        "deque([1, 2])",
    ),
    (
        "from collections import deque",
        "deque([1, 2])",
        "deque([2, 1])",
    ),
    ("from collections import deque", "deque([1, 2])", "[1, 2]"),
    (
        "from collections import Counter",
        "Counter({'a': 1})",
        "{'a': 1}",
    ),
    (
        "from collections import Counter",
        "Counter('aab')",
        "Counter({'a': 2, 'b': 1})",
    ),
    (
        "from collections import OrderedDict",
        "OrderedDict(a=1)",
        "{'a': 1}",
    ),
    (
        "from collections import defaultdict",
        "defaultdict(int, {1: 2})",
        "{1: 2}",
    ),
    (
        "from collections import namedtuple\nP = namedtuple('P', 'x y')",
        "P(1, 2)",
        "(1, 2)",
    ),
    (
        "from collections import namedtuple\nP = namedtuple('P', 'x y')",
        "P(1, 2)",
        "P(1, 3)",
    ),
    (
        "from dataclasses import dataclass\n@dataclass\nclass P:\n    x: int\n    y: list",
        "P(1, [2])",
        "P(1, [2])",
    ),
    (
        "from dataclasses import dataclass\n@dataclass\nclass P:\n    x: int\n    y: list",
        "P(1, [2])",
        "P(1, [3])",
    ),
    ("class L(list):\n    pass", "L([1, 2])", "[1, 2]"),
    ("class S(str):\n    pass", "S('ab')", "'ab'"),
    ("class I(int):\n    pass", "I(3)", "3.0"),
    (
        "class Node:\n    def __init__(self, v, n=None):\n        self.v, self.n = v, n",
        "Node(1, Node(2))",
        "Node(1, Node(2))",
    ),
    (
        "class Node:\n    def __init__(self, v, n=None):\n        self.v, self.n = v, n",
        "Node(1, Node(2))",
        "Node(1, Node(3))",
    ),
    (
        "from fractions import Fraction",
        "Fraction(1, 2)",
        "Fraction(2, 4)",
    ),
    (
        "from fractions import Fraction",
        "Fraction(1, 2)",
        "Fraction(1, 3)",
    ),
    ("from fractions import Fraction", "Fraction(1, 2)", "0.5"),
    // Answers evaluated where the program never ran: `math.nan` is still the one object.
    ("import math", "[math.nan, 1]", "[math.nan, 1]"),
    ("import cmath", "[cmath.nanj]", "[cmath.nanj]"),
    (
        "",
        "[complex(float('nan'), 1)]",
        "[complex(float('nan'), 1)]",
    ),
    ("", "complex(float('nan'), 1)", "complex(float('nan'), 1)"),
    ("", "{complex(-0.0, 1)}", "{complex(0.0, 1)}"),
    // Order counts between two OrderedDicts, not against a dict.
    (
        "from collections import OrderedDict",
        "OrderedDict([(1, 2), (3, 4)])",
        "OrderedDict([(3, 4), (1, 2)])",
    ),
    (
        "from collections import OrderedDict",
        "OrderedDict([(1, 2), (3, 4)])",
        "OrderedDict([(1, 2), (3, 4)])",
    ),
    (
        "from collections import OrderedDict",
        "OrderedDict([(1, 2), (3, 4)])",
        "{3: 4, 1: 2}",
    ),
    // A deque subclass's attributes do not take part in `==`.
    (
        "from collections import deque\nclass D(deque):\n    pass\nd = D([1, 2])\nd.tag = 'x'",
        "d",
        "deque([1, 2])",
    ),
    // Big integers in sets (hashed by their digits, not a decimal string).
    ("", "{10**5000, 1}", "{1, 10**5000}"),
    ("", "{10**5000: 1}", "{10**5000 + 1: 1}"),
    // Deeper than serde_json's default limit, within the judge's.
    (
        "",
        "eval('[' * 150 + ']' * 150)",
        "eval('[' * 150 + ']' * 150)",
    ),
    (
        "",
        "eval('[' * 150 + '1' + ']' * 150)",
        "eval('[' * 150 + '2' + ']' * 150)",
    ),
    (
        "import array",
        "array.array('i', [1])",
        "array.array('i', [1])",
    ),
];

/// Pairs where the judge differs from CPython's `==` on purpose, and why.
const DIFFERENCES: &[(&str, &str, &str)] = &[
    // An answer may not use the program: one that builds the program's dataclass is
    // refused (`AnswerUsesProgram`), where CPython, running it, finds it equal.
    (
        "P(1, [2])",
        "P(1, [2])",
        "an answer cannot use the program's classes",
    ),
    // A `Fraction` (a Python-level class) is an instance: equal to `Fraction`s of the same
    // value, not to other numbers.
    (
        "Fraction(1, 2)",
        "0.5",
        "Fraction is compared as an instance",
    ),
    // `array.array` keeps its items where only its own code reads them: it equals only
    // itself, and an answer's array is never the gold's.
    (
        "array.array('i', [1])",
        "array.array('i', [1])",
        "arrays compare by identity",
    ),
];

#[test]
fn the_judge_agrees_with_cpython_eq_on_plain_data() {
    let items: Vec<Item> = PAIRS
        .iter()
        .map(|(program, gold, answer)| Item::Deduction {
            program: format!("{program}\ndef f(x):\n    return x"),
            imports: vec![],
            gold: (*gold).into(),
            answer: (*answer).into(),
        })
        .collect();
    let outcomes = common::items(items);
    let cpython = cpython_eq();
    let mut disagreements = Vec::new();
    for (((program, gold, answer), outcome), expected) in PAIRS.iter().zip(&outcomes).zip(cpython) {
        let ours = outcome.passed == Some(true);
        let documented = DIFFERENCES.iter().any(|(g, a, _)| g == gold && a == answer);
        if ours != expected && !documented {
            disagreements.push(format!(
                "{gold} == {answer} (program {program:?}): CPython {expected}, sandbox {ours} \
                 ({outcome:?})"
            ));
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}

/// `eval(gold) == eval(answer)` in `python3` for every pair, after its program.
fn cpython_eq() -> Vec<bool> {
    let script = r#"
import json, sys
for pair in json.load(sys.stdin):
    program, gold, answer = pair
    ns = {}
    exec(program, ns)
    try:
        print(json.dumps(bool(eval(gold, ns) == eval(answer, ns))))
    except Exception:
        print("false")
"#;
    let input = serde_json::to_string(PAIRS).expect("JSON");
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .env("PYTHONHASHSEED", "0")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("written");
    }
    let output = child.wait_with_output().expect("python3 ends");
    assert!(output.status.success(), "python3 failed");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| l == "true")
        .collect()
}
