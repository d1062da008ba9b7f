//! What producers send: messages (held by flow control, answered once
//! durable or consumed) and the room a windowed producer gets back.

use super::*;

/// Java's `Message.DEFAULT_MINIMUM_MESSAGE_SIZE`: the least a message counts
/// for in a producer's window.
const MIN_MESSAGE_SIZE: usize = 1024;

impl Session {
    /// A producer's message: held while its destination has no room, then
    /// given to the engine. A synchronous send is answered once the message is
    /// durable or consumed.
    pub(super) async fn send(&mut self, m: &ow::Message) -> Result<(Flow, Confirm), SessionError> {
        let conn = self.conn()?;
        let message = mapping::new_message(m)?;
        let tx = m
            .transaction_id
            .as_ref()
            .map(transaction_name)
            .transpose()?;
        self.wait_for_room(&message, tx.is_some()).await?;
        let broker = Arc::clone(self.broker());
        let (seq, consumed) = if m.response_required {
            broker.send_confirmable(conn, message, tx.as_deref())?
        } else {
            (broker.send(conn, message, tx.as_deref())?, None)
        };
        if !m.response_required {
            self.ack_producer_window(m)?;
        }
        Ok((Flow::Continue, Confirm { seq, consumed }))
    }

    /// ProducerInfo: the engine counts and announces the producer (see
    /// `producer_registry`, which bounds them per connection). A producer
    /// with a window (`jms.producerWindowSize`) counts the bytes of its
    /// asynchronous sends and stops at the window until the broker
    /// acknowledges them (ProducerAck), so the session remembers it too.
    pub(super) fn add_producer(&mut self, p: &ow::ProducerInfo) -> Result<(), SessionError> {
        let Some(id) = p.producer_id.as_ref() else {
            return Ok(());
        };
        let conn = self.conn()?;
        let destination = p
            .destination
            .as_ref()
            .map(mapping::destination)
            .transpose()?;
        self.broker()
            .add_producer(conn, &mapping::producer_text(id), destination)?;
        if p.window_size > 0 {
            self.windowed_producers.insert(id.clone());
        }
        self.producers.insert(id.clone());
        Ok(())
    }

    /// A producer (or a session's) closed.
    pub(super) fn remove_producers(&mut self, gone: impl Fn(&ow::ProducerId) -> bool) {
        let Ok(conn) = self.conn() else {
            return;
        };
        let ids: Vec<ow::ProducerId> = self.producers.iter().filter(|p| gone(p)).cloned().collect();
        for id in ids {
            self.producers.remove(&id);
            self.windowed_producers.remove(&id);
            self.broker()
                .remove_producer(conn, &mapping::producer_text(&id));
        }
    }

    /// Gives a windowed producer back the room an asynchronous send took, once
    /// the engine has it (as ActiveMQ does; held by flow control, it waits).
    /// The size is the one the client counted: Java's `Message.getSize()`, a
    /// minimum of 1,024 bytes plus the marshalled properties and the content.
    pub(super) fn ack_producer_window(&mut self, m: &ow::Message) -> Result<(), SessionError> {
        let Some(id) = m.producer_id.as_ref() else {
            return Ok(());
        };
        if !self.windowed_producers.contains(id) {
            return Ok(());
        }
        let properties = match &m.properties {
            Some(map) => {
                let mut buf = bytes::BytesMut::new();
                map.encode(&mut buf).map_err(|e| SessionError::Invalid {
                    what: "message properties",
                    reason: e.to_string(),
                })?;
                buf.len()
            }
            None => 0,
        };
        let content = m.content.as_ref().map_or(0, bytes::Bytes::len);
        let size = MIN_MESSAGE_SIZE
            .saturating_add(properties)
            .saturating_add(content);
        self.send_out(Out::Frame {
            frame: Command::ProducerAck(ow::ProducerAck {
                producer_id: Some(id.clone()),
                size: i32::try_from(size).unwrap_or(i32::MAX),
                ..ow::ProducerAck::default()
            }),
            seq: 0,
        });
        Ok(())
    }
}
