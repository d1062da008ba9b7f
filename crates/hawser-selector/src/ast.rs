//! The parsed form of a selector, built by [`crate::parser`] and walked by [`crate::eval`].
//!
//! Everything the evaluator needs is prepared here once: `LIKE` patterns are compiled, `IN`
//! lists are sorted for binary search, and chains of `AND`/`OR` are flattened into lists so
//! that `a = 1 OR a = 2 OR ...` with thousands of terms is not a thousands-deep tree.

use std::cmp::Ordering;

use crate::like::LikePattern;

/// A literal written in the selector.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Literal {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Box<str>),
}

/// `+` or `-` in front of an operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UnaryOp {
    Plus,
    Minus,
}

/// Binary arithmetic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
}

/// Comparison operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    /// Whether `left op right` holds when comparing `left` with `right` gave `ord`.
    pub(crate) fn holds(self, ord: Ordering) -> bool {
        match self {
            CmpOp::Eq => ord == Ordering::Equal,
            CmpOp::Ne => ord != Ordering::Equal,
            CmpOp::Lt => ord == Ordering::Less,
            CmpOp::Le => ord != Ordering::Greater,
            CmpOp::Gt => ord == Ordering::Greater,
            CmpOp::Ge => ord != Ordering::Less,
        }
    }

    /// `=` and `<>`, the only comparisons JMS defines for strings and booleans.
    pub(crate) fn is_equality(self) -> bool {
        matches!(self, CmpOp::Eq | CmpOp::Ne)
    }
}

/// The string literals of an `IN (...)` list, sorted and deduplicated.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct InList {
    items: Box<[Box<str>]>,
}

impl InList {
    pub(crate) fn new(mut items: Vec<Box<str>>) -> Self {
        items.sort_unstable();
        items.dedup();
        InList {
            items: items.into_boxed_slice(),
        }
    }

    pub(crate) fn contains(&self, s: &str) -> bool {
        self.items.binary_search_by(|item| (**item).cmp(s)).is_ok()
    }
}

/// An expression node.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Expr {
    Lit(Literal),
    /// A property name, looked up in the message.
    Ident(Box<str>),
    Unary(UnaryOp, Box<Expr>),
    Arith(ArithOp, Box<Expr>, Box<Expr>),
    Compare(CmpOp, Box<Expr>, Box<Expr>),
    Between {
        operand: Box<Expr>,
        low: Box<Expr>,
        high: Box<Expr>,
        negated: bool,
    },
    Like {
        operand: Box<Expr>,
        pattern: LikePattern,
        negated: bool,
    },
    In {
        operand: Box<Expr>,
        list: InList,
        negated: bool,
    },
    IsNull {
        operand: Box<Expr>,
        negated: bool,
    },
    Not(Box<Expr>),
    /// Two or more conditions, all of which must hold.
    And(Box<[Expr]>),
    /// Two or more conditions, one of which must hold.
    Or(Box<[Expr]>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_list_finds_only_exact_members() {
        let list = InList::new(vec!["b".into(), "a".into(), "b".into(), " UK".into()]);
        assert!(list.contains("a"));
        assert!(list.contains(" UK"));
        assert!(!list.contains("UK"));
        assert!(!list.contains("c"));
        assert!(!list.contains(""));
    }

    #[test]
    fn comparison_operators_hold() {
        use Ordering::*;
        let table = [
            (CmpOp::Eq, [false, true, false]),
            (CmpOp::Ne, [true, false, true]),
            (CmpOp::Lt, [true, false, false]),
            (CmpOp::Le, [true, true, false]),
            (CmpOp::Gt, [false, false, true]),
            (CmpOp::Ge, [false, true, true]),
        ];
        for (op, want) in table {
            let got = [Less, Equal, Greater].map(|o| op.holds(o));
            assert_eq!(got, want, "{op:?}");
        }
    }
}
