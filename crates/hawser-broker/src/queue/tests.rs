//! The dispatch state machine, one container at a time.
use super::*;
use crate::destination::Destination;
use crate::message::{MessageData, NewMessage};
use crate::outbox::test_support::Recorder;
use crate::usage::MemoryUsage;
use bytes::Bytes;

fn entry(id: u64, priority: u8, headers: &[(&str, &str)]) -> Entry {
    let usage = MemoryUsage::new(u64::MAX);
    let mut new = NewMessage::new(Destination::queue("q"), Bytes::new());
    new.priority = priority;
    new.fields.properties = headers
        .iter()
        .map(|(k, v)| {
            (
                Arc::from(*k),
                crate::property::PropertyValue::String(Arc::from(*v)),
            )
        })
        .collect();
    Entry {
        msg: Arc::new(Message::new(MessageData::accept(id, new, 0), &usage)),
        redeliveries: 0,
        seq: 0,
        record: 0,
        consumed: None,
    }
}

fn consumer(id: u64, prefetch: u32, rec: &Arc<Recorder>) -> Consumer {
    Consumer::new(
        id,
        Arc::from(format!("sub-{id}")),
        AckMode::ClientIndividual,
        prefetch,
        None,
        false,
        rec.clone(),
    )
}

/// A message of group `group` (sequence `seq`).
fn grouped(id: u64, group: &str, seq: i32) -> Entry {
    let mut e = entry(id, 4, &[]);
    let mut data = MessageData::clone(&e.msg);
    data.fields.group_id = Some(Arc::from(group));
    data.fields.group_seq = seq;
    e.msg = Arc::new(Message::new(data, &MemoryUsage::new(u64::MAX)));
    e
}

#[test]
fn a_group_sticks_to_one_consumer_until_it_goes_or_the_group_closes() {
    let (r1, r2) = (Recorder::new(), Recorder::new());
    let mut q = MessageQueue::new();
    q.add_consumer(consumer(1, 100, &r1));
    q.add_consumer(consumer(2, 100, &r2));
    for (id, g) in [(1, "A"), (2, "B"), (3, "A"), (4, "B"), (5, "A"), (6, "C")] {
        q.enqueue(grouped(id, g, 1));
    }
    q.dispatch(0, &mut Vec::new());
    // Round robin places the groups; each then stays where it started.
    assert_eq!(r1.ids(), vec![1, 3, 5]);
    assert_eq!(r2.ids(), vec![2, 4, 6]);
    // A group whose consumer is full waits for it, and holds nobody else up.
    let mut q = MessageQueue::new();
    let (r1, r2) = (Recorder::new(), Recorder::new());
    q.add_consumer(consumer(1, 1, &r1));
    q.add_consumer(consumer(2, 100, &r2));
    for (id, g) in [(1, "A"), (2, "A"), (3, "B"), (4, "B")] {
        q.enqueue(grouped(id, g, 1));
    }
    q.dispatch(0, &mut Vec::new());
    assert_eq!(r1.ids(), vec![1]);
    assert_eq!(r2.ids(), vec![3, 4]);
    // Its consumer gone, the group moves, in order, with what it held first.
    let held = q.remove_consumer(1);
    q.requeue_front(held);
    q.dispatch(0, &mut Vec::new());
    assert_eq!(r2.ids(), vec![3, 4, 1, 2]);
    // Sequence -1 closes a group: its next message may go anywhere.
    let mut q = MessageQueue::new();
    let (r1, r2) = (Recorder::new(), Recorder::new());
    q.add_consumer(consumer(1, 100, &r1));
    q.add_consumer(consumer(2, 100, &r2));
    q.enqueue(grouped(1, "A", 1));
    q.enqueue(grouped(2, "A", -1));
    q.enqueue(grouped(3, "X", 1));
    q.enqueue(grouped(4, "A", 1));
    q.dispatch(0, &mut Vec::new());
    assert_eq!(r1.ids(), vec![1, 2, 4]);
    assert_eq!(r2.ids(), vec![3]);
    assert!(q.groups.len() <= 2);
}

#[test]
fn a_consumer_without_a_window_gets_only_what_it_pulls() {
    let rec = Recorder::new();
    let mut q = MessageQueue::new();
    q.add_consumer(consumer(1, 0, &rec));
    // Nothing yet: a pull waits, and can be withdrawn.
    assert!(q.pull(1));
    q.dispatch(0, &mut Vec::new());
    assert!(q.cancel_pull(1), "the pull was still waiting");
    for i in 1..=3 {
        q.enqueue(entry(i, 4, &[]));
    }
    q.dispatch(0, &mut Vec::new());
    assert!(rec.ids().is_empty(), "no window, no pull: nothing");
    q.pull(1);
    q.dispatch(0, &mut Vec::new());
    assert_eq!(rec.ids(), vec![1]);
    assert!(!q.cancel_pull(1), "the pull was answered");
    q.pull(1);
    q.dispatch(0, &mut Vec::new());
    assert_eq!(rec.ids(), vec![1, 2]);
    assert!(!q.pull(99), "no such consumer");
}

