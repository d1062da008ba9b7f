//! The ids of connections, sessions, producers, consumers, brokers and messages.
//!
//! These are values, not commands: they travel nested in commands (often through the marshal
//! cache). Their strings name things, so a null string is refused rather than carried.
//! Java prints them joined by colons (`ID:host-1234-5:1:2:3` for a producer); `Display`
//! does the same.

use std::fmt;

use crate::cursor::ReadError;
use crate::reader::Reader;
use crate::writer::Writer;
use crate::EncodeError;

/// A connection's id (type 120), chosen by the client: `ID:<host>-<port>-<time>-<n>:<n>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ConnectionId {
    /// The id's text.
    pub value: String,
}

/// A session's id (type 121): its connection's and a number.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct SessionId {
    /// The connection's id text.
    pub connection_id: String,
    /// The session's number within the connection.
    pub value: i64,
}

/// A producer's id (type 123). On the wire `value` comes before `session_id`, the other way
/// round from [`ConsumerId`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ProducerId {
    /// The connection's id text.
    pub connection_id: String,
    /// The producer's number within its session.
    pub value: i64,
    /// The session's number within the connection.
    pub session_id: i64,
}

/// A consumer's id (type 122).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ConsumerId {
    /// The connection's id text.
    pub connection_id: String,
    /// The session's number within the connection.
    pub session_id: i64,
    /// The consumer's number within its session.
    pub value: i64,
}

/// A broker's id (type 124).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct BrokerId {
    /// The id's text.
    pub value: String,
}

/// A message's id (type 110): its producer and that producer's sequence number, which is
/// what duplicate detection keys on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct MessageId {
    /// An id set from text that does not parse as producer and sequence (for instance by
    /// another provider's `setJMSMessageID`); normally null. Since version 10.
    pub text_view: Option<String>,
    /// The producer that sent the message (null only with a `text_view`).
    pub producer_id: Option<ProducerId>,
    /// The producer's sequence number for the message.
    pub producer_sequence_id: i64,
    /// A number the broker may assign (its store's sequence).
    pub broker_sequence_id: i64,
}

impl ConnectionId {
    /// A connection id with this text.
    pub fn new(value: impl Into<String>) -> Self {
        ConnectionId {
            value: value.into(),
        }
    }

    pub(crate) fn unmarshal(r: &mut Reader<'_, '_>) -> Result<Self, ReadError> {
        Ok(ConnectionId {
            value: r.required_string("ConnectionId.value")?,
        })
    }

    pub(crate) fn marshal(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.string(Some(&self.value))
    }
}

impl SessionId {
    pub(crate) fn unmarshal(r: &mut Reader<'_, '_>) -> Result<Self, ReadError> {
        Ok(SessionId {
            connection_id: r.required_string("SessionId.connectionId")?,
            value: r.long()?,
        })
    }

    pub(crate) fn marshal(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.string(Some(&self.connection_id))?;
        w.long(self.value);
        Ok(())
    }
}

impl ProducerId {
    pub(crate) fn unmarshal(r: &mut Reader<'_, '_>) -> Result<Self, ReadError> {
        Ok(ProducerId {
            connection_id: r.required_string("ProducerId.connectionId")?,
            value: r.long()?,
            session_id: r.long()?,
        })
    }

    pub(crate) fn marshal(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.string(Some(&self.connection_id))?;
        w.long(self.value);
        w.long(self.session_id);
        Ok(())
    }
}

impl ConsumerId {
    pub(crate) fn unmarshal(r: &mut Reader<'_, '_>) -> Result<Self, ReadError> {
        Ok(ConsumerId {
            connection_id: r.required_string("ConsumerId.connectionId")?,
            session_id: r.long()?,
            value: r.long()?,
        })
    }

    pub(crate) fn marshal(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.string(Some(&self.connection_id))?;
        w.long(self.session_id);
        w.long(self.value);
        Ok(())
    }
}

impl BrokerId {
    /// A broker id with this text.
    pub fn new(value: impl Into<String>) -> Self {
        BrokerId {
            value: value.into(),
        }
    }

    pub(crate) fn unmarshal(r: &mut Reader<'_, '_>) -> Result<Self, ReadError> {
        Ok(BrokerId {
            value: r.required_string("BrokerId.value")?,
        })
    }

    pub(crate) fn marshal(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.string(Some(&self.value))
    }
}

impl MessageId {
    pub(crate) fn unmarshal(r: &mut Reader<'_, '_>) -> Result<Self, ReadError> {
        Ok(MessageId {
            text_view: if r.version() >= 10 { r.string()? } else { None },
            producer_id: r.cached("MessageId.producerId")?,
            producer_sequence_id: r.long()?,
            broker_sequence_id: r.long()?,
        })
    }

    pub(crate) fn marshal(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        if w.version() >= 10 {
            w.string(self.text_view.as_deref())?;
        }
        w.cached(self.producer_id.as_ref())?;
        w.long(self.producer_sequence_id);
        w.long(self.broker_sequence_id);
        Ok(())
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.value)
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.connection_id, self.value)
    }
}

impl fmt::Display for ProducerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            self.connection_id, self.session_id, self.value
        )
    }
}

impl fmt::Display for ConsumerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            self.connection_id, self.session_id, self.value
        )
    }
}

impl fmt::Display for BrokerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.value)
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.text_view, &self.producer_id) {
            (Some(text), _) => f.write_str(text),
            (None, Some(producer)) => write!(f, "{producer}:{}", self.producer_sequence_id),
            (None, None) => write!(f, "null:{}", self.producer_sequence_id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_print_like_java() {
        let producer = ProducerId {
            connection_id: "ID:h-1".into(),
            value: 3,
            session_id: 2,
        };
        assert_eq!(producer.to_string(), "ID:h-1:2:3");
        let message = MessageId {
            producer_id: Some(producer),
            producer_sequence_id: 7,
            ..MessageId::default()
        };
        assert_eq!(message.to_string(), "ID:h-1:2:3:7");
        let session = SessionId {
            connection_id: "ID:h-1".into(),
            value: 2,
        };
        assert_eq!(session.to_string(), "ID:h-1:2");
    }
}
