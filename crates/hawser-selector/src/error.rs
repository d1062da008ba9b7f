//! Why a selector was rejected.
//!
//! Every variant that points into the text carries `pos`, a zero-based offset counted in
//! *characters* (not bytes), so a client can underline the spot whatever the script of its
//! header names. Evaluation never fails: a selector that parses always yields TRUE, FALSE or
//! UNKNOWN, so this is the only error type of the crate.

/// A selector that cannot be used. Returned by [`Selector::parse`](crate::Selector::parse).
#[non_exhaustive]
#[derive(thiserror::Error, Debug, Clone, PartialEq)]
pub enum ParseError {
    /// The text is empty or only whitespace. Brokers treat that as "no selector" before
    /// parsing; reaching the parser with it is a caller mistake worth naming.
    #[error("empty selector")]
    Empty,

    /// The text is longer than the configured limit, in bytes.
    #[error("selector is {len} bytes long; the limit is {limit}")]
    TooLong {
        /// Length of the text, in bytes.
        len: usize,
        /// The limit in force ([`Limits::text_bytes_max`](crate::Limits::text_bytes_max)).
        limit: usize,
    },

    /// Parentheses, `NOT`s, signs or operators nest deeper than the configured limit.
    #[error("selector nests deeper than {limit} levels (at character {pos})")]
    TooDeep {
        /// Where the level that crossed the limit starts.
        pos: usize,
        /// The limit in force ([`Limits::depth_max`](crate::Limits::depth_max)).
        limit: usize,
    },

    /// An `IN (...)` list has more items than the configured limit.
    #[error("IN list at character {pos} has more than {limit} items")]
    TooManyInItems {
        /// Where the list's `(` is.
        pos: usize,
        /// The limit in force ([`Limits::in_items_max`](crate::Limits::in_items_max)).
        limit: usize,
    },

    /// A character that starts no token, such as `!` or `#`.
    #[error("unexpected character {found:?} at character {pos}")]
    UnexpectedChar {
        /// Where the character is.
        pos: usize,
        /// The character itself.
        found: char,
    },

    /// A well-formed token where the grammar wants something else.
    #[error("expected {expected} at character {pos}, found {found}")]
    UnexpectedToken {
        /// Where the token starts.
        pos: usize,
        /// The token as written, or `end of input`.
        found: String,
        /// What the grammar accepts there.
        expected: &'static str,
    },

    /// A string literal whose closing `'` never comes.
    #[error("unterminated string literal starting at character {pos}")]
    UnterminatedString {
        /// Where the opening `'` is.
        pos: usize,
    },

    /// A numeric literal that is malformed (`1e`, `09`, `12abc`) or out of range.
    #[error("invalid number {text:?} at character {pos}")]
    InvalidNumber {
        /// Where the literal starts.
        pos: usize,
        /// The literal as written.
        text: String,
    },

    /// The string after `ESCAPE` is not exactly one character long.
    #[error("ESCAPE at character {pos} must be a single character")]
    InvalidEscape {
        /// Where the `ESCAPE` string literal starts.
        pos: usize,
    },

    /// A `LIKE` pattern ends with its escape character, which then escapes nothing.
    #[error("LIKE pattern at character {pos} ends with its escape character")]
    DanglingEscape {
        /// Where the pattern's string literal starts.
        pos: usize,
    },

    /// A value (number, string or arithmetic) where a condition is required: the whole
    /// selector, or an operand of `AND`, `OR` or `NOT`. JMS rejects `a + 1` as a selector.
    #[error("expression at character {pos} is not a condition (a boolean expression)")]
    NotBoolean {
        /// Where the offending expression starts.
        pos: usize,
    },
}
