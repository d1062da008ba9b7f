//! Destinations as the engine sees them: a kind and a name.
//!
//! Protocol codecs translate their own spellings (`/queue/orders` in STOMP,
//! `queue://orders` in OpenWire) into a [`Destination`]; the engine never parses
//! protocol strings itself.

use std::fmt;
use std::sync::Arc;

/// Whether a destination delivers each message to one consumer or to every subscriber.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DestinationKind {
    /// Point to point: competing consumers share the messages.
    Queue,
    /// Publish/subscribe: every subscription gets its own copy.
    Topic,
    /// A queue that lives as long as the connection that created it.
    TempQueue,
    /// A topic that lives as long as the connection that created it.
    TempTopic,
}

impl DestinationKind {
    /// True for the kinds with fan-out semantics.
    pub fn is_topic(self) -> bool {
        matches!(self, DestinationKind::Topic | DestinationKind::TempTopic)
    }

    /// True for destinations owned by a connection.
    pub fn is_temporary(self) -> bool {
        matches!(
            self,
            DestinationKind::TempQueue | DestinationKind::TempTopic
        )
    }
}

/// A named destination. Cheap to clone: the name is shared.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Destination {
    /// Queue, topic, or their temporary variants.
    pub kind: DestinationKind,
    /// The name without any protocol prefix, e.g. `orders`.
    pub name: Arc<str>,
}

/// Longest destination name accepted, in bytes; a bound so names cannot be used to exhaust memory.
pub const MAX_DESTINATION_NAME_BYTES: usize = 1024;

impl Destination {
    /// A queue named `name`.
    pub fn queue(name: &str) -> Destination {
        Destination {
            kind: DestinationKind::Queue,
            name: Arc::from(name),
        }
    }

    /// A topic named `name`.
    pub fn topic(name: &str) -> Destination {
        Destination {
            kind: DestinationKind::Topic,
            name: Arc::from(name),
        }
    }

    /// Builds a destination after checking the name is usable.
    pub fn new(kind: DestinationKind, name: &str) -> Result<Destination, InvalidDestination> {
        if name.is_empty() {
            return Err(InvalidDestination::Empty);
        }
        if name.len() > MAX_DESTINATION_NAME_BYTES {
            return Err(InvalidDestination::TooLong {
                limit: MAX_DESTINATION_NAME_BYTES,
            });
        }
        if name.chars().any(char::is_control) {
            return Err(InvalidDestination::ControlCharacter);
        }
        Ok(Destination {
            kind,
            name: Arc::from(name),
        })
    }

    /// True for topics and temporary topics.
    pub fn is_topic(&self) -> bool {
        self.kind.is_topic()
    }

    /// The destinations a composite name stands for (ActiveMQ's composite
    /// destinations: `a,b`, or `queue://a,topic://b` to mix kinds; a part
    /// without a scheme has this destination's kind), or `None` for a plain
    /// name. Parts that are not valid names are left out; the name's length
    /// limit bounds how many there are.
    pub fn composite_parts(&self) -> Option<Vec<Destination>> {
        if !self.name.contains(',') {
            return None;
        }
        let parts = self.name.split(',').filter_map(|part| {
            let part = part.trim();
            let (kind, name) = if let Some(n) = part.strip_prefix("queue://") {
                (DestinationKind::Queue, n)
            } else if let Some(n) = part.strip_prefix("topic://") {
                (DestinationKind::Topic, n)
            } else {
                (self.kind, part)
            };
            Destination::new(kind, name).ok()
        });
        Some(parts.collect())
    }

    /// True if the name is a pattern of ActiveMQ's wildcards: an element
    /// (between dots) that is `*` or `>`.
    pub fn is_wildcard(&self) -> bool {
        self.name.split('.').any(|e| e == "*" || e == ">")
    }
}

impl Destination {
    /// Reads back what `Display` writes (`queue://name`, `temp-topic://name`...).
    pub fn parse(text: &str) -> Option<Destination> {
        let (scheme, name) = text.split_once("://")?;
        let kind = match scheme {
            "queue" => DestinationKind::Queue,
            "topic" => DestinationKind::Topic,
            "temp-queue" => DestinationKind::TempQueue,
            "temp-topic" => DestinationKind::TempTopic,
            _ => return None,
        };
        Destination::new(kind, name).ok()
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.kind {
            DestinationKind::Queue => "queue",
            DestinationKind::Topic => "topic",
            DestinationKind::TempQueue => "temp-queue",
            DestinationKind::TempTopic => "temp-topic",
        };
        write!(f, "{scheme}://{}", self.name)
    }
}

