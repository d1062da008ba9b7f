//! How a STOMP connection writes: the connection core's writer with STOMP's
//! encoding (see `crate::connection::writer`).

use std::collections::HashMap;
use std::sync::Arc;

use bytes::BytesMut;
use hawser_broker::message::AsMessageData;
use hawser_broker::Delivery;
use hawser_stomp::{encode, encode_heartbeat, Command, Frame, FrameWriter, Version};

use super::mapping::{write_forward, write_message};
use crate::connection::{self, Encode};
use crate::network::path::forwarded_record;

/// What a STOMP session sends besides deliveries.
pub enum StompOut {
    /// A whole frame (CONNECTED, ERROR, cluster updates...).
    Frame(Frame),
    /// A RECEIPT for the `receipt` header `id`: the most frequent frame, written
    /// without building a [`Frame`].
    Receipt(String),
    /// Writes nothing: from here on, subscription `subscription`'s messages
    /// go as a duplex link asked (`FORWARD_HEADER`): whole records, as they
    /// leave broker `leaving` (`None`: as other MESSAGE frames again). Sent
    /// before the subscription exists, so it comes before its deliveries.
    Forwarding {
        subscription: Arc<str>,
        leaving: Option<Arc<str>>,
    },
}

/// STOMP's encoding, in the negotiated version.
pub struct StompEncoder {
    version: Version,
    /// Subscriptions of duplex links, and this broker's name.
    forwarding: HashMap<Arc<str>, Arc<str>>,
}

impl Default for StompEncoder {
    fn default() -> StompEncoder {
        // Until CONNECTED, frames (an ERROR) are written as 1.0 writes them.
        StompEncoder {
            version: Version::V1_0,
            forwarding: HashMap::new(),
        }
    }
}

impl Encode for StompEncoder {
    type Frame = StompOut;
    type Setup = Version;

    fn setup(&mut self, version: Version) {
        self.version = version;
    }

    fn frame(&mut self, frame: &StompOut, buf: &mut BytesMut) {
        match frame {
            StompOut::Frame(f) => encode(f, self.version, buf),
            StompOut::Receipt(id) => {
                let mut w = FrameWriter::begin(Command::Receipt, self.version, id.len() + 12, buf);
                w.header("receipt-id", id);
                w.finish(&[]);
            }
            StompOut::Forwarding {
                subscription,
                leaving,
            } => match leaving {
                Some(local) => {
                    self.forwarding
                        .insert(Arc::clone(subscription), Arc::clone(local));
                }
                None => {
                    self.forwarding.remove(subscription);
                }
            },
        }
    }

    fn delivery(&mut self, delivery: &Delivery, buf: &mut BytesMut) {
        match self.forwarding.get(&delivery.subscription) {
            Some(local) => {
                let record = forwarded_record(delivery.message.message_data(), local);
                write_forward(delivery, &record, self.version, buf);
            }
            None => write_message(delivery, self.version, buf),
        }
    }

    fn store_failure(&mut self, buf: &mut BytesMut) {
        let f = Frame::new(Command::Error).with_header("message", super::STORE_FAILURE_MESSAGE);
        encode(&f, self.version, buf);
    }

    fn closed_by_operator(&mut self, reason: &str, buf: &mut BytesMut) {
        let f = Frame::new(Command::Error).with_header("message", reason);
        encode(&f, self.version, buf);
    }

    fn keep_alive(&mut self, buf: &mut BytesMut) {
        encode_heartbeat(buf);
    }
}

/// An item for a STOMP connection's writer.
pub type Out = connection::Out<StompEncoder>;
