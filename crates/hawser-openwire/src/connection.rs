//! The commands that open and close a connection's parts: BrokerInfo, ConnectionInfo,
//! SessionInfo and RemoveInfo.

use crate::cursor::ReadError;
use crate::data_structure::DataStructure;
use crate::ids::{BrokerId, ConnectionId, SessionId};
use crate::reader::Reader;
use crate::writer::Writer;
use crate::EncodeError;

/// The broker's introduction (type 2), sent after the WireFormatInfo. Failover clients learn
/// the broker's peers from it and, through ConnectionControl, where to reconnect.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrokerInfo {
    /// The command's number.
    pub command_id: i32,
    /// The sender wants a Response.
    pub response_required: bool,
    /// The broker's id (cached).
    pub broker_id: Option<BrokerId>,
    /// The URL the broker is reached at.
    pub broker_url: Option<String>,
    /// Other brokers of a network.
    pub peer_broker_infos: Option<Vec<BrokerInfo>>,
    /// The broker's name (`getBrokerName()` on the client).
    pub broker_name: Option<String>,
    /// This broker is a slave.
    pub slave_broker: bool,
    /// This broker is a master.
    pub master_broker: bool,
    /// The broker is part of a fault-tolerant (master/slave) configuration.
    pub fault_tolerant_configuration: bool,
    /// The connection is a duplex network bridge. Since version 2.
    pub duplex_connection: bool,
    /// The connection is a network bridge. Since version 2.
    pub network_connection: bool,
    /// The connection's number on the broker. Since version 2.
    pub connection_id: i64,
    /// Where blob messages are uploaded. Since version 3.
    pub broker_upload_url: Option<String>,
    /// Network connector properties. Since version 3.
    pub network_properties: Option<String>,
}

impl BrokerInfo {
    pub(crate) fn unmarshal(r: &mut Reader<'_, '_>) -> Result<Self, ReadError> {
        let (command_id, response_required) = r.command_header()?;
        let v = r.version();
        Ok(BrokerInfo {
            command_id,
            response_required,
            broker_id: r.cached("BrokerInfo.brokerId")?,
            broker_url: r.string()?,
            peer_broker_infos: r.array("BrokerInfo.peerBrokerInfos")?,
            broker_name: r.string()?,
            slave_broker: r.boolean()?,
            master_broker: r.boolean()?,
            fault_tolerant_configuration: r.boolean()?,
            duplex_connection: v >= 2 && r.boolean()?,
            network_connection: v >= 2 && r.boolean()?,
            connection_id: if v >= 2 { r.long()? } else { 0 },
            broker_upload_url: if v >= 3 { r.string()? } else { None },
            network_properties: if v >= 3 { r.string()? } else { None },
        })
    }

    pub(crate) fn marshal(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.command_header(self.command_id, self.response_required);
        w.cached(self.broker_id.as_ref())?;
        w.string(self.broker_url.as_deref())?;
        w.array(self.peer_broker_infos.as_deref())?;
        w.string(self.broker_name.as_deref())?;
        w.boolean(self.slave_broker);
        w.boolean(self.master_broker);
        w.boolean(self.fault_tolerant_configuration);
        if w.version() >= 2 {
            w.boolean(self.duplex_connection);
            w.boolean(self.network_connection);
            w.long(self.connection_id);
        }
        if w.version() >= 3 {
            w.string(self.broker_upload_url.as_deref())?;
            w.string(self.network_properties.as_deref())?;
        }
        Ok(())
    }
}

/// Opens a connection (type 3); the client's first command after the WireFormatInfo.
///
/// `Default` is all zeros and nulls; Java's constructor sets `client_master` to true.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// The command's number, for the Response's correlation id.
    pub command_id: i32,
    /// The client waits for a Response.
    pub response_required: bool,
    /// The connection's id (cached).
    pub connection_id: Option<ConnectionId>,
    /// The JMS client id (needed for durable subscriptions).
    pub client_id: Option<String>,
    /// Password, if the client gave credentials.
    pub password: Option<String>,
    /// User name, if the client gave credentials.
    pub user_name: Option<String>,
    /// Brokers the command has passed through (network of brokers).
    pub broker_path: Option<Vec<BrokerId>>,
    /// The connection comes from a master broker's connector to its slave.
    pub broker_master_connector: bool,
    /// The connection may be managed (JMX).
    pub manageable: bool,
    /// The client is the master of its connection state. Since version 2.
    pub client_master: bool,
    /// The client is a failover client. Since version 6.
    pub fault_tolerant: bool,
    /// This is a failover client reconnecting. Since version 6.
    pub failover_reconnect: bool,
    /// The client's address as the client sees it. Since version 8.
    pub client_ip: Option<String>,
}

