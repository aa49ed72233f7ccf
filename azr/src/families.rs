//! Graded program families: small Python programs for deduction and abduction, generated
//! from templates with random constants, in three levels of difficulty.
//!
//! A 0.5B model solves almost none of the programs AZR's seed set holds, which leaves a
//! learner nothing but the answer format to learn. These families start where such a model
//! solves some (a one-line arithmetic function) and grow by one idea per level (a second
//! operation, then a branch or a loop), so a run can be given tasks where its accuracy
//! leaves room both ways, and measured on held-out programs of the same kinds.
//!
//! Everything is deterministic given the seed. The split into train and held-out is a
//! function of the program's *text* ([`split_of`]), so no program is in both, whatever seed
//! or count drew it; programs of one template with other constants are in both, by design
//! (the skill is the template's, the answer the constants').
//!
//! Outputs are not computed here: the sandbox runs every program as it validates a
//! proposal, and a program it refuses (an error, a non-deterministic value) is dropped.

use std::collections::BTreeSet;
use std::fmt;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::AzrError;
use crate::buffer::{fnv1a, fnv1a_hex};
use crate::rng::SplitMix64;
use crate::task::Triplet;

/// A kind of program, each with levels 1 to [`LEVELS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// Integer arithmetic: one operation, two, then a branch on the value.
    Arithmetic,
    /// Slices, case and replacement of a string.
    Strings,
    /// List comprehensions with a map, a filter, then both with an aggregate.
    Comprehension,
    /// `for` loops that accumulate, with a condition, then over a range.
    Loop,
    /// Dictionary look-ups, defaults, then counting into a dictionary.
    Dict,
    /// `sorted` plain, with a key, then with a tuple key and a slice.
    Sorting,
    /// Small recursions: a countdown, a step with a base case, then digits or two calls.
    Recursion,
}

/// Levels per family: 1 is one idea, each level adds one.
pub const LEVELS: u8 = 3;

impl Family {
    pub const ALL: [Family; 7] = [
        Family::Arithmetic,
        Family::Strings,
        Family::Comprehension,
        Family::Loop,
        Family::Dict,
        Family::Sorting,
        Family::Recursion,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Family::Arithmetic => "arithmetic",
            Family::Strings => "strings",
            Family::Comprehension => "comprehension",
            Family::Loop => "loop",
            Family::Dict => "dict",
            Family::Sorting => "sorting",
            Family::Recursion => "recursion",
        }
    }

    pub fn from_name(name: &str) -> Option<Family> {
        Family::ALL.into_iter().find(|f| f.name() == name)
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which side of the train/held-out split a program is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    Train,
    /// Programs of the training side kept out of training, on which runs' settings are
    /// chosen (so that the held-out programs judge only the finished experiment).
    Validation,
    HeldOut,
}

impl Split {
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Validation => "validation",
            Split::HeldOut => "held_out",
        }
    }

    pub fn from_name(name: &str) -> Option<Split> {
        match name {
            "train" => Some(Split::Train),
            "validation" => Some(Split::Validation),
            "held_out" | "held-out" => Some(Split::HeldOut),
            _ => None,
        }
    }
}

/// The split `program` belongs to: a function of its text alone. One program in four is
/// held out (residues 0 and 4 of its hash modulo 8), one in eight is for validation
/// (residue 1), the rest (five in eight) are trained on.
pub fn split_of(program: &str) -> Split {
    // The low bits of FNV-1a follow the last byte closely; mix before taking the residue.
    match SplitMix64::new(fnv1a(program.bytes())).next_u64() % 8 {
        0 | 4 => Split::HeldOut,
        1 => Split::Validation,
        _ => Split::Train,
    }
}

/// A generated program and the input it is called with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FamilyProgram {
    /// `<family>-<level>-<hash of the program and input>`: stable across runs and seeds.
    pub id: String,
    pub family: Family,
    pub level: u8,
    pub split: Split,
    /// Python source defining `f`.
    pub program: String,
    /// `f`'s argument list, as Python source.
    pub input: String,
}

