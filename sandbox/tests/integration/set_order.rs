//! Property test: sets iterate in CPython's order, whatever was done to them.
//!
//! Random programs of set operations (seeded, generated here) run in the sandbox and in
//! `PYTHONHASHSEED=0 python3`; after every operation each program records `list(s)`, so a
//! single slot out of place anywhere in a table shows. The keys mix ints (small, large,
//! negative), floats equal to ints, bools, strings of one, two and four bytes per code
//! point, tuples and frozensets; the operations cover displays of constants and of
//! variables, comprehensions, every constructor path (iterable, set, exact dict), the
//! methods and operators that add, remove, combine and copy, `pop`, and the dict views'
//! set operators. `None` and objects hashed by identity are left out: CPython 3.11 hashes
//! them by address, so their order changes from run to run there.

use crate::common;

use std::fmt::Write as _;

use azr_sandbox::{Item, Rules, Verdict};
use serde::Deserialize;

/// Programs per run. Each records 10–30 set states.
const PROGRAMS: usize = 2000;
const SEED: u64 = 0x5e70_07de;

/// SplitMix64: a few lines, and the same sequence on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, options: &[&'a str]) -> &'a str {
        options[self.below(options.len())]
    }
}

/// A hashable constant, as Python source.
fn key(rng: &mut Rng, depth: u32) -> String {
    match rng.below(if depth == 0 { 12 } else { 8 }) {
        0..=2 => format!("{}", rng.below(70)),
        3 => format!("{}", rng.below(5000) as i64 - 2500),
        4 => rng
            .pick(&[
                "2**61 - 1",
                "2**61",
                "-2**61",
                "2**64 + 7",
                "-(2**70)",
                "10**20",
                "-1",
                "-2",
            ])
            .to_owned(),
        5 => rng
            .pick(&[
                "1.5",
                "2.0",
                "-0.0",
                "0.1",
                "1e100",
                "-3.25",
                "True",
                "False",
                "float('inf')",
            ])
            .to_owned(),
        6 | 7 => {
            let len = rng.below(4);
            let s: String = (0..len)
                .map(|_| rng.pick(&["a", "b", "c", "x", "y", "é", "€", "😀", "ß", "Z"]))
                .collect();
            format!("{s:?}")
        }
        8 | 9 => {
            let len = 1 + rng.below(3);
            let items: Vec<String> = (0..len).map(|_| key(rng, depth + 1)).collect();
            format!("({},)", items.join(", "))
        }
        10 => format!("b{:?}", rng.pick(&["", "a", "ab", "xyz", "q"])),
        _ => {
            let len = rng.below(3);
            let items: Vec<String> = (0..len).map(|_| key(rng, depth + 1)).collect();
            format!("frozenset([{}])", items.join(", "))
        }
    }
}

fn keys(rng: &mut Rng, max: usize) -> Vec<String> {
    (0..rng.below(max + 1)).map(|_| key(rng, 0)).collect()
}

/// An expression that makes a new set, by one of the paths that lay tables out differently.
fn new_set(rng: &mut Rng) -> String {
    let k = keys(rng, 14);
    let list = format!("[{}]", k.join(", "));
    match rng.below(10) {
        // A display: of constants only (a frozenset constant when 3 or more), or not.
        0 | 1 if !k.is_empty() => format!("{{{}}}", k.join(", ")),
        2 if !k.is_empty() => format!("{{v for v in {list}}}"),
        3 => format!("set({list})"),
        4 => format!("set(dict.fromkeys({list}))"),
        5 => format!("set(frozenset({list}))"),
        6 if !k.is_empty() => format!("{{*{list}, {}}}", key(rng, 0)),
        7 => format!(
            "set(range({}, {}, {}))",
            rng.below(20),
            20 + rng.below(60),
            1 + rng.below(4)
        ),
        8 => format!(
            "set({:?})",
            rng.pick(&["abracadabra", "mississippi", "", "zyx€é😀"])
        ),
        _ => format!("set({list}) | set([{}])", keys(rng, 8).join(", ")),
    }
}

