//! One WebSocket connection: a reader and a writer running side by side in the connection's task.
//!
//! - The **reader** owns the receiving half: it validates and rate-limits the client's frames,
//!   publishes good messages to the hub, hands error frames to the writer, and watches the pong
//!   deadline.
//! - The **writer** sends the periodic pings and the reader's error frames, and catches the client
//!   up when the fan-out found it unable to take a message (see [`super::fanout`]); the hub's
//!   messages themselves are written by the fan-out, without waking this task.
//!
//! Both run as branches of one `select!` in the task axum spawns for the upgrade, rather than as two
//! spawned tasks: an idle connection then costs one task, which matters at 10,000 connections.
//! Whichever ends first (or shutdown) leaves the connection's owner free to send the close frame.
//! A client that stops reading blocks only its own writer; the history it catches up from is
//! bounded, so that client later learns how many messages it missed and nobody else waits.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::{close_code, CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::stream::SplitStream;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::fanout::{History, Outbox};
use super::hub::ChatHub;
use super::message::{ChatMessage, ErrorFrame};
use super::Room;
use crate::Shutdown;

/// Timing and rate rules for each connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionRules {
    /// How often the server pings.
    pub ping_interval: Duration,
    /// How long without a pong before the connection is closed.
    pub pong_timeout: Duration,
    /// Messages per second a connection may send (also the burst).
    pub messages_per_second: u32,
    /// How long the server waits for its close frame to go out before dropping the connection.
    pub close_grace: Duration,
}

impl Default for ConnectionRules {
    fn default() -> Self {
        Self {
            ping_interval: Duration::from_secs(30),
            pong_timeout: Duration::from_secs(60),
            messages_per_second: 20,
            close_grace: Duration::from_secs(2),
        }
    }
}

/// How a connection ended, as far as the close handshake is concerned.
enum Outcome {
    /// The server closes with this code and reason.
    Close(u16, &'static str),
    /// The peer sent a close frame; tungstenite has queued the reply.
    PeerClosed,
    /// The transport failed or the peer vanished: nothing more can be sent.
    Gone,
}

/// Decrements the active-connection count when the connection's task ends, however it ends.
struct ActiveGuard(Arc<AtomicUsize>);

impl ActiveGuard {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(count))
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Runs one upgraded connection to its end.
pub(super) async fn run(
    socket: WebSocket,
    user_id: String,
    room: Arc<Room>,
    active: Arc<AtomicUsize>,
    rules: ConnectionRules,
    shutdown: Shutdown,
) {
    let _active = ActiveGuard::new(&active);
    let (sink, mut stream) = socket.split();
    // Join before announcing, so the newcomer receives its own join notice.
    let membership = room.join(sink);
    let outbox = membership.outbox();
    let hub = room.hub();
    hub.publish(&ChatMessage::system(&format!(
        "User {user_id} joined the chat"
    )));

    // Error frames for this client only. Small: the reader waits when it is full, which slows
    // nobody but the client that is both flooding and not reading.
    let (errors_tx, errors_rx) = mpsc::channel(4);

    let outcome = tokio::select! {
        out = reader(&mut stream, &user_id, &**hub, &errors_tx, rules) => out,
        out = writer(outbox, room.history(), errors_rx, rules) => out,
        () = shutdown.wait() => Outcome::Close(close_code::AWAY, "server shutting down"),
    };

    match outcome {
        Outcome::Close(code, reason) => {
            let frame = CloseFrame {
                code,
                reason: Utf8Bytes::from_static(reason),
            };
            // Bounded: a client that stopped reading must not keep this task alive.
            let _ = tokio::time::timeout(rules.close_grace, async {
                if !outbox.close(Message::Close(Some(frame))).await {
                    return;
                }
                // Give the peer a moment to answer the handshake, so the TCP connection closes
                // cleanly after it has read the close frame.
                while let Some(Ok(msg)) = stream.next().await {
                    if matches!(msg, Message::Close(_)) {
                        break;
                    }
                }
            })
            .await;
        }
        Outcome::PeerClosed => {
            // Flushes the close reply tungstenite queued when the peer's close frame arrived.
            let _ = tokio::time::timeout(rules.close_grace, outbox.finish_close()).await;
        }
        Outcome::Gone => {}
    }

    // At shutdown everyone is leaving; a notice per connection would only be noise.
    if !shutdown.is_shutting_down() {
        hub.publish(&ChatMessage::system(&format!(
            "User {user_id} left the chat"
        )));
    }
}

/// A token bucket: `rate` tokens a second, at most `rate` saved up.
struct Bucket {
    tokens: f64,
    rate: f64,
    last: Instant,
}

impl Bucket {
    fn new(rate: u32, now: Instant) -> Self {
        let rate = f64::from(rate.max(1));
        Self {
            tokens: rate,
            rate,
            last: now,
        }
    }

