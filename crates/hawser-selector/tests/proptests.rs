//! Property tests: the parser never panics; `LIKE` agrees with a naive matcher; and random
//! expression trees, printed with full parentheses, parse and evaluate exactly as a
//! reference evaluator written here from the crate's documented rules says they should.

mod common;

use std::collections::{BTreeMap, HashMap};

use common::props;
use hawser_selector::{ParseError, Selector, Value};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------
// 1. The parser never panics, and neither does evaluating whatever it accepts.

/// Fragments that make up selectors, valid and not, so random sequences reach deep into the
/// grammar instead of failing at the first character.
const TOKENS: &[&str] = &[
    "a",
    "b",
    "flag",
    "NOT",
    "AND",
    "OR",
    "BETWEEN",
    "LIKE",
    "IN",
    "IS",
    "NULL",
    "ESCAPE",
    "TRUE",
    "FALSE",
    "not",
    "(",
    ")",
    ",",
    "=",
    "<>",
    "<",
    ">",
    "<=",
    ">=",
    "+",
    "-",
    "*",
    "/",
    "'x'",
    "'%_'",
    "''",
    "'",
    "'\\'",
    "'it''s'",
    "1",
    "0",
    "-1",
    "07",
    "09",
    "0x1F",
    "0x",
    "1.5",
    ".5",
    "7.",
    "1e3",
    "1e",
    "2L",
    "1.5F",
    "9223372036854775807",
    "9223372036854775808",
    "1e308",
    "%",
    "_",
    "\\",
    "!",
    ".",
    "é",
];

/// A fixed message to evaluate accepted selectors against.
fn fixed_props() -> BTreeMap<String, Value<'static>> {
    props([
        ("a", Value::from("1".to_string())),
        ("b", Value::Int(i64::MIN)),
        ("flag", Value::Bool(true)),
    ])
}

fn parse_and_run(text: &str) {
    if let Ok(selector) = Selector::parse(text) {
        let p = fixed_props();
        let result = selector.evaluate(&p);
        assert_eq!(selector.matches(&p), result == Some(true));
    }
}

proptest! {
    #[test]
    fn parser_never_panics_on_arbitrary_text(text in any::<String>()) {
        parse_and_run(&text);
    }

    #[test]
    fn parser_never_panics_on_token_soup(
        tokens in prop::collection::vec(prop::sample::select(TOKENS), 0..40),
        spaced in any::<bool>(),
    ) {
        parse_and_run(&tokens.join(if spaced { " " } else { "" }));
    }
}

// ---------------------------------------------------------------------------------------
// 2. LIKE agrees with a naive matcher.

/// Whether `s` matches `p`, by trying every way `%` could split the text, memoized so that
/// patterns full of `%` stay cheap.
fn naive_like(p: &[char], s: &[char], escape: Option<char>) -> bool {
    fn go(
        p: &[char],
        s: &[char],
        escape: Option<char>,
        memo: &mut HashMap<(usize, usize), bool>,
    ) -> bool {
        let key = (p.len(), s.len());
        if let Some(&hit) = memo.get(&key) {
            return hit;
        }
        let result = match p.first() {
            None => s.is_empty(),
            Some(&c) if Some(c) == escape => {
                let literal = p[1];
                s.first() == Some(&literal) && go(&p[2..], &s[1..], escape, memo)
            }
            Some('%') => (0..=s.len()).any(|k| go(&p[1..], &s[k..], escape, memo)),
            Some('_') => !s.is_empty() && go(&p[1..], &s[1..], escape, memo),
            Some(c) => s.first() == Some(c) && go(&p[1..], &s[1..], escape, memo),
        };
        memo.insert(key, result);
        result
    }
    go(p, s, escape, &mut HashMap::new())
}

/// Whether `pattern` ends in an escape character that escapes nothing.
fn dangles(pattern: &[char], escape: Option<char>) -> bool {
    let mut i = 0;
    while i < pattern.len() {
        if Some(pattern[i]) == escape {
            if i + 1 == pattern.len() {
                return true;
            }
            i += 1;
        }
        i += 1;
    }
    false
}

fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

proptest! {
    #[test]
    fn like_agrees_with_naive_matcher(
        pattern in prop::collection::vec(prop::sample::select(&['a', 'b', '%', '_', '\\', '\'', 'é'][..]), 0..10),
        text in prop::collection::vec(prop::sample::select(&['a', 'b', '%', '_', '\\', '\'', 'é'][..]), 0..14),
        escape in prop::sample::select(&[None, Some('\\'), Some('a'), Some('\'')][..]),
    ) {
        let pattern_text: String = pattern.iter().collect();
        let text_value: String = text.iter().collect();
        let selector_text = format!(
            "s LIKE {}{}",
            quoted(&pattern_text),
            escape.map(|e| format!(" ESCAPE {}", quoted(&e.to_string()))).unwrap_or_default(),
        );
        let parsed = Selector::parse(&selector_text);
        if dangles(&pattern, escape) {
            prop_assert!(matches!(parsed, Err(ParseError::DanglingEscape { pos: 7 })), "{:?}", parsed);
            return Ok(());
        }
        let selector = parsed.unwrap();
        let p = props([("s", Value::from(text_value))]);
        prop_assert_eq!(selector.matches(&p), naive_like(&pattern, &text, escape));
    }
}

// ---------------------------------------------------------------------------------------
// 3. Printed expression trees evaluate as the reference evaluator says.

/// Property names the generated expressions and messages use.
const NAMES: &[&str] = &["a", "b", "Cc", "_d", "$e"];