/// `count` distinct programs of `family` at `level` on the `split` side, drawn from `seed`.
/// Fails when the template space is too small to give that many (some cells have only a
/// hundred or so program texts, shared out among the sides; the held-out counts the
/// experiments ask for, 64 per cell, are pinned by a test).
pub fn generate(
    family: Family,
    level: u8,
    split: Split,
    count: usize,
    seed: u64,
) -> Result<Vec<FamilyProgram>, AzrError> {
    if !(1..=LEVELS).contains(&level) {
        return Err(AzrError::Config(format!(
            "level {level}: families have levels 1 to {LEVELS}"
        )));
    }
    let stream =
        (Family::ALL.iter().position(|&f| f == family).unwrap_or(0) as u64) * 16 + u64::from(level);
    let mut mix = SplitMix64::new(seed ^ stream.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut rng = StdRng::seed_from_u64(mix.next_u64());
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(count);
    let attempts = 200 * count.max(1) + 1000;
    for _ in 0..attempts {
        if out.len() == count {
            break;
        }
        let (program, input) = draw(family, level, &mut Draw(&mut rng));
        if split_of(&program) != split || !seen.insert((program.clone(), input.clone())) {
            continue;
        }
        let id = format!(
            "{family}-{level}-{}",
            &fnv1a_hex(program.bytes().chain([0]).chain(input.bytes()))[..12]
        );
        out.push(FamilyProgram {
            id,
            family,
            level,
            split,
            program,
            input,
        });
    }
    if out.len() < count {
        return Err(AzrError::Config(format!(
            "{family} level {level} gave {} distinct {} programs of the {count} asked",
            out.len(),
            split.name()
        )));
    }
    Ok(out)
}

/// Reads a family cell, `family/level` (`arithmetic/1`).
pub fn parse_cell(text: &str) -> Result<(Family, u8), AzrError> {
    let bad = || {
        let known: Vec<&str> = Family::ALL.iter().map(|f| f.name()).collect();
        AzrError::Config(format!(
            "family cell `{text}`: expected FAMILY/LEVEL, a family of {} and a level 1 to {LEVELS}",
            known.join(", ")
        ))
    };
    let (name, level) = text.trim().split_once('/').ok_or_else(bad)?;
    let family = Family::from_name(name).ok_or_else(bad)?;
    let level: u8 = level.parse().map_err(|_| bad())?;
    if !(1..=LEVELS).contains(&level) {
        return Err(bad());
    }
    Ok((family, level))
}

/// `per_cell` train-split programs of each cell (`family/level`), as seed programs: the
/// sandbox computes their outputs as it seeds the buffers.
pub fn seed_triplets(
    cells: &[String],
    per_cell: usize,
    seed: u64,
) -> Result<Vec<Triplet>, AzrError> {
    let mut out = Vec::new();
    for cell in cells {
        let (family, level) = parse_cell(cell)?;
        for p in generate(family, level, Split::Train, per_cell, seed)? {
            out.push(Triplet {
                program: p.program,
                input: p.input,
                output: String::new(),
                imports: vec![],
            });
        }
    }
    Ok(out)
}

/// Random constants for the templates.
struct Draw<'a>(&'a mut StdRng);

const WORDS: [&str; 32] = [
    "apple", "river", "stone", "cloud", "tiger", "maple", "ocean", "pixel", "lemon", "robot",
    "candle", "forest", "planet", "silver", "window", "garden", "bridge", "castle", "dragon",
    "energy", "falcon", "guitar", "harbor", "island", "jungle", "kettle", "ladder", "meadow",
    "needle", "orange", "pepper", "quartz",
];

impl Draw<'_> {
    fn int(&mut self, lo: i64, hi: i64) -> i64 {
        self.0.random_range(lo..=hi)
    }

    fn index(&mut self, n: usize) -> usize {
        self.0.random_range(0..n)
    }

    fn pick<'s>(&mut self, options: &[&'s str]) -> &'s str {
        options[self.index(options.len())]
    }

    fn word(&mut self) -> &'static str {
        WORDS[self.index(WORDS.len())]
    }

    fn list(&mut self, len: (usize, usize), lo: i64, hi: i64) -> Vec<i64> {
        let n = self.0.random_range(len.0..=len.1);
        (0..n).map(|_| self.int(lo, hi)).collect()
    }

    fn words(&mut self, n: usize) -> Vec<&'static str> {
        (0..n).map(|_| self.word()).collect()
    }
}

