//! Evaluation: walks the [`Expr`] tree against one message's [`Properties`].
//!
//! Conditions yield a three-valued [`Tri`] (SQL's TRUE, FALSE, UNKNOWN); values yield an
//! `Option<Value>`, where `None` is SQL `NULL`. A missing property is `NULL`, and so is
//! anything that cannot be computed: a string that is not a number in arithmetic, division
//! by zero, integer overflow. Nothing here panics or fails; the worst outcome is UNKNOWN,
//! which does not match.
//!
//! Text is borrowed from the selector and from the message throughout, so the common cases
//! (comparisons, `LIKE`, `IN`, numeric strings) allocate nothing.

use std::borrow::Cow;

use crate::ast::{ArithOp, CmpOp, Expr, Literal, UnaryOp};
use crate::{Properties, Value};

/// SQL's three truth values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tri {
    True,
    False,
    Unknown,
}

impl Tri {
    fn from_bool(b: bool) -> Tri {
        if b {
            Tri::True
        } else {
            Tri::False
        }
    }

    fn not(self) -> Tri {
        match self {
            Tri::True => Tri::False,
            Tri::False => Tri::True,
            Tri::Unknown => Tri::Unknown,
        }
    }

    fn negate_if(self, negated: bool) -> Tri {
        if negated {
            self.not()
        } else {
            self
        }
    }

    /// `None` for UNKNOWN.
    pub(crate) fn to_option(self) -> Option<bool> {
        match self {
            Tri::True => Some(true),
            Tri::False => Some(false),
            Tri::Unknown => None,
        }
    }
}

/// The truth of a condition.
pub(crate) fn truth(expr: &Expr, props: &dyn Properties) -> Tri {
    match expr {
        Expr::And(items) => {
            let mut result = Tri::True;
            for item in &**items {
                match truth(item, props) {
                    Tri::False => return Tri::False,
                    Tri::Unknown => result = Tri::Unknown,
                    Tri::True => {}
                }
            }
            result
        }
        Expr::Or(items) => {
            let mut result = Tri::False;
            for item in &**items {
                match truth(item, props) {
                    Tri::True => return Tri::True,
                    Tri::Unknown => result = Tri::Unknown,
                    Tri::False => {}
                }
            }
            result
        }
        Expr::Not(inner) => truth(inner, props).not(),
        Expr::Compare(op, left, right) => compare(
            *op,
            value(left, props).as_ref(),
            value(right, props).as_ref(),
        ),
        Expr::Between {
            operand,
            low,
            high,
            negated,
        } => {
            // As JMS defines it: `x BETWEEN a AND b` is `a <= x AND x <= b`.
            let x = value(operand, props);
            let above = compare(CmpOp::Ge, x.as_ref(), value(low, props).as_ref());
            if above == Tri::False {
                return Tri::False.negate_if(*negated);
            }
            let below = compare(CmpOp::Le, x.as_ref(), value(high, props).as_ref());
            let both = match (above, below) {
                (_, Tri::False) => Tri::False,
                (Tri::True, Tri::True) => Tri::True,
                _ => Tri::Unknown,
            };
            both.negate_if(*negated)
        }
        Expr::Like {
            operand,
            pattern,
            negated,
        } => match value(operand, props) {
            Some(Value::Str(s)) => Tri::from_bool(pattern.matches(&s)).negate_if(*negated),
            _ => Tri::Unknown,
        },
        Expr::In {
            operand,
            list,
            negated,
        } => match value(operand, props) {
            Some(Value::Str(s)) => Tri::from_bool(list.contains(&s)).negate_if(*negated),
            _ => Tri::Unknown,
        },
        Expr::IsNull { operand, negated } => {
            Tri::from_bool(value(operand, props).is_none() != *negated)
        }
        Expr::Lit(_) | Expr::Ident(_) | Expr::Unary(..) | Expr::Arith(..) => {
            match value(expr, props) {
                Some(Value::Bool(b)) => Tri::from_bool(b),
                Some(Value::Str(s)) => parse_bool(&s).map_or(Tri::Unknown, Tri::from_bool),
                _ => Tri::Unknown,
            }
        }
    }
}

