//! Destinations (queues and topics, permanent or temporary) and DestinationInfo, the command
//! that creates and deletes temporary ones.

use std::fmt;

use crate::cursor::ReadError;
use crate::data_structure::type_id;
use crate::ids::ConnectionId;
use crate::reader::Reader;
use crate::writer::Writer;
use crate::{BrokerId, EncodeError};

/// Which of the four destination types (the wire's type byte tells them apart).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum DestinationKind {
    /// `ActiveMQQueue` (type 100).
    #[default]
    Queue,
    /// `ActiveMQTopic` (type 101).
    Topic,
    /// `ActiveMQTempQueue` (type 102), named `<connection id>:<n>`.
    TempQueue,
    /// `ActiveMQTempTopic` (type 103).
    TempTopic,
}

/// A queue or topic. The physical name is the whole name as the client gave it: a composite
/// destination is one name with commas, and wildcards and options (`?consumer.prefetchSize=`)
/// stay in it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Destination {
    /// Queue, topic, or a temporary one.
    pub kind: DestinationKind,
    /// The name.
    pub physical_name: String,
}

impl DestinationKind {
    pub(crate) fn type_id(self) -> u8 {
        match self {
            DestinationKind::Queue => type_id::QUEUE,
            DestinationKind::Topic => type_id::TOPIC,
            DestinationKind::TempQueue => type_id::TEMP_QUEUE,
            DestinationKind::TempTopic => type_id::TEMP_TOPIC,
        }
    }

    pub(crate) fn from_type_id(type_id: u8) -> Option<Self> {
        Some(match type_id {
            type_id::QUEUE => DestinationKind::Queue,
            type_id::TOPIC => DestinationKind::Topic,
            type_id::TEMP_QUEUE => DestinationKind::TempQueue,
            type_id::TEMP_TOPIC => DestinationKind::TempTopic,
            _ => return None,
        })
    }
}

impl Destination {
    /// A queue.
    pub fn queue(name: impl Into<String>) -> Self {
        Destination {
            kind: DestinationKind::Queue,
            physical_name: name.into(),
        }
    }

    /// A topic.
    pub fn topic(name: impl Into<String>) -> Self {
        Destination {
            kind: DestinationKind::Topic,
            physical_name: name.into(),
        }
    }

    pub(crate) fn unmarshal(
        kind: DestinationKind,
        r: &mut Reader<'_, '_>,
    ) -> Result<Self, ReadError> {
        Ok(Destination {
            kind,
            physical_name: r.required_string("ActiveMQDestination.physicalName")?,
        })
    }

    pub(crate) fn marshal(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.string(Some(&self.physical_name))
    }
}

impl fmt::Display for Destination {
    /// Java's qualified form: `queue://name`, `temp-topic://name`...
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.kind {
            DestinationKind::Queue => "queue",
            DestinationKind::Topic => "topic",
            DestinationKind::TempQueue => "temp-queue",
            DestinationKind::TempTopic => "temp-topic",
        };
        write!(f, "{scheme}://{}", self.physical_name)
    }
}

/// What a [`DestinationInfo`] asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DestinationOperation {
    /// Create (`ADD_OPERATION_TYPE`, 0).
    #[default]
    Add,
    /// Delete (`REMOVE_OPERATION_TYPE`, 1).
    Remove,
    /// A code Java does not define, kept as sent.
    Other(i8),
}

impl DestinationOperation {
    fn from_code(code: i8) -> Self {
        match code {
            0 => DestinationOperation::Add,
            1 => DestinationOperation::Remove,
            other => DestinationOperation::Other(other),
        }
    }

    fn code(self) -> i8 {
        match self {
            DestinationOperation::Add => 0,
            DestinationOperation::Remove => 1,
            DestinationOperation::Other(code) => code,
        }
    }
}

/// Creates or deletes a destination (type 8); clients send it for temporary destinations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DestinationInfo {
    /// The command's number, for the reply's correlation id.
    pub command_id: i32,
    /// The sender wants a Response.
    pub response_required: bool,
    /// The connection that owns the destination (cached).
    pub connection_id: Option<ConnectionId>,
    /// The destination (cached).
    pub destination: Option<Destination>,
    /// Create or delete.
    pub operation: DestinationOperation,
    /// How long to wait, in ms (0: no timeout).
    pub timeout: i64,
    /// Brokers the command has passed through (network of brokers).
    pub broker_path: Option<Vec<BrokerId>>,
}

impl DestinationInfo {
    pub(crate) fn unmarshal(r: &mut Reader<'_, '_>) -> Result<Self, ReadError> {
        let (command_id, response_required) = r.command_header()?;
        Ok(DestinationInfo {
            command_id,
            response_required,
            connection_id: r.cached("DestinationInfo.connectionId")?,
            destination: r.cached("DestinationInfo.destination")?,
            operation: DestinationOperation::from_code(r.i8()?),
            timeout: r.long()?,
            broker_path: r.array("DestinationInfo.brokerPath")?,
        })
    }

    pub(crate) fn marshal(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.command_header(self.command_id, self.response_required);
        w.cached(self.connection_id.as_ref())?;
        w.cached(self.destination.as_ref())?;
        w.i8(self.operation.code());
        w.long(self.timeout);
        w.array(self.broker_path.as_deref())
    }
}
