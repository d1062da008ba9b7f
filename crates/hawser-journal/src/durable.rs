//! The completion handle of one append.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::oneshot;

use crate::error::WriteError;

/// Resolves when the record is durable (`sync` appends: an fsync covering it is done;
/// other appends: it was written) or when writing it failed. Dropping it does not cancel
/// the write.
#[derive(Debug)]
pub struct Durable(pub(crate) oneshot::Receiver<Result<(), WriteError>>);

impl Durable {
    /// Blocks the calling thread until the outcome is known. For threads outside an
    /// async runtime; inside one it panics (as `oneshot::Receiver::blocking_recv` does),
    /// `.await` the `Durable` instead.
    ///
    /// # Errors
    /// The write or fsync error that failed this record, or `WriterGone`.
    pub fn wait_blocking(self) -> Result<(), WriteError> {
        self.0
            .blocking_recv()
            .unwrap_or(Err(WriteError::WriterGone))
    }
}

impl Future for Durable {
    type Output = Result<(), WriteError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|outcome| outcome.unwrap_or(Err(WriteError::WriterGone)))
    }
}
