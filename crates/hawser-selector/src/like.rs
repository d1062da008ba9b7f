//! `LIKE` patterns: compiled once at parse time, matched per message.
//!
//! `%` matches any run of characters (including none), `_` exactly one character, and the
//! `ESCAPE` character makes the character after it literal. The match covers the whole
//! string and is case-sensitive.
//!
//! Matching is the classic two-pointer wildcard algorithm: on a mismatch it backtracks only to
//! the most recent `%`, which is safe because an earlier `%` could only absorb what the later
//! one can. So a match costs at most O(pattern × text) steps, never the exponential time a
//! naive backtracker takes on patterns such as `%a%a%a%b`, and it allocates nothing.

use crate::ParseError;

/// One element of a compiled pattern.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Part {
    /// Exactly this character.
    Lit(char),
    /// Any one character (`_`).
    One,
    /// Any run of characters (`%`); consecutive `%`s are folded into one at compile time.
    Many,
}

/// A compiled `LIKE` pattern.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct LikePattern {
    parts: Box<[Part]>,
}

impl LikePattern {
    /// Compiles `pattern`; `pos` (the literal's position) is only used for errors.
    pub(crate) fn compile(
        pattern: &str,
        escape: Option<char>,
        pos: usize,
    ) -> Result<Self, ParseError> {
        let mut parts = Vec::with_capacity(pattern.len());
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            let part = if Some(c) == escape {
                Part::Lit(chars.next().ok_or(ParseError::DanglingEscape { pos })?)
            } else {
                match c {
                    '%' if parts.last() == Some(&Part::Many) => continue,
                    '%' => Part::Many,
                    '_' => Part::One,
                    c => Part::Lit(c),
                }
            };
            parts.push(part);
        }
        Ok(LikePattern {
            parts: parts.into_boxed_slice(),
        })
    }

    /// Whether the whole of `text` matches.
    pub(crate) fn matches(&self, text: &str) -> bool {
        let parts = &*self.parts;
        // Next part to match, and byte offset of the next character of `text`.
        let (mut p, mut t) = (0, 0);
        // After the latest `%`: the part following it, and where in `text` it would resume
        // if the `%` absorbed one more character.
        let mut retry: Option<(usize, usize)> = None;
        while let Some(c) = text[t..].chars().next() {
            match parts.get(p) {
                Some(Part::Many) => {
                    p += 1;
                    retry = Some((p, t));
                    continue;
                }
                Some(Part::One) => {
                    p += 1;
                    t += c.len_utf8();
                    continue;
                }
                Some(Part::Lit(l)) if *l == c => {
                    p += 1;
                    t += c.len_utf8();
                    continue;
                }
                _ => {}
            }
            let Some((after_many, from)) = retry else {
                return false;
            };
            // `from` is at or before `t`, where `c` was read, so it has a character to absorb.
            let absorbed = text[from..].chars().next().map_or(1, char::len_utf8);
            retry = Some((after_many, from + absorbed));
            p = after_many;
            t = from + absorbed;
        }
        parts[p..].iter().all(|part| *part == Part::Many)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn like(pattern: &str, text: &str) -> bool {
        LikePattern::compile(pattern, Some('\\'), 0)
            .unwrap()
            .matches(text)
    }

    #[test]
    fn wildcards() {
        assert!(like("12%3", "123"));
        assert!(like("12%3", "12993"));
        assert!(!like("12%3", "1234"));
        assert!(like("l_se", "lose"));
        assert!(!like("l_se", "loose"));
        assert!(like("%", ""));
        assert!(like("", ""));
        assert!(!like("", "a"));
        assert!(!like("_", ""));
        assert!(like("%%a%%", "bab"));
        assert!(like("a%b%c", "aXbYc"));
        assert!(!like("a%b%c", "aXcYb"));
    }

    #[test]
    fn case_sensitive_and_whole_string() {
        assert!(!like("abc", "ABC"));
        assert!(!like("ab", "abc"));
        assert!(!like("bc", "abc"));
    }

    #[test]
    fn underscore_matches_one_character_not_one_byte() {
        assert!(like("_", "é"));
        assert!(like("a_c", "a€c"));
        assert!(like("%€", "xx€"));
        assert!(!like("__", "é"));
    }

    #[test]
    fn escape_makes_wildcards_literal() {
        assert!(like("100\\%", "100%"));
        assert!(!like("100\\%", "1000"));
        assert!(like("\\_%", "_foo"));
        assert!(!like("\\_%", "foo"));
        assert!(like("a\\\\b", "a\\b"));
        // With no ESCAPE clause a backslash is an ordinary character.
        let p = LikePattern::compile("a\\%", None, 0).unwrap();
        assert!(p.matches("a\\xyz"));
    }

    #[test]
    fn dangling_escape_is_rejected() {
        assert_eq!(
            LikePattern::compile("ab!", Some('!'), 7).unwrap_err(),
            ParseError::DanglingEscape { pos: 7 }
        );
    }

    #[test]
    fn pathological_pattern_is_fast() {
        let text = "a".repeat(10_000);
        let pattern = format!("{}b", "%a".repeat(50));
        // Exponential backtracking would never finish; this takes O(50 × 10_000) steps.
        assert!(!like(&pattern, &text));
    }
}
