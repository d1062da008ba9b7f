//! The consumer's commands: ConsumerInfo (subscribe), MessagePull (prefetch 0) and
//! RemoveSubscriptionInfo (drop a durable subscription).

use crate::cursor::ReadError;
use crate::data_structure::DataStructure;
use crate::destination::Destination;
use crate::ids::{BrokerId, ConnectionId, ConsumerId, MessageId};
use crate::reader::Reader;
use crate::writer::Writer;
use crate::EncodeError;

/// Opens a consumer (type 5): a queue receiver, a topic subscriber (durable when
/// `subscription_name` is set) or a queue browser.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumerInfo {
    /// The command's number, for the Response's correlation id.
    pub command_id: i32,
    /// The client waits for a Response.
    pub response_required: bool,
    /// The consumer's id (cached).
    pub consumer_id: Option<ConsumerId>,
    /// A queue browser: messages are dispatched, not consumed.
    pub browser: bool,
    /// What to consume (cached); may hold wildcards or be composite.
    pub destination: Option<Destination>,
    /// Messages the broker may dispatch ahead of acknowledgements; 0 means the client pulls
    /// each one with MessagePull.
    pub prefetch_size: i32,
    /// For slow topic consumers: how many messages to keep pending before dropping old
    /// ones (0: none kept beyond prefetch, -1: no limit).
    pub maximum_pending_message_limit: i32,
    /// The broker dispatches from another thread.
    pub dispatch_async: bool,
    /// JMS message selector.
    pub selector: Option<String>,
    /// The connection's client id (durable subscriptions). Since version 10.
    pub client_id: Option<String>,
    /// Durable subscription name; null for a non-durable consumer.
    pub subscription_name: Option<String>,
    /// Do not deliver messages published on this connection.
    pub no_local: bool,
    /// Exclusive consumer of a queue.
    pub exclusive: bool,
    /// Retroactive topic consumer (replay recent messages).
    pub retroactive: bool,
    /// Consumer priority (10 high, 0 normal, -5 network, -10 low).
    pub priority: i8,
    /// Brokers the command has passed through (network of brokers).
    pub broker_path: Option<Vec<BrokerId>>,
    /// A broker-side filter (network bridges only); clients send null.
    pub additional_predicate: Option<DataStructure>,
    /// A network bridge's subscription.
    pub network_subscription: bool,
    /// The client acknowledges in batches.
    pub optimized_acknowledge: bool,
    /// The client does not send ranged acknowledgements.
    pub no_range_acks: bool,
    /// Consumers this one stands for across a network. Since version 4.
    pub network_consumer_path: Option<Vec<ConsumerId>>,
}

impl ConsumerInfo {
    pub(crate) fn unmarshal(r: &mut Reader<'_, '_>) -> Result<Self, ReadError> {
        let (command_id, response_required) = r.command_header()?;
        let v = r.version();
        Ok(ConsumerInfo {
            command_id,
            response_required,
            consumer_id: r.cached("ConsumerInfo.consumerId")?,
            browser: r.boolean()?,
            destination: r.cached("ConsumerInfo.destination")?,
            prefetch_size: r.i32()?,
            maximum_pending_message_limit: r.i32()?,
            dispatch_async: r.boolean()?,
            selector: r.string()?,
            client_id: if v >= 10 { r.string()? } else { None },
            subscription_name: r.string()?,
            no_local: r.boolean()?,
            exclusive: r.boolean()?,
            retroactive: r.boolean()?,
            priority: r.i8()?,
            broker_path: r.array("ConsumerInfo.brokerPath")?,
            additional_predicate: r.nested_any()?,
            network_subscription: r.boolean()?,
            optimized_acknowledge: r.boolean()?,
            no_range_acks: r.boolean()?,
            network_consumer_path: if v >= 4 {
                r.array("ConsumerInfo.networkConsumerPath")?
            } else {
                None
            },
        })
    }

