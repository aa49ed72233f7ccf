//! Optional intrinsic rewards for the proposer, computed over the program text.
//!
//! Reference: `rewards/code_reward.py` (`get_code_complexity_reward`, `ast_edit_distance`,
//! `get_halstead_reward`, `get_type_counts_reward`) and `determine_type` in
//! `trainer/ppo/azr_ray_trainer.py`. All four are off in the reference's runs.
//!
//! **Approximations.** The reference measures Python syntax trees (`complexipy`, `radon`,
//! `ast`); we have no Python parser here, so each metric works on a token stream from a small
//! Python lexer ([`tokens`]) and on indentation:
//! - complexity: cognitive complexity (`complexipy`) from keywords and indentation depth;
//! - edit distance: `difflib`'s Ratcliff–Obershelp ratio over tokens instead of over JSON
//!   dumps of the syntax trees (and without `difflib`'s auto-junk heuristic);
//! - Halstead: operators are the operator tokens radon counts, operands the names and literals
//!   next to them; cyclomatic complexity counts branch keywords per top-level function;
//! - answer types: a Python literal's type from its outer shape, not `ast.literal_eval`.
//!
//! They rank programs the same way in the common cases, which is what a bonus needs, but the
//! numbers differ from the reference's.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One lexical token of Python source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    Name(String),
    Number(String),
    Str(String),
    Op(String),
}

impl Token {
    fn text(&self) -> &str {
        match self {
            Token::Name(s) | Token::Number(s) | Token::Str(s) | Token::Op(s) => s,
        }
    }
}

const THREE_CHAR_OPS: [&str; 5] = ["**=", "//=", ">>=", "<<=", "..."];
const TWO_CHAR_OPS: [&str; 20] = [
    "**", "//", "<<", ">>", "<=", ">=", "==", "!=", "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=",
    "@=", "->", ":=", "<>",
];

/// Splits Python source into tokens, dropping comments and whitespace. Strings (any prefix,
/// single or triple quotes) become one token each.
pub fn tokens(src: &str) -> Vec<Token> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() || c == '\\' {
            i += 1;
        } else if c == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '"' || c == '\'' {
            let end = string_end(&chars, i);
            out.push(Token::Str(chars[i..end].iter().collect()));
            i = end;
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            // A string prefix (r, b, f, rb, ...) directly before a quote.
            if i < chars.len()
                && (chars[i] == '"' || chars[i] == '\'')
                && word.len() <= 2
                && word.chars().all(|c| "rRbBuUfF".contains(c))
            {
                let end = string_end(&chars, i);
                out.push(Token::Str(chars[start..end].iter().collect()));
                i = end;
            } else {
                out.push(Token::Name(word));
            }
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '.' || chars[i] == '_')
            {
                i += 1;
            }
            out.push(Token::Number(chars[start..i].iter().collect()));
        } else {
            let rest: String = chars[i..chars.len().min(i + 3)].iter().collect();
            let op = THREE_CHAR_OPS
                .iter()
                .chain(TWO_CHAR_OPS.iter())
                .find(|op| rest.starts_with(**op))
                .map(|s| (*s).to_owned())
                .unwrap_or_else(|| c.to_string());
            i += op.chars().count();
            out.push(Token::Op(op));
        }
    }
    out
}

/// Index just past the string literal whose opening quote is at `start`.
fn string_end(chars: &[char], start: usize) -> usize {
    let q = chars[start];
    let triple = chars.get(start + 1) == Some(&q) && chars.get(start + 2) == Some(&q);
    let mut i = if triple { start + 3 } else { start + 1 };
    while i < chars.len() {
        if chars[i] == '\\' {
            i += 2;
            continue;
        }
        if triple {
            if chars[i] == q && chars.get(i + 1) == Some(&q) && chars.get(i + 2) == Some(&q) {
                return i + 3;
            }
        } else if chars[i] == q || chars[i] == '\n' {
            return i + 1;
        }
        i += 1;
    }
    chars.len()
}

/// Lines of code with their indentation (blank and comment-only lines dropped).
fn code_lines(src: &str) -> Vec<(usize, &str)> {
    src.lines()
        .filter_map(|l| {
            let t = l.trim_start();
            if t.is_empty() || t.starts_with('#') {
                None
            } else {
                Some((l.len() - t.len(), t))
            }
        })
        .collect()
}

fn first_word(line: &str) -> &str {
    line.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .next()
        .unwrap_or("")
}

