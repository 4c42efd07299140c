//! The in-process [`UpdateBus`]: a broadcast channel inside one process.

use bytes::Bytes;
use tokio::sync::broadcast;

use crate::plugins::{BoxFuture, DeliveryError, UpdateBus, UpdateSubscription};

/// Fan-out within one process. A subscriber more than `capacity` updates behind skips the
/// oldest ones (and the runtime counts the skip); clients then catch up with
/// `updates.getDifference`.
#[derive(Debug, Clone)]
pub struct InProcessUpdateBus {
    sender: broadcast::Sender<(i64, Bytes)>,
}

impl InProcessUpdateBus {
    /// A bus that keeps up to `capacity` updates for slow subscribers.
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        Self { sender }
    }
}

impl Default for InProcessUpdateBus {
    fn default() -> Self {
        Self::new(4096)
    }
}

impl UpdateBus for InProcessUpdateBus {
    fn publish(&self, user_id: i64, update: Bytes) -> Result<(), DeliveryError> {
        // No subscriber is not an error: nobody is online to get it.
        let _ = self.sender.send((user_id, update));
        Ok(())
    }

    fn subscribe(&self) -> Box<dyn UpdateSubscription> {
        Box::new(Subscription {
            receiver: self.sender.subscribe(),
        })
    }
}

struct Subscription {
    receiver: broadcast::Receiver<(i64, Bytes)>,
}

impl UpdateSubscription for Subscription {
    fn next(&mut self) -> BoxFuture<'_, Option<(i64, Bytes)>> {
        Box::pin(async move {
            loop {
                match self.receiver.recv().await {
                    Ok(update) => return Some(update),
                    Err(broadcast::error::RecvError::Lagged(skipped)) => {
                        tracing::warn!(skipped, "update subscriber lagged");
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
    }
}