fn py_list(values: &[i64]) -> String {
    let items: Vec<String> = values.iter().map(i64::to_string).collect();
    format!("[{}]", items.join(", "))
}

fn py_str_list(values: &[&str]) -> String {
    let items: Vec<String> = values.iter().map(|w| format!("'{w}'")).collect();
    format!("[{}]", items.join(", "))
}

/// One program and input of `family` at `level`.
fn draw(family: Family, level: u8, d: &mut Draw) -> (String, String) {
    match family {
        Family::Arithmetic => arithmetic(level, d),
        Family::Strings => strings(level, d),
        Family::Comprehension => comprehension(level, d),
        Family::Loop => loops(level, d),
        Family::Dict => dict(level, d),
        Family::Sorting => sorting(level, d),
        Family::Recursion => recursion(level, d),
    }
}

fn arithmetic(level: u8, d: &mut Draw) -> (String, String) {
    let (a, b, c) = (d.int(2, 9), d.int(1, 12), d.int(1, 20));
    let x = d.int(-5, 30);
    let program = match (level, d.index(3)) {
        (1, 0) => format!("def f(x):\n    return x + {c}"),
        (1, 1) => format!("def f(x):\n    return x - {c}"),
        (1, _) => format!("def f(x):\n    return x * {a}"),
        (2, 0) => format!("def f(x):\n    return x * {a} + {b}"),
        (2, 1) => format!("def f(x):\n    return (x - {b}) * {a}"),
        (2, _) => format!("def f(x):\n    return x // {a} + x % {a}"),
        (_, 0) => format!(
            "def f(x):\n    y = x * {a}\n    if y > {c}:\n        return y - {b}\n    return y + {b}"
        ),
        (_, 1) => format!(
            "def f(x):\n    if x % {a} == 0:\n        return x // {a}\n    return x * {a} + {b}"
        ),
        (_, _) => format!("def f(x):\n    y = x + {b}\n    z = y * y\n    return z - {c}"),
    };
    (program, x.to_string())
}

fn strings(level: u8, d: &mut Draw) -> (String, String) {
    let s = d.word();
    let (i, j) = (d.int(0, 2), d.int(3, 5));
    let suffix = d.word();
    let letters = ["a", "e", "i", "o", "r", "n", "t", "l"];
    let (c1, c2) = (d.pick(&letters), d.pick(&["x", "z", "_", "-"]));
    let program = match (level, d.index(4)) {
        (1, 0) => "def f(s):\n    return s.upper()".to_owned(),
        (1, 1) => "def f(s):\n    return s[::-1]".to_owned(),
        (1, 2) => format!("def f(s):\n    return s[{i}:]"),
        (1, _) => format!("def f(s):\n    return s + '{}'", &suffix[..3]),
        (2, 0) => format!("def f(s):\n    return s[{i}:{j}].upper()"),
        (2, 1) => format!("def f(s):\n    return s.replace('{c1}', '{c2}')"),
        (2, 2) => format!("def f(s):\n    return s[::-1][:{j}]"),
        (2, _) => format!("def f(s):\n    return s[:{i}] + s[{j}:].upper()"),
        (_, 0) => {
            "def f(s):\n    return ''.join(c.upper() if i % 2 == 0 else c for i, c in enumerate(s))"
                .to_owned()
        }
        (_, 1) => format!("def f(s):\n    return s.count('{c1}') * {j} + len(s)"),
        (_, 2) => format!(
            "def f(s):\n    out = ''\n    for c in s:\n        if c in 'aeiou':\n            out += '{c2}'\n        else:\n            out += c\n    return out"
        ),
        (_, _) => format!(
            "def f(s):\n    return '-'.join(s[k:k + 2] for k in range(0, len(s), {}))",
            i + 2
        ),
    };
    (program, format!("'{s}'"))
}

