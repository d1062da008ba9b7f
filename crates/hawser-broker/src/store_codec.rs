//! The byte format of a store record: a group of [`StoreOp`]s.
//!
//! Shared by every store implementation (local journal today, replicated log
//! later) so that a record means the same thing wherever it is kept. Integers are
//! little-endian and fixed-width; strings and bodies are length-prefixed. A record
//! starts with a format version so that later versions can still read old
//! journals.
//!
//! Decoding treats its input as untrusted: every length is checked against what
//! remains, so a damaged record yields [`CodecError`], never a panic or a huge
//! allocation.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use crate::destination::{Destination, DestinationKind};
use crate::message::{AsMessageData, BodyKind, MessageData, MessageFields, ProducerRef};
use crate::producer::{ProducerKey, SeqWindow, WINDOW_WORDS};
use crate::property::PropertyValue;
use crate::store::{DurableSubscription, PreparedSend, PreparedTransaction, StoreKey, StoreOp};

/// The record format written by this version. Format 2 added owners (a
/// user name, or none): of producer keys, durable subscriptions and
/// prepared transactions.
pub const RECORD_FORMAT: u8 = 2;

/// The format before owners; read as owned by nobody (anonymous), which is
/// what every connection was then.
const FORMAT_WITHOUT_OWNERS: u8 = 1;

/// An enqueue whose message has only text headers, written before messages
/// had JMS fields and typed properties: read, never written.
const OP_LEGACY_ENQUEUE: u8 = 1;
const OP_DEQUEUE: u8 = 2;
const OP_REDELIVERED: u8 = 3;
const OP_SUBSCRIBE: u8 = 4;
const OP_UNSUBSCRIBE: u8 = 5;
/// Written by earlier versions: a producer's high-water mark, unscoped.
/// Producer ids are now scoped by client id, so these are read and ignored
/// (a resend right after upgrading may be stored twice, never dropped).
const OP_LEGACY_PRODUCER_MARK: u8 = 6;
/// Written by earlier versions; ignored for the same reason.
const OP_LEGACY_PRODUCER_FORGET: u8 = 7;
const OP_PRODUCER_SEEN: u8 = 8;
const OP_PRODUCER_WINDOW: u8 = 9;
const OP_PRODUCER_FORGET: u8 = 10;
/// An enqueue of a message with JMS fields, typed properties and a body kind.
const OP_ENQUEUE: u8 = 11;
/// A prepared XA transaction as the first builds of this format wrote it,
/// without its client id or its sends' producers; read, never written.
const OP_LEGACY_PREPARE: u8 = 12;
const OP_RESOLVE: u8 = 13;
/// A prepared XA transaction, with who sent what (for duplicate detection
/// when it commits after a restart).
const OP_PREPARE: u8 = 14;
/// An operator's purge of a container (a reader older than it refuses the
/// record rather than keep what was purged).
const OP_PURGE: u8 = 15;

/// Bits of a message's field mask: which optional fields follow.
const FIELD_MESSAGE_ID: u8 = 1;
const FIELD_CORRELATION_ID: u8 = 2;
const FIELD_REPLY_TO: u8 = 4;
const FIELD_TYPE: u8 = 8;
const FIELD_GROUP_ID: u8 = 16;
const FIELD_ORIGINAL_DESTINATION: u8 = 32;

/// Tags of property types.
const PROP_BOOL: u8 = 1;
const PROP_BYTE: u8 = 2;
const PROP_SHORT: u8 = 3;
const PROP_INT: u8 = 4;
const PROP_LONG: u8 = 5;
const PROP_FLOAT: u8 = 6;
const PROP_DOUBLE: u8 = 7;
const PROP_STRING: u8 = 8;
const PROP_BYTES: u8 = 9;

const KEY_QUEUE: u8 = 1;
const KEY_DURABLE: u8 = 2;

/// Why a record could not be decoded.
#[non_exhaustive]
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum CodecError {
    /// The record ends before a field does.
    #[error("record truncated at byte {at}")]
    Truncated {
        /// Offset where more bytes were needed.
        at: usize,
    },
    /// The record was written by an unknown format version.
    #[error("unknown record format {0}")]
    UnknownFormat(u8),
    /// An op, key or destination tag is not one this version knows.
    #[error("unknown {what} tag {tag} at byte {at}")]
    UnknownTag {
        /// Which kind of tag.
        what: &'static str,
        /// The tag value.
        tag: u8,
        /// Its offset.
        at: usize,
    },
    /// A string field is not UTF-8.
    #[error("invalid UTF-8 at byte {at}")]
    InvalidUtf8 {
        /// Offset of the string.
        at: usize,
    },
    /// Bytes remain after the last op.
    #[error("{0} trailing bytes after the last op")]
    Trailing(usize),
}

/// Encodes one record.
pub fn encode_record<M: AsMessageData>(ops: &[StoreOp<M>]) -> Bytes {
    let mut buf = BytesMut::with_capacity(encoded_len(ops));
    buf.put_u8(RECORD_FORMAT);
    buf.put_u32_le(ops.len() as u32);
    for op in ops {
        encode_op(op, &mut buf);
    }
    buf.freeze()
}