impl ConnectionInfo {
    pub(crate) fn unmarshal(r: &mut Reader<'_, '_>) -> Result<Self, ReadError> {
        let (command_id, response_required) = r.command_header()?;
        let v = r.version();
        Ok(ConnectionInfo {
            command_id,
            response_required,
            connection_id: r.cached("ConnectionInfo.connectionId")?,
            client_id: r.string()?,
            password: r.string()?,
            user_name: r.string()?,
            broker_path: r.array("ConnectionInfo.brokerPath")?,
            broker_master_connector: r.boolean()?,
            manageable: r.boolean()?,
            client_master: v >= 2 && r.boolean()?,
            fault_tolerant: v >= 6 && r.boolean()?,
            failover_reconnect: v >= 6 && r.boolean()?,
            client_ip: if v >= 8 { r.string()? } else { None },
        })
    }

    pub(crate) fn marshal(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.command_header(self.command_id, self.response_required);
        w.cached(self.connection_id.as_ref())?;
        w.string(self.client_id.as_deref())?;
        w.string(self.password.as_deref())?;
        w.string(self.user_name.as_deref())?;
        w.array(self.broker_path.as_deref())?;
        w.boolean(self.broker_master_connector);
        w.boolean(self.manageable);
        if w.version() >= 2 {
            w.boolean(self.client_master);
        }
        if w.version() >= 6 {
            w.boolean(self.fault_tolerant);
            w.boolean(self.failover_reconnect);
        }
        if w.version() >= 8 {
            w.string(self.client_ip.as_deref())?;
        }
        Ok(())
    }
}

/// Opens a session (type 4).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionInfo {
    /// The command's number, for the Response's correlation id.
    pub command_id: i32,
    /// The client waits for a Response.
    pub response_required: bool,
    /// The session's id (cached).
    pub session_id: Option<SessionId>,
}

impl SessionInfo {
    pub(crate) fn unmarshal(r: &mut Reader<'_, '_>) -> Result<Self, ReadError> {
        let (command_id, response_required) = r.command_header()?;
        Ok(SessionInfo {
            command_id,
            response_required,
            session_id: r.cached("SessionInfo.sessionId")?,
        })
    }

    pub(crate) fn marshal(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.command_header(self.command_id, self.response_required);
        w.cached(self.session_id.as_ref())
    }
}

/// Closes what an id names (type 12): a connection, session, producer or consumer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoveInfo {
    /// The command's number, for the Response's correlation id.
    pub command_id: i32,
    /// The client waits for a Response.
    pub response_required: bool,
    /// The id of what to close (cached): a ConnectionId, SessionId, ProducerId or ConsumerId.
    pub object_id: Option<DataStructure>,
    /// For a consumer: the last message sequence it delivered to the application, so that
    /// the broker redelivers the rest (-1 unset, -2 unknown). Since version 5.
    pub last_delivered_sequence_id: i64,
}

impl RemoveInfo {
    /// `last_delivered_sequence_id` when the consumer delivered nothing to its application.
    pub const LAST_DELIVERED_UNSET: i64 = -1;
    /// `last_delivered_sequence_id` when the client does not know (and before version 5).
    pub const LAST_DELIVERED_UNKNOWN: i64 = -2;

    pub(crate) fn unmarshal(r: &mut Reader<'_, '_>) -> Result<Self, ReadError> {
        let (command_id, response_required) = r.command_header()?;
        Ok(RemoveInfo {
            command_id,
            response_required,
            object_id: r.cached_any()?,
            last_delivered_sequence_id: if r.version() >= 5 {
                r.long()?
            } else {
                Self::LAST_DELIVERED_UNKNOWN
            },
        })
    }

    pub(crate) fn marshal(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.command_header(self.command_id, self.response_required);
        w.cached_any(self.object_id.as_ref())?;
        if w.version() >= 5 {
            w.long(self.last_delivered_sequence_id);
        }
        Ok(())
    }
}
