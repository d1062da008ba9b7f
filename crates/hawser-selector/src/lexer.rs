//! Lexer: selector text in, tokens out, each tagged with its character offset.
//!
//! The whole text is tokenized before parsing starts; the text is already bounded by
//! [`Limits::text_bytes_max`](crate::Limits::text_bytes_max), so the token vector is too.
//! Numbers follow ActiveMQ's grammar: decimal, `0x` hex and leading-zero octal integers with an
//! optional `L`, and floats such as `1.5`, `.5`, `7.`, `1e10`, with an optional `F`/`D`.

use std::borrow::Cow;

use crate::ParseError;

/// A reserved word. Matched without regard to ASCII case; never usable as an identifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kw {
    Not,
    And,
    Or,
    Between,
    Like,
    In,
    Is,
    Null,
    Escape,
    True,
    False,
}

impl Kw {
    const ALL: [(&'static str, Kw); 11] = [
        ("NOT", Kw::Not),
        ("AND", Kw::And),
        ("OR", Kw::Or),
        ("BETWEEN", Kw::Between),
        ("LIKE", Kw::Like),
        ("IN", Kw::In),
        ("IS", Kw::Is),
        ("NULL", Kw::Null),
        ("ESCAPE", Kw::Escape),
        ("TRUE", Kw::True),
        ("FALSE", Kw::False),
    ];

    fn lookup(word: &str) -> Option<Kw> {
        Kw::ALL
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(word))
            .map(|&(_, kw)| kw)
    }
}

/// What a token is.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Tok<'a> {
    Ident(&'a str),
    /// A string literal's value, with `''` already turned into `'`.
    Str(Cow<'a, str>),
    /// An exact number's magnitude. Kept unsigned so that `-9223372036854775808` can be
    /// accepted once the parser has seen the minus sign.
    Int(u64),
    Float(f64),
    Kw(Kw),
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Plus,
    Minus,
    Star,
    Slash,
    LParen,
    RParen,
    Comma,
    Eof,
}

/// A token and where it was written.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Token<'a> {
    pub tok: Tok<'a>,
    /// Character offset of the token's first character.
    pub pos: usize,
    /// The token as written (empty for [`Tok::Eof`]); used in error messages.
    pub text: &'a str,
}

/// Splits `text` into tokens, ending with one [`Tok::Eof`].
pub(crate) fn tokenize(text: &str) -> Result<Vec<Token<'_>>, ParseError> {
    let mut lexer = Lexer {
        text,
        byte: 0,
        pos: 0,
    };
    let mut tokens = Vec::new();
    loop {
        let token = lexer.next_token()?;
        let done = token.tok == Tok::Eof;
        tokens.push(token);
        if done {
            return Ok(tokens);
        }
    }
}

fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_' || c == '$'
}