fn comprehension(level: u8, d: &mut Draw) -> (String, String) {
    let xs = d.list((3, 5), 0, 12);
    let (a, b, k) = (d.int(2, 5), d.int(1, 9), d.int(2, 4));
    let program = match (level, d.index(3)) {
        (1, 0) => format!("def f(xs):\n    return [v * {a} for v in xs]"),
        (1, 1) => format!("def f(xs):\n    return [v for v in xs if v > {}]", b + 1),
        (1, _) => format!("def f(xs):\n    return [v + {b} for v in xs]"),
        (2, 0) => format!("def f(xs):\n    return [v * {a} for v in xs if v % 2 == 0]"),
        (2, 1) => format!("def f(xs):\n    return len([v for v in xs if v > {b}])"),
        (2, _) => format!("def f(xs):\n    return [v - {b} for v in xs if v % {k} != 0]"),
        (_, 0) => format!("def f(xs):\n    return sum(v * v for v in xs if v % {k} == 1)"),
        (_, 1) => {
            format!("def f(xs):\n    return [(i, v) for i, v in enumerate(xs) if v > {b}][:{k}]")
        }
        (_, _) => format!("def f(xs):\n    return max([v % {a} + v // {a} for v in xs])"),
    };
    (program, py_list(&xs))
}

fn loops(level: u8, d: &mut Draw) -> (String, String) {
    let xs = d.list((3, 5), 0, 12);
    let (a, b) = (d.int(1, 9), d.int(2, 4));
    match (level, d.index(3)) {
        (1, 0) => (
            "def f(xs):\n    total = 0\n    for v in xs:\n        total += v\n    return total"
                .to_owned(),
            py_list(&xs),
        ),
        (1, 1) => (
            format!(
                "def f(xs):\n    total = {a}\n    for v in xs:\n        total += {b}\n    return total"
            ),
            py_list(&xs),
        ),
        (1, _) => (
            "def f(xs):\n    best = xs[0]\n    for v in xs:\n        if v > best:\n            best = v\n    return best"
                .to_owned(),
            py_list(&xs),
        ),
        (2, 0) => (
            format!(
                "def f(xs):\n    total = 0\n    for v in xs:\n        if v > {a}:\n            total += v\n        else:\n            total -= 1\n    return total"
            ),
            py_list(&xs),
        ),
        (2, 1) => (
            format!(
                "def f(xs):\n    count = 0\n    for v in xs:\n        if v % {b} == 0:\n            count += 1\n    return count"
            ),
            py_list(&xs),
        ),
        (2, _) => (
            format!(
                "def f(xs):\n    out = []\n    for v in xs:\n        out.append(v * {b})\n    return out[::-1]"
            ),
            py_list(&xs),
        ),
        (_, 0) => {
            let n = d.int(3, 6);
            (
                format!(
                    "def f(n):\n    acc = {a}\n    for i in range(n):\n        acc = acc * 2 + i\n    return acc"
                ),
                n.to_string(),
            )
        }
        (_, 1) => (
            format!(
                "def f(xs):\n    total = 0\n    for i, v in enumerate(xs):\n        if i % 2 == 0:\n            total += v\n        else:\n            total -= v * {b}\n    return total"
            ),
            py_list(&xs),
        ),
        (_, _) => {
            let n = d.int(4, 9);
            (
                format!(
                    "def f(n):\n    a, b = 0, {a}\n    for _ in range(n):\n        a, b = b, a + b\n    return a"
                ),
                n.to_string(),
            )
        }
    }
}

