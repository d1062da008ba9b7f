//! Property values and where they come from.
//!
//! The broker implements [`Properties`] over a message's headers and hands values out as
//! [`Value`]s that borrow from the message, so evaluating a selector copies no header text.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;

/// A property value as the selector sees it.
///
/// STOMP headers are all strings, so most values arrive as [`Value::Str`]; the evaluator
/// reads a string as a number or a boolean when it is compared with one (see the crate docs).
#[derive(Clone, Debug, PartialEq)]
pub enum Value<'a> {
    /// Text; borrowed from the message whenever possible.
    Str(Cow<'a, str>),
    /// An exact number (JMS `byte`, `short`, `int` and `long`).
    Int(i64),
    /// An approximate number (JMS `float` and `double`).
    Float(f64),
    /// A boolean.
    Bool(bool),
}

impl Value<'_> {
    /// The same value, borrowing any text from `self` instead of copying it.
    #[must_use]
    pub fn reborrow(&self) -> Value<'_> {
        match self {
            Value::Str(s) => Value::Str(Cow::Borrowed(s)),
            Value::Int(i) => Value::Int(*i),
            Value::Float(f) => Value::Float(*f),
            Value::Bool(b) => Value::Bool(*b),
        }
    }
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(s: &'a str) -> Self {
        Value::Str(Cow::Borrowed(s))
    }
}

impl From<String> for Value<'_> {
    fn from(s: String) -> Self {
        Value::Str(Cow::Owned(s))
    }
}

impl From<i64> for Value<'_> {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

impl From<f64> for Value<'_> {
    fn from(f: f64) -> Self {
        Value::Float(f)
    }
}

impl From<bool> for Value<'_> {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

/// Where identifiers are looked up. The broker implements this over a message's headers.
///
/// Returning `None` means the property is missing, which the selector treats as SQL `NULL`.
/// Names are case-sensitive.
pub trait Properties {
    /// The value of property `name`, or `None` if the message has no such property.
    fn get(&self, name: &str) -> Option<Value<'_>>;
}

impl<P: Properties + ?Sized> Properties for &P {
    fn get(&self, name: &str) -> Option<Value<'_>> {
        (**self).get(name)
    }
}

/// All-string properties, as STOMP headers are.
impl<S: BuildHasher> Properties for HashMap<String, String, S> {
    fn get(&self, name: &str) -> Option<Value<'_>> {
        HashMap::get(self, name).map(|v| Value::from(v.as_str()))
    }
}

/// All-string properties, as STOMP headers are.
impl Properties for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<Value<'_>> {
        BTreeMap::get(self, name).map(|v| Value::from(v.as_str()))
    }
}

/// Typed properties, as OpenWire messages carry them.
impl<S: BuildHasher> Properties for HashMap<String, Value<'_>, S> {
    fn get(&self, name: &str) -> Option<Value<'_>> {
        HashMap::get(self, name).map(Value::reborrow)
    }
}

/// Typed properties, as OpenWire messages carry them.
impl Properties for BTreeMap<String, Value<'_>> {
    fn get(&self, name: &str) -> Option<Value<'_>> {
        BTreeMap::get(self, name).map(Value::reborrow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_maps_lend_their_text() {
        let mut m = HashMap::new();
        m.insert("a".to_string(), "1".to_string());
        let v = Properties::get(&m, "a").unwrap();
        assert!(matches!(v, Value::Str(Cow::Borrowed("1"))));
        assert_eq!(Properties::get(&m, "A"), None, "names are case-sensitive");
    }

    #[test]
    fn typed_maps_reborrow_owned_text() {
        let mut m = BTreeMap::new();
        m.insert("s".to_string(), Value::from("x".to_string()));
        m.insert("i".to_string(), Value::from(7));
        assert!(matches!(
            Properties::get(&m, "s"),
            Some(Value::Str(Cow::Borrowed("x")))
        ));
        assert_eq!(Properties::get(&m, "i"), Some(Value::Int(7)));
    }
}
