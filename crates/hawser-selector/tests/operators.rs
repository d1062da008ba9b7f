//! Evaluation of every operator, through the public API: `Some(true)` is TRUE, `Some(false)`
//! FALSE and `None` UNKNOWN.

mod common;

use common::{eval, props, s};
use hawser_selector::{Selector, Value};

const T: Option<bool> = Some(true);
const F: Option<bool> = Some(false);
const U: Option<bool> = None;

/// Asserts each `(selector, expected)` against `p`.
fn check(p: &std::collections::BTreeMap<String, Value<'static>>, cases: &[(&str, Option<bool>)]) {
    for (selector, want) in cases {
        assert_eq!(eval(selector, p), *want, "{selector}");
    }
}

#[test]
fn three_valued_truth_tables() {
    // t is TRUE, f is FALSE, u is missing (UNKNOWN).
    let p = props([("t", Value::Bool(true)), ("f", Value::Bool(false))]);
    let vals = [("t", T), ("f", F), ("u", U)];
    for (a, va) in vals {
        let not = match va {
            T => F,
            F => T,
            _ => U,
        };
        assert_eq!(eval(&format!("NOT {a}"), &p), not, "NOT {a}");
        for (b, vb) in vals {
            let and = match (va, vb) {
                (F, _) | (_, F) => F,
                (T, T) => T,
                _ => U,
            };
            let or = match (va, vb) {
                (T, _) | (_, T) => T,
                (F, F) => F,
                _ => U,
            };
            assert_eq!(eval(&format!("{a} AND {b}"), &p), and, "{a} AND {b}");
            assert_eq!(eval(&format!("{a} OR {b}"), &p), or, "{a} OR {b}");
        }
    }
}

#[test]
fn long_and_or_chains() {
    let p = props([("x", Value::Int(500))]);
    let any: Vec<String> = (0..1000).map(|i| format!("x = {i}")).collect();
    assert_eq!(eval(&any.join(" OR "), &p), T);
    assert_eq!(eval(&any.join(" AND "), &p), F);
    let with_unknown = format!("{} OR missing = 1", any[..10].join(" OR "));
    assert_eq!(eval(&with_unknown, &p), U);
}

#[test]
fn bare_identifiers_and_boolean_literals() {
    let p = props([
        ("yes", Value::Bool(true)),
        ("no", Value::Bool(false)),
        ("word", s("TRUE")),
        ("other", s("maybe")),
        ("n", Value::Int(1)),
    ]);
    check(
        &p,
        &[
            ("yes", T),
            ("no", F),
            ("word", T),
            ("other", U),
            ("n", U),
            ("missing", U),
            ("TRUE", T),
            ("false", F),
            ("NULL", U),
            ("NOT no", T),
            ("yes = TRUE", T),
            ("word = true", T),
            ("word <> FALSE", T),
            ("other = TRUE", U),
            ("yes < TRUE", U),
            ("yes = 1", U),
        ],
    );
}

#[test]
fn comparisons_on_numbers() {
    let p = props([("i", Value::Int(10)), ("f", Value::Float(2.5))]);
    check(
        &p,
        &[
            ("i = 10", T),
            ("i = 11", F),
            ("i <> 11", T),
            ("i <> 10", F),
            ("i < 11", T),
            ("i < 10", F),
            ("i <= 10", T),
            ("i <= 9", F),
            ("i > 9", T),
            ("i > 10", F),
            ("i >= 10", T),
            ("i >= 11", F),
            ("f = 2.5", T),
            ("f > 2", T),
            ("i = 10.0", T),
            ("i > 9.5", T),
            ("f < i", T),
            ("missing = 1", U),
            ("missing <> 1", U),
            ("NULL = NULL", U),
            ("i = NULL", U),
        ],
    );
}

#[test]
fn comparisons_on_strings() {
    let p = props([("a", s("abc")), ("n", s("10")), ("m", s("9"))]);
    check(
        &p,
        &[
            ("a = 'abc'", T),
            ("a = 'ABC'", F),
            ("a <> 'abc'", F),
            ("a <> 'x'", T),
            ("'abc' = a", T),
            // Ordering strings is only defined when both read as numbers.
            ("a < 'b'", U),
            ("a > 'b'", U),
            ("n > m", T),
            ("n > '9'", T),
            ("n <= '9'", F),
            // Equality between strings is exact, not numeric.
            ("n = '10.0'", F),
            ("n = '10'", T),
        ],
    );
}

