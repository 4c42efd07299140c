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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_subscriber_sees_what_is_published_after_it_subscribed() {
        let bus = InProcessUpdateBus::new(8);
        assert!(
            bus.publish(1, Bytes::from_static(b"lost")).is_ok(),
            "nobody listening is fine"
        );
        let mut first = bus.subscribe();
        let mut second = bus.subscribe();
        bus.publish(5, Bytes::from_static(b"hello")).unwrap();
        assert_eq!(first.next().await, Some((5, Bytes::from_static(b"hello"))));
        assert_eq!(second.next().await, Some((5, Bytes::from_static(b"hello"))));
    }

    #[tokio::test]
    async fn a_lagging_subscriber_skips_the_oldest() {
        let bus = InProcessUpdateBus::new(2);
        let mut slow = bus.subscribe();
        for n in 0..5u8 {
            bus.publish(i64::from(n), Bytes::from(vec![n; 4])).unwrap();
        }
        assert_eq!(slow.next().await.map(|(user, _)| user), Some(3));
        assert_eq!(slow.next().await.map(|(user, _)| user), Some(4));
    }
}