fn is_ident_part(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

/// A cursor over the text that keeps byte and character offsets in step.
struct Lexer<'a> {
    text: &'a str,
    /// Byte offset of the next unread character.
    byte: usize,
    /// Character offset of the next unread character.
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn peek(&self) -> Option<char> {
        self.text[self.byte..].chars().next()
    }

    fn peek2(&self) -> Option<char> {
        self.text[self.byte..].chars().nth(1)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.byte += c.len_utf8();
        self.pos += 1;
        Some(c)
    }

    fn bump_while(&mut self, pred: impl Fn(char) -> bool) {
        while self.peek().is_some_and(&pred) {
            self.bump();
        }
    }

    fn next_token(&mut self) -> Result<Token<'a>, ParseError> {
        self.bump_while(char::is_whitespace);
        let (start, pos) = (self.byte, self.pos);
        let Some(c) = self.peek() else {
            return Ok(Token {
                tok: Tok::Eof,
                pos,
                text: "",
            });
        };
        let tok = match c {
            '\'' => self.string()?,
            '0'..='9' => self.number()?,
            '.' if self.peek2().is_some_and(|c| c.is_ascii_digit()) => self.number()?,
            c if is_ident_start(c) => {
                self.bump_while(is_ident_part);
                let word = &self.text[start..self.byte];
                Kw::lookup(word).map_or(Tok::Ident(word), Tok::Kw)
            }
            _ => {
                self.bump();
                self.punct(c)
                    .ok_or(ParseError::UnexpectedChar { pos, found: c })?
            }
        };
        Ok(Token {
            tok,
            pos,
            text: &self.text[start..self.byte],
        })
    }

    /// An operator or punctuation mark whose first character `c` was just consumed.
    fn punct(&mut self, c: char) -> Option<Tok<'a>> {
        let mut then = |next: char, tok: Tok<'a>| {
            (self.peek() == Some(next)).then(|| {
                self.bump();
                tok
            })
        };
        Some(match c {
            '=' => Tok::Eq,
            '<' => then('>', Tok::Ne)
                .or_else(|| then('=', Tok::Le))
                .unwrap_or(Tok::Lt),
            '>' => then('=', Tok::Ge).unwrap_or(Tok::Gt),
            '+' => Tok::Plus,
            '-' => Tok::Minus,
            '*' => Tok::Star,
            '/' => Tok::Slash,
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            ',' => Tok::Comma,
            _ => return None,
        })
    }

    /// A `'...'` literal; `''` inside stands for one `'`. Borrows unless it had to unescape.
    fn string(&mut self) -> Result<Tok<'a>, ParseError> {
        let pos = self.pos;
        self.bump();
        let body_start = self.byte;
        let mut owned: Option<String> = None;
        loop {
            let chunk_start = self.byte;
            self.bump_while(|c| c != '\'');
            let chunk = &self.text[chunk_start..self.byte];
            if self.bump().is_none() {
                return Err(ParseError::UnterminatedString { pos });
            }
            if self.peek() == Some('\'') {
                self.bump();
                let s = owned.get_or_insert_with(String::new);
                s.push_str(chunk);
                s.push('\'');
                continue;
            }
            return Ok(Tok::Str(match owned {
                Some(mut s) => {
                    s.push_str(chunk);
                    Cow::Owned(s)
                }
                None => Cow::Borrowed(&self.text[body_start..self.byte - 1]),
            }));
        }
    }

    fn number(&mut self) -> Result<Tok<'a>, ParseError> {
        let (start, pos) = (self.byte, self.pos);
        let invalid = |lexer: &mut Self| {
            // Swallow the rest of the word so the message shows all of `12abc`.
            lexer.bump_while(|c| is_ident_part(c) || c == '.');
            ParseError::InvalidNumber {
                pos,
                text: lexer.text[start..lexer.byte].to_string(),
            }
        };

        if self.peek() == Some('0') && matches!(self.peek2(), Some('x' | 'X')) {
            self.bump();
            self.bump();
            let digits_start = self.byte;
            self.bump_while(|c| c.is_ascii_hexdigit());
            let digits = &self.text[digits_start..self.byte];
            self.eat_any(&['l', 'L']);
            if digits.is_empty() || self.peek().is_some_and(is_ident_part) {
                return Err(invalid(self));
            }
            return u64::from_str_radix(digits, 16)
                .map(Tok::Int)
                .map_err(|_| invalid(self));
        }

        self.bump_while(|c| c.is_ascii_digit());
        let mut float = false;
        if self.peek() == Some('.') {
            float = true;
            self.bump();
            self.bump_while(|c| c.is_ascii_digit());
        }
        if matches!(self.peek(), Some('e' | 'E')) {
            float = true;
            self.bump();
            self.eat_any(&['+', '-']);
            if !self.peek().is_some_and(|c| c.is_ascii_digit()) {
                return Err(invalid(self));
            }
            self.bump_while(|c| c.is_ascii_digit());
        }
        let body_end = self.byte;
        let body = &self.text[start..body_end];
        if self.eat_any(&['f', 'F', 'd', 'D']) {
            float = true;
        } else if !float {
            self.eat_any(&['l', 'L']);
        }
        if self.peek().is_some_and(|c| is_ident_part(c) || c == '.') {
            return Err(invalid(self));
        }

        if float {
            return match body.parse::<f64>() {
                Ok(f) if f.is_finite() => Ok(Tok::Float(f)),
                _ => Err(invalid(self)),
            };
        }
        // ActiveMQ reads a leading zero as octal, as Java does.
        let (digits, radix) = match body.strip_prefix('0') {
            Some(rest) if !rest.is_empty() => (rest, 8),
            _ => (body, 10),
        };
        u64::from_str_radix(digits, radix)
            .map(Tok::Int)
            .map_err(|_| invalid(self))
    }

    /// Consumes the next character if it is one of `set`.
    fn eat_any(&mut self, set: &[char]) -> bool {
        let hit = self.peek().is_some_and(|c| set.contains(&c));
        if hit {
            self.bump();
        }
        hit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(text: &str) -> Vec<Tok<'_>> {
        tokenize(text).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn operators_and_punctuation() {
        assert_eq!(
            toks("= <> < <= > >= + - * / ( ) ,"),
            vec![
                Tok::Eq,
                Tok::Ne,
                Tok::Lt,
                Tok::Le,
                Tok::Gt,
                Tok::Ge,
                Tok::Plus,
                Tok::Minus,
                Tok::Star,
                Tok::Slash,
                Tok::LParen,
                Tok::RParen,
                Tok::Comma,
                Tok::Eof
            ]
        );
        assert_eq!(
            toks("a<>b"),
            vec![Tok::Ident("a"), Tok::Ne, Tok::Ident("b"), Tok::Eof]
        );
    }

    #[test]
    fn keywords_ignore_case_identifiers_do_not() {
        assert_eq!(
            toks("and AnD Or nOt x_1 $y Größe"),
            vec![
                Tok::Kw(Kw::And),
                Tok::Kw(Kw::And),
                Tok::Kw(Kw::Or),
                Tok::Kw(Kw::Not),
                Tok::Ident("x_1"),
                Tok::Ident("$y"),
                Tok::Ident("Größe"),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn strings_unescape_doubled_quotes_and_borrow_otherwise() {
        let t = toks("'it''s' 'plain' ''");
        assert_eq!(t[0], Tok::Str(Cow::Owned("it's".into())));
        assert!(matches!(t[1], Tok::Str(Cow::Borrowed("plain"))));
        assert_eq!(t[2], Tok::Str(Cow::Borrowed("")));
        assert_eq!(toks("''''"), vec![Tok::Str("'".into()), Tok::Eof]);
    }

    #[test]
    fn unterminated_string_points_at_its_quote() {
        assert_eq!(
            tokenize("a = 'abc").unwrap_err(),
            ParseError::UnterminatedString { pos: 4 }
        );
        assert_eq!(
            tokenize("'it''").unwrap_err(),
            ParseError::UnterminatedString { pos: 0 }
        );
    }

    #[test]
    fn numbers() {
        assert_eq!(toks("42")[0], Tok::Int(42));
        assert_eq!(toks("42L")[0], Tok::Int(42));
        assert_eq!(toks("0x1F")[0], Tok::Int(31));
        assert_eq!(toks("0XffL")[0], Tok::Int(255));
        assert_eq!(toks("017")[0], Tok::Int(15));
        assert_eq!(toks("0")[0], Tok::Int(0));
        assert_eq!(toks("9223372036854775808")[0], Tok::Int(1 << 63));
        assert_eq!(toks("1.5")[0], Tok::Float(1.5));
        assert_eq!(toks(".5")[0], Tok::Float(0.5));
        assert_eq!(toks("7.")[0], Tok::Float(7.0));
        assert_eq!(toks("1e3")[0], Tok::Float(1000.0));
        assert_eq!(
            toks("-57.9E2"),
            vec![Tok::Minus, Tok::Float(5790.0), Tok::Eof]
        );
        assert_eq!(toks("2.5e-1")[0], Tok::Float(0.25));
        assert_eq!(toks("1.5F")[0], Tok::Float(1.5));
        assert_eq!(toks("3d")[0], Tok::Float(3.0));
    }

    #[test]
    fn bad_numbers() {
        for (text, bad) in [
            ("1e", "1e"),
            ("1e+", "1e+"),
            ("09", "09"),
            ("12abc", "12abc"),
            ("0x", "0x"),
            ("0xg", "0xg"),
            ("1.2.3", "1.2.3"),
            ("1e999", "1e999"),
            ("99999999999999999999", "99999999999999999999"),
        ] {
            assert_eq!(
                tokenize(text).unwrap_err(),
                ParseError::InvalidNumber {
                    pos: 0,
                    text: bad.into()
                },
                "{text}"
            );
        }
    }

    #[test]
    fn positions_count_characters_not_bytes() {
        let t = tokenize("ä = 'ö' # ").unwrap_err();
        assert_eq!(t, ParseError::UnexpectedChar { pos: 8, found: '#' });
        let t = tokenize("ä <> 1").unwrap();
        assert_eq!((t[1].pos, t[1].text), (2, "<>"));
        assert_eq!(t[2].pos, 5);
    }

    #[test]
    fn stray_characters() {
        assert_eq!(
            tokenize("a != 1").unwrap_err(),
            ParseError::UnexpectedChar { pos: 2, found: '!' }
        );
        assert_eq!(
            tokenize("a.b").unwrap_err(),
            ParseError::UnexpectedChar { pos: 1, found: '.' }
        );
    }
}