/// A value expression.
#[derive(Clone, Debug)]
enum V {
    Null,
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
    Prop(&'static str),
    Neg(Box<V>),
    Plus(Box<V>),
    Arith(&'static str, Box<V>, Box<V>),
    /// A condition used as a value: its truth as a boolean, or NULL.
    Cond(Box<B>),
}

/// A condition.
#[derive(Clone, Debug)]
enum B {
    Lit(bool),
    Prop(&'static str),
    Not(Box<B>),
    And(Box<B>, Box<B>),
    Or(Box<B>, Box<B>),
    Cmp(&'static str, V, V),
    Between(V, V, V, bool),
    Like(V, String, bool),
    In(V, Vec<String>, bool),
    IsNull(V, bool),
}

/// Strings that read as numbers, as booleans, or as neither.
const STRINGS: &[&str] = &[
    "1", "2.5", "-3", "0", "7", "1e2", "-0.5", "abc", "true", "FALSE", "", "it's", "a_b%", " 1",
];

fn arb_int() -> impl Strategy<Value = i64> {
    prop_oneof![
        -3i64..=3,
        any::<i64>(),
        prop::sample::select(&[i64::MIN, i64::MAX][..])
    ]
}

fn arb_float() -> impl Strategy<Value = f64> {
    prop_oneof![
        prop::sample::select(&[0.0, -0.0, 0.5, 1.0, 2.5, -3.25, 1e300, 1e-7][..]),
        any::<f64>().prop_filter("finite", |f| f.is_finite()),
    ]
}

fn arb_str() -> impl Strategy<Value = String> {
    prop::sample::select(STRINGS).prop_map(str::to_string)
}

fn arb_v(depth: u32) -> BoxedStrategy<V> {
    let leaf = prop_oneof![
        1 => Just(V::Null),
        4 => arb_int().prop_map(V::Int),
        2 => arb_float().prop_map(V::Float),
        3 => arb_str().prop_map(V::Str),
        1 => any::<bool>().prop_map(V::Bool),
        4 => prop::sample::select(NAMES).prop_map(V::Prop),
    ];
    if depth == 0 {
        return leaf.boxed();
    }
    let op = prop::sample::select(&["+", "-", "*", "/"][..]);
    prop_oneof![
        4 => leaf,
        1 => arb_v(depth - 1).prop_map(|v| V::Neg(Box::new(v))),
        1 => arb_v(depth - 1).prop_map(|v| V::Plus(Box::new(v))),
        3 => (op, arb_v(depth - 1), arb_v(depth - 1))
            .prop_map(|(op, l, r)| V::Arith(op, Box::new(l), Box::new(r))),
        1 => arb_b(depth - 1).prop_map(|b| V::Cond(Box::new(b))),
    ]
    .boxed()
}

fn arb_b(depth: u32) -> BoxedStrategy<B> {
    let cmp = prop::sample::select(&["=", "<>", "<", "<=", ">", ">="][..]);
    let pattern =
        prop::collection::vec(prop::sample::select(&['a', '_', '%', '1', '\''][..]), 0..5)
            .prop_map(|chars| chars.into_iter().collect::<String>());
    let leaf = prop_oneof![
        1 => any::<bool>().prop_map(B::Lit),
        2 => prop::sample::select(NAMES).prop_map(B::Prop),
        4 => (cmp, arb_v(depth), arb_v(depth)).prop_map(|(op, l, r)| B::Cmp(op, l, r)),
        2 => (arb_v(depth), arb_v(depth), arb_v(depth), any::<bool>())
            .prop_map(|(x, lo, hi, neg)| B::Between(x, lo, hi, neg)),
        2 => (arb_v(depth), pattern, any::<bool>()).prop_map(|(x, p, neg)| B::Like(x, p, neg)),
        2 => (arb_v(depth), prop::collection::vec(arb_str(), 1..4), any::<bool>())
            .prop_map(|(x, l, neg)| B::In(x, l, neg)),
        1 => (arb_v(depth), any::<bool>()).prop_map(|(x, neg)| B::IsNull(x, neg)),
    ];
    if depth == 0 {
        return leaf.boxed();
    }
    prop_oneof![
        3 => leaf,
        1 => arb_b(depth - 1).prop_map(|b| B::Not(Box::new(b))),
        2 => (arb_b(depth - 1), arb_b(depth - 1)).prop_map(|(l, r)| B::And(Box::new(l), Box::new(r))),
        2 => (arb_b(depth - 1), arb_b(depth - 1)).prop_map(|(l, r)| B::Or(Box::new(l), Box::new(r))),
    ]
    .boxed()
}

fn print_v(v: &V) -> String {
    match v {
        V::Null => "NULL".into(),
        V::Int(i) => format!("({i})"),
        V::Float(f) => format!("({f:?})"),
        V::Str(s) => quoted(s),
        V::Bool(b) => if *b { "TRUE" } else { "FALSE" }.into(),
        V::Prop(name) => (*name).into(),
        V::Neg(v) => format!("(-{})", print_v(v)),
        V::Plus(v) => format!("(+{})", print_v(v)),
        V::Arith(op, l, r) => format!("({} {op} {})", print_v(l), print_v(r)),
        V::Cond(b) => print_b(b),
    }
}

fn print_b(b: &B) -> String {
    let not = |neg: &bool| if *neg { "NOT " } else { "" };
    match b {
        B::Lit(b) => if *b { "(TRUE)" } else { "(FALSE)" }.into(),
        B::Prop(name) => format!("({name})"),
        B::Not(b) => format!("(NOT {})", print_b(b)),
        B::And(l, r) => format!("({} AND {})", print_b(l), print_b(r)),
        B::Or(l, r) => format!("({} OR {})", print_b(l), print_b(r)),
        B::Cmp(op, l, r) => format!("({} {op} {})", print_v(l), print_v(r)),
        B::Between(x, lo, hi, neg) => format!(
            "({} {}BETWEEN {} AND {})",
            print_v(x),
            not(neg),
            print_v(lo),
            print_v(hi)
        ),
        B::Like(x, p, neg) => format!("({} {}LIKE {})", print_v(x), not(neg), quoted(p)),
        B::In(x, list, neg) => {
            let items: Vec<String> = list.iter().map(|s| quoted(s)).collect();
            format!("({} {}IN ({}))", print_v(x), not(neg), items.join(", "))
        }
        B::IsNull(x, neg) => format!("({} IS {}NULL)", print_v(x), not(neg)),
    }
}

/// A reference value: `Null` for SQL NULL.
#[derive(Clone, Debug, PartialEq)]
enum RV {
    Null,
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
}

type Msg = BTreeMap<String, Value<'static>>;

fn lookup(msg: &Msg, name: &str) -> RV {
    match msg.get(name) {
        None => RV::Null,
        Some(Value::Int(i)) => RV::Int(*i),
        Some(Value::Float(f)) => RV::Float(*f),
        Some(Value::Str(s)) => RV::Str(s.to_string()),
        Some(Value::Bool(b)) => RV::Bool(*b),
    }
}

/// A string as a number: an `i64` if it is one, else a finite `f64` written in plain
/// decimal notation (no words such as `inf`, no surrounding blanks).
fn as_number(v: &RV) -> Option<RV> {
    match v {
        RV::Int(_) | RV::Float(_) => Some(v.clone()),
        RV::Str(s) => {
            if let Ok(i) = s.parse::<i64>() {
                return Some(RV::Int(i));
            }
            let lower = s.to_ascii_lowercase();
            let wordy = lower.contains("inf") || lower.contains("nan") || s.trim() != s;
            match s.parse::<f64>() {
                Ok(f) if !wordy && f.is_finite() => Some(RV::Float(f)),
                _ => None,
            }
        }
        _ => None,
    }
}

fn as_bool(v: &RV) -> Option<bool> {
    match v {
        RV::Bool(b) => Some(*b),
        RV::Str(s) if s.eq_ignore_ascii_case("true") => Some(true),
        RV::Str(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

fn to_f64(v: &RV) -> f64 {
    match v {
        RV::Int(i) => *i as f64,
        RV::Float(f) => *f,
        _ => unreachable!("only numbers"),
    }
}

fn ref_v(v: &V, msg: &Msg) -> RV {
    match v {
        V::Null => RV::Null,
        V::Int(i) => RV::Int(*i),
        V::Float(f) => RV::Float(*f),
        V::Str(s) => RV::Str(s.clone()),
        V::Bool(b) => RV::Bool(*b),
        V::Prop(name) => lookup(msg, name),
        V::Plus(v) => as_number(&ref_v(v, msg)).unwrap_or(RV::Null),
        V::Neg(v) => match as_number(&ref_v(v, msg)) {
            Some(RV::Int(i)) => i.checked_neg().map_or(RV::Null, RV::Int),
            Some(RV::Float(f)) => RV::Float(-f),
            _ => RV::Null,
        },
        V::Arith(op, l, r) => {
            let (Some(l), Some(r)) = (as_number(&ref_v(l, msg)), as_number(&ref_v(r, msg))) else {
                return RV::Null;
            };
            if let (RV::Int(a), RV::Int(b)) = (&l, &r) {
                let result = match *op {
                    "+" => a.checked_add(*b),
                    "-" => a.checked_sub(*b),
                    "*" => a.checked_mul(*b),
                    _ => a.checked_div(*b),
                };
                return result.map_or(RV::Null, RV::Int);
            }
            let (a, b) = (to_f64(&l), to_f64(&r));
            let result = match *op {
                "+" => a + b,
                "-" => a - b,
                "*" => a * b,
                _ if b == 0.0 => f64::NAN,
                _ => a / b,
            };
            if result.is_finite() {
                RV::Float(result)
            } else {
                RV::Null
            }
        }
        // A parenthesized name in value position is the property's value, not its truth.
        V::Cond(b) => match **b {
            B::Prop(name) => lookup(msg, name),
            _ => ref_b(b, msg).map_or(RV::Null, RV::Bool),
        },
    }
}

fn ref_cmp(op: &str, l: &RV, r: &RV) -> Option<bool> {
    let equality = |eq: bool| match op {
        "=" => Some(eq),
        "<>" => Some(!eq),
        _ => None,
    };
    match (l, r) {
        (RV::Null, _) | (_, RV::Null) => None,
        (RV::Bool(_), _) | (_, RV::Bool(_)) => match (as_bool(l), as_bool(r)) {
            (Some(a), Some(b)) => equality(a == b),
            _ => None,
        },
        (RV::Str(a), RV::Str(b)) if op == "=" || op == "<>" => equality(a == b),
        _ => {
            let (l, r) = (as_number(l)?, as_number(r)?);
            let ord = match (&l, &r) {
                (RV::Int(a), RV::Int(b)) => a.cmp(b),
                _ => to_f64(&l).partial_cmp(&to_f64(&r))?,
            };
            Some(match op {
                "=" => ord.is_eq(),
                "<>" => ord.is_ne(),
                "<" => ord.is_lt(),
                "<=" => ord.is_le(),
                ">" => ord.is_gt(),
                _ => ord.is_ge(),
            })
        }
    }
}

fn kleene_and(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    }
}

fn kleene_or(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(true), _) | (_, Some(true)) => Some(true),
        (Some(false), Some(false)) => Some(false),
        _ => None,
    }
}

fn negate_if(neg: bool, t: Option<bool>) -> Option<bool> {
    if neg {
        t.map(|b| !b)
    } else {
        t
    }
}

fn ref_b(b: &B, msg: &Msg) -> Option<bool> {
    match b {
        B::Lit(b) => Some(*b),
        B::Prop(name) => match lookup(msg, name) {
            RV::Int(_) | RV::Float(_) | RV::Null => None,
            v => as_bool(&v),
        },
        B::Not(b) => ref_b(b, msg).map(|b| !b),
        B::And(l, r) => kleene_and(ref_b(l, msg), ref_b(r, msg)),
        B::Or(l, r) => kleene_or(ref_b(l, msg), ref_b(r, msg)),
        B::Cmp(op, l, r) => ref_cmp(op, &ref_v(l, msg), &ref_v(r, msg)),
        B::Between(x, lo, hi, neg) => {
            let x = ref_v(x, msg);
            let inside = kleene_and(
                ref_cmp(">=", &x, &ref_v(lo, msg)),
                ref_cmp("<=", &x, &ref_v(hi, msg)),
            );
            negate_if(*neg, inside)
        }
        B::Like(x, p, neg) => match ref_v(x, msg) {
            RV::Str(s) => {
                let (p, s): (Vec<char>, Vec<char>) = (p.chars().collect(), s.chars().collect());
                negate_if(*neg, Some(naive_like(&p, &s, None)))
            }
            _ => None,
        },
        B::In(x, list, neg) => match ref_v(x, msg) {
            RV::Str(s) => negate_if(*neg, Some(list.contains(&s))),
            _ => None,
        },
        B::IsNull(x, neg) => Some((ref_v(x, msg) == RV::Null) != *neg),
    }
}

fn arb_msg() -> impl Strategy<Value = Msg> {
    let value = prop_oneof![
        3 => arb_int().prop_map(Value::Int),
        2 => arb_float().prop_map(Value::Float),
        4 => arb_str().prop_map(Value::from),
        1 => any::<bool>().prop_map(Value::Bool),
    ];
    // Mostly full messages: a missing property makes most expressions UNKNOWN.
    let present = prop::collection::vec(prop::bool::weighted(0.85), NAMES.len());
    (prop::collection::vec(value, NAMES.len()), present).prop_map(|(values, present)| {
        NAMES
            .iter()
            .zip(values)
            .zip(present)
            .filter(|(_, present)| *present)
            .map(|((name, value), _)| (name.to_string(), value))
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn printed_trees_evaluate_like_the_reference(b in arb_b(3), msgs in prop::collection::vec(arb_msg(), 1..4)) {
        let text = print_b(&b);
        let selector = Selector::parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        for msg in &msgs {
            prop_assert_eq!(selector.evaluate(msg), ref_b(&b, msg), "{} with {:?}", text, msg);
        }
    }
}
