//! Typed message properties, as JMS defines them.
//!
//! STOMP carries every property as text; OpenWire (and later AMQP) carry the
//! JMS types. The engine keeps what the producer sent, so a consumer speaking
//! a typed protocol gets back an `int` where an `int` was sent, and each
//! protocol decides how to show a type it cannot carry (STOMP: as text).

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use hawser_selector::Value;

/// One property value, of one of the JMS property types.
#[derive(Clone, Debug, PartialEq)]
pub enum PropertyValue {
    /// `boolean`.
    Bool(bool),
    /// `byte` (signed, as in Java).
    Byte(i8),
    /// `short`.
    Short(i16),
    /// `int`.
    Int(i32),
    /// `long`.
    Long(i64),
    /// `float`.
    Float(f32),
    /// `double`.
    Double(f64),
    /// `String`.
    String(Arc<str>),
    /// `byte[]` (allowed by ActiveMQ's clients, not by the JMS specification).
    Bytes(Bytes),
}

impl PropertyValue {
    /// The value as a selector sees it; bytes take part in no comparison.
    pub fn selector_value(&self) -> Option<Value<'_>> {
        Some(match self {
            PropertyValue::Bool(b) => Value::Bool(*b),
            PropertyValue::Byte(v) => Value::Int(i64::from(*v)),
            PropertyValue::Short(v) => Value::Int(i64::from(*v)),
            PropertyValue::Int(v) => Value::Int(i64::from(*v)),
            PropertyValue::Long(v) => Value::Int(*v),
            PropertyValue::Float(v) => Value::Float(f64::from(*v)),
            PropertyValue::Double(v) => Value::Float(*v),
            PropertyValue::String(s) => Value::Str(Cow::Borrowed(s)),
            PropertyValue::Bytes(_) => return None,
        })
    }

    /// Bytes the value takes in memory beyond its fixed size (text and bytes).
    pub fn extra_bytes(&self) -> usize {
        match self {
            PropertyValue::String(s) => s.len(),
            PropertyValue::Bytes(b) => b.len(),
            _ => 0,
        }
    }
}

/// The text a protocol without types shows: Java's `toString` of the value
/// (so a JMS `int` 7 reaches a STOMP consumer as `7`), bytes as hex.
impl fmt::Display for PropertyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PropertyValue::Bool(b) => write!(f, "{b}"),
            PropertyValue::Byte(v) => write!(f, "{v}"),
            PropertyValue::Short(v) => write!(f, "{v}"),
            PropertyValue::Int(v) => write!(f, "{v}"),
            PropertyValue::Long(v) => write!(f, "{v}"),
            PropertyValue::Float(v) => write_java_float(f, f64::from(*v)),
            PropertyValue::Double(v) => write_java_float(f, *v),
            PropertyValue::String(s) => f.write_str(s),
            PropertyValue::Bytes(b) => {
                for byte in b.iter() {
                    write!(f, "{byte:02x}")?;
                }
                Ok(())
            }
        }
    }
}

/// Java prints whole floating-point numbers with a `.0`, and its special values by name.
fn write_java_float(f: &mut fmt::Formatter<'_>, v: f64) -> fmt::Result {
    if v.is_nan() {
        f.write_str("NaN")
    } else if v.is_infinite() {
        f.write_str(if v > 0.0 { "Infinity" } else { "-Infinity" })
    } else if v.fract() == 0.0 && v.abs() < 1e16 {
        write!(f, "{v:.1}")
    } else {
        write!(f, "{v}")
    }
}

/// A message's properties in the producer's order. Names are unique: a
/// protocol that can repeat one (STOMP) keeps the first, as ActiveMQ does.
pub type Properties = Vec<(Arc<str>, PropertyValue)>;

/// The value of property `name`.
pub fn property<'a>(properties: &'a Properties, name: &str) -> Option<&'a PropertyValue> {
    properties
        .iter()
        .find(|(k, _)| &**k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_what_java_would_print() {
        let shown: Vec<String> = [
            PropertyValue::Bool(true),
            PropertyValue::Byte(-3),
            PropertyValue::Int(7),
            PropertyValue::Long(-9_000_000_000),
            PropertyValue::Float(2.0),
            PropertyValue::Double(0.25),
            PropertyValue::Double(f64::NAN),
            PropertyValue::String(Arc::from("x")),
            PropertyValue::Bytes(Bytes::from_static(&[0, 255])),
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(
            shown,
            [
                "true",
                "-3",
                "7",
                "-9000000000",
                "2.0",
                "0.25",
                "NaN",
                "x",
                "00ff"
            ]
        );
    }

    #[test]
    fn selectors_see_numbers_as_numbers() {
        assert_eq!(
            PropertyValue::Short(5).selector_value(),
            Some(Value::Int(5))
        );
        assert_eq!(
            PropertyValue::Float(1.5).selector_value(),
            Some(Value::Float(1.5))
        );
        assert_eq!(PropertyValue::Bytes(Bytes::new()).selector_value(), None);
    }
}
