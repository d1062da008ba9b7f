//! JMS message selectors: the SQL-92 subset of JMS 1.1 §3.8.1, as ActiveMQ accepts it.
//!
//! A consumer's selector is parsed once, when it subscribes, into a [`Selector`]; the broker
//! then calls [`Selector::matches`] for every message it considers for that consumer, with the
//! message's headers behind the [`Properties`] trait. Parsing rejects anything malformed or
//! over the [`Limits`]; evaluation never fails and does not allocate in the common cases.
//!
//! ```
//! use std::collections::HashMap;
//! use hawser_selector::Selector;
//!
//! let selector = Selector::parse("JMSType = 'car' AND weight > 2500").unwrap();
//! let headers: HashMap<String, String> =
//!     [("JMSType", "car"), ("weight", "3000")].map(|(k, v)| (k.into(), v.into())).into();
//! assert!(selector.matches(&headers));
//! ```
//!
//! # Language
//!
//! - Literals: `'strings'` (`''` is a quote), integers (`42`, `42L`, `0x2A`, octal `052`),
//!   floats (`1.5`, `.5`, `7.`, `1e10`, `1.5F`), `TRUE`, `FALSE`, `NULL`.
//! - Identifiers: a letter, `_` or `$`, then letters, digits, `_` or `$`; case-sensitive.
//!   Keywords (`NOT AND OR BETWEEN LIKE IN IS NULL ESCAPE TRUE FALSE`) are case-insensitive
//!   and cannot be identifiers.
//! - Operators, loosest first: `OR`; `AND`; `NOT`; `= <> < > <= >=`, `[NOT] BETWEEN .. AND ..`,
//!   `[NOT] LIKE 'pattern' [ESCAPE 'c']`, `[NOT] IN ('a', ...)`, `IS [NOT] NULL`; `+ -`;
//!   `* /`; unary `+ -`.
//!
//! # Evaluation
//!
//! SQL's three-valued logic: a missing property is `NULL`, any comparison with `NULL` is
//! UNKNOWN, and `AND`/`OR`/`NOT` follow the JMS truth tables. Only TRUE matches.
//!
//! STOMP headers are all strings, so strings are read as whatever they are compared with:
//! - string with number (comparison or arithmetic): the string is read as a number (`i64`,
//!   else `f64`); if it is not one, the result is UNKNOWN;
//! - string with string: `=` and `<>` compare the text exactly; `<`, `>`, `<=`, `>=`
//!   compare numerically if both read as numbers, and are UNKNOWN otherwise;
//! - string with boolean: `"true"`/`"false"` in any case are booleans; anything else is
//!   UNKNOWN. Booleans support only `=` and `<>`;
//! - integer with float: compared and computed as floats.
//!
//! Division by zero, integer overflow and non-finite float results are `NULL`. `LIKE` and
//! `IN` on anything but a string are UNKNOWN. A bare identifier is TRUE when the property is
//! `true` (a boolean, or the string `"true"` in any case).

mod ast;
mod error;
mod eval;
mod lexer;
mod like;
mod limits;
mod parser;
mod value;

use std::fmt;
use std::str::FromStr;

pub use error::ParseError;
pub use limits::{Limits, MAX_DEPTH, MAX_IN_ITEMS, MAX_TEXT_BYTES};
pub use value::{Properties, Value};

/// A parsed selector, ready to be evaluated against any number of messages.
#[derive(Clone, Debug)]
pub struct Selector {
    /// The text it was parsed from, as given.
    text: Box<str>,
    /// The parsed condition.
    root: ast::Expr,
}

impl Selector {
    /// Parses `text` within the default [`Limits`].
    ///
    /// # Errors
    ///
    /// A [`ParseError`] saying what is wrong and where, if `text` is not a valid selector,
    /// is not a condition, or exceeds a limit.
    pub fn parse(text: &str) -> Result<Selector, ParseError> {
        Self::parse_with_limits(text, Limits::default())
    }

    /// Parses `text` within `limits`.
    ///
    /// # Errors
    ///
    /// As [`Selector::parse`].
    pub fn parse_with_limits(text: &str, limits: Limits) -> Result<Selector, ParseError> {
        Ok(Selector {
            root: parser::parse(text, limits)?,
            text: text.into(),
        })
    }

    /// Whether the message with properties `props` is selected: true only if the selector
    /// evaluates to TRUE (UNKNOWN and FALSE both mean no match).
    #[must_use]
    pub fn matches(&self, props: &dyn Properties) -> bool {
        self.evaluate(props) == Some(true)
    }

    /// The selector's three-valued result for `props`: `None` is UNKNOWN.
    #[must_use]
    pub fn evaluate(&self, props: &dyn Properties) -> Option<bool> {
        eval::truth(&self.root, props).to_option()
    }

    /// The text the selector was parsed from.
    #[must_use]
    pub fn text(&self) -> &str {
        &self.text
    }
}

impl FromStr for Selector {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Selector::parse(text)
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}
