//! The engine's authorization checks: what [`crate::access`] decides,
//! asked with the connection's principal at each operation (sends,
//! subscriptions, browsers, temporary destinations), and the refusal it
//! turns into.

use crate::access::{Operation, ANONYMOUS};
use crate::broker::Broker;
use crate::container::ContainerKey;
use crate::destination::Destination;
use crate::error::BrokerError;
use crate::identity::Principal;
use crate::outbox::ConnectionId;
use crate::state::State;

impl Broker {
    /// `Ok` if `conn`'s principal may perform `op` on `d` (see the module).
    pub(crate) fn authorize(
        &self,
        st: &State,
        conn: ConnectionId,
        d: &Destination,
        op: Operation,
    ) -> Result<(), BrokerError> {
        let policy = &self.config().access;
        if policy.is_off() {
            return Ok(());
        }
        let who = &st.connections.open(conn)?.info.principal;
        if policy.allows(who, d, op) {
            Ok(())
        } else {
            Err(refusal(who, d, op))
        }
    }

    /// [`Broker::authorize`] for using queue `d` (or each queue of a
    /// composite): admin too if it does not exist yet, since using it
    /// creates it (as in ActiveMQ). Topics hold nothing of their own and
    /// are not created: they need `op` only.
    pub(crate) fn authorize_use(
        &self,
        st: &State,
        conn: ConnectionId,
        d: &Destination,
        op: Operation,
    ) -> Result<(), BrokerError> {
        self.authorize(st, conn, d, op)?;
        if self.config().access.is_off() {
            return Ok(());
        }
        let parts = d.composite_parts().unwrap_or_else(|| vec![d.clone()]);
        for part in parts {
            let queue = !part.is_topic() && !part.kind.is_temporary();
            if queue
                && !st
                    .containers
                    .contains_key(&ContainerKey::Queue(part.clone()))
            {
                self.authorize(st, conn, &part, Operation::Admin)?;
                let who = &st.connections.open(conn)?.info.principal;
                tracing::info!(target: "audit", user = user_name(who), "creates {part}");
            }
        }
        Ok(())
    }

    /// `Ok` if `conn` may read temporary destination `d`: only the
    /// connection that created it may, whatever the entries say.
    pub(crate) fn authorize_temporary_read(
        &self,
        st: &State,
        conn: ConnectionId,
        d: &Destination,
    ) -> Result<(), BrokerError> {
        match st.temp_owners.get(d) {
            None => Err(BrokerError::UnknownTemporary(d.to_string())),
            Some(owner) if *owner == conn => Ok(()),
            Some(_) => {
                let who = &st.connections.open(conn)?.info.principal;
                Err(refusal(who, d, Operation::Read))
            }
        }
    }
}

/// The refusal, written to the audit log as well.
pub(crate) fn refusal(who: &Principal, d: &Destination, op: Operation) -> BrokerError {
    let user = user_name(who);
    tracing::warn!(target: "audit", user, "not authorized to {}: {d}", op.as_str());
    BrokerError::NotAuthorized {
        user: user.to_owned(),
        operation: op.as_str(),
        destination: d.to_string(),
    }
}

/// How the audit log and refusals name a principal.
pub(crate) fn user_name(who: &Principal) -> &str {
    match who {
        Principal::Anonymous => ANONYMOUS,
        Principal::Broker => "broker",
        Principal::User { name, .. } => name,
    }
}