    pub(crate) fn marshal(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.command_header(self.command_id, self.response_required);
        w.cached(self.consumer_id.as_ref())?;
        w.boolean(self.browser);
        w.cached(self.destination.as_ref())?;
        w.i32(self.prefetch_size);
        w.i32(self.maximum_pending_message_limit);
        w.boolean(self.dispatch_async);
        w.string(self.selector.as_deref())?;
        if w.version() >= 10 {
            w.string(self.client_id.as_deref())?;
        }
        w.string(self.subscription_name.as_deref())?;
        w.boolean(self.no_local);
        w.boolean(self.exclusive);
        w.boolean(self.retroactive);
        w.i8(self.priority);
        w.array(self.broker_path.as_deref())?;
        w.nested(self.additional_predicate.as_ref())?;
        w.boolean(self.network_subscription);
        w.boolean(self.optimized_acknowledge);
        w.boolean(self.no_range_acks);
        if w.version() >= 4 {
            w.array(self.network_consumer_path.as_deref())?;
        }
        Ok(())
    }
}

/// Deletes a durable subscription (type 9).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoveSubscriptionInfo {
    /// The command's number, for the Response's correlation id.
    pub command_id: i32,
    /// The client waits for a Response.
    pub response_required: bool,
    /// The connection (cached).
    pub connection_id: Option<ConnectionId>,
    /// The subscription's name (Java spells the field `subcriptionName`).
    pub subscription_name: Option<String>,
    /// The client id the subscription belongs to.
    pub client_id: Option<String>,
}

impl RemoveSubscriptionInfo {
    pub(crate) fn unmarshal(r: &mut Reader<'_, '_>) -> Result<Self, ReadError> {
        let (command_id, response_required) = r.command_header()?;
        Ok(RemoveSubscriptionInfo {
            command_id,
            response_required,
            connection_id: r.cached("RemoveSubscriptionInfo.connectionId")?,
            subscription_name: r.string()?,
            client_id: r.string()?,
        })
    }

    pub(crate) fn marshal(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.command_header(self.command_id, self.response_required);
        w.cached(self.connection_id.as_ref())?;
        w.string(self.subscription_name.as_deref())?;
        w.string(self.client_id.as_deref())
    }
}

/// A consumer with prefetch 0 asks for one message (type 20, since version 2). The broker
/// answers with a MessageDispatch, whose message is null if none came within the timeout.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessagePull {
    /// The command's number.
    pub command_id: i32,
    /// The sender wants a reply.
    pub response_required: bool,
    /// The consumer (cached).
    pub consumer_id: Option<ConsumerId>,
    /// Its destination (cached).
    pub destination: Option<Destination>,
    /// How long to wait in ms: 0 waits indefinitely, -1 not at all.
    pub timeout: i64,
    /// Correlates the pull with its dispatch. Since version 3.
    pub correlation_id: Option<String>,
    /// A specific message to pull. Since version 3.
    pub message_id: Option<MessageId>,
}

impl MessagePull {
    pub(crate) fn unmarshal(r: &mut Reader<'_, '_>) -> Result<Self, ReadError> {
        let (command_id, response_required) = r.command_header()?;
        let v = r.version();
        Ok(MessagePull {
            command_id,
            response_required,
            consumer_id: r.cached("MessagePull.consumerId")?,
            destination: r.cached("MessagePull.destination")?,
            timeout: r.long()?,
            correlation_id: if v >= 3 { r.string()? } else { None },
            message_id: if v >= 3 {
                r.nested("MessagePull.messageId")?
            } else {
                None
            },
        })
    }

    pub(crate) fn marshal(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.command_header(self.command_id, self.response_required);
        w.cached(self.consumer_id.as_ref())?;
        w.cached(self.destination.as_ref())?;
        w.long(self.timeout);
        if w.version() >= 3 {
            w.string(self.correlation_id.as_deref())?;
            w.nested(self.message_id.as_ref())?;
        }
        Ok(())
    }
}