/// Why a destination name was refused.
#[non_exhaustive]
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum InvalidDestination {
    /// The name is empty.
    #[error("destination name is empty")]
    Empty,
    /// The name is longer than the limit.
    #[error("destination name is longer than {limit} bytes")]
    TooLong {
        /// The limit in bytes.
        limit: usize,
    },
    /// Control characters (newlines, NUL...) are not allowed in names.
    #[error("destination name contains a control character")]
    ControlCharacter,
    /// A pattern's `>` is not its last element.
    #[error("'>' may only be the last element of a destination pattern")]
    Wildcard,
}

/// ActiveMQ's destination wildcards, as in its policy entries: names are
/// paths separated by `.`, `*` matches one element, `>` (last) matches one or
/// more trailing elements. `queue` patterns match queues and temporary
/// queues, `topic` patterns topics and temporary topics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DestinationPattern {
    /// Whether it matches queues or topics.
    topics: bool,
    /// The path elements, `*` and `>` included.
    elements: Vec<String>,
}

impl DestinationPattern {
    /// A pattern for queues (`topics` false) or topics.
    pub fn new(topics: bool, pattern: &str) -> Result<DestinationPattern, InvalidDestination> {
        if pattern.is_empty() {
            return Err(InvalidDestination::Empty);
        }
        let elements: Vec<String> = pattern.split('.').map(str::to_owned).collect();
        if elements[..elements.len() - 1].iter().any(|e| e == ">") {
            return Err(InvalidDestination::Wildcard);
        }
        Ok(DestinationPattern { topics, elements })
    }

    /// True if `d` is of the pattern's kind and its name matches.
    pub fn matches(&self, d: &Destination) -> bool {
        if d.is_topic() != self.topics {
            return false;
        }
        let mut names = d.name.split('.');
        for element in &self.elements {
            match (element.as_str(), names.next()) {
                (">", Some(_)) => return true,
                (_, None) => return false,
                ("*", Some(_)) => {}
                (literal, Some(name)) if literal == name => {}
                _ => return false,
            }
        }
        names.next().is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_as_activemq_wildcards() {
        let q = |p: &str| DestinationPattern::new(false, p).unwrap();
        let price = Destination::queue("PRICE.STOCK.NASDAQ.IBM");
        assert!(q("PRICE.>").matches(&price));
        assert!(q("PRICE.STOCK.*.IBM").matches(&price));
        assert!(q(">").matches(&price));
        assert!(!q("PRICE.STOCK.NASDAQ").matches(&price));
        assert!(!q("PRICE.STOCK.NASDAQ.IBM.X").matches(&price));
        assert!(!q("PRICE.*").matches(&price));
        assert!(!q("PRICE.>").matches(&Destination::queue("PRICE")));
        assert!(q("orders").matches(&Destination::queue("orders")));
        assert!(!q("orders").matches(&Destination::topic("orders")));
        assert!(DestinationPattern::new(true, "a.>")
            .unwrap()
            .matches(&Destination::topic("a.b")));
        assert_eq!(
            DestinationPattern::new(false, "a.>.b"),
            Err(InvalidDestination::Wildcard)
        );
    }

    #[test]
    fn rejects_bad_names() {
        assert_eq!(
            Destination::new(DestinationKind::Queue, ""),
            Err(InvalidDestination::Empty)
        );
        assert_eq!(
            Destination::new(DestinationKind::Queue, "a\nb"),
            Err(InvalidDestination::ControlCharacter)
        );
        let long = "x".repeat(MAX_DESTINATION_NAME_BYTES + 1);
        assert!(matches!(
            Destination::new(DestinationKind::Topic, &long),
            Err(InvalidDestination::TooLong { .. })
        ));
        assert_eq!(
            Destination::new(DestinationKind::Topic, "prices.eu")
                .unwrap()
                .to_string(),
            "topic://prices.eu"
        );
    }
}