fn encode_op<M: AsMessageData>(op: &StoreOp<M>, buf: &mut BytesMut) {
    match op {
        StoreOp::Enqueue { message, targets } => {
            buf.put_u8(OP_ENQUEUE);
            encode_message(message.message_data(), buf);
            buf.put_u32_le(targets.len() as u32);
            for key in targets {
                encode_key(key, buf);
            }
        }
        StoreOp::Dequeue { key, id } => {
            buf.put_u8(OP_DEQUEUE);
            encode_key(key, buf);
            buf.put_u64_le(*id);
        }
        StoreOp::Redelivered { key, id, count } => {
            buf.put_u8(OP_REDELIVERED);
            encode_key(key, buf);
            buf.put_u64_le(*id);
            buf.put_u32_le(*count);
        }
        StoreOp::Subscribe(sub) => {
            buf.put_u8(OP_SUBSCRIBE);
            put_str(buf, &sub.client_id);
            put_str(buf, &sub.name);
            put_str(buf, &sub.topic);
            put_opt_str(buf, sub.selector.as_deref());
            buf.put_u8(u8::from(sub.no_local));
            put_opt_str(buf, sub.owner.as_deref());
        }
        StoreOp::Unsubscribe { client_id, name } => {
            buf.put_u8(OP_UNSUBSCRIBE);
            put_str(buf, client_id);
            put_str(buf, name);
        }
        StoreOp::ProducerSeen { producer, seq } => {
            buf.put_u8(OP_PRODUCER_SEEN);
            encode_producer(producer, buf);
            buf.put_u64_le(*seq);
        }
        StoreOp::ProducerWindow { producer, window } => {
            buf.put_u8(OP_PRODUCER_WINDOW);
            encode_producer(producer, buf);
            buf.put_u64_le(window.high());
            for word in window.words() {
                buf.put_u64_le(*word);
            }
        }
        StoreOp::ProducerForget { producer } => {
            buf.put_u8(OP_PRODUCER_FORGET);
            encode_producer(producer, buf);
        }
        StoreOp::Prepare(p) => {
            buf.put_u8(OP_PREPARE);
            put_str(buf, &p.xid);
            put_opt_str(buf, p.client_id.as_deref());
            put_opt_str(buf, p.owner.as_deref());
            buf.put_u32_le(p.sends.len() as u32);
            for send in &p.sends {
                encode_message(&send.message, buf);
                match &send.producer {
                    None => buf.put_u8(0),
                    Some(producer) => {
                        buf.put_u8(1);
                        put_str(buf, &producer.id);
                        buf.put_u64_le(producer.seq);
                    }
                }
            }
            buf.put_u32_le(p.acks.len() as u32);
            for (key, id) in &p.acks {
                encode_key(key, buf);
                buf.put_u64_le(*id);
            }
        }
        StoreOp::Resolve { xid } => {
            buf.put_u8(OP_RESOLVE);
            put_str(buf, xid);
        }
        StoreOp::Purge { key, keep } => {
            buf.put_u8(OP_PURGE);
            encode_key(key, buf);
            buf.put_u32_le(keep.len() as u32);
            for id in keep {
                buf.put_u64_le(*id);
            }
        }
    }
}

fn encode_producer(p: &ProducerKey, buf: &mut BytesMut) {
    put_opt_str(buf, p.owner.as_deref());
    put_str(buf, &p.client_id);
    put_str(buf, &p.producer);
}

/// Encoded bytes of a message with this destination, fields and body length,
/// as an `Enqueue` op's message: what a message adds to a record.
pub fn message_len(destination: &Destination, fields: &MessageFields, body_len: usize) -> usize {
    let text = |s: &Option<Arc<str>>| s.as_ref().map_or(0, |s| 4 + s.len());
    let properties: usize = fields
        .properties
        .iter()
        .map(|(k, v)| 4 + k.len() + 1 + property_len(v))
        .sum();
    8 + 1
        + 4
        + destination.name.len()
        + 8
        + 8
        + 1
        + 1
        + 1
        + 1
        + text(&fields.message_id)
        + text(&fields.correlation_id)
        + fields.reply_to.as_ref().map_or(0, |d| 1 + 4 + d.name.len())
        + text(&fields.message_type)
        + text(&fields.group_id)
        + fields
            .original_destination
            .as_ref()
            .map_or(0, |d| 1 + 4 + d.name.len())
        + 4
        + 4
        + properties
        + 4
        + body_len
}

/// Encoded bytes of a property's value (after its type tag).
fn property_len(v: &PropertyValue) -> usize {
    match v {
        PropertyValue::Bool(_) | PropertyValue::Byte(_) => 1,
        PropertyValue::Short(_) => 2,
        PropertyValue::Int(_) | PropertyValue::Float(_) => 4,
        PropertyValue::Long(_) | PropertyValue::Double(_) => 8,
        PropertyValue::String(s) => 4 + s.len(),
        PropertyValue::Bytes(b) => 4 + b.len(),
    }
}

/// Encoded bytes of an `Enqueue` op's framing beyond its message, for these targets.
pub fn enqueue_overhead_len(targets: &[StoreKey]) -> usize {
    let keys: usize = targets
        .iter()
        .map(|k| match k {
            StoreKey::Queue(n) => 1 + 4 + n.len(),
            StoreKey::Durable { client_id, name } => 1 + 8 + client_id.len() + name.len(),
        })
        .sum();
    1 + 4 + keys
}

/// Bytes of a record's header (format and op count).
pub const RECORD_HEADER_LEN: usize = 5;

