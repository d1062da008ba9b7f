//! Messages as a consumer receives them.

use std::sync::Arc;

use bytes::Bytes;
use hawser_stomp::Headers;
use tokio::sync::{mpsc, oneshot};

use crate::audit::ProducerKey;
use crate::client::Command;
use crate::error::ClientError;

/// A message delivered to a subscription.
#[derive(Debug)]
pub struct Message {
    /// Every header of the MESSAGE frame, in order.
    pub headers: Headers,
    /// The body.
    pub body: Bytes,
    /// Its producer and sequence number, when the producer gave them (the audit's key).
    pub(crate) key: Option<ProducerKey>,
    /// The connection generation it arrived on; an ack from an older one is moot.
    pub(crate) generation: u64,
    /// Where acks go.
    pub(crate) commands: mpsc::UnboundedSender<Command>,
    /// The subscription it belongs to.
    pub(crate) subscription: Arc<str>,
}

impl Message {
    /// The first header named `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    /// The body as text, if it is UTF-8.
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.body).ok()
    }

    /// The broker's `message-id`.
    pub fn id(&self) -> &str {
        self.header("message-id").unwrap_or_default()
    }

    /// Which of the client's connections it came on: 1 for the first, then
    /// one more per reconnect, as [`crate::Status::connections`] counts them.
    pub fn connection(&self) -> u64 {
        self.generation
    }

    /// True if the broker delivered it before.
    pub fn redelivered(&self) -> bool {
        self.header("redelivered") == Some("true")
    }

    /// The destination it was sent to.
    pub fn destination(&self) -> &str {
        self.header("destination").unwrap_or_default()
    }

    /// Acknowledges the message and waits until the broker has recorded it.
    pub async fn ack(&self) -> Result<(), ClientError> {
        self.settle(true, None).await
    }

    /// Acknowledges inside transaction `tx`.
    pub async fn ack_in(&self, tx: &str) -> Result<(), ClientError> {
        self.settle(true, Some(tx)).await
    }

    /// Refuses the message: the broker redelivers it (or dead-letters it).
    pub async fn nack(&self) -> Result<(), ClientError> {
        self.settle(false, None).await
    }

    /// Acknowledges the message without waiting for the broker to record it,
    /// as JMS clients do by default: cheaper, and a lost ack only means the
    /// broker delivers the message again (which the audit then drops).
    pub fn ack_nowait(&self) -> Result<(), ClientError> {
        self.commands
            .send(self.settle_command(true, None, None))
            .map_err(|_| ClientError::Closed)
    }

    async fn settle(&self, ack: bool, tx: Option<&str>) -> Result<(), ClientError> {
        let (done, wait) = oneshot::channel();
        self.commands
            .send(self.settle_command(ack, tx, Some(done)))
            .map_err(|_| ClientError::Closed)?;
        wait.await.map_err(|_| ClientError::Closed)?
    }

    fn settle_command(
        &self,
        ack: bool,
        tx: Option<&str>,
        done: Option<oneshot::Sender<Result<(), ClientError>>>,
    ) -> Command {
        Command::Ack {
            ack,
            generation: self.generation,
            subscription: Arc::clone(&self.subscription),
            id: self.header("ack").unwrap_or(self.id()).to_owned(),
            key: self.key.clone(),
            tx: tx.map(str::to_owned),
            done,
        }
    }
}
