//! Parser: tokens in, [`Expr`] out, by precedence climbing. The levels, loosest first, are
//! `OR`, `AND`, `NOT`, comparisons (`=`, `<>`, `<`, `>`, `<=`, `>=`, `[NOT] BETWEEN`,
//! `[NOT] LIKE`, `[NOT] IN`, `IS [NOT] NULL`), `+ -`, `* /`, unary `+ -`; below them come
//! literals, identifiers and parentheses. One function, `Parser::expr`, handles every
//! binary level, so each parenthesis costs a few stack frames rather than one per level.
//!
//! Besides the grammar it enforces two things JMS requires of a selector: it must be a
//! condition (`a + 1` alone is rejected), and so must each operand of `AND`, `OR` and `NOT`.
//! Identifiers pass both checks, since a property may hold a boolean. It also enforces
//! [`Limits`], so that no selector can make parsing or evaluation recurse without bound.

use std::borrow::Cow;

use crate::ast::{ArithOp, CmpOp, Expr, InList, Literal, UnaryOp};
use crate::lexer::{tokenize, Kw, Tok, Token};
use crate::like::LikePattern;
use crate::{Limits, ParseError};

/// Parses a whole selector.
pub(crate) fn parse(text: &str, limits: Limits) -> Result<Expr, ParseError> {
    if text.len() > limits.text_bytes_max {
        return Err(ParseError::TooLong {
            len: text.len(),
            limit: limits.text_bytes_max,
        });
    }
    if text.trim().is_empty() {
        return Err(ParseError::Empty);
    }
    let mut parser = Parser {
        tokens: tokenize(text)?,
        next: 0,
        nesting: 0,
        limits,
    };
    let root = parser.expr(Prec::Or)?;
    if parser.peek() != &Tok::Eof {
        return Err(parser.unexpected("an operator or end of input"));
    }
    Ok(condition(root)?.expr)
}

/// How tightly an operator binds, loosest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Prec {
    Or,
    And,
    Not,
    /// Comparisons and the `BETWEEN`/`LIKE`/`IN`/`IS NULL` predicates.
    Compare,
    Additive,
    Multiplicative,
    Unary,
}

/// An operator that follows a complete operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Infix {
    Or,
    And,
    Cmp(CmpOp),
    /// `NOT`, `BETWEEN`, `LIKE`, `IN` or `IS`: the start of a predicate.
    Predicate,
    Arith(ArithOp),
}

impl Infix {
    fn prec(self) -> Prec {
        match self {
            Infix::Or => Prec::Or,
            Infix::And => Prec::And,
            Infix::Cmp(_) | Infix::Predicate => Prec::Compare,
            Infix::Arith(ArithOp::Add | ArithOp::Sub) => Prec::Additive,
            Infix::Arith(ArithOp::Mul | ArithOp::Div) => Prec::Multiplicative,
        }
    }
}

/// What an expression yields, as far as can be told without a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ty {
    Bool,
    Num,
    Str,
    /// An identifier or `NULL`: could be anything.
    Any,
}

/// An expression under construction, with what the checks need to know about it.
struct Node {
    expr: Expr,
    ty: Ty,
    /// Height of the expression tree, bounded by [`Limits::depth_max`].
    depth: usize,
    /// Character offset where the expression starts, for errors.
    pos: usize,
}

/// Passes `node` through if it may be a condition, so it may stand under `AND`/`OR`/`NOT`.
fn condition(node: Node) -> Result<Node, ParseError> {
    match node.ty {
        Ty::Bool | Ty::Any => Ok(node),
        Ty::Num | Ty::Str => Err(ParseError::NotBoolean { pos: node.pos }),
    }
}