/// Exactly the bytes [`encode_record`] makes of `ops`, without encoding them:
/// the engine checks a record against the store's limit before appending it.
pub fn encoded_len<M: AsMessageData>(ops: &[StoreOp<M>]) -> usize {
    let key_len = |k: &StoreKey| match k {
        StoreKey::Queue(n) => 1 + 4 + n.len(),
        StoreKey::Durable { client_id, name } => 1 + 8 + client_id.len() + name.len(),
    };
    let producer_len = |p: &ProducerKey| {
        opt_str_len(p.owner.as_deref()) + 8 + p.client_id.len() + p.producer.len()
    };
    RECORD_HEADER_LEN
        + ops
            .iter()
            .map(|op| match op {
                StoreOp::Enqueue { message, targets } => {
                    let m = message.message_data();
                    message_len(&m.destination, &m.fields, m.body.len())
                        + enqueue_overhead_len(targets)
                }
                StoreOp::Dequeue { key, .. } => 1 + key_len(key) + 8,
                StoreOp::Redelivered { key, .. } => 1 + key_len(key) + 8 + 4,
                StoreOp::Subscribe(s) => {
                    1 + 12
                        + s.client_id.len()
                        + s.name.len()
                        + s.topic.len()
                        + opt_str_len(s.selector.as_deref())
                        + 1
                        + opt_str_len(s.owner.as_deref())
                }
                StoreOp::Unsubscribe { client_id, name } => 1 + 8 + client_id.len() + name.len(),
                StoreOp::ProducerSeen { producer, .. } => producer_seen_len(producer),
                StoreOp::ProducerWindow { producer, .. } => {
                    1 + producer_len(producer) + 8 + 8 * WINDOW_WORDS
                }
                StoreOp::ProducerForget { producer } => 1 + producer_len(producer),
                StoreOp::Prepare(p) => {
                    1 + 4
                        + p.xid.len()
                        + opt_str_len(p.client_id.as_deref())
                        + opt_str_len(p.owner.as_deref())
                        + 4
                        + p.sends
                            .iter()
                            .map(|s| {
                                let m = &s.message;
                                message_len(&m.destination, &m.fields, m.body.len())
                                    + 1
                                    + s.producer.as_ref().map_or(0, |p| 4 + p.id.len() + 8)
                            })
                            .sum::<usize>()
                        + 4
                        + p.acks.iter().map(|(k, _)| key_len(k) + 8).sum::<usize>()
                }
                StoreOp::Resolve { xid } => 1 + 4 + xid.len(),
                StoreOp::Purge { key, keep } => 1 + key_len(key) + 4 + 8 * keep.len(),
            })
            .sum::<usize>()
}

/// Encoded bytes of a `ProducerSeen` op.
pub fn producer_seen_len(p: &ProducerKey) -> usize {
    1 + opt_str_len(p.owner.as_deref()) + 8 + p.client_id.len() + p.producer.len() + 8
}

fn encode_message(m: &MessageData, buf: &mut BytesMut) {
    buf.put_u64_le(m.id);
    encode_destination(&m.destination, buf);
    buf.put_u64_le(m.timestamp_ms);
    buf.put_u64_le(m.expires_ms.unwrap_or(0));
    buf.put_u8(m.priority);
    buf.put_u8(u8::from(m.persistent));
    buf.put_u8(m.body_kind.code());
    let f = &m.fields;
    let mut mask = 0;
    for (present, bit) in [
        (f.message_id.is_some(), FIELD_MESSAGE_ID),
        (f.correlation_id.is_some(), FIELD_CORRELATION_ID),
        (f.reply_to.is_some(), FIELD_REPLY_TO),
        (f.message_type.is_some(), FIELD_TYPE),
        (f.group_id.is_some(), FIELD_GROUP_ID),
        (f.original_destination.is_some(), FIELD_ORIGINAL_DESTINATION),
    ] {
        if present {
            mask |= bit;
        }
    }
    buf.put_u8(mask);
    for t in [&f.message_id, &f.correlation_id].into_iter().flatten() {
        put_str(buf, t);
    }
    if let Some(d) = &f.reply_to {
        encode_destination(d, buf);
    }
    for t in [&f.message_type, &f.group_id].into_iter().flatten() {
        put_str(buf, t);
    }
    if let Some(d) = &f.original_destination {
        encode_destination(d, buf);
    }
    buf.put_i32_le(f.group_seq);
    buf.put_u32_le(f.properties.len() as u32);
    for (k, v) in &f.properties {
        put_str(buf, k);
        encode_property(v, buf);
    }
    buf.put_u32_le(m.body.len() as u32);
    buf.put_slice(&m.body);
}

fn encode_destination(d: &Destination, buf: &mut BytesMut) {
    buf.put_u8(match d.kind {
        DestinationKind::Queue => 1,
        DestinationKind::Topic => 2,
        DestinationKind::TempQueue => 3,
        DestinationKind::TempTopic => 4,
    });
    put_str(buf, &d.name);
}

fn encode_property(v: &PropertyValue, buf: &mut BytesMut) {
    match v {
        PropertyValue::Bool(b) => {
            buf.put_u8(PROP_BOOL);
            buf.put_u8(u8::from(*b));
        }
        PropertyValue::Byte(b) => {
            buf.put_u8(PROP_BYTE);
            buf.put_i8(*b);
        }
        PropertyValue::Short(v) => {
            buf.put_u8(PROP_SHORT);
            buf.put_i16_le(*v);
        }
        PropertyValue::Int(v) => {
            buf.put_u8(PROP_INT);
            buf.put_i32_le(*v);
        }
        PropertyValue::Long(v) => {
            buf.put_u8(PROP_LONG);
            buf.put_i64_le(*v);
        }
        PropertyValue::Float(v) => {
            buf.put_u8(PROP_FLOAT);
            buf.put_u32_le(v.to_bits());
        }
        PropertyValue::Double(v) => {
            buf.put_u8(PROP_DOUBLE);
            buf.put_u64_le(v.to_bits());
        }
        PropertyValue::String(t) => {
            buf.put_u8(PROP_STRING);
            put_str(buf, t);
        }
        PropertyValue::Bytes(b) => {
            buf.put_u8(PROP_BYTES);
            buf.put_u32_le(b.len() as u32);
            buf.put_slice(b);
        }
    }
}

fn encode_key(key: &StoreKey, buf: &mut BytesMut) {
    match key {
        StoreKey::Queue(name) => {
            buf.put_u8(KEY_QUEUE);
            put_str(buf, name);
        }
        StoreKey::Durable { client_id, name } => {
            buf.put_u8(KEY_DURABLE);
            put_str(buf, client_id);
            put_str(buf, name);
        }
    }
}

/// Encoded bytes of what [`put_opt_str`] writes.
fn opt_str_len(s: Option<&str>) -> usize {
    1 + s.map_or(0, |s| 4 + s.len())
}