/// Approximate cognitive complexity (the measure `complexipy` reports): +1 for each `if`,
/// `elif`, `else`, `for`, `while`, `except`, conditional expression and run of boolean
/// operators; `if`/`for`/`while`/`except`/conditional expressions also add their nesting depth
/// (control blocks and nested functions around them).
pub fn cognitive_complexity(src: &str) -> f64 {
    let mut total = 0usize;
    // Indentation of the open blocks that add nesting, innermost last.
    let mut open: Vec<usize> = Vec::new();
    let mut function_indent: Vec<usize> = Vec::new();
    for (indent, line) in code_lines(src) {
        while open.last().is_some_and(|&i| i >= indent) {
            open.pop();
        }
        while function_indent.last().is_some_and(|&i| i >= indent) {
            function_indent.pop();
        }
        let nesting = open.len() + function_indent.len().saturating_sub(1);
        let word = first_word(line);
        match word {
            "if" | "for" | "while" | "except" => {
                total += 1 + nesting;
                open.push(indent);
            }
            "elif" | "else" => total += 1,
            "try" | "with" => open.push(indent),
            "def" | "async" => function_indent.push(indent),
            _ => {}
        }
        let toks = tokens(line);
        // Conditional expressions: an `if` that is not the statement keyword and not in a
        // comprehension (`for` earlier on the line) — approximately.
        let has_for = toks.iter().any(|t| t.text() == "for");
        for (k, t) in toks.iter().enumerate() {
            if t.text() == "if" && k > 0 && !has_for && toks.iter().any(|t| t.text() == "else") {
                total += 1 + nesting;
            }
        }
        // Runs of boolean operators: a new run starts when the operator changes.
        let mut last: Option<&str> = None;
        for t in &toks {
            if let s @ ("and" | "or") = t.text() {
                if last != Some(s) {
                    total += 1;
                }
                last = Some(s);
            }
        }
    }
    total as f64
}

/// The complexity reward: cognitive complexity / 15 (reference `get_code_complexity_reward`).
pub fn complexity_reward(program: &str) -> f64 {
    cognitive_complexity(program) / 15.0
}

/// Similarity ratio `2·M / (len(a) + len(b))` of `difflib.SequenceMatcher` (Ratcliff–
/// Obershelp: longest common block, then recursively on both sides), without auto-junk.
pub fn sequence_ratio<T: PartialEq>(a: &[T], b: &[T]) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    let matched = matching_len(a, b);
    2.0 * matched as f64 / (a.len() + b.len()) as f64
}

fn matching_len<T: PartialEq>(a: &[T], b: &[T]) -> usize {
    if a.is_empty() || b.is_empty() {
        return 0;
    }
    // Longest common substring, earliest in `a` then in `b` (difflib's tie-break).
    let mut best = (0usize, 0usize, 0usize);
    let mut prev = vec![0usize; b.len() + 1];
    for (i, x) in a.iter().enumerate() {
        let mut cur = vec![0usize; b.len() + 1];
        for (j, y) in b.iter().enumerate() {
            if x == y {
                cur[j + 1] = prev[j] + 1;
                if cur[j + 1] > best.2 {
                    best = (i + 1 - cur[j + 1], j + 1 - cur[j + 1], cur[j + 1]);
                }
            }
        }
        prev = cur;
    }
    let (i, j, k) = best;
    if k == 0 {
        return 0;
    }
    k + matching_len(&a[..i], &b[..j]) + matching_len(&a[i + k..], &b[j + k..])
}

/// Edit distance between two programs in [0, 1]: 1 − similarity of their token streams.
pub fn edit_distance(a: &str, b: &str) -> f64 {
    let ta: Vec<String> = tokens(a).iter().map(|t| t.text().to_owned()).collect();
    let tb: Vec<String> = tokens(b).iter().map(|t| t.text().to_owned()).collect();
    1.0 - sequence_ratio(&ta, &tb)
}

/// Mean edit distance of a program to its references (0 with no references).
pub fn mean_edit_distance(program: &str, references: &[&str]) -> f64 {
    if references.is_empty() {
        return 0.0;
    }
    references
        .iter()
        .map(|r| edit_distance(program, r))
        .sum::<f64>()
        / references.len() as f64
}