struct Parser<'a> {
    /// All tokens, ending with [`Tok::Eof`]. Consumed tokens are replaced by `Eof`.
    tokens: Vec<Token<'a>>,
    /// Index of the next unconsumed token; never moves past the final `Eof`.
    next: usize,
    /// How many parentheses, `NOT`s and signs enclose the current position.
    nesting: usize,
    /// The bounds this parse enforces.
    limits: Limits,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> &Tok<'a> {
        &self.tokens[self.next].tok
    }

    fn bump(&mut self) -> Token<'a> {
        let i = self.next;
        if self.tokens[i].tok != Tok::Eof {
            self.next += 1;
        }
        let spent = Token {
            tok: Tok::Eof,
            pos: self.tokens[i].pos,
            text: "",
        };
        std::mem::replace(&mut self.tokens[i], spent)
    }

    fn eat(&mut self, tok: &Tok<'_>) -> bool {
        let hit = self.peek() == tok;
        if hit {
            self.bump();
        }
        hit
    }

    fn eat_kw(&mut self, kw: Kw) -> bool {
        self.eat(&Tok::Kw(kw))
    }

    fn expect(&mut self, tok: &Tok<'_>, expected: &'static str) -> Result<Token<'a>, ParseError> {
        if self.peek() == tok {
            Ok(self.bump())
        } else {
            Err(self.unexpected(expected))
        }
    }

    fn expect_string(&mut self) -> Result<(Cow<'a, str>, usize), ParseError> {
        if !matches!(self.peek(), Tok::Str(_)) {
            return Err(self.unexpected("a string literal"));
        }
        match self.bump() {
            Token {
                tok: Tok::Str(s),
                pos,
                ..
            } => Ok((s, pos)),
            _ => unreachable!("peeked a string literal"),
        }
    }

    /// An error about the next token.
    fn unexpected(&self, expected: &'static str) -> ParseError {
        let token = &self.tokens[self.next];
        let found = match token.tok {
            Tok::Eof => "end of input".to_string(),
            _ => format!("`{}`", token.text),
        };
        ParseError::UnexpectedToken {
            pos: token.pos,
            found,
            expected,
        }
    }

    /// Goes one nesting level deeper, refusing to go past the limit. Callers call
    /// [`Parser::leave`] when the level is done; on an error they need not, since an error
    /// ends the parse. (A closure-taking helper would cost two more stack frames per level.)
    fn enter(&mut self, pos: usize) -> Result<(), ParseError> {
        if self.nesting >= self.limits.depth_max {
            return Err(self.too_deep(pos));
        }
        self.nesting += 1;
        Ok(())
    }

    fn leave(&mut self) {
        self.nesting -= 1;
    }

    fn too_deep(&self, pos: usize) -> ParseError {
        ParseError::TooDeep {
            pos,
            limit: self.limits.depth_max,
        }
    }

    /// A node one level above the deepest of its children.
    fn node(&self, expr: Expr, ty: Ty, pos: usize, child_depth: usize) -> Result<Node, ParseError> {
        let depth = child_depth + 1;
        if depth > self.limits.depth_max {
            return Err(self.too_deep(pos));
        }
        Ok(Node {
            expr,
            ty,
            depth,
            pos,
        })
    }

    // Recursion goes through `expr`, `prefix` and `parenthesized` (or `not`/`sign`) once per
    // nesting level, so those keep their stack frames small: each branch with sizeable
    // temporaries lives in a helper that is off the stack while the recursion runs.

    /// An expression whose infix operators all bind at least as tightly as `min`.
    fn expr(&mut self, min: Prec) -> Result<Node, ParseError> {
        let mut left = self.prefix(min)?;
        while let Some(infix) = self.infix() {
            if infix.prec() < min {
                break;
            }
            left = self.infix_rest(left, infix)?;
        }
        Ok(left)
    }

    /// The rest of an infix expression whose left operand is `left`, from its operator on.
    fn infix_rest(&mut self, left: Node, infix: Infix) -> Result<Node, ParseError> {
        match infix {
            Infix::Or => self.chain(left, Kw::Or, Prec::And, Expr::Or),
            Infix::And => self.chain(left, Kw::And, Prec::Not, Expr::And),
            Infix::Predicate => self.predicate(left),
            Infix::Cmp(op) => {
                self.bump();
                let right = self.expr(Prec::Additive)?;
                let depth = left.depth.max(right.depth);
                let expr = Expr::Compare(op, Box::new(left.expr), Box::new(right.expr));
                self.node(expr, Ty::Bool, left.pos, depth)
            }
            Infix::Arith(op) => {
                self.bump();
                // One level tighter on the right makes the operators left-associative.
                let tighter = match infix.prec() {
                    Prec::Additive => Prec::Multiplicative,
                    _ => Prec::Unary,
                };
                let right = self.expr(tighter)?;
                let depth = left.depth.max(right.depth);
                let expr = Expr::Arith(op, Box::new(left.expr), Box::new(right.expr));
                self.node(expr, Ty::Num, left.pos, depth)
            }
        }
    }

    /// `NOT`, a sign, or nothing, in front of a primary expression. `NOT` is only allowed
    /// where a condition may start (`a = NOT b` is not).
    fn prefix(&mut self, min: Prec) -> Result<Node, ParseError> {
        match self.peek() {
            Tok::Kw(Kw::Not) if min <= Prec::Not => self.not(),
            Tok::Plus => self.sign(UnaryOp::Plus),
            Tok::Minus => self.sign(UnaryOp::Minus),
            Tok::LParen => self.parenthesized(),
            _ => self.primary(),
        }
    }

    fn not(&mut self) -> Result<Node, ParseError> {
        let pos = self.bump().pos;
        self.enter(pos)?;
        let inner = condition(self.expr(Prec::Not)?)?;
        self.leave();
        self.node(Expr::Not(Box::new(inner.expr)), Ty::Bool, pos, inner.depth)
    }

    fn sign(&mut self, op: UnaryOp) -> Result<Node, ParseError> {
        let pos = self.bump().pos;
        if matches!(self.peek(), Tok::Int(_) | Tok::Float(_)) {
            // Folding the sign into the literal is what lets `-9223372036854775808` be written.
            let literal = self.bump();
            return number(&literal, op == UnaryOp::Minus, pos);
        }
        self.enter(pos)?;
        let inner = self.prefix(Prec::Unary)?;
        self.leave();
        let expr = Expr::Unary(op, Box::new(inner.expr));
        self.node(expr, Ty::Num, pos, inner.depth)
    }

    fn parenthesized(&mut self) -> Result<Node, ParseError> {
        let pos = self.bump().pos;
        self.enter(pos)?;
        let inner = self.expr(Prec::Or)?;
        self.expect(&Tok::RParen, "`)`")?;
        self.leave();
        Ok(Node { pos, ..inner })
    }

    /// A literal or an identifier.
    fn primary(&mut self) -> Result<Node, ParseError> {
        let pos = self.tokens[self.next].pos;
        let (literal, ty) = match self.peek() {
            Tok::Int(_) | Tok::Float(_) => {
                let literal = self.bump();
                return number(&literal, false, pos);
            }
            Tok::Ident(name) => {
                let expr = Expr::Ident(Box::from(*name));
                self.bump();
                return Ok(leaf(expr, Ty::Any, pos));
            }
            Tok::Str(_) => {
                let (text, _) = self.expect_string()?;
                (Literal::Str(Box::from(text)), Ty::Str)
            }
            Tok::Kw(kw @ (Kw::True | Kw::False | Kw::Null)) => {
                let literal = match kw {
                    Kw::True => (Literal::Bool(true), Ty::Bool),
                    Kw::False => (Literal::Bool(false), Ty::Bool),
                    _ => (Literal::Null, Ty::Any),
                };
                self.bump();
                literal
            }
            _ => return Err(self.unexpected("an expression")),
        };
        Ok(leaf(Expr::Lit(literal), ty, pos))
    }

    /// The infix operator the next token starts, if any.
    fn infix(&self) -> Option<Infix> {
        Some(match self.peek() {
            Tok::Kw(Kw::Or) => Infix::Or,
            Tok::Kw(Kw::And) => Infix::And,
            Tok::Kw(Kw::Not | Kw::Between | Kw::Like | Kw::In | Kw::Is) => Infix::Predicate,
            Tok::Eq => Infix::Cmp(CmpOp::Eq),
            Tok::Ne => Infix::Cmp(CmpOp::Ne),
            Tok::Lt => Infix::Cmp(CmpOp::Lt),
            Tok::Le => Infix::Cmp(CmpOp::Le),
            Tok::Gt => Infix::Cmp(CmpOp::Gt),
            Tok::Ge => Infix::Cmp(CmpOp::Ge),
            Tok::Plus => Infix::Arith(ArithOp::Add),
            Tok::Minus => Infix::Arith(ArithOp::Sub),
            Tok::Star => Infix::Arith(ArithOp::Mul),
            Tok::Slash => Infix::Arith(ArithOp::Div),
            _ => return None,
        })
    }

    /// `left (kw operand)+`, flattened into one node; the next token is `kw`.
    fn chain(
        &mut self,
        left: Node,
        kw: Kw,
        operand: Prec,
        build: fn(Box<[Expr]>) -> Expr,
    ) -> Result<Node, ParseError> {
        let (pos, mut depth) = (left.pos, left.depth);
        let mut items = vec![condition(left)?.expr];
        while self.eat_kw(kw) {
            let next = condition(self.expr(operand)?)?;
            depth = depth.max(next.depth);
            items.push(next.expr);
        }
        self.node(build(items.into_boxed_slice()), Ty::Bool, pos, depth)
    }

    /// `[NOT] BETWEEN`, `[NOT] LIKE`, `[NOT] IN` or `IS [NOT] NULL` after `left`.
    fn predicate(&mut self, left: Node) -> Result<Node, ParseError> {
        let negated = self.eat_kw(Kw::Not);
        match self.peek() {
            Tok::Kw(Kw::Between) => self.between(left, negated),
            Tok::Kw(Kw::Like) => self.like(left, negated),
            Tok::Kw(Kw::In) => self.in_list(left, negated),
            Tok::Kw(Kw::Is) if !negated => self.is_null(left),
            _ => Err(self.unexpected("BETWEEN, LIKE or IN")),
        }
    }

    fn between(&mut self, operand: Node, negated: bool) -> Result<Node, ParseError> {
        self.bump();
        let low = self.expr(Prec::Additive)?;
        self.expect(&Tok::Kw(Kw::And), "`AND`")?;
        let high = self.expr(Prec::Additive)?;
        let depth = operand.depth.max(low.depth).max(high.depth);
        let expr = Expr::Between {
            operand: Box::new(operand.expr),
            low: Box::new(low.expr),
            high: Box::new(high.expr),
            negated,
        };
        self.node(expr, Ty::Bool, operand.pos, depth)
    }

    fn like(&mut self, operand: Node, negated: bool) -> Result<Node, ParseError> {
        self.bump();
        let (pattern, pattern_pos) = self.expect_string()?;
        let escape = if self.eat_kw(Kw::Escape) {
            let (escape, escape_pos) = self.expect_string()?;
            let mut chars = escape.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Some(c),
                _ => return Err(ParseError::InvalidEscape { pos: escape_pos }),
            }
        } else {
            None
        };
        let expr = Expr::Like {
            operand: Box::new(operand.expr),
            pattern: LikePattern::compile(&pattern, escape, pattern_pos)?,
            negated,
        };
        self.node(expr, Ty::Bool, operand.pos, operand.depth)
    }

    fn in_list(&mut self, operand: Node, negated: bool) -> Result<Node, ParseError> {
        self.bump();
        let open = self.expect(&Tok::LParen, "`(`")?.pos;
        let mut items = Vec::new();
        loop {
            items.push(Box::<str>::from(self.expect_string()?.0));
            if items.len() > self.limits.in_items_max {
                return Err(ParseError::TooManyInItems {
                    pos: open,
                    limit: self.limits.in_items_max,
                });
            }
            if !self.eat(&Tok::Comma) {
                break;
            }
        }
        self.expect(&Tok::RParen, "`,` or `)`")?;
        let expr = Expr::In {
            operand: Box::new(operand.expr),
            list: InList::new(items),
            negated,
        };
        self.node(expr, Ty::Bool, operand.pos, operand.depth)
    }

    fn is_null(&mut self, operand: Node) -> Result<Node, ParseError> {
        self.bump();
        let negated = self.eat_kw(Kw::Not);
        self.expect(&Tok::Kw(Kw::Null), "`NULL`")?;
        let expr = Expr::IsNull {
            operand: Box::new(operand.expr),
            negated,
        };
        self.node(expr, Ty::Bool, operand.pos, operand.depth)
    }
}

