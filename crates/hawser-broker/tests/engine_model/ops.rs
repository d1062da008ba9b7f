//! Where sends go, and the operations the test generates.

use proptest::prelude::*;

/// The destinations a send may name, each with the queues that get a copy:
/// plain queues, a composite of both, and one that mixes in a topic nobody
/// subscribes to (its copy goes nowhere).
pub(crate) const TARGETS: [(&str, &[&str]); 4] = [
    ("q", &["q"]),
    ("q2", &["q2"]),
    ("q,q2", &["q", "q2"]),
    ("q2,topic://t,queue://q", &["q2", "q"]),
];

/// The queues the model's messages can be in (the DLQ aside).
pub(crate) const QUEUES: [&str; 2] = ["q", "q2"];

/// The copy of a message in one queue: what the model counts.
pub(crate) fn copy(queue: &str, body: &str) -> String {
    format!("{queue}/{body}")
}

/// Every copy a send of `body` to `TARGETS[dest]` makes.
pub(crate) fn copies(body: &str, dest: usize) -> Vec<String> {
    TARGETS[dest].1.iter().map(|q| copy(q, body)).collect()
}

pub(crate) fn dest_strategy() -> impl Strategy<Value = usize> {
    prop_oneof![5 => Just(0usize), 1 => Just(1), 2 => Just(2), 1 => Just(3)]
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Op {
    Send {
        p: usize,
        persistent: bool,
        receipt: bool,
        dest: usize,
    },
    TxSend {
        p: usize,
        dest: usize,
    },
    Commit {
        p: usize,
    },
    Abort {
        p: usize,
    },
    Resend {
        p: usize,
        k: usize,
    },
    DisconnectProducer {
        p: usize,
    },
    /// Another user takes producer `p`'s client id while it is away and
    /// sends with its next `ahead` sequence numbers.
    Squat {
        p: usize,
        ahead: u64,
    },
    Subscribe {
        c: usize,
        mode: u8,
        q2: bool,
    },
    Ack {
        c: usize,
        k: usize,
        sync: bool,
    },
    Nack {
        c: usize,
        k: usize,
    },
    TxAck {
        c: usize,
        k: usize,
    },
    ConsumerCommit {
        c: usize,
    },
    ConsumerAbort {
        c: usize,
    },
    DisconnectConsumer {
        c: usize,
    },
    /// A send in the XA transaction on consumer `c`'s connection (begun if none).
    XaSend {
        c: usize,
        dest: usize,
    },
    /// An acknowledgement in it.
    XaAck {
        c: usize,
        k: usize,
    },
    /// Prepares it; with none open and `empty`, begins one and prepares it
    /// at once (a read-only vote).
    XaPrepare {
        c: usize,
        empty: bool,
    },
    /// A transaction manager commits a prepared transaction from connection
    /// `via` (a producer's, a consumer's or its own); `stale`: one that ended.
    XaCommit {
        x: usize,
        via: usize,
        stale: bool,
    },
    /// A transaction manager rolls one back; `stale`: one that ended.
    XaRollback {
        x: usize,
        stale: bool,
    },
    Flush,
    Refuse,
    Crash,
    /// The pager serves the reads of stored messages the broker asked for.
    PageIn,
}

pub(crate) fn op_strategy() -> impl Strategy<Value = Op> {
    let p = 0usize..3;
    let c = 0usize..2;
    prop_oneof![
        8 => (p.clone(), any::<bool>(), prop::bool::weighted(0.8), dest_strategy())
            .prop_map(|(p, persistent, receipt, dest)| Op::Send { p, persistent: persistent || receipt, receipt, dest }),
        3 => (p.clone(), dest_strategy()).prop_map(|(p, dest)| Op::TxSend { p, dest }),
        2 => p.clone().prop_map(|p| Op::Commit { p }),
        1 => p.clone().prop_map(|p| Op::Abort { p }),
        2 => (p.clone(), any::<usize>()).prop_map(|(p, k)| Op::Resend { p, k }),
        1 => p.clone().prop_map(|p| Op::DisconnectProducer { p }),
        1 => (p, 1u64..4).prop_map(|(p, ahead)| Op::Squat { p, ahead }),
        2 => (c.clone(), 0u8..3, prop::bool::weighted(0.3)).prop_map(|(c, mode, q2)| Op::Subscribe { c, mode, q2 }),
        6 => (c.clone(), any::<usize>(), any::<bool>()).prop_map(|(c, k, sync)| Op::Ack { c, k, sync }),
        2 => (c.clone(), any::<usize>()).prop_map(|(c, k)| Op::Nack { c, k }),
        2 => (c.clone(), any::<usize>()).prop_map(|(c, k)| Op::TxAck { c, k }),
        1 => c.clone().prop_map(|c| Op::ConsumerCommit { c }),
        1 => c.clone().prop_map(|c| Op::ConsumerAbort { c }),
        1 => c.clone().prop_map(|c| Op::DisconnectConsumer { c }),
        3 => (c.clone(), dest_strategy()).prop_map(|(c, dest)| Op::XaSend { c, dest }),
        3 => (c.clone(), any::<usize>()).prop_map(|(c, k)| Op::XaAck { c, k }),
        2 => (c, prop::bool::weighted(0.2)).prop_map(|(c, empty)| Op::XaPrepare { c, empty }),
        2 => (any::<usize>(), 0usize..6, prop::bool::weighted(0.1))
            .prop_map(|(x, via, stale)| Op::XaCommit { x, via, stale }),
        1 => (any::<usize>(), prop::bool::weighted(0.1)).prop_map(|(x, stale)| Op::XaRollback { x, stale }),
        4 => Just(Op::Flush),
        1 => Just(Op::Refuse),
        1 => Just(Op::Crash),
        3 => Just(Op::PageIn),
    ]
}
