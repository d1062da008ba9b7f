//! Sans-IO OpenWire codec: the wire format of ActiveMQ's native protocol, as the Java client
//! (activemq-client 5.x) speaks it, for the Hawser broker and its tools.
//!
//! What it is: the [`Command`] types a JMS client and a broker exchange, and their encoding
//! in both of OpenWire's encodings (tight and loose), with or without the marshal cache and
//! the size prefix, for protocol versions 1 to 12; the WireFormatInfo [`negotiate`] step that
//! picks those settings; message properties as a typed [`PrimitiveMap`].
//!
//! What it is not: no sockets, clocks, threads or broker logic. It does not answer commands,
//! time out connections or send keep-alives; the session that owns the socket does, with the
//! settings [`negotiate`] returns. Message bodies stay opaque bytes: an ObjectMessage is never
//! deserialized, and an exception is its class name and message as strings: nothing a peer
//! names is ever loaded or instantiated.
//!
//! How bytes flow, per connection:
//!
//! 1. Both sides start with [`WireSettings::initial`] (loose, no cache, size prefix). The
//!    broker sends its [`WireFormatInfo`] at once and reads the client's.
//! 2. [`negotiate`] (ours, theirs) gives the settings both sides now use; the session calls
//!    [`Codec::set_settings`] before decoding or encoding anything else.
//! 3. Inbound, the session appends what it read to a `BytesMut` and calls
//!    [`Codec::decode`] until `Ok(None)` (wait for more). Outbound, [`Codec::encode`].
//!
//! Every length and count from the wire is checked against the bytes that remain before
//! anything is allocated, a size prefix against the maximum frame size before the frame is
//! read, and nesting against [`MAX_NESTING_DEPTH`] and [`MAX_EXCEPTION_DEPTH`]; malformed
//! input of any kind is a [`DecodeError`], never a panic. Decoded structures take more
//! memory than their bytes (an id of a few bytes becomes a struct of 40 and more; a property
//! value of one byte, 40 bytes, which is why a blob holds at most [`MAX_PRIMITIVE_VALUES`]):
//! up to some 20 times a frame's size, which the maximum frame size should allow for.
//!
//! ```
//! use bytes::BytesMut;
//! use hawser_openwire::{
//!     negotiate, Codec, Command, KeepAliveInfo, WireFormatOptions, WireSettings,
//! };
//!
//! let mut broker = Codec::new(WireSettings::initial(1 << 20));
//! let ours = WireFormatOptions::default().to_info();
//! // The client's WireFormatInfo arrives (here: the same defaults).
//! let mut wire = BytesMut::new();
//! Codec::new(WireSettings::initial(1 << 20))
//!     .encode(&Command::WireFormatInfo(ours.clone()), &mut wire)?;
//! let Some(Command::WireFormatInfo(theirs)) = broker.decode(&mut wire)? else {
//!     unreachable!("a whole frame is buffered");
//! };
//! let settings = negotiate(&ours, &theirs)?.wire;
//! assert!(settings.tight_encoding && settings.cache_enabled);
//! broker.set_settings(settings);
//!
//! let ping = Command::KeepAliveInfo(KeepAliveInfo { command_id: 0, response_required: false });
//! broker.encode(&ping, &mut wire)?;
//! assert_eq!(wire[..], [0, 0, 0, 7, 10, 1, 0, 0, 0, 0, 0]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]

mod boolean_stream;
mod cache;
mod codec;
mod command;
mod connection;
mod consumer;
mod control;
mod cursor;
mod data_structure;
mod delivery;
mod destination;
mod error;
mod exception;
mod ids;
mod message;
mod modified_utf8;
mod primitive_map;
mod producer;
mod reader;
mod response;
mod settings;
mod transaction;
mod wire_format;
mod writer;

pub use codec::{Codec, Decoder, Encoder};
pub use command::Command;
pub use connection::{BrokerInfo, ConnectionInfo, RemoveInfo, SessionInfo};
pub use consumer::{ConsumerInfo, MessagePull, RemoveSubscriptionInfo};
pub use control::{
    ConnectionControl, ConnectionError, ConsumerControl, ControlCommand, FlushCommand,
    KeepAliveInfo, ShutdownInfo,
};
pub use data_structure::DataStructure;
pub use delivery::{AckType, MessageAck, MessageDispatch};
pub use destination::{Destination, DestinationInfo, DestinationKind, DestinationOperation};
pub use error::{DecodeError, EncodeError};
pub use exception::{ExceptionInfo, StackFrame};
pub use ids::{BrokerId, ConnectionId, ConsumerId, MessageId, ProducerId, SessionId};
pub use message::{decode_text_body, encode_text_body, BlobInfo, Message, MessageKind};
pub use primitive_map::{PrimitiveMap, PrimitiveValue, MAX_PRIMITIVE_VALUES};
pub use producer::{ProducerAck, ProducerInfo};
pub use response::{DataArrayResponse, DataResponse, ExceptionResponse, IntegerResponse, Response};
pub use settings::{
    WireSettings, DEFAULT_CACHE_SIZE, DEFAULT_MAX_FRAME_SIZE, MAX_CACHE_SIZE, MAX_EXCEPTION_DEPTH,
    MAX_NESTING_DEPTH, MAX_VERSION, MIN_VERSION,
};
pub use transaction::{
    LocalTransactionId, TransactionId, TransactionInfo, TransactionType, XaTransactionId,
};
pub use wire_format::{
    negotiate, Negotiated, NegotiationError, WireFormatInfo, WireFormatOptions, MAGIC,
    MAX_WIRE_FORMAT_PROPERTIES,
};