fn dict(level: u8, d: &mut Draw) -> (String, String) {
    let keys = ["a", "b", "c", "d", "e"];
    let values: Vec<i64> = (0..keys.len()).map(|_| d.int(1, 20)).collect();
    let table: Vec<String> = keys
        .iter()
        .zip(&values)
        .map(|(k, v)| format!("'{k}': {v}"))
        .collect();
    let table = format!("{{{}}}", table.join(", "));
    let key = d.pick(&keys);
    let missing = d.pick(&["x", "y", "z"]);
    let default = d.int(0, 9);
    let word = d.word();
    match (level, d.index(3)) {
        (1, 0) => (
            format!("def f(k):\n    d = {table}\n    return d[k]"),
            format!("'{key}'"),
        ),
        (1, 1) => (
            format!("def f(k):\n    d = {table}\n    return d.get(k, {default})"),
            format!("'{}'", if d.index(2) == 0 { key } else { missing }),
        ),
        (1, _) => (
            format!("def f(k):\n    d = {table}\n    return k in d"),
            format!("'{}'", if d.index(2) == 0 { key } else { missing }),
        ),
        (2, 0) => {
            let other = d.pick(&keys);
            (
                format!("def f(k1, k2):\n    d = {table}\n    return d[k1] + d.get(k2, {default})"),
                format!("'{key}', '{other}'"),
            )
        }
        (2, 1) => (
            format!("def f(k):\n    d = {table}\n    d[k] = d.get(k, 0) + {default}\n    return sorted(d.values())[-2:]"),
            format!("'{}'", if d.index(2) == 0 { key } else { missing }),
        ),
        (2, _) => (
            format!("def f(s):\n    d = {table}\n    return sum(d.get(c, {default}) for c in s)"),
            format!("'{}'", &word[..3]),
        ),
        (_, 0) => (
            "def f(s):\n    counts = {}\n    for c in s:\n        counts[c] = counts.get(c, 0) + 1\n    return counts"
                .to_owned(),
            format!("'{word}'"),
        ),
        (_, 1) => (
            "def f(s):\n    counts = {}\n    for c in s:\n        counts[c] = counts.get(c, 0) + 1\n    return max(counts, key=counts.get)"
                .to_owned(),
            format!("'{word}{}'", &word[1..3]),
        ),
        (_, _) => (
            format!("def f(k):\n    d = {table}\n    return {{v: k for k, v in d.items() if v > {}}}", default + 5),
            format!("'{key}'"),
        ),
    }
}

fn sorting(level: u8, d: &mut Draw) -> (String, String) {
    let xs = d.list((4, 6), -9, 20);
    let n = d.0.random_range(3..=5);
    let ws = d.words(n);
    let (a, k) = (d.int(2, 5), d.int(1, 3));
    match (level, d.index(3)) {
        (1, 0) => ("def f(xs):\n    return sorted(xs)".to_owned(), py_list(&xs)),
        (1, 1) => (
            "def f(xs):\n    return sorted(xs, reverse=True)".to_owned(),
            py_list(&xs),
        ),
        (1, _) => (
            format!("def f(xs):\n    return sorted(xs)[:{k}]"),
            py_list(&xs),
        ),
        (2, 0) => (
            "def f(ws):\n    return sorted(ws, key=len)".to_owned(),
            py_str_list(&ws),
        ),
        (2, 1) => (
            format!("def f(xs):\n    return sorted(xs, key=lambda v: v % {a})"),
            py_list(&xs),
        ),
        (2, _) => (
            "def f(xs):\n    return sorted(xs, key=abs)".to_owned(),
            py_list(&xs),
        ),
        (_, 0) => (
            format!(
                "def f(ws):\n    return sorted(ws, key=lambda w: (len(w), w))[:{}]",
                k + 1
            ),
            py_str_list(&ws),
        ),
        (_, 1) => {
            let pairs: Vec<String> = (0..4)
                .map(|_| format!("({}, {})", d.int(0, 5), d.int(0, 3)))
                .collect();
            (
                "def f(ps):\n    return sorted(ps, key=lambda p: (p[1], -p[0]))".to_owned(),
                format!("[{}]", pairs.join(", ")),
            )
        }
        (_, _) => (
            format!(
                "def f(ws):\n    return [w[{}] for w in sorted(ws, reverse=True)]",
                k - 1
            ),
            py_str_list(&ws),
        ),
    }
}