/// A flag byte (0: none), then the string.
fn put_opt_str(buf: &mut BytesMut, s: Option<&str>) {
    match s {
        None => buf.put_u8(0),
        Some(s) => {
            buf.put_u8(1);
            put_str(buf, s);
        }
    }
}

fn put_str(buf: &mut BytesMut, s: &str) {
    buf.put_u32_le(s.len() as u32);
    buf.put_slice(s.as_bytes());
}

/// Decodes one record. Bodies share `record`'s memory rather than being copied.
pub fn decode_record(record: &Bytes) -> Result<Vec<StoreOp<MessageData>>, CodecError> {
    decode_record_with(record, &mut Names::default())
}

/// Names (destinations, subscriptions, producers) seen while decoding many
/// records: a recovery of a million messages to one queue then holds one copy
/// of the queue's name, not a million.
#[derive(Default)]
pub struct Names {
    /// The most recently seen names, most recent first.
    recent: Vec<Arc<str>>,
}

/// Names remembered by [`Names`]; a recovery touches few distinct ones at a time.
const RECENT_NAMES: usize = 16;

impl Names {
    fn intern(&mut self, text: &str) -> Arc<str> {
        if let Some(i) = self.recent.iter().position(|n| &**n == text) {
            let name = self.recent.remove(i);
            self.recent.insert(0, Arc::clone(&name));
            return name;
        }
        let name: Arc<str> = Arc::from(text);
        self.recent.insert(0, Arc::clone(&name));
        self.recent.truncate(RECENT_NAMES);
        name
    }
}

/// [`decode_record`], sharing the names of earlier records through `names`.
///
/// # Errors
/// As [`decode_record`].
pub fn decode_record_with(
    record: &Bytes,
    names: &mut Names,
) -> Result<Vec<StoreOp<MessageData>>, CodecError> {
    let mut r = Reader {
        data: record,
        at: 0,
        names,
        owners: true,
    };
    match r.u8()? {
        RECORD_FORMAT => {}
        FORMAT_WITHOUT_OWNERS => r.owners = false,
        format => return Err(CodecError::UnknownFormat(format)),
    }
    let count = r.u32()? as usize;
    // Each op takes at least 9 bytes; a larger count is a lie and must not size an allocation.
    let mut ops = Vec::with_capacity(count.min(r.remaining() / 9));
    for _ in 0..count {
        if let Some(op) = decode_op(&mut r)? {
            ops.push(op);
        }
    }
    if r.remaining() != 0 {
        return Err(CodecError::Trailing(r.remaining()));
    }
    Ok(ops)
}

/// One op; `None` for an op of an earlier version that no longer means anything.
fn decode_op(r: &mut Reader<'_>) -> Result<Option<StoreOp<MessageData>>, CodecError> {
    let at = r.at;
    Ok(Some(match r.u8()? {
        tag @ (OP_ENQUEUE | OP_LEGACY_ENQUEUE) => {
            let message = if tag == OP_ENQUEUE {
                decode_message(r)?
            } else {
                decode_legacy_message(r)?
            };
            let n = r.u32()? as usize;
            let mut targets = Vec::with_capacity(n.min(r.remaining() / 5));
            for _ in 0..n {
                targets.push(decode_key(r)?);
            }
            StoreOp::Enqueue { message, targets }
        }
        OP_DEQUEUE => StoreOp::Dequeue {
            key: decode_key(r)?,
            id: r.u64()?,
        },
        OP_REDELIVERED => StoreOp::Redelivered {
            key: decode_key(r)?,
            id: r.u64()?,
            count: r.u32()?,
        },
        OP_SUBSCRIBE => StoreOp::Subscribe(DurableSubscription {
            client_id: r.arc_str()?,
            name: r.arc_str()?,
            topic: r.arc_str()?,
            selector: match r.u8()? {
                0 => None,
                _ => Some(r.string()?),
            },
            no_local: r.u8()? != 0,
            owner: r.owner()?,
        }),
        OP_UNSUBSCRIBE => StoreOp::Unsubscribe {
            client_id: r.arc_str()?,
            name: r.arc_str()?,
        },
        OP_LEGACY_PRODUCER_MARK => {
            r.str()?;
            r.u64()?;
            return Ok(None);
        }
        OP_LEGACY_PRODUCER_FORGET => {
            r.str()?;
            return Ok(None);
        }
        OP_PRODUCER_SEEN => StoreOp::ProducerSeen {
            producer: decode_producer(r)?,
            seq: r.u64()?,
        },
        OP_PRODUCER_WINDOW => {
            let producer = decode_producer(r)?;
            let high = r.u64()?;
            let mut words = [0u64; WINDOW_WORDS];
            for w in &mut words {
                *w = r.u64()?;
            }
            let window = SeqWindow::from_parts(high, &words).expect("WINDOW_WORDS words");
            StoreOp::ProducerWindow { producer, window }
        }
        OP_PRODUCER_FORGET => StoreOp::ProducerForget {
            producer: decode_producer(r)?,
        },
        tag @ (OP_PREPARE | OP_LEGACY_PREPARE) => {
            let scoped = tag == OP_PREPARE;
            let xid = r.arc_str()?;
            let client_id = if scoped { r.opt_arc_str()? } else { None };
            let owner = if scoped { r.owner()? } else { None };
            let n = r.u32()? as usize;
            // Counts are checked against what is left before they size anything.
            let mut sends = Vec::with_capacity(n.min(r.remaining() / 40));
            for _ in 0..n {
                let message = decode_message(r)?;
                let producer = match scoped.then(|| r.u8()).transpose()? {
                    None | Some(0) => None,
                    Some(1) => Some(ProducerRef {
                        id: r.arc_str()?,
                        seq: r.u64()?,
                    }),
                    Some(tag) => {
                        return Err(CodecError::UnknownTag {
                            what: "prepared send's producer",
                            tag,
                            at: r.at - 1,
                        })
                    }
                };
                sends.push(PreparedSend { message, producer });
            }
            let n = r.u32()? as usize;
            let mut acks = Vec::with_capacity(n.min(r.remaining() / 14));
            for _ in 0..n {
                acks.push((decode_key(r)?, r.u64()?));
            }
            StoreOp::Prepare(PreparedTransaction {
                xid,
                client_id,
                owner,
                sends,
                acks,
            })
        }
        OP_RESOLVE => StoreOp::Resolve { xid: r.arc_str()? },
        OP_PURGE => {
            let key = decode_key(r)?;
            let n = r.u32()? as usize;
            let mut keep = Vec::with_capacity(n.min(r.remaining() / 8));
            for _ in 0..n {
                keep.push(r.u64()?);
            }
            StoreOp::Purge { key, keep }
        }
        tag => {
            return Err(CodecError::UnknownTag {
                what: "op",
                tag,
                at,
            })
        }
    }))
}

