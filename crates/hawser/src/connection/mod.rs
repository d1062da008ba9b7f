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
//! - [`outbound`]: the bound on what a client that does not read can make the
//!   broker hold for it, and the engine's handle on the connection.
//! - [`info`]: who is connected ([`ConnectInfo`]), the one place later
//!   authorization will look.
//! - [`registration`]: giving back what a connection held, however it ends.
//!
//! The writer works over any `AsyncWrite`: TLS and WebSocket are transports
//! under the same core, not copies of it.

pub mod info;
pub mod outbound;
pub mod registration;
pub mod writer;

pub use info::{ConnectInfo, Principal, Protocol};
pub use outbound::{ConnectionOutbox, Outbound};
pub use registration::Registration;
pub use writer::{run_writer, Confirm, Encode, Out};