fn recursion(level: u8, d: &mut Draw) -> (String, String) {
    let (a, b, c, k) = (d.int(1, 4), d.int(0, 9), d.int(1, 5), d.int(2, 4));
    match (level, d.index(2)) {
        (1, 0) => (
            format!("def f(n):\n    if n == 0:\n        return {b}\n    return n + f(n - 1)"),
            d.int(1, 8).to_string(),
        ),
        (1, _) => (
            format!("def f(n):\n    if n <= 0:\n        return {b}\n    return f(n - 1) + {c}"),
            d.int(1, 8).to_string(),
        ),
        (2, 0) => (
            format!("def f(n):\n    if n < {k}:\n        return n\n    return f(n - {k}) + {b}"),
            d.int(3, 25).to_string(),
        ),
        (2, _) => (
            format!("def f(n):\n    if n <= 1:\n        return {b}\n    return 2 * f(n - 1) + {c}"),
            d.int(2, 6).to_string(),
        ),
        (_, 0) => (
            format!(
                "def f(n):\n    if n < 10:\n        return n * {a}\n    return n % 10 * {a} + f(n // 10)"
            ),
            d.int(100, 9999).to_string(),
        ),
        (_, _) => (
            format!(
                "def f(n):\n    if n < 2:\n        return n + {b}\n    return f(n - 1) + f(n - 2)"
            ),
            d.int(3, 7).to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn the_same_seed_gives_the_same_programs_and_another_seed_others() {
        for family in Family::ALL {
            let a = generate(family, 2, Split::Train, 8, 1).unwrap();
            assert_eq!(a, generate(family, 2, Split::Train, 8, 1).unwrap());
            assert_ne!(a, generate(family, 2, Split::Train, 8, 2).unwrap());
        }
    }

    #[test]
    fn no_program_text_is_on_two_sides_of_the_split() {
        for family in Family::ALL {
            for level in 1..=LEVELS {
                let mut seen: BTreeMap<String, Split> = BTreeMap::new();
                for split in [Split::Train, Split::Validation, Split::HeldOut] {
                    // A cell with few program texts may have none on the validation side.
                    let Ok(programs) = generate(family, level, split, 8, 3) else {
                        assert_eq!(split, Split::Validation, "{family} {level}");
                        continue;
                    };
                    for p in programs {
                        assert_eq!(split_of(&p.program), split);
                        if let Some(other) = seen.insert(p.program.clone(), split) {
                            assert_eq!(other, split, "{}", p.program);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn every_cell_gives_the_counts_an_experiment_needs_distinct_and_well_formed() {
        for family in Family::ALL {
            for level in 1..=LEVELS {
                let held = generate(family, level, Split::HeldOut, 64, 11).unwrap();
                let ids: BTreeSet<&str> = held.iter().map(|p| p.id.as_str()).collect();
                assert_eq!(ids.len(), held.len(), "{family} {level}: ids collide");
                for p in &held {
                    assert!(p.program.starts_with("def f("), "{}", p.program);
                    assert!(!p.program.contains('\t'));
                    assert!(p.id.starts_with(&format!("{family}-{level}-")));
                }
            }
        }
    }

    #[test]
    fn the_learn_presets_cells_have_validation_programs_to_choose_settings_on() {
        for cell in crate::config::LEARN_FAMILIES {
            let (family, level) = parse_cell(cell).unwrap();
            let programs = generate(family, level, Split::Validation, 32, 1).unwrap();
            assert!(
                programs
                    .iter()
                    .all(|p| split_of(&p.program) == Split::Validation)
            );
        }
    }

    #[test]
    fn an_unknown_level_is_an_error() {
        assert!(generate(Family::Loop, 0, Split::Train, 1, 1).is_err());
        assert!(generate(Family::Loop, LEVELS + 1, Split::Train, 1, 1).is_err());
    }

    #[test]
    fn family_and_split_names_read_back() {
        for family in Family::ALL {
            assert_eq!(Family::from_name(family.name()), Some(family));
        }
        for split in [Split::Train, Split::Validation, Split::HeldOut] {
            assert_eq!(Split::from_name(split.name()), Some(split));
        }
    }

    #[test]
    fn cells_read_as_family_and_level_and_bad_ones_are_named() {
        assert_eq!(parse_cell("loop/2").unwrap(), (Family::Loop, 2));
        for bad in ["loop", "loop/4", "loops/1", "loop/x", ""] {
            let e = parse_cell(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("`{bad}`")), "{e}");
        }
    }

    #[test]
    fn seed_programs_come_from_the_train_split_of_each_cell() {
        let cells = ["arithmetic/1".to_owned(), "strings/2".to_owned()];
        let seeds = seed_triplets(&cells, 5, 9).unwrap();
        assert_eq!(seeds.len(), 10);
        assert!(seeds.iter().all(|t| split_of(&t.program) == Split::Train));
        assert!(seeds.iter().all(|t| t.output.is_empty()));
    }
}