fn decode_producer(r: &mut Reader<'_>) -> Result<ProducerKey, CodecError> {
    Ok(ProducerKey {
        owner: r.owner()?,
        client_id: r.arc_str()?,
        producer: r.arc_str()?,
    })
}

/// The fields every message op starts with, in both formats.
struct MessageHead {
    id: u64,
    destination: Destination,
    timestamp_ms: u64,
    expires_ms: Option<u64>,
    priority: u8,
    persistent: bool,
}

fn decode_head(r: &mut Reader<'_>) -> Result<MessageHead, CodecError> {
    let id = r.u64()?;
    let destination = decode_destination(r)?;
    let timestamp_ms = r.u64()?;
    let expires = r.u64()?;
    Ok(MessageHead {
        id,
        destination,
        timestamp_ms,
        expires_ms: (expires != 0).then_some(expires),
        priority: r.u8()?,
        persistent: r.u8()? != 0,
    })
}

impl MessageHead {
    fn with(self, fields: MessageFields, body_kind: BodyKind, body: Bytes) -> MessageData {
        MessageData {
            id: self.id,
            destination: self.destination,
            fields,
            body_kind,
            body,
            persistent: self.persistent,
            priority: self.priority,
            expires_ms: self.expires_ms,
            timestamp_ms: self.timestamp_ms,
        }
    }
}

fn decode_message(r: &mut Reader<'_>) -> Result<MessageData, CodecError> {
    let head = decode_head(r)?;
    let at = r.at;
    let code = r.u8()?;
    let body_kind = BodyKind::from_code(code).ok_or(CodecError::UnknownTag {
        what: "body kind",
        tag: code,
        at,
    })?;
    let mask = r.u8()?;
    // Ids differ from message to message: not worth interning.
    let text = |r: &mut Reader<'_>, bit: u8| -> Result<Option<Arc<str>>, CodecError> {
        if mask & bit == 0 {
            Ok(None)
        } else {
            r.str().map(|t| Some(Arc::from(t)))
        }
    };
    let message_id = text(r, FIELD_MESSAGE_ID)?;
    let correlation_id = text(r, FIELD_CORRELATION_ID)?;
    let reply_to = if mask & FIELD_REPLY_TO == 0 {
        None
    } else {
        Some(decode_destination(r)?)
    };
    let message_type = text(r, FIELD_TYPE)?;
    let group_id = text(r, FIELD_GROUP_ID)?;
    let original_destination = if mask & FIELD_ORIGINAL_DESTINATION == 0 {
        None
    } else {
        Some(decode_destination(r)?)
    };
    let group_seq = r.u32()? as i32;
    let n = r.u32()? as usize;
    // Each property takes at least 6 bytes.
    let mut properties = Vec::with_capacity(n.min(r.remaining() / 6));
    for _ in 0..n {
        let name = r.arc_str()?;
        properties.push((name, decode_property(r)?));
    }
    let len = r.u32()? as usize;
    let body = r.bytes(len)?;
    let fields = MessageFields {
        message_id,
        correlation_id,
        reply_to,
        message_type,
        original_destination,
        group_id,
        group_seq,
        properties,
    };
    Ok(head.with(fields, body_kind, body))
}

fn decode_destination(r: &mut Reader<'_>) -> Result<Destination, CodecError> {
    let at = r.at;
    let kind = match r.u8()? {
        1 => DestinationKind::Queue,
        2 => DestinationKind::Topic,
        3 => DestinationKind::TempQueue,
        4 => DestinationKind::TempTopic,
        tag => {
            return Err(CodecError::UnknownTag {
                what: "destination",
                tag,
                at,
            })
        }
    };
    Ok(Destination {
        kind,
        name: r.arc_str()?,
    })
}

fn decode_property(r: &mut Reader<'_>) -> Result<PropertyValue, CodecError> {
    let at = r.at;
    Ok(match r.u8()? {
        PROP_BOOL => PropertyValue::Bool(r.u8()? != 0),
        PROP_BYTE => PropertyValue::Byte(r.u8()? as i8),
        PROP_SHORT => {
            PropertyValue::Short(i16::from_le_bytes(r.take(2)?.try_into().expect("2 bytes")))
        }
        PROP_INT => PropertyValue::Int(r.u32()? as i32),
        PROP_LONG => PropertyValue::Long(r.u64()? as i64),
        PROP_FLOAT => PropertyValue::Float(f32::from_bits(r.u32()?)),
        PROP_DOUBLE => PropertyValue::Double(f64::from_bits(r.u64()?)),
        PROP_STRING => PropertyValue::String(Arc::from(r.str()?)),
        PROP_BYTES => {
            let len = r.u32()? as usize;
            PropertyValue::Bytes(r.bytes(len)?)
        }
        tag => {
            return Err(CodecError::UnknownTag {
                what: "property type",
                tag,
                at,
            })
        }
    })
}

