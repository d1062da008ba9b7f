//! Helpers shared by the integration tests.

// Each test file compiles this module separately and uses only some of it.
#![allow(dead_code)]

use std::collections::BTreeMap;

use hawser_selector::{Selector, Value};

/// A property map from `(name, value)` pairs.
pub fn props<const N: usize>(
    pairs: [(&str, Value<'static>); N],
) -> BTreeMap<String, Value<'static>> {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// Parses `selector` (panicking with the error if it does not parse) and evaluates it.
pub fn eval(selector: &str, props: &BTreeMap<String, Value<'static>>) -> Option<bool> {
    Selector::parse(selector)
        .unwrap_or_else(|e| panic!("{selector:?} should parse: {e}"))
        .evaluate(props)
}

/// A string value.
pub fn s(text: &str) -> Value<'static> {
    Value::from(text.to_string())
}
