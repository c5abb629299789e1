//! The hub every connection publishes to, and the fan-out receives from.
//!
//! [`ChatHub`] is the seam for a multi-instance deployment: a Redis (or NATS, ...) implementation
//! would publish to the shared channel and run one task per instance that feeds what it receives
//! into a local `broadcast` channel, so that the fan-out keeps the same cheap, bounded local feed.

use std::fmt;

use axum::extract::ws::Utf8Bytes;
use tokio::sync::broadcast;

use super::message::ChatMessage;

/// A message on its way to the clients: the JSON text frame, serialized once for all receivers
/// (a clone is a reference-count increment).
pub type Delivery = Utf8Bytes;

/// Where chat messages go and come from.
pub trait ChatHub: Send + Sync + fmt::Debug + 'static {
    /// Delivers `message` to every current subscriber (on every instance, for a shared backend).
    /// Never waits for a slow subscriber.
    fn publish(&self, message: &ChatMessage);

    /// A bounded local feed of everything published from now on. A receiver that falls more than
    /// the capacity behind gets `RecvError::Lagged(n)` and skips ahead; it never holds others back.
    fn subscribe(&self) -> broadcast::Receiver<Delivery>;
}

/// The in-process hub: one bounded `tokio::sync::broadcast` channel.
#[derive(Debug, Clone)]
pub struct LocalHub {
    tx: broadcast::Sender<Delivery>,
}

/// Default capacity of [`LocalHub`]: how many messages a client may fall behind before it is told it
/// missed some. Each slot is a pointer to a shared frame, so this costs little memory.
pub const DEFAULT_CAPACITY: usize = 256;

impl LocalHub {
    /// A hub that lets a receiver fall at most `capacity` messages behind.
    ///
    /// # Panics
    ///
    /// If `capacity` is 0 (as `broadcast::channel` does).
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity);
        Self { tx }
    }
}

impl Default for LocalHub {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl ChatHub for LocalHub {
    fn publish(&self, message: &ChatMessage) {
        // An error only means nobody is subscribed, which is not a failure for a chat room.
        let _ = self.tx.send(Delivery::from(message.to_json()));
    }

    fn subscribe(&self) -> broadcast::Receiver<Delivery> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn subscribers_receive_in_order_and_laggers_are_told() {
        let hub = LocalHub::new(2);
        let mut rx = hub.subscribe();
        for i in 0..4 {
            hub.publish(&ChatMessage::system(&i.to_string()));
        }
        assert!(matches!(
            rx.recv().await,
            Err(broadcast::error::RecvError::Lagged(2))
        ));
        let next = rx.recv().await.unwrap();
        assert!(next.as_str().contains("\"content\":\"2\""));
    }
}