/// The operators radon's Halstead visitor counts: binary, unary, boolean, comparison and
/// augmented-assignment operators.
const HALSTEAD_OPS: [&str; 37] = [
    "+", "-", "*", "/", "//", "%", "**", "@", "<<", ">>", "&", "|", "^", "~", "==", "!=", "<",
    "<=", ">", ">=", "is", "in", "not", "and", "or", "+=", "-=", "*=", "/=", "//=", "%=", "**=",
    "@=", "<<=", ">>=", "&=", "|=",
];

/// Halstead counts: distinct operators η₁, distinct operands η₂, totals N₁ and N₂.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Halstead {
    pub distinct_operators: usize,
    pub distinct_operands: usize,
    pub operators: usize,
    pub operands: usize,
}

impl Halstead {
    pub fn of(src: &str) -> Self {
        let toks = tokens(src);
        let mut ops = std::collections::BTreeSet::new();
        let mut opnds = std::collections::BTreeSet::new();
        let (mut n1, mut n2) = (0, 0);
        let is_operand = |t: Option<&Token>| {
            matches!(t, Some(Token::Name(n)) if !HALSTEAD_OPS.contains(&n.as_str()))
                || matches!(t, Some(Token::Number(_) | Token::Str(_)))
        };
        for (k, t) in toks.iter().enumerate() {
            let text = t.text();
            if !HALSTEAD_OPS.contains(&text) || matches!(t, Token::Str(_) | Token::Number(_)) {
                continue;
            }
            ops.insert(text.to_owned());
            n1 += 1;
            for side in [k.checked_sub(1), Some(k + 1)].into_iter().flatten() {
                let n = toks.get(side);
                if is_operand(n) {
                    if let Some(n) = n {
                        opnds.insert(n.text().to_owned());
                    }
                    n2 += 1;
                }
            }
        }
        Halstead {
            distinct_operators: ops.len(),
            distinct_operands: opnds.len(),
            operators: n1,
            operands: n2,
        }
    }

    /// `N · log₂ η` (0 for an empty vocabulary), as radon computes it.
    pub fn volume(&self) -> f64 {
        let vocabulary = self.distinct_operators + self.distinct_operands;
        if vocabulary == 0 {
            return 0.0;
        }
        (self.operators + self.operands) as f64 * (vocabulary as f64).log2()
    }

    /// `η₁ · N₂ / (2 η₂)` (0 without operands).
    pub fn difficulty(&self) -> f64 {
        if self.distinct_operands == 0 {
            return 0.0;
        }
        (self.distinct_operators * self.operands) as f64 / (2 * self.distinct_operands) as f64
    }

    pub fn effort(&self) -> f64 {
        self.difficulty() * self.volume()
    }
}

/// Approximate cyclomatic complexity, the largest over top-level functions (the whole
/// program if it has none): 1 + branch keywords (`if`, `elif`, `for`, `while`, `except`,
/// `assert`, `and`, `or`).
pub fn cyclomatic_complexity(src: &str) -> usize {
    let mut blocks: Vec<String> = Vec::new();
    for line in src.lines() {
        if line.starts_with("def ") || line.starts_with("async def ") {
            blocks.push(String::new());
        }
        if let Some(b) = blocks.last_mut() {
            b.push_str(line);
            b.push('\n');
        }
    }
    if blocks.is_empty() {
        blocks.push(src.to_owned());
    }
    blocks
        .iter()
        .map(|b| {
            1 + tokens(b)
                .iter()
                .filter(|t| {
                    matches!(t, Token::Name(n) if ["if", "elif", "for", "while", "except", "assert", "and", "or"].contains(&n.as_str()))
                })
                .count()
        })
        .max()
        .unwrap_or(1)
}

/// The Halstead reward (reference `get_halstead_reward`): `0.5·min(E/10000, 1) +
/// 0.3·min(CC/10, 1) + 0.2·min(V/500, 1)`, rounded to 3 decimals.
pub fn halstead_reward(program: &str) -> f64 {
    let h = Halstead::of(program);
    let effort = (h.effort() / 10_000.0).min(1.0);
    let cc = (cyclomatic_complexity(program) as f64 / 10.0).min(1.0);
    let volume = (h.volume() / 500.0).min(1.0);
    ((0.5 * effort + 0.3 * cc + 0.2 * volume) * 1000.0).round() / 1000.0
}

