//! What the parser rejects, where it says the problem is, and the limits it enforces.

use hawser_selector::{Limits, ParseError, Selector, MAX_DEPTH, MAX_IN_ITEMS, MAX_TEXT_BYTES};

fn err(text: &str) -> ParseError {
    match Selector::parse(text) {
        Ok(_) => panic!("{text:?} should not parse"),
        Err(e) => e,
    }
}

fn unexpected(pos: usize, found: &str, expected: &'static str) -> ParseError {
    ParseError::UnexpectedToken {
        pos,
        found: found.to_string(),
        expected,
    }
}

#[test]
fn empty_and_blank() {
    assert_eq!(err(""), ParseError::Empty);
    assert_eq!(err(" \t\r\n "), ParseError::Empty);
}

#[test]
fn unexpected_tokens_say_where_and_what() {
    assert_eq!(err("a ="), unexpected(3, "end of input", "an expression"));
    assert_eq!(err("a = = 1"), unexpected(4, "`=`", "an expression"));
    assert_eq!(
        err("a = 1 b"),
        unexpected(6, "`b`", "an operator or end of input")
    );
    assert_eq!(err("(a = 1"), unexpected(6, "end of input", "`)`"));
    assert_eq!(
        err("a = 1)"),
        unexpected(5, "`)`", "an operator or end of input")
    );
    assert_eq!(err("a BETWEEN 1 OR 2"), unexpected(12, "`OR`", "`AND`"));
    assert_eq!(err("a LIKE b"), unexpected(7, "`b`", "a string literal"));
    assert_eq!(
        err("a LIKE 'x' ESCAPE c"),
        unexpected(18, "`c`", "a string literal")
    );
    assert_eq!(err("a IN 'x'"), unexpected(5, "`'x'`", "`(`"));
    assert_eq!(err("a IN ()"), unexpected(6, "`)`", "a string literal"));
    assert_eq!(err("a IN (1)"), unexpected(6, "`1`", "a string literal"));
    assert_eq!(err("a IN ('x' 'y')"), unexpected(10, "`'y'`", "`,` or `)`"));
    assert_eq!(
        err("a IN ('x',)"),
        unexpected(10, "`)`", "a string literal")
    );
    assert_eq!(err("a IS 1"), unexpected(5, "`1`", "`NULL`"));
    assert_eq!(err("a IS NOT"), unexpected(8, "end of input", "`NULL`"));
    assert_eq!(
        err("a NOT = 1"),
        unexpected(6, "`=`", "BETWEEN, LIKE or IN")
    );
    assert_eq!(
        err("a NOT IS NULL"),
        unexpected(6, "`IS`", "BETWEEN, LIKE or IN")
    );
    assert_eq!(err("a AND"), unexpected(5, "end of input", "an expression"));
    assert_eq!(err("()"), unexpected(1, "`)`", "an expression"));
}

#[test]
fn keywords_are_not_identifiers() {
    assert_eq!(err("and = 1"), unexpected(0, "`and`", "an expression"));
    assert_eq!(
        err("x = Between"),
        unexpected(4, "`Between`", "an expression")
    );
    assert_eq!(
        err("escape = 'a'"),
        unexpected(0, "`escape`", "an expression")
    );
}

#[test]
fn lexical_errors() {
    assert_eq!(err("a = 'abc"), ParseError::UnterminatedString { pos: 4 });
    assert_eq!(
        err("a != 1"),
        ParseError::UnexpectedChar { pos: 2, found: '!' }
    );
    assert_eq!(
        err("a-b = 1 # c"),
        ParseError::UnexpectedChar { pos: 8, found: '#' }
    );
    assert_eq!(
        err("x.y = 1"),
        ParseError::UnexpectedChar { pos: 1, found: '.' }
    );
    assert_eq!(
        err("a = 12abc"),
        ParseError::InvalidNumber {
            pos: 4,
            text: "12abc".into()
        }
    );
}

