//! Authorization: who may read, write and administer which destinations, with
//! ActiveMQ's model (its `authorizationEntry` and
//! `tempDestinationAuthorizationEntry`).
//!
//! An [`AccessEntry`] names a queue or topic pattern (wildcards `*` and `>`)
//! or every temporary destination, and for each [`Operation`] the users and
//! groups allowed. Every entry that matches a destination counts: the names
//! allowed are the union of theirs, as in ActiveMQ. A destination no entry
//! matches allows nobody; temporary destinations with no temporary entry
//! allow everyone (ActiveMQ's defaults both). An empty [`AccessPolicy`] (no
//! entries configured) allows everything: authorization is off.
//!
//! The engine asks [`AccessPolicy::allows`] in one place per operation
//! (`authorization`), for every protocol: sending (write), subscribing and browsing (read), creating
//! a queue by using it first and creating a temporary destination (admin).
//! Reading a temporary destination is its creator's connection's alone,
//! whatever the entries say (JMS's rule).

use std::sync::Arc;

use crate::destination::{Destination, DestinationPattern};
use crate::identity::Principal;

/// The name an anonymous connection (a broker with `allow_anonymous`) has,
/// as user and as group (ActiveMQ's `anonymousUser` and `anonymousGroup`).
pub const ANONYMOUS: &str = "anonymous";

/// What an operation needs of a destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Consume or browse it.
    Read,
    /// Send to it.
    Write,
    /// Create it (a queue used for the first time, a temporary destination).
    Admin,
}

impl Operation {
    /// As in the refusal's message: "not authorized to write to".
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Read => "read from",
            Operation::Write => "write to",
            Operation::Admin => "create",
        }
    }
}

/// Which destinations an entry is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccessTarget {
    /// Queues or topics matching the pattern (temporary ones excluded).
    Pattern(DestinationPattern),
    /// Every temporary queue and topic.
    Temporary,
}

/// One authorization entry (see the module).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessEntry {
    /// What it is for.
    pub target: AccessTarget,
    /// Users and groups that may read.
    pub read: Vec<Arc<str>>,
    /// Users and groups that may write.
    pub write: Vec<Arc<str>>,
    /// Users and groups that may administer (create).
    pub admin: Vec<Arc<str>>,
}

impl AccessEntry {
    fn applies_to(&self, d: &Destination) -> bool {
        match &self.target {
            AccessTarget::Temporary => d.kind.is_temporary(),
            AccessTarget::Pattern(p) => !d.kind.is_temporary() && p.matches(d),
        }
    }

    fn names(&self, op: Operation) -> &[Arc<str>] {
        match op {
            Operation::Read => &self.read,
            Operation::Write => &self.write,
            Operation::Admin => &self.admin,
        }
    }
}

/// Every entry (see the module).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessPolicy {
    entries: Vec<AccessEntry>,
}

impl AccessPolicy {
    /// A policy of `entries`; none: authorization off.
    pub fn new(entries: Vec<AccessEntry>) -> AccessPolicy {
        AccessPolicy { entries }
    }