/// The value of an expression; `None` is `NULL`. A condition's value is its truth as a
/// boolean, or `NULL` when UNKNOWN.
fn value<'a>(expr: &'a Expr, props: &'a dyn Properties) -> Option<Value<'a>> {
    match expr {
        Expr::Lit(literal) => match literal {
            Literal::Null => None,
            Literal::Bool(b) => Some(Value::Bool(*b)),
            Literal::Int(i) => Some(Value::Int(*i)),
            Literal::Float(f) => Some(Value::Float(*f)),
            Literal::Str(s) => Some(Value::Str(Cow::Borrowed(s))),
        },
        Expr::Ident(name) => props.get(name),
        Expr::Unary(op, operand) => {
            let n = number(&value(operand, props)?)?;
            match (op, n) {
                (UnaryOp::Plus, n) => Some(n.into()),
                (UnaryOp::Minus, Num::Int(i)) => i.checked_neg().map(Value::Int),
                (UnaryOp::Minus, Num::Float(f)) => Some(Value::Float(-f)),
            }
        }
        Expr::Arith(op, left, right) => {
            let l = number(&value(left, props)?)?;
            let r = number(&value(right, props)?)?;
            arith(*op, l, r).map(Value::from)
        }
        _ => truth(expr, props).to_option().map(Value::Bool),
    }
}

/// A value read as a number.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Num {
    Int(i64),
    Float(f64),
}

impl From<Num> for Value<'_> {
    fn from(n: Num) -> Self {
        match n {
            Num::Int(i) => Value::Int(i),
            Num::Float(f) => Value::Float(f),
        }
    }
}

/// Numbers as they are; strings if they read as a number (`i64` first, then `f64`).
fn number(v: &Value<'_>) -> Option<Num> {
    match v {
        Value::Int(i) => Some(Num::Int(*i)),
        Value::Float(f) => Some(Num::Float(*f)),
        Value::Str(s) => parse_number(s),
        Value::Bool(_) => None,
    }
}

/// Reads decimal notation only: Rust's float parser would also take `inf` and `NaN`, which
/// are words, not numbers, in a message header.
fn parse_number(s: &str) -> Option<Num> {
    if let Ok(i) = s.parse::<i64>() {
        return Some(Num::Int(i));
    }
    let decimal = s.bytes().any(|b| b.is_ascii_digit())
        && s.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    if !decimal {
        return None;
    }
    s.parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .map(Num::Float)
}