fn leaf(expr: Expr, ty: Ty, pos: usize) -> Node {
    Node {
        expr,
        ty,
        depth: 1,
        pos,
    }
}

/// A numeric literal, negated if a minus sign at `pos` preceded it.
fn number(token: &Token<'_>, negative: bool, pos: usize) -> Result<Node, ParseError> {
    let literal = match token.tok {
        Tok::Float(f) => Literal::Float(if negative { -f } else { f }),
        Tok::Int(magnitude) => {
            let value = if negative {
                0i64.checked_sub_unsigned(magnitude)
            } else {
                i64::try_from(magnitude).ok()
            };
            Literal::Int(value.ok_or_else(|| ParseError::InvalidNumber {
                pos: token.pos,
                text: token.text.to_string(),
            })?)
        }
        _ => unreachable!("number() is only called on numeric tokens"),
    };
    Ok(leaf(Expr::Lit(literal), Ty::Num, pos))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ast(text: &str) -> Expr {
        parse(text, Limits::default()).unwrap()
    }

    fn id(name: &str) -> Expr {
        Expr::Ident(name.into())
    }

    fn int(i: i64) -> Expr {
        Expr::Lit(Literal::Int(i))
    }

    fn bx(e: Expr) -> Box<Expr> {
        Box::new(e)
    }

    #[test]
    fn and_binds_tighter_than_or_and_chains_flatten() {
        assert_eq!(
            ast("a OR b AND c OR d"),
            Expr::Or(vec![id("a"), Expr::And(vec![id("b"), id("c")].into()), id("d")].into())
        );
        assert_eq!(
            ast("a AND b AND c"),
            Expr::And(vec![id("a"), id("b"), id("c")].into())
        );
        // Parentheses keep their grouping rather than being flattened away.
        assert_eq!(
            ast("(a AND b) AND c"),
            Expr::And(vec![Expr::And(vec![id("a"), id("b")].into()), id("c")].into())
        );
    }

    #[test]
    fn not_applies_to_a_whole_comparison() {
        assert_eq!(
            ast("NOT a = 1 AND b"),
            Expr::And(
                vec![
                    Expr::Not(bx(Expr::Compare(CmpOp::Eq, bx(id("a")), bx(int(1))))),
                    id("b")
                ]
                .into()
            )
        );
    }

    #[test]
    fn arithmetic_is_left_associative_with_usual_precedence() {
        assert_eq!(
            ast("1 - 2 - 3 * 4 = a"),
            Expr::Compare(
                CmpOp::Eq,
                bx(Expr::Arith(
                    ArithOp::Sub,
                    bx(Expr::Arith(ArithOp::Sub, bx(int(1)), bx(int(2)))),
                    bx(Expr::Arith(ArithOp::Mul, bx(int(3)), bx(int(4)))),
                )),
                bx(id("a"))
            )
        );
    }

    #[test]
    fn signs_fold_into_literals_but_not_into_identifiers() {
        assert_eq!(
            ast("a = -5"),
            Expr::Compare(CmpOp::Eq, bx(id("a")), bx(int(-5)))
        );
        assert_eq!(
            ast("-a = +1.5"),
            Expr::Compare(
                CmpOp::Eq,
                bx(Expr::Unary(UnaryOp::Minus, bx(id("a")))),
                bx(Expr::Lit(Literal::Float(1.5)))
            )
        );
        assert_eq!(
            ast("a - -5 = 0"),
            Expr::Compare(
                CmpOp::Eq,
                bx(Expr::Arith(ArithOp::Sub, bx(id("a")), bx(int(-5)))),
                bx(int(0))
            )
        );
    }

    #[test]
    fn predicates() {
        assert_eq!(
            ast("a NOT BETWEEN 1 AND 2 + 1"),
            Expr::Between {
                operand: bx(id("a")),
                low: bx(int(1)),
                high: bx(Expr::Arith(ArithOp::Add, bx(int(2)), bx(int(1)))),
                negated: true,
            }
        );
        assert_eq!(
            ast("a IS NOT NULL"),
            Expr::IsNull {
                operand: bx(id("a")),
                negated: true
            }
        );
        assert_eq!(
            ast("a NOT IN ('y', 'x', 'y')"),
            Expr::In {
                operand: bx(id("a")),
                list: InList::new(vec!["x".into(), "y".into()]),
                negated: true,
            }
        );
        assert_eq!(
            ast("a LIKE 'x!%' ESCAPE '!'"),
            Expr::Like {
                operand: bx(id("a")),
                pattern: LikePattern::compile("x!%", Some('!'), 0).unwrap(),
                negated: false,
            }
        );
    }

    #[test]
    fn not_cannot_start_an_operand_of_a_comparison() {
        assert_eq!(
            parse("a = NOT b", Limits::default()).unwrap_err(),
            ParseError::UnexpectedToken {
                pos: 4,
                found: "`NOT`".into(),
                expected: "an expression"
            }
        );
    }
}