#[test]
fn positions_count_characters() {
    // 'é' and '€' are several bytes each but one character.
    assert_eq!(
        err("é = '€€' AND"),
        unexpected(12, "end of input", "an expression")
    );
}

#[test]
fn integer_range() {
    assert!(Selector::parse("a = 9223372036854775807").is_ok());
    assert!(Selector::parse("a = -9223372036854775808").is_ok());
    assert_eq!(
        err("a = 9223372036854775808"),
        ParseError::InvalidNumber {
            pos: 4,
            text: "9223372036854775808".into()
        }
    );
    assert_eq!(
        err("a = -9223372036854775809"),
        ParseError::InvalidNumber {
            pos: 5,
            text: "9223372036854775809".into()
        }
    );
    assert_eq!(
        err("a = 0x8000000000000000"),
        ParseError::InvalidNumber {
            pos: 4,
            text: "0x8000000000000000".into()
        }
    );
}

#[test]
fn escape_must_be_one_character_and_escape_something() {
    assert_eq!(
        err("a LIKE 'x' ESCAPE ''"),
        ParseError::InvalidEscape { pos: 18 }
    );
    assert_eq!(
        err("a LIKE 'x' ESCAPE 'ab'"),
        ParseError::InvalidEscape { pos: 18 }
    );
    assert_eq!(
        err("a LIKE 'x!' ESCAPE '!'"),
        ParseError::DanglingEscape { pos: 7 }
    );
    assert!(Selector::parse("a LIKE 'x!!' ESCAPE '!'").is_ok());
}

#[test]
fn selector_must_be_a_condition() {
    assert_eq!(err("a + 1"), ParseError::NotBoolean { pos: 0 });
    assert_eq!(err("'abc'"), ParseError::NotBoolean { pos: 0 });
    assert_eq!(err("42"), ParseError::NotBoolean { pos: 0 });
    assert_eq!(err("-a"), ParseError::NotBoolean { pos: 0 });
    assert_eq!(err(" (1 + 2)"), ParseError::NotBoolean { pos: 1 });
    assert_eq!(err("a = 1 AND 5"), ParseError::NotBoolean { pos: 10 });
    assert_eq!(err("'x' OR a = 1"), ParseError::NotBoolean { pos: 0 });
    assert_eq!(err("NOT 'x'"), ParseError::NotBoolean { pos: 4 });
    assert_eq!(err("a OR b AND c * 2"), ParseError::NotBoolean { pos: 11 });
    // Identifiers, NULL and boolean literals may be conditions.
    for ok in [
        "flag",
        "NULL",
        "TRUE",
        "NOT flag",
        "a AND b OR NOT c",
        "(flag)",
    ] {
        assert!(Selector::parse(ok).is_ok(), "{ok}");
    }
}

#[test]
fn text_length_limit() {
    let at_limit = format!("a = '{}'", "x".repeat(MAX_TEXT_BYTES - 6));
    assert_eq!(at_limit.len(), MAX_TEXT_BYTES);
    assert!(Selector::parse(&at_limit).is_ok());
    let over = format!("a = '{}'", "x".repeat(MAX_TEXT_BYTES - 5));
    assert_eq!(
        err(&over),
        ParseError::TooLong {
            len: MAX_TEXT_BYTES + 1,
            limit: MAX_TEXT_BYTES
        }
    );
}

#[test]
fn parenthesis_depth_limit() {
    let nested = |n: usize| format!("{}a = 1{}", "(".repeat(n), ")".repeat(n));
    assert!(Selector::parse(&nested(MAX_DEPTH)).is_ok());
    assert_eq!(
        err(&nested(MAX_DEPTH + 1)),
        ParseError::TooDeep {
            pos: MAX_DEPTH,
            limit: MAX_DEPTH
        }
    );
    // Far beyond the limit: must fail cleanly, not overflow the stack.
    assert!(matches!(err(&nested(30_000)), ParseError::TooDeep { .. }));
}