#[test]
fn strings_read_as_numbers_against_numbers() {
    let p = props([
        ("weight", s("2600")),
        ("price", s("9.99")),
        ("neg", s("-3")),
        ("word", s("heavy")),
        ("big", s("1e3")),
        ("spaced", s(" 5")),
    ]);
    check(
        &p,
        &[
            ("weight > 2500", T),
            ("weight = 2600", T),
            ("weight = 2600.0", T),
            ("weight < 2500", F),
            ("price < 10", T),
            ("price = 9.99", T),
            ("neg < 0", T),
            ("big = 1000", T),
            ("word > 1", U),
            ("word = 1", U),
            ("word <> 1", U),
            ("spaced = 5", U),
            ("weight + 1 = 2601", T),
            ("price * 2 > 19", T),
            ("word + 1 = 1", U),
            ("'7' + 1 = 8", T),
            ("-neg = 3", T),
            ("+weight = 2600", T),
            ("-word = 1", U),
        ],
    );
}

#[test]
fn arithmetic() {
    let p = props([
        ("i", Value::Int(7)),
        ("f", Value::Float(0.5)),
        ("z", Value::Int(0)),
    ]);
    check(
        &p,
        &[
            ("i + 1 = 8", T),
            ("i - 10 = -3", T),
            ("i * 3 = 21", T),
            ("i / 2 = 3", T),
            ("-i / 2 = -3", T),
            ("i / 2.0 = 3.5", T),
            ("i + f = 7.5", T),
            ("f * 4 = 2", T),
            ("i / z > 0", U),
            ("i / z IS NULL", T),
            ("f / 0 IS NULL", T),
            ("f / 0.0 IS NULL", T),
            ("9223372036854775807 + 1 IS NULL", T),
            ("-9223372036854775808 - 1 IS NULL", T),
            ("-9223372036854775808 / -1 IS NULL", T),
            ("-(-9223372036854775808) IS NULL", T),
            ("-9223372036854775808 < 0", T),
            ("1e308 * 10 IS NULL", T),
            ("missing + 1 IS NULL", T),
            ("TRUE + 1 IS NULL", T),
            ("--i = 7", T),
            ("- - i = 7", T),
            ("+-i = -7", T),
        ],
    );
}

#[test]
fn precedence() {
    let p = props([
        ("t", Value::Bool(true)),
        ("f", Value::Bool(false)),
        ("i", Value::Int(2)),
    ]);
    check(
        &p,
        &[
            // AND binds tighter than OR.
            ("t OR t AND f", T),
            ("(t OR t) AND f", F),
            ("f AND f OR t", T),
            ("f AND (f OR t)", F),
            // NOT binds tighter than AND, looser than comparison.
            ("NOT f AND f", F),
            ("NOT (f AND f)", T),
            ("NOT i = 3", T),
            ("NOT NOT t", T),
            // * / before + -, left to right within a level.
            ("1 + 2 * 3 = 7", T),
            ("(1 + 2) * 3 = 9", T),
            ("10 - 2 - 3 = 5", T),
            ("8 / 2 / 2 = 2", T),
            ("-2 * 3 = -6", T),
            ("-i * i = -4", T),
            ("i * -i = -4", T),
            // Arithmetic before comparison; BETWEEN's AND is not the logical AND.
            ("i + 1 BETWEEN 2 AND 3 AND t", T),
            ("i BETWEEN 1 + 1 AND 3 - 1", T),
            ("i BETWEEN 3 AND 4 OR t", T),
            // A predicate's result can be compared.
            ("(i = 2) = t", T),
            ("i = 2 = TRUE", T),
            ("i IS NULL = FALSE", T),
        ],
    );
}