/// `true` and `false`, in any case.
fn parse_bool(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// Integer arithmetic where both sides are integers, float otherwise. Whatever has no finite
/// result (overflow, division by zero) is `None`.
fn arith(op: ArithOp, l: Num, r: Num) -> Option<Num> {
    if let (Num::Int(a), Num::Int(b)) = (l, r) {
        return match op {
            ArithOp::Add => a.checked_add(b),
            ArithOp::Sub => a.checked_sub(b),
            ArithOp::Mul => a.checked_mul(b),
            ArithOp::Div => a.checked_div(b),
        }
        .map(Num::Int);
    }
    let (a, b) = (as_f64(l), as_f64(r));
    let result = match op {
        ArithOp::Add => a + b,
        ArithOp::Sub => a - b,
        ArithOp::Mul => a * b,
        ArithOp::Div if b == 0.0 => return None,
        ArithOp::Div => a / b,
    };
    result.is_finite().then_some(Num::Float(result))
}

#[allow(clippy::cast_precision_loss)] // JMS promotes long to double in mixed arithmetic too.
fn as_f64(n: Num) -> f64 {
    match n {
        Num::Int(i) => i as f64,
        Num::Float(f) => f,
    }
}

fn compare_numbers(op: CmpOp, l: Num, r: Num) -> Tri {
    let ord = match (l, r) {
        (Num::Int(a), Num::Int(b)) => Some(a.cmp(&b)),
        _ => as_f64(l).partial_cmp(&as_f64(r)),
    };
    ord.map_or(Tri::Unknown, |ord| Tri::from_bool(op.holds(ord)))
}

/// Equality-only comparison, for booleans.
fn compare_equality(op: CmpOp, equal: bool) -> Tri {
    match op {
        CmpOp::Eq => Tri::from_bool(equal),
        CmpOp::Ne => Tri::from_bool(!equal),
        _ => Tri::Unknown,
    }
}

/// `l op r`, with the coercions described in the crate docs.
fn compare(op: CmpOp, l: Option<&Value<'_>>, r: Option<&Value<'_>>) -> Tri {
    let (Some(l), Some(r)) = (l, r) else {
        return Tri::Unknown;
    };
    match (l, r) {
        (Value::Bool(a), Value::Bool(b)) => compare_equality(op, a == b),
        (Value::Bool(b), Value::Str(s)) | (Value::Str(s), Value::Bool(b)) => {
            parse_bool(s).map_or(Tri::Unknown, |s| compare_equality(op, s == *b))
        }
        (Value::Bool(_), _) | (_, Value::Bool(_)) => Tri::Unknown,
        (Value::Str(a), Value::Str(b)) if op.is_equality() => compare_equality(op, a == b),
        (l, r) => match (number(l), number(r)) {
            (Some(l), Some(r)) => compare_numbers(op, l, r),
            _ => Tri::Unknown,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_strings() {
        assert_eq!(parse_number("42"), Some(Num::Int(42)));
        assert_eq!(parse_number("-7"), Some(Num::Int(-7)));
        assert_eq!(parse_number("2.5"), Some(Num::Float(2.5)));
        assert_eq!(parse_number("1e3"), Some(Num::Float(1000.0)));
        assert_eq!(
            parse_number("9223372036854775808"),
            Some(Num::Float(9.223_372_036_854_776e18))
        );
        for word in [
            "", "abc", "inf", "NaN", "infinity", " 1", "1 ", "0x10", "1e999", "e", "-",
        ] {
            assert_eq!(parse_number(word), None, "{word:?}");
        }
    }

    #[test]
    fn booleans_in_any_case() {
        assert_eq!(parse_bool("TRUE"), Some(true));
        assert_eq!(parse_bool("False"), Some(false));
        assert_eq!(parse_bool("yes"), None);
        assert_eq!(parse_bool("1"), None);
    }

    #[test]
    fn integer_arithmetic_is_checked() {
        let (max, min) = (Num::Int(i64::MAX), Num::Int(i64::MIN));
        assert_eq!(arith(ArithOp::Add, max, Num::Int(1)), None);
        assert_eq!(arith(ArithOp::Sub, min, Num::Int(1)), None);
        assert_eq!(arith(ArithOp::Mul, max, Num::Int(2)), None);
        assert_eq!(arith(ArithOp::Div, min, Num::Int(-1)), None);
        assert_eq!(arith(ArithOp::Div, Num::Int(1), Num::Int(0)), None);
        assert_eq!(
            arith(ArithOp::Div, Num::Int(7), Num::Int(-2)),
            Some(Num::Int(-3))
        );
    }

    #[test]
    fn float_arithmetic_without_finite_result_is_null() {
        assert_eq!(arith(ArithOp::Div, Num::Float(1.0), Num::Float(0.0)), None);
        assert_eq!(arith(ArithOp::Div, Num::Float(1.0), Num::Int(0)), None);
        assert_eq!(
            arith(ArithOp::Mul, Num::Float(1e300), Num::Float(1e300)),
            None
        );
        assert_eq!(
            arith(ArithOp::Add, Num::Int(1), Num::Float(0.5)),
            Some(Num::Float(1.5))
        );
    }
}
