//! What consumers do: subscriptions, browsers, pulls for prefetch 0, the
//! window a failover client widens, and acknowledgements of every kind.

use super::*;

/// What a RemoveInfo's `lastDeliveredSequenceId` says the client delivered
/// to its application: a message's broker sequence is the engine's id.
pub(super) fn last_delivered(sequence: i64) -> LastDelivered {
    match sequence {
        ow::RemoveInfo::LAST_DELIVERED_UNSET => LastDelivered::Nothing,
        s if s >= 0 => LastDelivered::Message(s as u64),
        _ => LastDelivered::Unknown,
    }
}

/// Longest reason a dead letter keeps from a client's poison ack, in bytes.
const MAX_POISON_CAUSE_BYTES: usize = 1024;

/// The reason a poison ack gives, as ActiveMQ writes it to the dead letter's
/// `dlqDeliveryFailureCause` (the Java exception's `toString()`), at most
/// [`MAX_POISON_CAUSE_BYTES`].
fn poison_cause(cause: Option<&ow::ExceptionInfo>) -> String {
    let class = cause.and_then(|c| c.class_name.as_deref());
    let message = cause.and_then(|c| c.message.as_deref());
    let mut text = match (class, message) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(t), None) | (None, Some(t)) => t.to_owned(),
        (None, None) => "poison ack from the client".to_owned(),
    };
    if text.len() > MAX_POISON_CAUSE_BYTES {
        let mut end = MAX_POISON_CAUSE_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

impl Session {
    /// ConsumerInfo: a subscription whose id is the consumer's. OpenWire
    /// consumers acknowledge explicitly in every session mode, and each ack
    /// says what it covers.
    pub(super) fn subscribe(
        &mut self,
        c: &ow::ConsumerInfo,
    ) -> Result<(Flow, Confirm), SessionError> {
        let conn = self.conn()?;
        let consumer = c.consumer_id.as_ref().ok_or(SessionError::Invalid {
            what: "ConsumerInfo",
            reason: "no consumer id".into(),
        })?;
        if c.browser {
            return self.browse(c);
        }
        if c.prefetch_size < 0 {
            return Err(SessionError::Invalid {
                what: "ConsumerInfo",
                reason: format!("prefetch {}", c.prefetch_size),
            });
        }
        let destination =
            mapping::destination(c.destination.as_ref().ok_or(SessionError::Invalid {
                what: "ConsumerInfo",
                reason: "no destination".into(),
            })?)?;
        let id = subscription_id(consumer);
        let spec = SubscribeSpec {
            id: Arc::clone(&id),
            destination,
            ack_mode: AckMode::Client,
            prefetch: c.prefetch_size as u32,
            selector: c.selector.clone().filter(|s| !s.trim().is_empty()),
            exclusive: c.exclusive,
            durable_name: c.subscription_name.clone(),
            no_local: c.no_local,
            priority: c.priority,
            network_path: None,
        };
        let seq = self.broker().subscribe(conn, spec)?;
        if c.prefetch_size == 0 {
            self.pullers.insert(Arc::clone(&id));
        }
        self.consumers
            .entry(consumer.session_id)
            .or_default()
            .insert(id);
        Ok((Flow::Continue, Confirm::after(seq)))
    }

    /// ConsumerControl: a new window for a consumer. A failover client
    /// restores its consumers with prefetch 0 and, once it has dropped what it
    /// had buffered before the failover, sends each its own prefetch again; a
    /// consumer left at 0 would get nothing, since its client does not pull.
    pub(super) fn consumer_control(
        &mut self,
        c: &ow::ConsumerControl,
    ) -> Result<(Flow, Confirm), SessionError> {
        let conn = self.conn()?;
        let consumer = c.consumer_id.as_ref().ok_or(SessionError::Invalid {
            what: "ConsumerControl",
            reason: "no consumer id".into(),
        })?;
        let prefetch = u32::try_from(c.prefetch).map_err(|_| SessionError::Invalid {
            what: "ConsumerControl",
            reason: format!("prefetch {}", c.prefetch),
        })?;
        let id = subscription_id(consumer);
        if self.browsers.contains(&id) {
            return Ok((Flow::Continue, Confirm::now()));
        }
        if prefetch == 0 {
            self.pullers.insert(Arc::clone(&id));
        } else {
            self.pullers.remove(&id);
            if let Some(timer) = self.pull_timers.remove(&id) {
                timer.abort();
            }
        }
        match self.broker().set_prefetch(conn, &id, prefetch) {
            // It comes without a reply, so it may cross the consumer's closing.
            Err(hawser_broker::BrokerError::UnknownSubscription(_)) => {
                tracing::debug!("ConsumerControl for a closed consumer ignored: {id}");
            }
            other => other?,
        }
        Ok((Flow::Continue, Confirm::now()))
    }

    /// A queue browser: what the queue holds now, in dispatch order, then a
    /// dispatch without a message, which ends the browse (a client without it
    /// waits forever).
    pub(super) fn browse(&mut self, c: &ow::ConsumerInfo) -> Result<(Flow, Confirm), SessionError> {
        let conn = self.conn()?;
        let consumer = c.consumer_id.clone().ok_or(SessionError::Invalid {
            what: "ConsumerInfo",
            reason: "no consumer id".into(),
        })?;
        let wire_dest = c.destination.clone().ok_or(SessionError::Invalid {
            what: "ConsumerInfo",
            reason: "no destination".into(),
        })?;
        let queue = mapping::destination(&wire_dest)?;
        if queue.is_topic() {
            return Err(SessionError::Invalid {
                what: "browser",
                reason: "only queues can be browsed".into(),
            });
        }
        self.broker().open_browser(conn, &queue)?;
        let id = subscription_id(&consumer);
        self.browsers.insert(Arc::clone(&id));
        let max = self.settings.max_browse_messages;
        let shown = self.broker().browse(&queue, max);
        tracing::debug!("browsing {queue}: {} messages", shown.len());
        for (message, redelivery_count, seq) in shown {
            self.send_out(Out::Browse(hawser_broker::Delivery {
                record: 0,
                consumer: 0,
                subscription: Arc::clone(&id),
                message,
                redelivery_count,
                seq,
                auto_ack: false,
            }));
        }
        self.send_out(Out::Frame {
            frame: Command::MessageDispatch(ow::MessageDispatch {
                consumer_id: Some(consumer),
                destination: Some(wire_dest),
                ..ow::MessageDispatch::default()
            }),
            seq: 0,
        });
        Ok((Flow::Continue, Confirm::now()))
    }

    /// MessagePull from a consumer with prefetch 0: one message if there is
    /// one; otherwise the next that comes, forever (`receive()`: timeout 0),
    /// within `timeout` ms (`receive(timeout)`), or not at all
    /// (`receiveNoWait()`: -1). When none comes, a dispatch without a message
    /// says so: the client runs no timer of its own and waits for it.
    pub(super) fn pull(&mut self, p: &ow::MessagePull) -> Result<(Flow, Confirm), SessionError> {
        let conn = self.conn()?;
        let consumer = p.consumer_id.clone().ok_or(SessionError::Invalid {
            what: "MessagePull",
            reason: "no consumer id".into(),
        })?;
        let id = subscription_id(&consumer);
        if !self.pullers.contains(&id) {
            // A consumer with a window needs no pulls.
            return Ok((Flow::Continue, Confirm::now()));
        }
        if let Some(timer) = self.pull_timers.remove(&id) {
            timer.abort();
        }
        if self.broker().pull(conn, &id)? || p.timeout == 0 {
            return Ok((Flow::Continue, Confirm::now()));
        }
        let nothing = Command::MessageDispatch(ow::MessageDispatch {
            consumer_id: Some(consumer),
            ..ow::MessageDispatch::default()
        });
        if p.timeout < 0 {
            if self.broker().cancel_pull(conn, &id) {
                self.send_out(Out::Frame {
                    frame: nothing,
                    seq: 0,
                });
            }
            return Ok((Flow::Continue, Confirm::now()));
        }
        let (broker, out, outbound) = (
            Arc::clone(self.broker()),
            self.out.clone(),
            Arc::clone(&self.outbound),
        );
        let wait = Duration::from_millis(p.timeout as u64);
        let sub = Arc::clone(&id);
        let timer = tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            if broker.cancel_pull(conn, &sub) {
                outbound.push(
                    &out,
                    Out::Frame {
                        frame: nothing,
                        seq: 0,
                    },
                );
            }
        });
        self.pull_timers.insert(id, timer.abort_handle());
        Ok((Flow::Continue, Confirm::now()))
    }

    /// MessageAck: a standard ack settles everything the consumer was given up
    /// to its last message, an individual ack that message only; a poison ack
    /// sends what it names to the DLQ at once, as ActiveMQ does (the client
    /// sends one past its own redelivery limit, or for a duplicate its audit
    /// dropped). Delivered and redelivered acks only tell the broker what the
    /// client has seen.
    ///
    /// An ack outside a transaction for a message this consumer does not hold
    /// is ignored, as ActiveMQ does: after a failover the client acknowledges
    /// what the broker before this one dispatched (its acks carry that
    /// broker's ids), and a consumer's acks race with its closing. What such
    /// an ack meant to settle is still in the store and comes again; the
    /// client's duplicate audit drops it. Refusing it would close the
    /// connection, since acks come without a reply.
    pub(super) fn ack(&mut self, a: &ow::MessageAck) -> Result<(Flow, Confirm), SessionError> {
        let conn = self.conn()?;
        let invalid = |reason: &str| SessionError::Invalid {
            what: "MessageAck",
            reason: reason.into(),
        };
        let consumer = a
            .consumer_id
            .as_ref()
            .ok_or_else(|| invalid("no consumer id"))?;
        let last = a
            .last_message_id
            .as_ref()
            .ok_or_else(|| invalid("no last message id"))?;
        let id = u64::try_from(last.broker_sequence_id).map_err(|_| invalid("bad message id"))?;
        let sub = subscription_id(consumer);
        let tx = a
            .transaction_id
            .as_ref()
            .map(transaction_name)
            .transpose()?;
        let broker = Arc::clone(self.broker());
        let result = match a.ack_type {
            AckType::Standard | AckType::Expired | AckType::Individual => broker
                .ack_as(
                    conn,
                    Some(&sub),
                    id,
                    tx.as_deref(),
                    a.response_required,
                    Some(a.ack_type != AckType::Individual),
                )
                .map(Confirm::after),
            AckType::Poison => {
                // One message (first = last, as for a duplicate), or the range
                // up to the last (from the first, or from the head without one).
                let cumulative = a
                    .first_message_id
                    .as_ref()
                    .is_none_or(|f| f.broker_sequence_id != last.broker_sequence_id);
                let cause = poison_cause(a.poison_cause.as_ref());
                broker
                    .poison(conn, Some(&sub), id, cumulative, &cause)
                    .map(|()| Confirm::now())
            }
            AckType::Delivered | AckType::Redelivered | AckType::Unmatched => Ok(Confirm::now()),
            AckType::Other(_) => return Err(SessionError::Unsupported("this ack type")),
        };
        match result {
            Ok(until) => Ok((Flow::Continue, until)),
            // A browser's acks come after its RemoveInfo; what a closed
            // consumer held went back to the queue when it went.
            Err(hawser_broker::BrokerError::UnknownSubscription(_)) => {
                tracing::debug!("ack for a closed consumer ignored: {sub}");
                Ok((Flow::Continue, Confirm::now()))
            }
            Err(hawser_broker::BrokerError::UnknownMessage(_)) if tx.is_none() => {
                tracing::debug!("ack for message {id}, which {sub} does not hold, ignored");
                Ok((Flow::Continue, Confirm::now()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Stops pulling for a consumer that is going.
    pub(super) fn forget_puller(&mut self, id: &Arc<str>) {
        self.pullers.remove(id);
        if let Some(timer) = self.pull_timers.remove(id) {
            timer.abort();
        }
    }
}
