//! Messages handed back: redelivered with a higher count, or moved to the
//! dead-letter queue once redelivered too often or expired (as ActiveMQ does,
//! `maximumRedeliveries` and `ActiveMQ.DLQ`).
//!
//! A dead-letter move is one store record (dequeue from where the message was,
//! enqueue to the DLQ), so a crash leaves it in exactly one place. If the store
//! refuses the record, the messages go back where they were.

use std::sync::Arc;

use crate::broker::{now_ms, Broker};
use crate::container::ContainerKey;
use crate::destination::Destination;
use crate::property::PropertyValue;
use crate::queue::Entry;
use crate::state::State;
use crate::store::StoreOp;

/// The property of a dead letter that says why it died (ActiveMQ's name).
pub const DLQ_CAUSE_PROPERTY: &str = "dlqDeliveryFailureCause";

impl Broker {
    /// Hands messages back to their container for redelivery, or to the
    /// dead-letter queue once they have been redelivered too often.
    pub(crate) fn redeliver(&self, st: &mut State, key: &ContainerKey, entries: Vec<Entry>) {
        if entries.is_empty() {
            return;
        }
        let skey = key.store_key();
        let mut back = Vec::with_capacity(entries.len());
        let mut dead = Vec::new();
        let mut ops = Vec::new();
        for mut e in entries {
            e.redeliveries += 1;
            if e.redeliveries > self.config().max_redeliveries {
                dead.push(e);
                continue;
            }
            if let (true, Some(skey)) = (e.msg.persistent, &skey) {
                ops.push(StoreOp::Redelivered {
                    key: skey.clone(),
                    id: e.msg.id,
                    count: e.redeliveries,
                });
            }
            back.push(e);
        }
        // A lost redelivery count costs nothing but an accurate counter.
        self.append_quietly(st, ops);
        if let Some(q) = st.containers.get_mut(key) {
            q.requeue_front(back);
        }
        if !dead.is_empty() {
            let cause = format!(
                "delivery failed more than maximumRedeliveries={}",
                self.config().max_redeliveries
            );
            self.dead_letter(st, key, dead, &cause);
        }
        self.dispatch(st, key);
    }

    /// Moves messages to the dead-letter queue, atomically in the store; if the
    /// store refuses, they return to the front of `from`.
    pub(crate) fn dead_letter(
        &self,
        st: &mut State,
        from: &ContainerKey,
        entries: Vec<Entry>,
        cause: &str,
    ) {
        let dlq = Destination::queue(&self.config().dead_letter_queue);
        let dlq_key = ContainerKey::Queue(dlq.clone());
        if *from == dlq_key {
            // Messages failing in the DLQ itself stay there rather than loop.
            if let Some(q) = st.containers.get_mut(from) {
                q.requeue_front(entries);
            }
            return;
        }
        let now = now_ms();
        let cause = PropertyValue::String(Arc::from(cause));
        let result = self.relocate(st, from, &entries, entries.clone(), &dlq, |data| {
            data.expires_ms = None;
            data.timestamp_ms = now;
            data.fields
                .properties
                .retain(|(k, _)| &**k != DLQ_CAUSE_PROPERTY);
            data.fields
                .properties
                .push((Arc::from(DLQ_CAUSE_PROPERTY), cause.clone()));
        });
        match result {
            Ok(_) => {
                for e in &entries {
                    st.tally.dead_lettered(&e.msg.destination);
                    self.advise_message(st, &e.msg, true);
                }
            }
            Err(e) => {
                tracing::error!("dead-lettering failed, messages stay where they were: {e}");
                if let Some(q) = st.containers.get_mut(from) {
                    q.requeue_front(entries);
                }
            }
        }
    }

    /// Expired persistent messages go to the dead-letter queue (as in ActiveMQ);
    /// expired non-persistent ones are dropped.
    pub(crate) fn dispose_expired(&self, st: &mut State, key: &ContainerKey, expired: Vec<Entry>) {
        for e in &expired {
            st.tally.expired(&e.msg.destination);
        }
        let messages: Vec<Arc<crate::message::Message>> =
            expired.iter().map(|e| Arc::clone(&e.msg)).collect();
        let (persistent, dropped): (Vec<Entry>, Vec<Entry>) =
            expired.into_iter().partition(|e| e.msg.persistent);
        drop(dropped);
        if !persistent.is_empty() {
            self.dead_letter(st, key, persistent, "message expired");
        }
        // After the dead-letter advisories, as ActiveMQ's.
        for m in &messages {
            self.advise_message(st, m, false);
        }
    }
}