#[test]
fn not_and_sign_depth_limit() {
    let nots = |n: usize| format!("{}a", "NOT ".repeat(n));
    assert!(Selector::parse(&nots(MAX_DEPTH - 1)).is_ok());
    assert!(matches!(err(&nots(MAX_DEPTH)), ParseError::TooDeep { .. }));
    assert!(matches!(err(&nots(10_000)), ParseError::TooDeep { .. }));
    let signs = |n: usize| format!("{}a = 1", "- ".repeat(n));
    assert!(Selector::parse(&signs(MAX_DEPTH - 2)).is_ok());
    assert!(matches!(err(&signs(20_000)), ParseError::TooDeep { .. }));
}

#[test]
fn tree_depth_limit_covers_long_arithmetic_chains() {
    // `a + a + ... + a` is a left-deep tree as deep as it is long.
    let chain = |n: usize| format!("{} = 1", vec!["a"; n].join(" + "));
    assert!(Selector::parse(&chain(MAX_DEPTH - 2)).is_ok());
    assert!(matches!(
        err(&chain(MAX_DEPTH + 5)),
        ParseError::TooDeep { .. }
    ));
    assert!(matches!(err(&chain(10_000)), ParseError::TooDeep { .. }));
}

#[test]
fn in_list_limit() {
    let list = |n: usize| {
        // One-character items keep 10,000 of them under the text length limit.
        let items: Vec<String> = (0..n).map(|i| format!("'{}'", i % 10)).collect();
        format!("a IN ({})", items.join(","))
    };
    assert!(Selector::parse(&list(MAX_IN_ITEMS)).is_ok());
    assert_eq!(
        err(&list(MAX_IN_ITEMS + 1)),
        ParseError::TooManyInItems {
            pos: 5,
            limit: MAX_IN_ITEMS
        }
    );
}

#[test]
fn custom_limits() {
    let limits = Limits {
        text_bytes_max: 20,
        depth_max: 4,
        in_items_max: 2,
    };
    let parse = |t: &str| Selector::parse_with_limits(t, limits);
    assert!(parse("a IN ('x', 'y')").is_ok());
    assert!(matches!(
        parse("a IN ('x','y','z')"),
        Err(ParseError::TooManyInItems { limit: 2, .. })
    ));
    assert!(matches!(
        parse("a = 1 AND b = 2 AND c = 3"),
        Err(ParseError::TooLong { limit: 20, .. })
    ));
    assert!(parse("((a = 1))").is_ok());
    assert!(parse("((((a = 1))))").is_ok());
    assert!(matches!(
        parse("(((((a = 1)))))"),
        Err(ParseError::TooDeep { limit: 4, .. })
    ));
}

#[test]
fn errors_display_their_position() {
    let msg = err("a = = 1").to_string();
    assert_eq!(msg, "expected an expression at character 4, found `=`");
}

#[test]
fn deepest_selectors_fit_in_a_small_stack() {
    // The limits promise that parsing and evaluating at the maximum depth stays well under
    // 1 MiB of stack, even unoptimized; check it on a thread that has only that much.
    let deepest = [
        format!("{}a = 1{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH)),
        format!("{}a", "NOT ".repeat(MAX_DEPTH - 1)),
        format!("{}a = 1", "-".repeat(MAX_DEPTH - 2)),
        format!("{} = 1", vec!["a"; MAX_DEPTH - 2].join(" * ")),
        format!(
            "{}a = 1{}",
            "(a = 1 OR ".repeat(MAX_DEPTH / 2 - 1),
            ")".repeat(MAX_DEPTH / 2 - 1)
        ),
        format!(
            "{}a{}",
            "(TRUE = ".repeat(MAX_DEPTH / 2 - 1),
            ")".repeat(MAX_DEPTH / 2 - 1)
        ),
    ];
    std::thread::Builder::new()
        .stack_size(1024 * 1024)
        .spawn(move || {
            let props: std::collections::BTreeMap<String, String> =
                [("a".to_string(), "1".to_string())].into();
            for text in &deepest {
                let selector = Selector::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
                let _ = selector.evaluate(&props);
            }
        })
        .unwrap()
        .join()
        .unwrap();
}
