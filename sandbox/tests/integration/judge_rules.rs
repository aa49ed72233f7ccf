//! The judge compares as CPython's `==` does on plain data: each pair below is judged by the
//! sandbox (a deduction check) and by `python3` (`eval(gold) == eval(answer)` after the
//! program), and the verdicts must agree, except for the documented differences in
//! [`DIFFERENCES`] (SECURITY.md, *The judge*).

use crate::common;

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
    cpython_eq_of(PAIRS)
}

/// [`cpython_eq`] for any `(program, gold, answer)` triples.
fn cpython_eq_of(pairs: &[(&str, &str, &str)]) -> Vec<bool> {
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
    let input = serde_json::to_string(pairs).expect("JSON");
    let output = common::python3(script, input.as_bytes());
    assert!(output.status.success(), "python3 failed");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| l == "true")
        .collect()
}

/// A small deterministic generator (xorshift*), so that a failure names a reproducible case.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, options: &[&'a str]) -> &'a str {
        options[self.below(options.len())]
    }
}

/// A hashable plain value, as Python source.
fn hashable(rng: &mut Rng, depth: u32) -> String {
    match rng.below(if depth == 0 { 9 } else { 11 }) {
        0 => rng
            .pick(&[
                "0",
                "1",
                "-1",
                "7",
                "2**53",
                "2**53 + 1",
                "10**30",
                "-10**30",
            ])
            .into(),
        1 => rng
            .pick(&[
                "0.0",
                "-0.0",
                "1.0",
                "0.5",
                "1e16",
                "2.0**53",
                "float('inf')",
                "float('nan')",
            ])
            .into(),
        2 => rng.pick(&["True", "False", "None", "..."]).into(),
        3 => rng.pick(&["1j", "1+0j", "complex(0.5, -1)", "0j"]).into(),
        4 => rng
            .pick(&[
                "''",
                "'a'",
                "'ab'",
                "'\\u00e9'",
                "'e\\u0301'",
                "'\\U0001f600'",
            ])
            .into(),
        5 => rng.pick(&["b''", "b'a'", "b'\\xff'"]).into(),
        6 => rng
            .pick(&["range(3)", "range(0)", "range(1, 7, 2)", "range(5, 2)"])
            .into(),
        7 | 8 => rng.pick(&["1", "1.0", "True", "'1'", "(1,)"]).into(),
        9 => {
            let n = rng.below(3);
            let items: Vec<String> = (0..n).map(|_| hashable(rng, depth - 1)).collect();
            if n == 1 {
                format!("({},)", items[0])
            } else {
                format!("({})", items.join(", "))
            }
        }
        _ => {
            let items: Vec<String> = (0..rng.below(3))
                .map(|_| hashable(rng, depth - 1))
                .collect();
            format!("frozenset([{}])", items.join(", "))
        }
    }
}

/// A plain value, as Python source.
fn value(rng: &mut Rng, depth: u32) -> String {
    if depth == 0 {
        return hashable(rng, 0);
    }
    let n = rng.below(4);
    match rng.below(6) {
        0 => format!(
            "[{}]",
            (0..n)
                .map(|_| value(rng, depth - 1))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        1 => format!(
            "{{{}}}",
            (0..n)
                .map(|_| format!("{}: {}", hashable(rng, 1), value(rng, depth - 1)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        2 => format!(
            "set([{}])",
            (0..n)
                .map(|_| hashable(rng, 1))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        3 => format!("bytearray({})", rng.pick(&["b''", "b'a'", "b'ab'"])),
        _ => hashable(rng, depth),
    }
}

/// A second value to compare with `a`: itself, a variation of it, or another value.
fn partner(rng: &mut Rng, a: &str) -> String {
    match rng.below(5) {
        0 => a.to_owned(),
        1 => a.replacen('1', "1.0", 1),
        2 => a.replace("True", "1").replace("0.0", "0"),
        3 => a.replacen('[', "(", 1).replacen(']', ",)", 1),
        _ => value(rng, 2),
    }
}

#[test]
fn random_plain_values_compare_as_cpython_compares_them() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let pairs: Vec<(String, String)> = (0..400)
        .map(|_| {
            let a = value(&mut rng, 3);
            let b = partner(&mut rng, &a);
            (a, b)
        })
        .collect();
    let items: Vec<Item> = pairs
        .iter()
        .map(|(gold, answer)| Item::Deduction {
            program: "def f(x):\n    return x".into(),
            imports: vec![],
            gold: gold.clone(),
            answer: answer.clone(),
        })
        .collect();
    let outcomes = common::items(items);
    let triples: Vec<(&str, &str, &str)> = pairs
        .iter()
        .map(|(g, a)| ("", g.as_str(), a.as_str()))
        .collect();
    let cpython = cpython_eq_of(&triples);
    let mut disagreements = Vec::new();
    let mut equal = 0;
    for (((gold, answer), outcome), expected) in pairs.iter().zip(&outcomes).zip(cpython) {
        let ours = outcome.passed == Some(true);
        equal += usize::from(expected);
        if ours != expected {
            disagreements.push(format!(
                "{gold} == {answer}: CPython {expected}, sandbox {ours} ({outcome:?})"
            ));
        }
    }
    // Enough of both kinds for the comparison to mean something.
    assert!((80..=320).contains(&equal), "{equal} of 400 pairs equal");
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}
