//! The producer's commands: ProducerInfo (open a producer) and ProducerAck (the broker's
//! flow-control credit for asynchronous sends).

use crate::cursor::ReadError;
use crate::destination::Destination;
use crate::ids::{BrokerId, ProducerId};
use crate::reader::Reader;
use crate::writer::Writer;
use crate::EncodeError;

/// Opens a producer (type 6).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerInfo {
    /// The command's number, for the Response's correlation id.
    pub command_id: i32,
    /// The client waits for a Response.
    pub response_required: bool,
    /// The producer's id (cached).
    pub producer_id: Option<ProducerId>,
    /// Its destination (cached); null for an anonymous producer, which names one per message.
    pub destination: Option<Destination>,
    /// Brokers the command has passed through (network of brokers).
    pub broker_path: Option<Vec<BrokerId>>,
    /// The broker dispatches the producer's messages from another thread. Since version 2.
    pub dispatch_async: bool,
    /// Bytes the producer may send asynchronously before it waits for a ProducerAck
    /// (0: no window). Since version 3.
    pub window_size: i32,
}

impl ProducerInfo {
    pub(crate) fn unmarshal(r: &mut Reader<'_, '_>) -> Result<Self, ReadError> {
        let (command_id, response_required) = r.command_header()?;
        let v = r.version();
        Ok(ProducerInfo {
            command_id,
            response_required,
            producer_id: r.cached("ProducerInfo.producerId")?,
            destination: r.cached("ProducerInfo.destination")?,
            broker_path: r.array("ProducerInfo.brokerPath")?,
            dispatch_async: v >= 2 && r.boolean()?,
            window_size: if v >= 3 { r.i32()? } else { 0 },
        })
    }

    pub(crate) fn marshal(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.command_header(self.command_id, self.response_required);
        w.cached(self.producer_id.as_ref())?;
        w.cached(self.destination.as_ref())?;
        w.array(self.broker_path.as_deref())?;
        if w.version() >= 2 {
            w.boolean(self.dispatch_async);
        }
        if w.version() >= 3 {
            w.i32(self.window_size);
        }
        Ok(())
    }
}

/// The broker gives a windowed producer back `size` bytes of credit (type 19, since
/// version 3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerAck {
    /// The command's number.
    pub command_id: i32,
    /// The sender wants a reply.
    pub response_required: bool,
    /// The producer (not cached).
    pub producer_id: Option<ProducerId>,
    /// Bytes acknowledged.
    pub size: i32,
}

impl ProducerAck {
    pub(crate) fn unmarshal(r: &mut Reader<'_, '_>) -> Result<Self, ReadError> {
        let (command_id, response_required) = r.command_header()?;
        Ok(ProducerAck {
            command_id,
            response_required,
            producer_id: r.nested("ProducerAck.producerId")?,
            size: r.i32()?,
        })
    }

    pub(crate) fn marshal(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.command_header(self.command_id, self.response_required);
        w.nested(self.producer_id.as_ref())?;
        w.i32(self.size);
        Ok(())
    }
}
