//! A frame's headers, kept in one string.
//!
//! A STOMP frame carries a handful of short headers. Holding each name and value
//! in its own `String` costs two allocations per header on every frame decoded
//! or built, which on a busy broker is most of the codec's time. [`Headers`]
//! appends every name and value to one string and remembers where each ends, so
//! a frame's headers cost two allocations whatever their number.

use std::fmt;

/// Headers in wire order. A name may repeat; [`Headers::get`] returns the first,
/// which is the one the STOMP spec says counts.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers {
    /// Every name and value back to back, unescaped.
    text: String,
    /// Per header, where its name ends and where its value ends in `text`; a
    /// header starts where the one before it ends.
    ends: Vec<(u32, u32)>,
}

impl Headers {
    /// No headers.
    pub fn new() -> Headers {
        Headers::default()
    }

    /// Room for `count` headers of `bytes` bytes in all, names and values together.
    pub fn with_capacity(count: usize, bytes: usize) -> Headers {
        Headers {
            text: String::with_capacity(bytes),
            ends: Vec::with_capacity(count),
        }
    }

    /// How many headers there are, repeats included.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The value of the first header called `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        // Names are compared as bytes; only the value found is sliced as text.
        let bytes = self.text.as_bytes();
        let mut start = 0;
        for &(name_end, value_end) in &self.ends {
            let (name_end, value_end) = (name_end as usize, value_end as usize);
            if &bytes[start..name_end] == name.as_bytes() {
                return Some(&self.text[name_end..value_end]);
            }
            start = value_end;
        }
        None
    }

    /// Appends a header after the others (it does not replace one of the same name).
    ///
    /// # Panics
    /// If the headers would exceed 4 GiB, far past any frame limit.
    pub fn push(&mut self, name: &str, value: &str) {
        self.text.push_str(name);
        let name_end = self.offset();
        self.text.push_str(value);
        let value_end = self.offset();
        self.ends.push((name_end, value_end));
    }

    /// Appends a header whose name and value the caller writes into the shared
    /// text (the decoder unescapes straight into it). `write_name` and
    /// `write_value` must only append.
    pub(crate) fn push_with<E>(
        &mut self,
        write_name: impl FnOnce(&mut String) -> Result<(), E>,
        write_value: impl FnOnce(&mut String) -> Result<(), E>,
    ) -> Result<(), E> {
        let start = self.text.len();
        let written = write_name(&mut self.text).and_then(|()| {
            let name_end = self.offset();
            write_value(&mut self.text).map(|()| name_end)
        });
        match written {
            Ok(name_end) => {
                let value_end = self.offset();
                self.ends.push((name_end, value_end));
                Ok(())
            }
            Err(e) => {
                self.text.truncate(start);
                Err(e)
            }
        }
    }

    /// Removes every header, keeping the allocation.
    pub fn clear(&mut self) {
        self.text.clear();
        self.ends.clear();
    }

    /// The headers as (name, value) pairs, in order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            headers: self,
            next: 0,
            start: 0,
        }
    }

    /// Owned copies of every pair, for callers that keep them apart from the frame.
    pub fn to_vec(&self) -> Vec<(String, String)> {
        self.iter()
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect()
    }

    /// Bytes taken by names and values together.
    pub fn text_len(&self) -> usize {
        self.text.len()
    }

    fn offset(&self) -> u32 {
        u32::try_from(self.text.len()).expect("headers over 4 GiB")
    }
}

/// The pairs of a [`Headers`], in order.
pub struct Iter<'a> {
    headers: &'a Headers,
    /// Index of the next header.
    next: usize,
    /// Where the next header starts in the text.
    start: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<(&'a str, &'a str)> {
        let &(name_end, value_end) = self.headers.ends.get(self.next)?;
        let (name_end, value_end) = (name_end as usize, value_end as usize);
        let text = &self.headers.text;
        let pair = (&text[self.start..name_end], &text[name_end..value_end]);
        self.next += 1;
        self.start = value_end;
        Some(pair)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.headers.ends.len() - self.next;
        (left, Some(left))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a Headers {
    type Item = (&'a str, &'a str);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl<K: AsRef<str>, V: AsRef<str>> Extend<(K, V)> for Headers {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, pairs: I) {
        for (k, v) in pairs {
            self.push(k.as_ref(), v.as_ref());
        }
    }
}

impl<K: AsRef<str>, V: AsRef<str>> FromIterator<(K, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(pairs: I) -> Headers {
        let mut h = Headers::new();
        h.extend(pairs);
        h
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_repeats_and_empty_parts() {
        let mut h = Headers::new();
        h.push("destination", "/queue/a");
        h.push("x", "");
        h.push("destination", "/queue/b");
        h.push("", "v");
        assert_eq!(h.len(), 4);
        assert_eq!(h.get("destination"), Some("/queue/a"));
        assert_eq!(h.get("x"), Some(""));
        assert_eq!(h.get(""), Some("v"));
        assert_eq!(h.get("missing"), None);
        assert_eq!(
            h.iter().collect::<Vec<_>>(),
            [
                ("destination", "/queue/a"),
                ("x", ""),
                ("destination", "/queue/b"),
                ("", "v")
            ]
        );
    }

    #[test]
    fn equal_when_the_pairs_are_equal() {
        let a: Headers = [("a", "bc")].into_iter().collect();
        let b: Headers = [("a", "bc")].into_iter().collect();
        let c: Headers = [("ab", "c")].into_iter().collect();
        assert_eq!(a, b);
        assert_ne!(a, c, "the split between name and value counts");
    }

    #[test]
    fn a_failed_write_leaves_nothing_behind() {
        let mut h: Headers = [("a", "1")].into_iter().collect();
        let r: Result<(), ()> = h.push_with(
            |t| {
                t.push_str("half");
                Ok(())
            },
            |t| {
                t.push_str("written");
                Err(())
            },
        );
        assert!(r.is_err());
        assert_eq!(h.to_vec(), [("a".to_owned(), "1".to_owned())]);
        assert_eq!(h.text_len(), 2);
    }
}
