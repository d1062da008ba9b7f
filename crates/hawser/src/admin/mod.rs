//! The admin endpoint beyond status and metrics (`crate::status` serves
//! them all): the REST API, ActiveMQ's console XML pages, the web console,
//! and who may use them.

mod access;
pub mod api;
pub mod console;
pub mod xml;

pub use access::{may_change, new_token, Access, Caller, Refused, Roles, TOKEN_HEADER};