/// The Python type name of a literal, from its outer shape (approximating the reference's
/// `determine_type`: `ast.literal_eval`, with `a, b` read as a tuple; anything that is not a
/// literal counts as `str`).
pub fn literal_type(text: &str) -> &'static str {
    let t = text.trim();
    if t.is_empty() {
        return "str";
    }
    if has_top_level_comma(t) {
        return "tuple";
    }
    let first = t.chars().next().unwrap_or(' ');
    match first {
        '[' if t.ends_with(']') => "list",
        '(' if t.ends_with(')') => {
            let inner = &t[1..t.len() - 1];
            if inner.trim().is_empty() {
                "tuple"
            } else {
                literal_type(inner)
            }
        }
        '{' if t.ends_with('}') => {
            let inner = &t[1..t.len() - 1];
            if inner.trim().is_empty() || has_top_level(inner, ':') {
                "dict"
            } else {
                "set"
            }
        }
        '"' | '\'' => "str",
        'b' | 'B' if t[1..].starts_with(['"', '\'']) => "bytes",
        _ => match t {
            "True" | "False" => "bool",
            "None" => "NoneType",
            _ => {
                let num = t.trim_start_matches(['-', '+']);
                if !num.is_empty() && num.chars().all(|c| c.is_ascii_digit() || c == '_') {
                    "int"
                } else if num.parse::<f64>().is_ok() {
                    "float"
                } else if num.ends_with(['j', 'J']) && num[..num.len() - 1].parse::<f64>().is_ok() {
                    "complex"
                } else {
                    "str"
                }
            }
        },
    }
}

fn has_top_level_comma(t: &str) -> bool {
    has_top_level(t, ',')
}

/// Whether `needle` occurs outside brackets and string literals.
fn has_top_level(t: &str, needle: char) -> bool {
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in t.chars() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' => quote = Some(c),
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            _ if c == needle && depth == 0 => return true,
            _ => {}
        }
    }
    false
}

/// How often each answer has been seen, by type (the reference's type counters).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeCounter {
    pub by_type: BTreeMap<String, BTreeMap<String, u64>>,
}

impl TypeCounter {
    pub fn count(&mut self, value: &str) {
        *self
            .by_type
            .entry(literal_type(value).to_owned())
            .or_default()
            .entry(value.to_owned())
            .or_default() += 1;
    }