fn operation(rng: &mut Rng, out: &mut String) {
    let k = key(rng, 0);
    let others = format!("[{}]", keys(rng, 10).join(", "));
    let op = match rng.below(30) {
        0..=3 => format!("s.add({k})"),
        4 => format!("s.discard({k})"),
        5 => format!("if {k} in s: s.remove({k})"),
        6 | 7 => "if s: popped.append(s.pop())".to_owned(),
        8 => "s.clear()".to_owned(),
        9 => format!("s.update({others})"),
        10 => "s.update(t)".to_owned(),
        11 => format!("s.update(dict.fromkeys({others}))"),
        12 => "s |= t".to_owned(),
        13 => "s &= t".to_owned(),
        14 => "s -= t".to_owned(),
        15 => "s ^= t".to_owned(),
        16 => format!("s.intersection_update({others})"),
        17 => format!("s.difference_update({others}, t)"),
        18 => format!("s.symmetric_difference_update({others})"),
        19 => "s = s | t".to_owned(),
        20 => "s = s & t".to_owned(),
        21 => "s = s - t".to_owned(),
        22 => "s = t - s".to_owned(),
        23 => "s = s ^ t".to_owned(),
        24 => format!("s = s.union({others}, t)"),
        25 => format!("s = s.difference(dict.fromkeys({others}))"),
        26 => "s, t = t.copy(), s".to_owned(),
        27 => format!("t = {}", new_set(rng)),
        28 => {
            let d = format!("dict.fromkeys({others})");
            let view = rng.pick(&["-", "|", "&", "^"]);
            format!("s = {d}.keys() {view} s")
        }
        _ => "s = set(frozenset(s))".to_owned(),
    };
    let _ = writeln!(out, "    {op}");
    let _ = writeln!(out, "    states.append(list(s))");
}

fn program(rng: &mut Rng) -> String {
    let mut out = String::from("def f():\n    popped = []\n    states = []\n");
    let _ = writeln!(out, "    s = {}", new_set(rng));
    let _ = writeln!(out, "    t = {}", new_set(rng));
    out.push_str("    states.append(list(s))\n");
    for _ in 0..10 + rng.below(20) {
        operation(rng, &mut out);
    }
    out.push_str("    return states, popped, s, frozenset(t), [hash(x) for x in s]\n");
    out
}

#[derive(Deserialize)]
struct Reference {
    ok: bool,
    value: Option<String>,
    error: Option<String>,
}

#[test]
fn sets_iterate_in_cpython_order_after_any_sequence_of_operations() {
    let mut rng = Rng(SEED);
    let programs: Vec<String> = (0..PROGRAMS).map(|_| program(&mut rng)).collect();

    // CPython at PYTHONHASHSEED=0, through the fidelity test's reference runner.
    let reference: Vec<Reference> = common::cpython_answers_for(&programs, "set-order");
    assert_eq!(reference.len(), programs.len());

    let items = programs
        .iter()
        .map(|p| Item::Run {
            program: p.clone(),
            imports: Vec::new(),
            input: Some(String::new()),
            files: Default::default(),
        })
        .collect();
    let outcomes = common::sandbox().run(items, &azr_sandbox::Limits::default(), &Rules::default());

    let mut states = 0usize;
    let mut differences = Vec::new();
    for ((program, r), o) in programs.iter().zip(&reference).zip(&outcomes) {
        assert!(
            r.ok,
            "a generated program failed in CPython ({}):\n{program}",
            r.error.as_deref().unwrap_or_default()
        );
        states += program.matches("states.append").count();
        if o.verdict != Verdict::Ok || o.value != r.value {
            differences.push(format!(
                "{program}\nCPython: {}\nsandbox: {:?} {}",
                r.value.as_deref().unwrap_or_default(),
                o.verdict,
                o.value
                    .clone()
                    .or_else(|| o.error_line())
                    .unwrap_or_default()
            ));
        }
    }
    println!(
        "set order: {} programs, {states} recorded set states: {} differ from CPython",
        programs.len(),
        differences.len()
    );
    if !differences.is_empty() {
        let report = std::env::temp_dir().join("azr-set-order-differences.txt");
        let _ = std::fs::write(&report, differences.join("\n\n"));
        println!("every difference, in full: {}", report.display());
        for d in differences.iter().take(2) {
            let short: String = d.chars().take(3000).collect();
            println!("{short}\n");
        }
    }
    assert!(
        differences.is_empty(),
        "{} programs differ",
        differences.len()
    );
}

