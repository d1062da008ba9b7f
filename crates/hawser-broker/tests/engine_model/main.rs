//! A model-based property test of the engine: random sequences of sends
//! (plain, transactional, resent, with and without producer ids, from clients
//! with and without client id, to queues and to composites of queues),
//! acknowledgements of every mode, nacks, aborts, XA transactions (prepared,
//! then committed from any connection or rolled back, across disconnects,
//! store refusals and restarts), disconnects, store refusals, fsyncs and
//! crashes, checked against a small reference model of what the broker
//! promised.
//!
//! The model counts copies: a message sent to the composite `q,q2` is two
//! copies, `q/<body>` and `q2/<body>`, each kept, delivered and acknowledged
//! on its own. The promises checked:
//! - nothing confirmed is lost: a persistent send whose receipt the broker
//!   would release (its record durable, or its message acknowledged by a
//!   consumer) and every message of a commit whose record is durable (a
//!   one-phase commit or an XA `commit_prepared`) are, at the end, still in
//!   the broker or were acknowledged by a consumer, each copy;
//! - with producer ids, a message whose acknowledgement is durable is never
//!   delivered again (not redelivered, and no second copy from a resend);
//! - with producer ids on a client-id connection, the broker never holds two
//!   copies of one (producer, sequence) in one queue; and another user who
//!   connects with that client id while its owner is away and sends with
//!   the owner's next sequence numbers (`Squat`) does not make the owner's
//!   own sends of them look like resends (they are kept like any other);
//! - XA: a transaction's sends are delivered only once its commit was
//!   accepted, and those of one rolled back or lost never; what an open or
//!   prepared transaction acknowledged is delivered to nobody, and comes back
//!   at once when it rolls back; `prepared_transactions` lists exactly the
//!   prepared ones; after a crash every transaction whose prepare was durable
//!   (and whose end was not) is prepared again, holding what it acknowledged,
//!   and one whose prepare was not durable is either prepared or gone without
//!   a trace; a transaction that ended cannot be ended again.
//!
//! XA branches run on the consumers' connections (one with a client id, one
//! without), so that they both send and acknowledge; a transaction manager
//! commits what voted yes from any connection (a producer's, a consumer's or
//! its own) and may roll back before the vote; at the end it resolves what is
//! still prepared.
//!
//! The store here keeps records in memory; `Flush` makes everything appended
//! durable (an fsync), `Crash` drops what is not and starts a new engine from
//! the rest, as recovery would. Failures print the seed and the operations.

mod checks;
mod ops;
mod store;
mod world;

use hawser_broker::BrokerConfig;
use proptest::prelude::*;

use crate::ops::op_strategy;
use crate::world::World;

fn config_strategy() -> impl Strategy<Value = BrokerConfig> {
    // Memory for a few messages or none, so that queues page (a queue
    // beyond its memory must behave as one within it), or plenty.
    let memory = prop_oneof![2 => Just(u64::MAX), 1 => Just(1u64), 1 => Just(1500u64)];
    (any::<bool>(), any::<bool>(), 1u32..4, memory).prop_map(
        |(concurrent, confirm_consumed, redeliveries, memory)| BrokerConfig {
            concurrent_store_and_dispatch: concurrent,
            confirm_consumed,
            max_redeliveries: redeliveries,
            max_pending_memory_bytes: memory,
            ..BrokerConfig::default()
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("HAWSER_MODEL_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(2000),
        max_shrink_iters: 2000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_engine_keeps_what_it_confirmed(
        config in config_strategy(),
        ops in proptest::collection::vec(op_strategy(), 1..250),
    ) {
        let mut world = World::new(config);
        for op in &ops {
            world.apply(*op);
        }
        world.finish();
    }
}
