//! Which subscriptions a topic's messages go to, wildcards included.
//!
//! A subscription names a topic, or a pattern of topics in ActiveMQ's
//! wildcards (`.` separates the elements of a name, `*` matches one element,
//! `>` the rest): a subscription to `PRICE.>` gets what is published to
//! `PRICE.STOCK.IBM`. Exact names are one hash lookup per message; patterns
//! are checked one by one, so their cost grows with the number of distinct
//! patterns subscribed to, not with the number of topics.

use foldhash::HashMap;

use crate::container::ContainerKey;
use crate::destination::{Destination, DestinationPattern};
use crate::state::TopicLink;

/// The subscriptions of every topic and topic pattern.
#[derive(Default)]
pub(crate) struct Topics {
    /// Links by the destination they subscribed to (a pattern's own name included).
    links: HashMap<Destination, Vec<TopicLink>>,
    /// The subscribed destinations that are patterns, with their parsed form.
    patterns: Vec<(Destination, DestinationPattern)>,
    /// Subscriptions linked under more than one name (composites), which a
    /// message may reach twice through [`Topics::matching`].
    shared: usize,
}

impl Topics {
    /// Adds a subscription to `dest`: a topic, a pattern, or a composite of
    /// them (`a,b` or `topic://a,topic://b`, ActiveMQ's composite destination),
    /// which subscribes to each.
    pub fn link(&mut self, dest: &Destination, link: TopicLink) {
        let parts = composite_parts(dest);
        self.shared += usize::from(parts.len() > 1);
        for part in parts {
            let links = self.links.entry(part.clone()).or_default();
            if links.is_empty() && part.is_wildcard() {
                if let Ok(p) = DestinationPattern::new(true, &part.name) {
                    self.patterns.push((part.clone(), p));
                }
            }
            links.push(link.clone());
        }
    }

    /// Removes every link to container `key`.
    pub fn unlink(&mut self, key: &ContainerKey) {
        let mut found = 0;
        for links in self.links.values_mut() {
            let before = links.len();
            links.retain(|l| &l.key != key);
            found += before - links.len();
        }
        self.shared -= usize::from(found > 1).min(self.shared);
        self.prune();
    }

    /// Every subscribed destination (a pattern's own name included) with
    /// its subscriptions.
    pub fn subscribed(&self) -> impl Iterator<Item = (&Destination, &[TopicLink])> {
        self.links.iter().map(|(d, links)| (d, links.as_slice()))
    }

    /// True if some subscription is linked under several names, so that the
    /// links [`Topics::matching`] yields must be told apart by container.
    pub fn has_shared(&self) -> bool {
        self.shared > 0
    }

    /// Removes the subscriptions of `dest` (a deleted temporary topic).
    pub fn remove(&mut self, dest: &Destination) -> Option<Vec<TopicLink>> {
        let removed = self.links.remove(dest);
        self.prune();
        removed
    }

    /// The links a message published to `dest` goes through: those to `dest`
    /// itself, then those of every pattern it matches. A message sent to a
    /// pattern's own name goes to that name's subscribers only.
    pub fn matching<'a>(&'a self, dest: &'a Destination) -> impl Iterator<Item = &'a TopicLink> {
        let patterns = if dest.is_wildcard() {
            &[][..]
        } else {
            &self.patterns[..]
        };
        self.links.get(dest).into_iter().flatten().chain(
            patterns
                .iter()
                .filter(move |(_, p)| p.matches(dest))
                .flat_map(move |(name, _)| self.links.get(name).into_iter().flatten()),
        )
    }

    /// Forgets destinations without subscriptions.
    fn prune(&mut self) {
        self.links.retain(|_, links| !links.is_empty());
        let links = &self.links;
        self.patterns.retain(|(name, _)| links.contains_key(name));
    }
}

/// The topics a composite name stands for (one for a plain name). Parts
/// naming queues (`queue://x`) are left out: a topic subscription cannot take
/// a queue's messages.
fn composite_parts(dest: &Destination) -> Vec<Destination> {
    match dest.composite_parts() {
        None => vec![dest.clone()],
        Some(parts) => parts.into_iter().filter(Destination::is_topic).collect(),
    }
}
