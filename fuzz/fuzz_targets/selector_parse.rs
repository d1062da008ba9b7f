//! Fuzz the selector parser and evaluator: any UTF-8 text either fails to parse with a
//! `ParseError` or parses into a selector that evaluates without panicking.

#![no_main]

use std::collections::BTreeMap;

use hawser_selector::{Selector, Value};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(selector) = Selector::parse(text) else {
        return;
    };
    // A small message with one property of each kind, plus numeric and boolean strings,
    // so evaluation reaches the coercion paths.
    let props: BTreeMap<String, Value<'static>> = [
        ("a", Value::from("1".to_string())),
        ("b", Value::from("abc".to_string())),
        ("c", Value::from("true".to_string())),
        ("d", Value::Int(i64::MIN)),
        ("e", Value::Float(2.5)),
        ("f", Value::Bool(false)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let result = selector.evaluate(&props);
    assert_eq!(selector.matches(&props), result == Some(true));
    assert_eq!(selector.text(), text);
});