/// A message of the legacy enqueue op. Those were written when STOMP was the
/// only protocol, so their headers are STOMP's: the three ActiveMQ maps to JMS
/// fields (`correlation-id`, `type`, and a `reply-to` naming a queue or topic)
/// become those fields, the rest text properties, and the body is bytes (STOMP
/// did not say whether it was text).
fn decode_legacy_message(r: &mut Reader<'_>) -> Result<MessageData, CodecError> {
    let head = decode_head(r)?;
    let n = r.u32()? as usize;
    let mut fields = MessageFields::default();
    fields.properties.reserve(n.min(r.remaining() / 8));
    for _ in 0..n {
        let name = r.str()?;
        let value = r.str()?;
        match name {
            "correlation-id" => fields.correlation_id = Some(Arc::from(value)),
            "type" => fields.message_type = Some(Arc::from(value)),
            "reply-to" if legacy_destination(value).is_some() => {
                fields.reply_to = legacy_destination(value);
            }
            _ => fields
                .properties
                .push((Arc::from(name), PropertyValue::String(Arc::from(value)))),
        }
    }
    let len = r.u32()? as usize;
    let body = r.bytes(len)?;
    Ok(head.with(fields, BodyKind::Bytes, body))
}

/// A destination as the STOMP-only broker wrote it in a `reply-to`.
fn legacy_destination(text: &str) -> Option<Destination> {
    let kinds = [
        ("/queue/", DestinationKind::Queue),
        ("/topic/", DestinationKind::Topic),
        ("/remote-temp-queue/", DestinationKind::TempQueue),
        ("/remote-temp-topic/", DestinationKind::TempTopic),
    ];
    kinds.iter().find_map(|(prefix, kind)| {
        text.strip_prefix(prefix)
            .and_then(|name| Destination::new(*kind, name).ok())
    })
}

fn decode_key(r: &mut Reader<'_>) -> Result<StoreKey, CodecError> {
    let at = r.at;
    match r.u8()? {
        KEY_QUEUE => Ok(StoreKey::Queue(r.arc_str()?)),
        KEY_DURABLE => Ok(StoreKey::Durable {
            client_id: r.arc_str()?,
            name: r.arc_str()?,
        }),
        tag => Err(CodecError::UnknownTag {
            what: "key",
            tag,
            at,
        }),
    }
}

/// Encodes a container's key by itself, as records do: for a store's own
/// files (the journal store's checkpoint).
pub fn encode_store_key(key: &StoreKey, buf: &mut BytesMut) {
    encode_key(key, buf);
}

/// Decodes a key [`encode_store_key`] wrote at `*at` in `data`, and moves
/// `at` past it.
///
/// # Errors
/// If the bytes there are not a key.
pub fn decode_store_key(
    data: &Bytes,
    at: &mut usize,
    names: &mut Names,
) -> Result<StoreKey, CodecError> {
    let mut r = Reader {
        data,
        at: *at,
        names,
        owners: true,
    };
    let key = decode_key(&mut r)?;
    *at = r.at;
    Ok(key)
}

