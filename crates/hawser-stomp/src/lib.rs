//! Sans-IO STOMP 1.0/1.1/1.2 frame codec, shared by the Hawser broker and client.
//!
//! Bytes flow in one direction per side, and this crate never touches a socket or a clock:
//!
//! - **Inbound:** the connection appends whatever it read to a `BytesMut` and calls
//!   [`Decoder::decode`] until it returns `Ok(None)` (wait for more bytes). Each call yields
//!   one [`Item`]: a [`Frame`] or a heart-beat. An `Err` means the peer broke the protocol or a
//!   [`Limits`] bound; the session answers with an `ERROR` frame and closes.
//! - **Outbound:** the session builds a [`Frame`] and calls [`encode`] with the version it
//!   negotiated, or [`encode_heartbeat`].
//!
//! Header escaping depends on the protocol [`Version`], which is only known after `CONNECT`
//! (see [`Version::negotiate`]); the session tells the decoder with [`Decoder::set_version`].
//! `CONNECT`, `STOMP` and `CONNECTED` frames are never escaped, so they read the same in every
//! version.
//!
//! ```
//! use bytes::BytesMut;
//! use hawser_stomp::{encode, Command, Decoder, Frame, Item, Limits, Version};
//!
//! let frame = Frame::new(Command::Send)
//!     .with_header("destination", "/queue/a")
//!     .with_body("hi");
//! let mut wire = BytesMut::new();
//! encode(&frame, Version::V1_2, &mut wire);
//!
//! let mut decoder = Decoder::new(Limits::default());
//! decoder.set_version(Version::V1_2);
//! let Some(Item::Frame(decoded)) = decoder.decode(&mut wire)? else {
//!     unreachable!("a whole frame is buffered");
//! };
//! assert_eq!(decoded.header("destination"), Some("/queue/a"));
//! assert_eq!(decoded.header("content-length"), Some("2")); // added by encode
//! assert_eq!(decoder.decode(&mut wire)?, None); // nothing left: wait for more bytes
//! # Ok::<(), hawser_stomp::DecodeError>(())
//! ```

mod command;
mod decode;
mod encode;
mod error;
mod escape;
pub mod extensions;
mod frame;
mod headers;
mod limits;
mod version;

pub use command::Command;
pub use decode::Decoder;
pub use encode::{encode, encode_heartbeat, FrameWriter};
pub use error::DecodeError;
pub use frame::{Frame, Item, CONTENT_LENGTH};
pub use headers::Headers;
pub use limits::{
    Limits, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_FRAME_BYTES, DEFAULT_MAX_HEADERS,
    DEFAULT_MAX_HEADER_BYTES,
};
pub use version::Version;