#[test]
fn priority_then_fifo() {
    let rec = Recorder::new();
    let mut q = MessageQueue::new();
    q.enqueue(entry(1, 4, &[]));
    q.enqueue(entry(2, 9, &[]));
    q.enqueue(entry(3, 4, &[]));
    q.enqueue(entry(4, 0, &[]));
    q.add_consumer(consumer(1, 10, &rec));
    q.dispatch(0, &mut Vec::new());
    assert_eq!(rec.ids(), vec![2, 1, 3, 4]);
}

#[test]
fn prefetch_limits_and_ack_frees_credit() {
    let rec = Recorder::new();
    let mut q = MessageQueue::new();
    for i in 1..=5 {
        q.enqueue(entry(i, 4, &[]));
    }
    q.add_consumer(consumer(1, 2, &rec));
    q.dispatch(0, &mut Vec::new());
    assert_eq!(rec.ids(), vec![1, 2]);
    let acked = q.ack(1, 2, false).unwrap();
    assert_eq!(acked.len(), 1);
    q.dispatch(0, &mut Vec::new());
    assert_eq!(rec.ids(), vec![1, 2, 3]);
    // Cumulative ack of 3 covers 1 too.
    let acked = q.ack(1, 3, true).unwrap();
    assert_eq!(
        acked.iter().map(|e| e.msg.id).collect::<Vec<_>>(),
        vec![1, 3]
    );
    assert_eq!(q.ack(1, 3, false).unwrap_err(), AckError::UnknownMessage(3));
}

#[test]
fn round_robin_between_consumers() {
    let rec = Recorder::new();
    let mut q = MessageQueue::new();
    q.add_consumer(consumer(1, 100, &rec));
    q.add_consumer(consumer(2, 100, &rec));
    for i in 1..=4 {
        q.enqueue(entry(i, 4, &[]));
    }
    q.dispatch(0, &mut Vec::new());
    assert_eq!(rec.consumers(), vec![1, 2, 1, 2]);
}

#[test]
fn exclusive_consumer_takes_everything() {
    let rec = Recorder::new();
    let mut q = MessageQueue::new();
    q.add_consumer(consumer(1, 100, &rec));
    let mut ex = consumer(2, 100, &rec);
    ex.exclusive = true;
    q.add_consumer(ex);
    for i in 1..=3 {
        q.enqueue(entry(i, 4, &[]));
    }
    q.dispatch(0, &mut Vec::new());
    assert_eq!(rec.consumers(), vec![2, 2, 2]);
    // When the exclusive consumer leaves, its messages come back for the other.
    let back = q.remove_consumer(2);
    assert_eq!(back.len(), 3);
    q.requeue_front(back);
    q.dispatch(0, &mut Vec::new());
    assert_eq!(rec.consumers(), vec![2, 2, 2, 1, 1, 1]);
}

#[test]
fn selectors_skip_non_matching() {
    let rec = Recorder::new();
    let mut q = MessageQueue::new();
    let mut c = consumer(1, 100, &rec);
    c.selector = Some(Arc::new(Selector::parse("color = 'red'").unwrap()));
    q.add_consumer(c);
    q.enqueue(entry(1, 4, &[("color", "blue")]));
    q.enqueue(entry(2, 4, &[("color", "red")]));
    q.dispatch(0, &mut Vec::new());
    assert_eq!(rec.ids(), vec![2]);
    assert_eq!(q.pending_len(), 1);
}

#[test]
fn expired_messages_are_never_delivered() {
    let rec = Recorder::new();
    let mut q = MessageQueue::new();
    let mut e = entry(1, 4, &[]);
    let mut data = (*e.msg).clone();
    data.expires_ms = Some(100);
    e.msg = Arc::new(Message::new(data, &MemoryUsage::new(u64::MAX)));
    q.enqueue(e);
    q.enqueue(entry(2, 4, &[]));
    q.add_consumer(consumer(1, 10, &rec));
    let mut expired = Vec::new();
    q.dispatch(100, &mut expired);
    assert_eq!(rec.ids(), vec![2]);
    assert_eq!(expired.len(), 1);
}

#[test]
fn transactional_ack_frees_credit_and_settles_later() {
    let rec = Recorder::new();
    let mut q = MessageQueue::new();
    q.add_consumer(consumer(1, 1, &rec));
    q.enqueue(entry(1, 4, &[]));
    q.enqueue(entry(2, 4, &[]));
    q.dispatch(0, &mut Vec::new());
    assert_eq!(q.tx_ack(1, 1, false).unwrap(), vec![1]);
    q.dispatch(0, &mut Vec::new());
    assert_eq!(rec.ids(), vec![1, 2]);
    // A consumer leaving does not take back tx-acked messages.
    assert_eq!(q.remove_consumer(1).len(), 1);
    assert!(q.settle_tx_ack(1).is_some());
    assert!(q.settle_tx_ack(1).is_none());
}
