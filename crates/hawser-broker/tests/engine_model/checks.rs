//! What the model checks: deliveries and confirmations as they settle, crashes
//! and recovery, and the promises at the end.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use hawser_broker::{AckMode, Broker, Delivery, Destination, Seq};

use crate::ops::*;
use crate::world::*;

impl World {
    /// Copies an open or prepared XA transaction holds from every consumer
    /// (only those the broker holds one of: another copy of the same body
    /// may be delivered legitimately).
    pub(crate) fn xa_held(&self) -> BTreeSet<&String> {
        self.consumers
            .iter()
            .filter_map(|c| c.xa.as_ref())
            .chain(self.xas.iter().filter(|x| x.holds()))
            .flat_map(|x| x.acks.iter().map(|(k, _)| k))
            .filter(|k| self.scoped.contains(*k))
            .collect()
    }

    /// Takes what the engine delivered and what became confirmed.
    pub(crate) fn settle(&mut self) {
        let durable = self.store.durable();
        let failed = self.store.failed.load(Ordering::SeqCst);
        for c in 0..self.consumers.len() {
            let new: Vec<Delivery> = std::mem::take(&mut *self.consumers[c].inbox.0.lock());
            self.consumers[c].hidden.extend(new);
            // A delivery is shown only once its record is durable (without
            // concurrent dispatch); the connection keeps them in order.
            let visible = self.consumers[c]
                .hidden
                .iter()
                .take_while(|d| d.seq <= durable)
                .count();
            let shown: Vec<Delivery> = self.consumers[c].hidden.drain(..visible).collect();
            for d in shown {
                let k = text(&d);
                assert!(
                    !self.acked_durably.contains(&k),
                    "{k} delivered again after its acknowledgement was durable"
                );
                assert!(
                    !self.xa_sent.contains(&k) || self.xa_committed.contains(&k),
                    "{k} delivered, but its XA transaction did not commit"
                );
                assert!(
                    !self.xa_held().contains(&k),
                    "{k} delivered while an XA transaction holds its acknowledgement"
                );
                if self.consumers[c].mode == AckMode::Auto {
                    self.broker.delivered(&[(d.consumer, d.message.id)]);
                    self.acked.insert(k);
                } else {
                    self.consumers[c].held.push(d);
                }
            }
        }
        for p in 0..self.producers.len() {
            let producer = &mut self.producers[p];
            let mut still = Vec::new();
            for u in producer.unconfirmed.drain(..) {
                let by_disk = u.record <= durable;
                let by_consumer = !failed && u.consumed.as_ref().is_some_and(|c| c.is_set());
                if by_disk || by_consumer {
                    self.confirmed.extend(copies(&body(p, u.seq), u.dest));
                    producer.confirmed.push((u.seq, u.dest));
                } else {
                    still.push(u);
                }
            }
            producer.unconfirmed = still;
            let (done, waiting): (Vec<_>, Vec<_>) =
                producer.commits.drain(..).partition(|(r, _)| *r <= durable);
            producer.commits = waiting;
            for (_, made) in done {
                self.confirmed.extend(made);
            }
        }
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.acks)
            .into_iter()
            .partition(|(r, _)| *r <= durable);
        self.acks = waiting;
        for (_, keys) in done {
            for k in keys {
                if self.scoped.contains(&k) {
                    self.acked_durably.insert(k);
                }
            }
        }
        for xa in &mut self.xas {
            match xa.state {
                XaState::Preparing(r) if r <= durable => xa.state = XaState::Prepared,
                XaState::Committing(r) if r <= durable => {
                    xa.state = XaState::Done;
                    self.confirmed.extend(xa.sends.iter().cloned());
                    for (k, _) in &xa.acks {
                        if self.scoped.contains(k) {
                            self.acked_durably.insert(k.clone());
                        }
                    }
                }
                XaState::RollingBack(r) if r <= durable => xa.state = XaState::Done,
                _ => {}
            }
        }
        // The broker lists what is prepared and nothing else.
        let mut expected: Vec<&str> = self
            .xas
            .iter()
            .filter(|x| matches!(x.state, XaState::Preparing(_) | XaState::Prepared))
            .map(|x| x.xid.as_str())
            .collect();
        expected.sort_unstable();
        let listed = self.broker.prepared_transactions();
        let listed: Vec<&str> = listed.iter().map(|x| &**x).collect();
        assert_eq!(listed, expected, "prepared transactions");
    }

    /// Loses everything not durable and starts a new engine from the rest.
    pub(crate) fn crash(&mut self) {
        self.store.crash();
        let store = Arc::clone(&self.store);
        self.broker = Broker::new(self.config.clone(), store.clone(), store.recover());
        self.page_in();
        for p in &mut self.producers {
            p.conn = None;
            p.tx = None;
            p.commits.clear();
            // Not confirmed before the crash: only a resend can confirm them now.
            for u in &mut p.unconfirmed {
                u.record = Seq::MAX;
                u.consumed = None;
            }
        }
        for c in &mut self.consumers {
            c.conn = None;
            c.held.clear();
            c.hidden.clear();
            c.tx_acks = None;
            c.xa = None;
            c.inbox.0.lock().clear();
        }
        self.tm = None;
        self.acks.clear();
        self.recover_xas();
        self.check_single_copies();
    }

    /// After a restart: the transactions whose prepare was durable and whose
    /// end was not are prepared again, holding what they acknowledged; one
    /// whose prepare was lost may be gone, and then entirely.
    pub(crate) fn recover_xas(&mut self) {
        let durable = self.store.durable();
        let listed: BTreeSet<String> = self
            .broker
            .prepared_transactions()
            .iter()
            .map(|x| x.to_string())
            .collect();
        let known: BTreeSet<&str> = self
            .xas
            .iter()
            .filter(|x| x.state != XaState::Done)
            .map(|x| x.xid.as_str())
            .collect();
        for xid in &listed {
            assert!(
                known.contains(xid.as_str()),
                "{xid} is prepared after a restart, but it ended or never was"
            );
        }
        for xa in &mut self.xas {
            if xa.state == XaState::Done {
                continue;
            }
            let is_listed = listed.contains(&xa.xid);
            assert!(
                is_listed || xa.prepare > durable,
                "{} ({:?}) was durably prepared and not ended, but is gone after a restart",
                xa.xid,
                xa.state
            );
            if let XaState::Committing(_) = xa.state {
                // Its commit did not survive: its sends are not committed.
                for k in &xa.sends {
                    self.xa_committed.remove(k);
                }
            }
            if is_listed {
                xa.state = XaState::Prepared;
                // What a crash keeps of it: its acks of stored messages.
                xa.acks.retain(|(_, persistent)| *persistent);
            } else {
                xa.state = XaState::Done;
            }
        }
        // What the prepared ones hold is not waiting for a consumer.
        let stored = self.stored_copies();
        for xa in self.xas.iter().filter(|x| x.state == XaState::Prepared) {
            for (k, _) in &xa.acks {
                assert!(
                    !self.scoped.contains(k) || !stored.contains(k),
                    "{k} is back in its queue after a restart, but {} still holds it",
                    xa.xid
                );
            }
        }
        for k in &stored {
            assert!(
                !self.xa_sent.contains(k) || self.xa_committed.contains(k),
                "{k} is stored after a restart, but its XA transaction did not commit"
            );
        }
    }

    /// No two stored copies of one client-id producer's message in one queue.
    pub(crate) fn check_single_copies(&self) {
        let mut copies: BTreeMap<String, usize> = BTreeMap::new();
        for q in QUEUES {
            for m in self.waiting(&Destination::queue(q)) {
                *copies
                    .entry(copy(q, &String::from_utf8_lossy(&m.body)))
                    .or_default() += 1;
            }
        }
        for (k, n) in copies {
            if self.scoped.contains(&k) {
                assert!(n <= 1, "{n} copies of {k} after a restart");
            }
        }
    }

    /// Heals the store, makes everything durable, reconnects the producers (so
    /// their resends go in), resolves what is prepared (committing some and
    /// rolling back the others, as a transaction manager's recovery would),
    /// and drains the queues: every confirmed copy must be there or have been
    /// acknowledged.
    pub(crate) fn finish(&mut self) {
        if self.store.failed.load(Ordering::SeqCst) {
            self.crash();
        }
        for p in 0..self.producers.len() {
            self.producer_conn(p);
        }
        self.store.flush();
        self.settle();
        for i in 0..self.xas.len() {
            if self.xas[i].state != XaState::Prepared {
                continue;
            }
            if i % 2 == 0 {
                let conn = self.tm_conn().expect("the transaction manager connects");
                self.xa_commit(i, conn);
            } else {
                self.xa_rollback(i);
            }
            assert!(
                self.xas[i].state != XaState::Prepared,
                "{} could not be resolved on a healthy store",
                self.xas[i].xid
            );
        }
        self.store.flush();
        self.settle();
        for c in 0..self.consumers.len() {
            self.drop_consumer(c);
        }
        self.settle();
        assert!(self.broker.prepared_transactions().is_empty());
        let mut left: Vec<String> = Vec::new();
        for q in QUEUES {
            for m in self.waiting(&Destination::queue(q)) {
                left.push(copy(q, &String::from_utf8_lossy(&m.body)));
            }
        }
        // Dead letters are kept too, in the DLQ.
        let dead = self.dead_letters();
        let present: BTreeSet<String> = left.iter().chain(&dead).cloned().collect();
        let lost: Vec<&String> = self
            .confirmed
            .iter()
            .filter(|k| !present.contains(*k) && !self.acked.contains(*k))
            .collect();
        assert!(lost.is_empty(), "confirmed and lost: {lost:?}");
        for k in &present {
            assert!(
                !self.xa_sent.contains(k) || self.xa_committed.contains(k),
                "{k} is in the broker, but its XA transaction did not commit"
            );
        }
        let mut copies: BTreeMap<&String, usize> = BTreeMap::new();
        for k in &left {
            *copies.entry(k).or_default() += 1;
        }
        for (k, n) in copies {
            if self.scoped.contains(k) {
                assert!(n <= 1, "{n} copies of {k}");
            }
            assert!(
                !self.acked_durably.contains(k),
                "{k} is back after its acknowledgement was durable"
            );
        }
    }
}