    /// True when there are no entries: everything is allowed.
    pub fn is_off(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `who` may perform `op` on `d`. A composite destination is
    /// allowed only if each of its parts is.
    pub fn allows(&self, who: &Principal, d: &Destination, op: Operation) -> bool {
        if self.is_off() || *who == Principal::Broker {
            return true;
        }
        if let Some(parts) = d.composite_parts() {
            return parts.iter().all(|p| self.allows(who, p, op));
        }
        let mut matched = false;
        for e in self.entries.iter().filter(|e| e.applies_to(d)) {
            matched = true;
            if e.names(op).iter().any(|n| is(who, n)) {
                return true;
            }
        }
        // No temporary entry: temporary destinations are everyone's.
        !matched && d.kind.is_temporary()
    }
}

/// Whether `who` is the user or a member of the group `name`.
fn is(who: &Principal, name: &str) -> bool {
    match who {
        Principal::Anonymous => name == ANONYMOUS,
        Principal::Broker => false,
        Principal::User { name: user, groups } => {
            **user == *name || groups.iter().any(|g| **g == *name)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::destination::DestinationKind;

    fn names(list: &[&str]) -> Vec<Arc<str>> {
        list.iter().map(|n| Arc::from(*n)).collect()
    }

    fn entry(
        topic: bool,
        pattern: &str,
        read: &[&str],
        write: &[&str],
        admin: &[&str],
    ) -> AccessEntry {
        AccessEntry {
            target: AccessTarget::Pattern(DestinationPattern::new(topic, pattern).unwrap()),
            read: names(read),
            write: names(write),
            admin: names(admin),
        }
    }

    fn user(name: &str, groups: &[&str]) -> Principal {
        Principal::User {
            name: Arc::from(name),
            groups: names(groups).into(),
        }
    }

    #[test]
    fn entries_allow_users_and_groups_by_pattern_and_their_union_counts() {
        let policy = AccessPolicy::new(vec![
            entry(false, ">", &["admins"], &["admins"], &["admins"]),
            entry(false, "orders.>", &["clerks"], &["shop"], &[]),
            entry(true, "prices.*", &["everyone"], &["feed"], &["feed"]),
        ]);
        let admin = user("root", &["admins"]);
        let clerk = user("carol", &["clerks", "everyone"]);
        let shop = user("shop", &[]);
        let orders = Destination::queue("orders.eu");
        let other = Destination::queue("payroll");
        let prices = Destination::topic("prices.eur");
        use Operation::*;
        assert!(
            policy.allows(&admin, &orders, Read),
            "the '>' entry counts too"
        );
        assert!(policy.allows(&clerk, &orders, Read));
        assert!(!policy.allows(&clerk, &orders, Write));
        assert!(
            policy.allows(&shop, &orders, Write),
            "a user named directly"
        );
        assert!(!policy.allows(&shop, &orders, Admin));
        assert!(!policy.allows(&clerk, &other, Read));
        assert!(policy.allows(&clerk, &prices, Read));
        assert!(
            !policy.allows(&admin, &prices, Read),
            "queue entries are not for topics"
        );
        assert!(
            !policy.allows(&clerk, &Destination::topic("prices.eur.x"), Read),
            "'*' is one element"
        );
        assert!(!policy.allows(&Principal::Anonymous, &orders, Read));
        // A composite destination needs every part.
        let both = Destination::queue("orders.eu,payroll");
        assert!(policy.allows(&admin, &both, Write));
        assert!(!policy.allows(&shop, &both, Write));
        assert!(
            AccessPolicy::default().allows(&Principal::Anonymous, &other, Admin),
            "off"
        );
    }

    #[test]
    fn temporary_destinations_follow_their_own_entry_or_are_everyones() {
        let temp = Destination::new(DestinationKind::TempQueue, "ID:c-1").unwrap();
        let shop = user("shop", &["users"]);
        let plain = AccessPolicy::new(vec![entry(
            false,
            ">",
            &["admins"],
            &["admins"],
            &["admins"],
        )]);
        assert!(
            plain.allows(&shop, &temp, Operation::Admin),
            "no temporary entry: everyone's"
        );
        let policy = AccessPolicy::new(vec![
            entry(false, ">", &["users"], &["users"], &["users"]),
            AccessEntry {
                target: AccessTarget::Temporary,
                read: names(&["admins"]),
                write: names(&["admins", "users"]),
                admin: names(&["admins"]),
            },
        ]);
        assert!(
            !policy.allows(&shop, &temp, Operation::Admin),
            "'>' does not reach temporaries"
        );
        assert!(policy.allows(&shop, &temp, Operation::Write));
        assert!(!policy.allows(
            &Principal::Anonymous,
            &Destination::queue("x"),
            Operation::Read
        ));
        let anon = AccessPolicy::new(vec![entry(false, "public", &[ANONYMOUS], &[], &[])]);
        assert!(anon.allows(
            &Principal::Anonymous,
            &Destination::queue("public"),
            Operation::Read
        ));
    }
}