/// Keys whose `__eq__` or `__del__` change the very set being probed: CPython restarts the
/// lookup (or raises) and never crashes, and the sandbox must answer as it does, without
/// deadlocking on the table's lock.
#[test]
fn sets_answer_as_cpython_when_a_key_mutates_the_set_during_a_lookup() {
    let programs = [
        // __eq__ clears the set in the middle of an insertion.
        r#"def f():
    s = set()
    class K:
        def __init__(self, v): self.v = v
        def __hash__(self): return 1
        def __eq__(self, other):
            s.clear()
            return False
    for v in range(6):
        s.add(K(v))
    return len(s), sorted(k.v for k in s)"#,
        // __eq__ adds keys while an insertion probes.
        r#"def f():
    s = set()
    calls = []
    class K:
        def __init__(self, v): self.v = v
        def __hash__(self): return 7
        def __eq__(self, other):
            calls.append(self.v)
            if len(calls) < 20:
                s.add(len(calls) * 1000)
            return self.v == getattr(other, "v", None)
    for v in range(5):
        s.add(K(v))
    return len(s), sorted(x if isinstance(x, int) else -x.v for x in s), len(calls)"#,
        // __del__ of a removed key adds to the set.
        r#"def f():
    s = set()
    log = []
    class K:
        def __hash__(self): return 3
        def __del__(self):
            log.append(len(s))
            s.add(99)
    s.add(K())
    s.add(5)
    s.pop()
    s.clear()
    return sorted(s), log"#,
        // __eq__ raising propagates; the set stays usable.
        r#"def f():
    class K:
        def __hash__(self): return 0
        def __eq__(self, other): raise ValueError("no")
    s = {K()}
    try:
        K() in s
    except ValueError as e:
        caught = str(e)
    s.add(0) if False else None
    return caught, len(s)"#,
        // Changing the size while iterating.
        r#"def f():
    s = set(range(10))
    try:
        for x in s:
            s.add(x + 100)
    except RuntimeError as e:
        return str(e), len(s)"#,
        // pop until empty, then KeyError; sets as keys go through frozensets.
        r#"def f():
    s = {3, 1, 4, 1, 5, 9, 2, 6}
    out = [s.pop() for _ in range(len(s))]
    try:
        s.pop()
    except KeyError as e:
        out.append(str(e))
    t = {frozenset({1, 2}), frozenset()}
    out.append({1, 2} in t)
    t.remove({1, 2})
    out.append(t)
    out.append(hash(frozenset({1, 2})) == hash(frozenset({2, 1})))
    return out"#,
    ];
    let programs: Vec<String> = programs.iter().map(|p| p.to_string()).collect();
    let reference: Vec<Reference> = common::cpython_answers_for(&programs, "set-mutation");
    for (program, r) in programs.iter().zip(&reference) {
        let o = common::run(program, Some(""));
        assert_eq!(o.verdict, Verdict::Ok, "{program}\n{:?}", o.error_line());
        assert!(r.ok, "{program}\nCPython: {:?}", r.error);
        assert_eq!(o.value, r.value, "{program}");
    }
}
