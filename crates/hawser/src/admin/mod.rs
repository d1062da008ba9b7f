//! The admin endpoint: its server (status, metrics and probes come from
//! `crate::status`), the REST API, ActiveMQ's console XML pages, the web
//! console, and who may use them.

mod access;
pub mod api;
pub mod console;
mod server;
pub mod xml;

pub use access::{may_change, new_token, Access, Caller, Refused, Remote, Roles, TOKEN_HEADER};
pub use server::serve;