    fn try_take(&mut self, now: Instant) -> bool {
        let refill = now.duration_since(self.last).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.rate);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

async fn reader(
    stream: &mut SplitStream<WebSocket>,
    user_id: &str,
    hub: &dyn ChatHub,
    errors: &mpsc::Sender<Utf8Bytes>,
    rules: ConnectionRules,
) -> Outcome {
    let mut bucket = Bucket::new(rules.messages_per_second, Instant::now());
    let mut pong_deadline = Instant::now() + rules.pong_timeout;
    loop {
        let frame = tokio::select! {
            frame = stream.next() => frame,
            () = tokio::time::sleep_until(pong_deadline) => {
                return Outcome::Close(close_code::POLICY, "no pong received in time");
            }
        };
        let text = match frame {
            None => return Outcome::Gone,
            Some(Err(e)) => return read_error(e),
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Binary(_))) => {
                return Outcome::Close(close_code::UNSUPPORTED, "binary frames are not accepted")
            }
            Some(Ok(Message::Pong(_))) => {
                pong_deadline = Instant::now() + rules.pong_timeout;
                continue;
            }
            // tungstenite answers pings by itself.
            Some(Ok(Message::Ping(_))) => continue,
            Some(Ok(Message::Close(_))) => return Outcome::PeerClosed,
        };

        let reply = if !bucket.try_take(Instant::now()) {
            ErrorFrame::new(
                "RATE_LIMIT",
                "more than the allowed messages per second; this message was dropped",
            )
            .to_json()
        } else {
            match ChatMessage::from_client(text.as_str(), user_id) {
                Ok(message) => {
                    hub.publish(&message);
                    continue;
                }
                Err(reason) => ErrorFrame::new("INVALID_MESSAGE", &reason).to_json(),
            }
        };
        if errors.send(Utf8Bytes::from(reply)).await.is_err() {
            return Outcome::Gone;
        }
    }
}

/// Classifies a read error: an oversized frame or message is closed with 1009 (tungstenite reports
/// it but sends nothing itself); anything else means the transport is unusable.
fn read_error(e: axum::Error) -> Outcome {
    let inner = e.into_inner();
    match inner.downcast_ref::<tungstenite::Error>() {
        Some(tungstenite::Error::Capacity(_)) => {
            Outcome::Close(close_code::SIZE, "message too big")
        }
        Some(tungstenite::Error::Utf8(_)) => {
            Outcome::Close(close_code::INVALID, "text frame is not UTF-8")
        }
        Some(tungstenite::Error::Protocol(_)) => {
            Outcome::Close(close_code::PROTOCOL, "protocol error")
        }
        _ => Outcome::Gone,
    }
}

/// The notice a client gets in place of `missed` messages it fell too far behind to receive.
pub(super) fn missed_notice(missed: u64) -> Utf8Bytes {
    let notice = ChatMessage::system(&format!(
        "You missed {missed} messages because your connection fell behind"
    ));
    Utf8Bytes::from(notice.to_json())
}

/// This connection's part of the writing: the periodic pings, the reader's error frames, and
/// whatever the fan-out left queued when the client could not keep up. The hub's messages
/// themselves are written by the fan-out (see [`super::fanout`]).
async fn writer(
    outbox: &Outbox,
    history: &Mutex<History>,
    mut errors: mpsc::Receiver<Utf8Bytes>,
    rules: ConnectionRules,
) -> Outcome {
    let mut ping =
        tokio::time::interval_at(Instant::now() + rules.ping_interval, rules.ping_interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let first = tokio::select! {
            // The ping first, then the reader's errors (they answer this client's own frames),
            // then the backlog.
            biased;
            _ = ping.tick() => Some(Message::Ping(bytes::Bytes::new())),
            Some(error) = errors.recv() => Some(Message::Text(error)),
            () = outbox.woken() => None,
        };
        if outbox.hub_closed() {
            return Outcome::Close(close_code::AWAY, "chat hub closed");
        }
        if !outbox.send(history, first).await {
            return Outcome::Gone;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_rate_then_refills() {
        let t0 = Instant::now();
        let mut b = Bucket::new(20, t0);
        for _ in 0..20 {
            assert!(b.try_take(t0));
        }
        assert!(!b.try_take(t0));
        let t1 = t0 + Duration::from_millis(100);
        assert!(b.try_take(t1));
        assert!(b.try_take(t1));
        assert!(!b.try_take(t1));
        // Saving up is capped at one second's worth.
        let t2 = t1 + Duration::from_secs(10);
        for _ in 0..20 {
            assert!(b.try_take(t2));
        }
        assert!(!b.try_take(t2));
    }
}