    /// The answer-diversity reward (reference `get_type_counts_reward`).
    ///
    /// Flat: `1 − count(answer) / total` (1 for an unseen answer). Hierarchical: the mean of
    /// the surprise of the answer's type among types and of the answer within its type.
    pub fn surprise(&self, answer: &str, hierarchical: bool) -> f64 {
        if hierarchical {
            let ty = literal_type(answer);
            let type_totals: BTreeMap<&str, u64> = self
                .by_type
                .iter()
                .map(|(k, v)| (k.as_str(), v.values().sum()))
                .collect();
            let all: u64 = type_totals.values().sum();
            let mut s = match type_totals.get(ty) {
                Some(&n) if all > 0 => 1.0 - n as f64 / all as f64,
                _ => 1.0,
            };
            s += match self.by_type.get(ty) {
                Some(values) => match values.get(answer) {
                    Some(&n) => 1.0 - n as f64 / values.values().sum::<u64>() as f64,
                    None => 1.0,
                },
                None => 1.0,
            };
            s / 2.0
        } else {
            // The reference flattens the per-type maps, a later type's count of the same
            // string replacing an earlier one's.
            let mut flat: BTreeMap<&str, u64> = BTreeMap::new();
            for values in self.by_type.values() {
                for (v, &n) in values {
                    flat.insert(v.as_str(), n);
                }
            }
            let total: u64 = flat.values().sum();
            match flat.get(answer) {
                Some(&n) if total > 0 => 1.0 - n as f64 / total as f64,
                _ => 1.0,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexer_keeps_strings_whole_and_drops_comments() {
        let t = tokens("x = f'a # b' + 1.5e3  # note\ny //= 2");
        let texts: Vec<&str> = t.iter().map(Token::text).collect();
        assert_eq!(texts, ["x", "=", "f'a # b'", "+", "1.5e3", "y", "//=", "2"]);
        assert_eq!(tokens("'''a\nb'''")[0], Token::Str("'''a\nb'''".into()));
    }

    #[test]
    fn cognitive_complexity_counts_branches_and_nesting() {
        assert_eq!(cognitive_complexity("def f(a):\n    return a"), 0.0);
        let nested = "def f(xs):\n    total = 0\n    for x in xs:\n        if x > 0 and x < 9:\n            total += x\n        else:\n            total -= 1\n    return total";
        // for: 1; if (nesting 1): 2; `and` run: 1; else: 1.
        assert_eq!(cognitive_complexity(nested), 5.0);
        assert_eq!(complexity_reward(nested), 5.0 / 15.0);
    }

    #[test]
    fn sequence_ratio_matches_difflib() {
        // difflib.SequenceMatcher(None, "abcd", "bcde").ratio() == 0.75
        let a: Vec<char> = "abcd".chars().collect();
        let b: Vec<char> = "bcde".chars().collect();
        assert_eq!(sequence_ratio(&a, &b), 0.75);
        // SequenceMatcher(None, "abxcd", "abcd").ratio() == 8/9
        let a: Vec<char> = "abxcd".chars().collect();
        assert!((sequence_ratio(&a, &b[..0]) - 0.0).abs() < 1e-12);
        let c: Vec<char> = "abcd".chars().collect();
        assert!((sequence_ratio(&a, &c) - 8.0 / 9.0).abs() < 1e-12);
    }

    #[test]
    fn edit_distance_is_zero_for_the_same_program_and_grows_with_change() {
        let p = "def f(a):\n    return a";
        assert_eq!(edit_distance(p, p), 0.0);
        let q = "def f(a):\n    return a + 1";
        let r = "def f(xs):\n    return sorted(set(xs), key=len)[::-1]";
        assert!(edit_distance(p, q) > 0.0);
        assert!(edit_distance(p, r) > edit_distance(p, q));
        assert_eq!(mean_edit_distance(p, &[]), 0.0);
        assert_eq!(mean_edit_distance(p, &[p, q]), edit_distance(p, q) / 2.0);
    }

    #[test]
    fn halstead_of_a_small_expression() {
        // a + b * 2: operators {+, *}, operands a, b, b, 2 around them.
        let h = Halstead::of("def f(a, b):\n    return a + b * 2");
        assert_eq!(h.distinct_operators, 2);
        assert_eq!(h.operators, 2);
        assert_eq!(h.operands, 4);
        assert_eq!(h.distinct_operands, 3);
        // N = 6, η = 5: V = 6 log2 5; D = 2·4/(2·3).
        assert!((h.volume() - 6.0 * 5f64.log2()).abs() < 1e-12);
        assert!((h.difficulty() - 4.0 / 3.0).abs() < 1e-12);
        assert_eq!(
            cyclomatic_complexity("def f(a):\n    if a or a:\n        return 1\n    return 2"),
            3
        );
        let r = halstead_reward("def f(a, b):\n    return a + b * 2");
        let want = 0.5 * (h.effort() / 10_000.0) + 0.3 * 0.1 + 0.2 * (h.volume() / 500.0);
        assert_eq!(r, (want * 1000.0).round() / 1000.0);
    }

    #[test]
    fn literal_types_from_shape() {
        assert_eq!(literal_type("'a'"), "str");
        assert_eq!(literal_type("1"), "int");
        assert_eq!(literal_type("-1.5"), "float");
        assert_eq!(literal_type("[1, 2]"), "list");
        assert_eq!(literal_type("1, 'a'"), "tuple");
        assert_eq!(literal_type("(1)"), "int");
        assert_eq!(literal_type("()"), "tuple");
        assert_eq!(literal_type("{}"), "dict");
        assert_eq!(literal_type("{'a': 1}"), "dict");
        assert_eq!(literal_type("{1, 2}"), "set");
        assert_eq!(literal_type("True"), "bool");
        assert_eq!(literal_type("None"), "NoneType");
        assert_eq!(literal_type("dict(a=1)"), "str");
        assert_eq!(literal_type("'a, b'"), "str");
    }

    #[test]
    fn answer_diversity_surprise() {
        let mut c = TypeCounter::default();
        assert_eq!(c.surprise("1", false), 1.0);
        for v in ["1", "1", "2", "'a'"] {
            c.count(v);
        }
        // Flat: "1" seen 2 of 4 times.
        assert_eq!(c.surprise("1", false), 0.5);
        assert_eq!(c.surprise("3", false), 1.0);
        // Hierarchical: int is 3 of 4 (1 − 3/4), "1" is 2 of 3 ints (1 − 2/3).
        let h = c.surprise("1", true);
        assert!((h - ((0.25 + 1.0 / 3.0) / 2.0)).abs() < 1e-12);
        assert_eq!(c.surprise("[1]", true), 1.0);
    }
}
