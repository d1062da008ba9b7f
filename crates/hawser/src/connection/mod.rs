//! The connection core every protocol shares.
//!
//! A protocol brings a codec and the translation of its commands into engine
//! calls; everything a connection must get right whatever it speaks lives
//! here, once:
//!
//! - [`writer`]: one task per connection writes what the session and the engine
//!   queue, each item no sooner than the store made it durable (or, for a
//!   send's confirmation, a consumer acknowledged its message), in order, with
//!   keep-alives when the connection is otherwise quiet.
//! - [`out`]: the items a writer sends and the [`Encode`] trait a protocol
//!   implements for them.
//! - [`outbound`]: the bound on what a client that does not read can make the
//!   broker hold for it, and the engine's handle on the connection.
//! - [`reader`]: the reading side's deadlines (connect, a stalled frame,
//!   keep-alives, idleness), the outbound bound's pause, and producer flow
//!   control, which holds one producer and reads on for its keep-alives.
//! - [`registration`]: giving back what a connection held, however it ends.
//! - [`admission`]: connections per remote address, before authentication.
//! - [`settings`]: what connections of every protocol share.
//! - [`transport`]: TCP or TLS under it all.
//!
//! The writer works over any `AsyncWrite`: TLS and WebSocket are transports
//! under the same core, not copies of it.

pub mod admission;
pub mod opened;
pub mod out;
pub mod outbound;
pub mod reader;
pub mod registration;
pub mod settings;
pub mod transport;
pub mod writer;

/// Who is connected: each session builds one when its client connects and
/// hands it to the engine, where authorization looks.
pub use hawser_broker::{ConnectInfo, Principal, Protocol};

/// Largest frame read from a client that has not yet said who it is (STOMP's
/// CONNECT, OpenWire's WireFormatInfo and ConnectionInfo: a few fields
/// each): an unauthenticated peer must not make the broker buffer megabytes.
pub const MAX_LOGIN_FRAME_BYTES: usize = 64 * 1024;
pub use opened::{open, Closing, Opened};
pub use out::{Confirm, Encode, Out};
pub use outbound::{ConnectionOutbox, Outbound};
pub use reader::{ReadError, ReadTimeouts, Reader, Wake};
pub use registration::Registration;
pub use settings::CoreSettings;
pub use transport::{ReadHalf, Transport, WriteHalf};
pub use writer::{drain, run_writer};
