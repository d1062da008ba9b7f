//! The Hawser server: configuration, listeners and protocol sessions around the
//! engine (`hawser-broker`) and the store (`hawser-journal`).
//!
//! `server::serve` wires them: it opens the store, hands what it recovered to a
//! `Broker`, and serves each accepted connection with a `stomp` session.

pub mod admin;
pub mod bench;
pub mod cli;
pub mod config;
pub mod connection;
pub mod control;
pub mod disk;
pub mod metrics;
pub mod network;
pub mod openwire;
pub mod security;
pub mod server;
pub mod stat;
pub mod status;
pub mod stomp;
pub mod token;

#[cfg(test)]
mod flow_tests;
#[cfg(test)]
mod test_peer;