#[test]
fn between() {
    let p = props([("age", Value::Int(17)), ("s", s("17")), ("w", s("x"))]);
    check(
        &p,
        &[
            ("age BETWEEN 15 AND 19", T),
            ("age BETWEEN 17 AND 17", T),
            ("age BETWEEN 18 AND 19", F),
            ("age BETWEEN 10 AND 16", F),
            ("age BETWEEN 19 AND 15", F),
            ("age NOT BETWEEN 15 AND 19", F),
            ("age NOT BETWEEN 18 AND 19", T),
            ("s BETWEEN 15 AND 19", T),
            ("age BETWEEN 15.5 AND 17.5", T),
            ("w BETWEEN 1 AND 2", U),
            ("missing BETWEEN 1 AND 2", U),
            ("missing NOT BETWEEN 1 AND 2", U),
            // `a <= x AND x <= b` with a NULL bound: FALSE if the other bound fails.
            ("age BETWEEN missing AND 10", F),
            ("age BETWEEN missing AND 20", U),
            ("age BETWEEN 20 AND missing", F),
            ("age NOT BETWEEN missing AND 10", T),
        ],
    );
}

#[test]
fn like() {
    let p = props([
        ("phone", s("12993")),
        ("word", s("lose")),
        ("pct", s("100%")),
        ("under", s("_foo")),
        ("n", Value::Int(123)),
        ("quote", s("it's")),
    ]);
    check(
        &p,
        &[
            ("phone LIKE '12%3'", T),
            ("phone LIKE '12%4'", F),
            ("phone NOT LIKE '12%3'", F),
            ("phone NOT LIKE '12%4'", T),
            ("word LIKE 'l_se'", T),
            ("word LIKE 'l_s'", F),
            ("pct LIKE '100\\%' ESCAPE '\\'", T),
            ("phone LIKE '100\\%' ESCAPE '\\'", F),
            ("pct LIKE '100!%' ESCAPE '!'", T),
            ("under LIKE '\\_%' ESCAPE '\\'", T),
            ("word LIKE '\\_%' ESCAPE '\\'", F),
            ("quote LIKE 'it''%'", T),
            ("word like 'L%'", F),
            ("n LIKE '1%'", U),
            ("missing LIKE '%'", U),
            ("missing NOT LIKE '%'", U),
        ],
    );
}

#[test]
fn in_lists() {
    let p = props([
        ("c", s("US")),
        ("n", Value::Int(1)),
        ("b", Value::Bool(true)),
    ]);
    check(
        &p,
        &[
            ("c IN ('UK', 'US', 'France')", T),
            ("c IN ('UK', 'France')", F),
            ("c IN ('us')", F),
            ("c IN ('US')", T),
            ("c NOT IN ('UK', 'US')", F),
            ("c NOT IN ('UK')", T),
            ("n IN ('1')", U),
            ("b IN ('true')", U),
            ("missing IN ('a')", U),
            ("missing NOT IN ('a')", U),
        ],
    );
}

#[test]
fn is_null() {
    let p = props([("present", s("")), ("n", Value::Int(0))]);
    check(
        &p,
        &[
            ("missing IS NULL", T),
            ("missing IS NOT NULL", F),
            ("present IS NULL", F),
            ("present IS NOT NULL", T),
            ("n IS NOT NULL", T),
            ("NULL IS NULL", T),
            ("(missing = 1) IS NULL", T),
            ("(n = 0) IS NULL", F),
            ("n + missing IS NULL", T),
            ("missing is null", T),
        ],
    );
}

#[test]
fn identifiers_are_case_sensitive() {
    let p = props([("Color", s("blue"))]);
    check(&p, &[("Color = 'blue'", T), ("color = 'blue'", U)]);
}

#[test]
fn string_properties_from_a_plain_map() {
    let headers: std::collections::HashMap<String, String> = [("count", "5"), ("on", "true")]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .into();
    let sel = Selector::parse("count >= 5 AND on AND count IN ('5')").unwrap();
    assert!(sel.matches(&headers));
    let sel = Selector::parse("count > 5").unwrap();
    assert!(!sel.matches(&headers));
}

#[test]
fn selector_keeps_its_text() {
    let text = "  a = 'b'  ";
    let sel: Selector = text.parse().unwrap();
    assert_eq!(sel.text(), text);
    assert_eq!(sel.to_string(), text);
}