/// A bounds-checked cursor over a record.
struct Reader<'a> {
    data: &'a Bytes,
    at: usize,
    names: &'a mut Names,
    /// Whether the record's format has owners ([`RECORD_FORMAT`]).
    owners: bool,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.data.len() - self.at
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if self.remaining() < n {
            return Err(CodecError::Truncated { at: self.at });
        }
        let data: &'a Bytes = self.data;
        let s = &data[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }

    /// An owner, in a format that has them; none in one that does not.
    fn owner(&mut self) -> Result<Option<Arc<str>>, CodecError> {
        if self.owners {
            self.opt_arc_str()
        } else {
            Ok(None)
        }
    }

    /// What [`put_opt_str`] wrote.
    fn opt_arc_str(&mut self) -> Result<Option<Arc<str>>, CodecError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.arc_str()?)),
            tag => Err(CodecError::UnknownTag {
                what: "optional string",
                tag,
                at: self.at - 1,
            }),
        }
    }

    fn u32(&mut self) -> Result<u32, CodecError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, CodecError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn bytes(&mut self, len: usize) -> Result<Bytes, CodecError> {
        if self.remaining() < len {
            return Err(CodecError::Truncated { at: self.at });
        }
        let b = self.data.slice(self.at..self.at + len);
        self.at += len;
        Ok(b)
    }

    fn str(&mut self) -> Result<&'a str, CodecError> {
        let len = self.u32()? as usize;
        let at = self.at;
        let raw = self.take(len)?;
        std::str::from_utf8(raw).map_err(|_| CodecError::InvalidUtf8 { at })
    }

    fn string(&mut self) -> Result<String, CodecError> {
        self.str().map(str::to_owned)
    }

    fn arc_str(&mut self) -> Result<Arc<str>, CodecError> {
        let text = self.str()?;
        Ok(self.names.intern(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn destination_strategy() -> impl Strategy<Value = Destination> {
        (0u8..4, "[a-z.]{1,12}").prop_map(|(kind, name)| Destination {
            kind: [
                DestinationKind::Queue,
                DestinationKind::Topic,
                DestinationKind::TempQueue,
                DestinationKind::TempTopic,
            ][kind as usize],
            name: Arc::from(name.as_str()),
        })
    }

    /// Any property value but NaN, which is not equal to itself.
    fn property_strategy() -> impl Strategy<Value = PropertyValue> {
        prop_oneof![
            any::<bool>().prop_map(PropertyValue::Bool),
            any::<i8>().prop_map(PropertyValue::Byte),
            any::<i16>().prop_map(PropertyValue::Short),
            any::<i32>().prop_map(PropertyValue::Int),
            any::<i64>().prop_map(PropertyValue::Long),
            (-1e30f32..1e30).prop_map(PropertyValue::Float),
            (-1e300f64..1e300).prop_map(PropertyValue::Double),
            ".{0,16}".prop_map(|s| PropertyValue::String(Arc::from(s.as_str()))),
            proptest::collection::vec(any::<u8>(), 0..16)
                .prop_map(|b| PropertyValue::Bytes(Bytes::from(b))),
        ]
    }

    fn fields_strategy() -> impl Strategy<Value = MessageFields> {
        let text = || proptest::option::of(".{0,12}".prop_map(|s| Arc::from(s.as_str())));
        (
            (text(), text(), text(), text()),
            proptest::option::of(destination_strategy()),
            proptest::option::of(destination_strategy()),
            any::<i32>(),
            proptest::collection::vec(("[a-zA-Z_]{1,8}", property_strategy()), 0..4),
        )
            .prop_map(
                |(
                    (message_id, correlation_id, message_type, group_id),
                    reply_to,
                    original_destination,
                    group_seq,
                    properties,
                )| MessageFields {
                    message_id,
                    correlation_id,
                    reply_to,
                    message_type,
                    original_destination,
                    group_id,
                    group_seq,
                    properties: properties
                        .into_iter()
                        .map(|(k, v)| (Arc::from(k.as_str()), v))
                        .collect(),
                },
            )
    }

    fn message_strategy() -> impl Strategy<Value = MessageData> {
        (
            any::<u64>(),
            destination_strategy(),
            any::<u64>(),
            proptest::option::of(1u64..u64::MAX),
            0u8..10,
            any::<bool>(),
            0u8..7,
            fields_strategy(),
            proptest::collection::vec(any::<u8>(), 0..64),
        )
            .prop_map(
                |(id, destination, ts, expires, priority, persistent, kind, fields, body)| {
                    MessageData {
                        id,
                        destination,
                        fields,
                        body_kind: BodyKind::from_code(kind).expect("0..7"),
                        body: Bytes::from(body),
                        persistent,
                        priority,
                        expires_ms: expires,
                        timestamp_ms: ts,
                    }
                },
            )
    }

    fn key_strategy() -> impl Strategy<Value = StoreKey> {
        prop_oneof![
            ".{0,10}".prop_map(|n| StoreKey::Queue(Arc::from(n.as_str()))),
            (".{0,6}", ".{0,6}").prop_map(|(c, n)| StoreKey::Durable {
                client_id: Arc::from(c.as_str()),
                name: Arc::from(n.as_str())
            }),
        ]
    }

    fn producer_strategy() -> impl Strategy<Value = ProducerKey> {
        (proptest::option::of(".{0,5}"), ".{0,6}", ".{0,12}").prop_map(|(o, c, p)| ProducerKey {
            owner: o.map(|o| Arc::from(o.as_str())),
            client_id: Arc::from(c.as_str()),
            producer: Arc::from(p.as_str()),
        })
    }

    fn op_strategy() -> impl Strategy<Value = StoreOp<MessageData>> {
        prop_oneof![
            (
                message_strategy(),
                proptest::collection::vec(key_strategy(), 0..3)
            )
                .prop_map(|(message, targets)| StoreOp::Enqueue { message, targets }),
            (key_strategy(), any::<u64>()).prop_map(|(key, id)| StoreOp::Dequeue { key, id }),
            (key_strategy(), any::<u64>(), any::<u32>())
                .prop_map(|(key, id, count)| StoreOp::Redelivered { key, id, count }),
            (
                ".{0,6}",
                ".{0,6}",
                ".{0,6}",
                proptest::option::of(".{0,20}"),
                any::<bool>(),
                proptest::option::of(".{0,5}"),
            )
                .prop_map(|(c, n, t, selector, no_local, owner)| StoreOp::Subscribe(
                    DurableSubscription {
                        client_id: Arc::from(c.as_str()),
                        name: Arc::from(n.as_str()),
                        topic: Arc::from(t.as_str()),
                        selector,
                        no_local,
                        owner: owner.map(|o| Arc::from(o.as_str())),
                    }
                )),
            (".{0,6}", ".{0,6}").prop_map(|(c, n)| StoreOp::Unsubscribe {
                client_id: Arc::from(c.as_str()),
                name: Arc::from(n.as_str())
            }),
            (producer_strategy(), any::<u64>())
                .prop_map(|(producer, seq)| StoreOp::ProducerSeen { producer, seq }),
            (
                producer_strategy(),
                proptest::collection::vec(1u64..10_000, 0..8)
            )
                .prop_map(|(producer, seqs)| {
                    let mut window = SeqWindow::new();
                    for s in seqs {
                        window.insert(s);
                    }
                    StoreOp::ProducerWindow { producer, window }
                }),
            producer_strategy().prop_map(|producer| StoreOp::ProducerForget { producer }),
            (
                ".{0,12}",
                proptest::option::of(".{0,8}"),
                proptest::option::of(".{0,5}"),
                proptest::collection::vec(
                    (
                        message_strategy(),
                        proptest::option::of((".{0,8}", any::<u64>()))
                    ),
                    0..3
                ),
                proptest::collection::vec((key_strategy(), any::<u64>()), 0..4)
            )
                .prop_map(|(xid, client_id, owner, sends, acks)| StoreOp::Prepare(
                    PreparedTransaction {
                        xid: Arc::from(xid.as_str()),
                        client_id: client_id.map(|c| Arc::from(c.as_str())),
                        owner: owner.map(|o| Arc::from(o.as_str())),
                        sends: sends
                            .into_iter()
                            .map(|(message, producer)| PreparedSend {
                                message,
                                producer: producer.map(|(id, seq)| ProducerRef {
                                    id: Arc::from(id.as_str()),
                                    seq,
                                }),
                            })
                            .collect(),
                        acks
                    }
                )),
            ".{0,12}".prop_map(|xid| StoreOp::Resolve {
                xid: Arc::from(xid.as_str())
            }),
            (
                key_strategy(),
                proptest::collection::vec(any::<u64>(), 0..4)
            )
                .prop_map(|(key, keep)| StoreOp::Purge { key, keep }),
        ]
    }

    proptest! {
        #[test]
        fn round_trip(ops in proptest::collection::vec(op_strategy(), 0..6)) {
            let bytes = encode_record(&ops);
            prop_assert_eq!(bytes.len(), encoded_len(&ops));
            prop_assert_eq!(decode_record(&bytes).unwrap(), ops);
        }

        #[test]
        fn truncation_is_an_error_not_a_panic(ops in proptest::collection::vec(op_strategy(), 1..4), cut in any::<prop::sample::Index>()) {
            let bytes = encode_record(&ops);
            let cut = cut.index(bytes.len());
            prop_assert!(decode_record(&bytes.slice(..cut)).is_err());
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_record(&Bytes::from(data));
        }
    }

    #[test]
    fn a_prepare_of_the_first_format_reads_without_its_senders() {
        // Op 12 as the first builds wrote it: no client id, no producers.
        let m = MessageData::accept(
            0,
            crate::message::NewMessage::new(Destination::queue("q"), Bytes::from_static(b"x")),
            0,
        );
        let mut buf = BytesMut::new();
        buf.put_u8(FORMAT_WITHOUT_OWNERS);
        buf.put_u32_le(1);
        buf.put_u8(OP_LEGACY_PREPARE);
        put_str(&mut buf, "xa:1");
        buf.put_u32_le(1);
        encode_message(&m, &mut buf);
        buf.put_u32_le(1);
        encode_key(&StoreKey::Queue(Arc::from("q")), &mut buf);
        buf.put_u64_le(7);
        let ops = decode_record(&buf.freeze()).unwrap();
        assert_eq!(
            ops,
            vec![StoreOp::Prepare(PreparedTransaction {
                xid: Arc::from("xa:1"),
                client_id: None,
                owner: None,
                sends: vec![PreparedSend {
                    message: m,
                    producer: None,
                }],
                acks: vec![(StoreKey::Queue(Arc::from("q")), 7)],
            })]
        );
    }

    #[test]
    fn lengths_match_the_encoding() {
        let mut m = MessageData::accept(
            1,
            crate::message::NewMessage::new(
                Destination::queue("orders"),
                Bytes::from_static(b"hello"),
            ),
            0,
        );
        m.fields.correlation_id = Some(Arc::from("c-1"));
        m.fields.reply_to = Some(Destination::topic("replies"));
        m.fields.properties = vec![
            (Arc::from("k"), PropertyValue::String(Arc::from("value"))),
            (Arc::from("n"), PropertyValue::Double(0.5)),
            (
                Arc::from("b"),
                PropertyValue::Bytes(Bytes::from_static(b"xy")),
            ),
        ];
        let targets = vec![
            StoreKey::Queue(Arc::from("orders")),
            StoreKey::Durable {
                client_id: Arc::from("c"),
                name: Arc::from("s"),
            },
        ];
        let producer = ProducerKey {
            owner: Some(Arc::from("alice")),
            client_id: Arc::from("c"),
            producer: Arc::from("p"),
        };
        let ops = vec![
            StoreOp::Enqueue {
                message: m.clone(),
                targets: targets.clone(),
            },
            StoreOp::ProducerSeen {
                producer: producer.clone(),
                seq: 7,
            },
        ];
        assert_eq!(
            encode_record(&ops).len(),
            RECORD_HEADER_LEN
                + message_len(&m.destination, &m.fields, m.body.len())
                + enqueue_overhead_len(&targets)
                + producer_seen_len(&producer)
        );
    }

    #[test]
    fn records_of_the_format_without_owners_read_as_anonymous() {
        let mut buf = BytesMut::new();
        buf.put_u8(FORMAT_WITHOUT_OWNERS);
        buf.put_u32_le(2);
        buf.put_u8(OP_SUBSCRIBE);
        put_str(&mut buf, "c");
        put_str(&mut buf, "s");
        put_str(&mut buf, "t");
        put_opt_str(&mut buf, None);
        buf.put_u8(1);
        buf.put_u8(OP_PRODUCER_SEEN);
        put_str(&mut buf, "c");
        put_str(&mut buf, "p");
        buf.put_u64_le(9);
        assert_eq!(
            decode_record(&buf.freeze()),
            Ok(vec![
                StoreOp::Subscribe(DurableSubscription {
                    client_id: Arc::from("c"),
                    name: Arc::from("s"),
                    topic: Arc::from("t"),
                    selector: None,
                    no_local: true,
                    owner: None,
                }),
                StoreOp::ProducerSeen {
                    producer: ProducerKey {
                        owner: None,
                        client_id: Arc::from("c"),
                        producer: Arc::from("p"),
                    },
                    seq: 9,
                },
            ])
        );
    }

    #[test]
    fn earlier_unscoped_producer_marks_are_read_and_ignored() {
        let mut buf = BytesMut::new();
        buf.put_u8(FORMAT_WITHOUT_OWNERS);
        buf.put_u32_le(2);
        buf.put_u8(OP_LEGACY_PRODUCER_MARK);
        put_str(&mut buf, "p");
        buf.put_u64_le(42);
        buf.put_u8(OP_LEGACY_PRODUCER_FORGET);
        put_str(&mut buf, "q");
        assert_eq!(decode_record(&buf.freeze()), Ok(Vec::new()));
    }

    #[test]
    fn rejects_unknown_format_and_trailing_bytes() {
        assert_eq!(
            decode_record(&Bytes::from_static(&[9, 0, 0, 0, 0])),
            Err(CodecError::UnknownFormat(9))
        );
        assert_eq!(
            decode_record(&Bytes::from_static(&[1, 0, 0, 0, 0, 7])),
            Err(CodecError::Trailing(1))
        );
    }
}
