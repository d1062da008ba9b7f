//! The network of brokers (docs/network-plan.md): connectors to peer
//! brokers, and the links that forward messages to where consumers are.

pub mod connector;

pub use connector::{
    parse as parse_connector, ConnectorError, ConnectorKind, NetworkConnector, NetworkOptions,
};
