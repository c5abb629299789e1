//! `GET /ws/chat`: the WebSocket chat room of `CONTRACT.md` section 5.
//!
//! The handler settles who the client is before the upgrade (a bad token is an ordinary 401 JSON
//! response), then hands the socket to `connection`, which runs the reader and writer. Messages go
//! through a [`ChatHub`]; [`LocalHub`] is the in-process implementation. One fan-out task per
//! server (`fanout`) takes the hub's messages and writes them to every connection.
//!
//! WebSocket buffers are sized for many idle connections: 4 KiB read and write buffers instead of
//! tungstenite's 128 KiB defaults, so that 10,000 idle clients stay well under 16 KiB each. The
//! 64 KiB frame and message limits make a larger frame a 1009 close rather than a memory spike.

mod connection;
mod fanout;
mod hub;
mod message;

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use crosscut::auth::JwtKeys;
use crosscut::error::{ApiError, ErrorCode};
use http::header::{HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use http::HeaderMap;
use rand::Rng;

pub use connection::ConnectionRules;
pub use hub::{ChatHub, Delivery, LocalHub, DEFAULT_CAPACITY};
pub use message::{
    escape_html, ChatMessage, ErrorFrame, MessageType, MAX_CONTENT_CHARS, MAX_USERNAME_CHARS,
};

use crate::AppState;

/// Largest frame or message a client may send; larger ones close the connection with 1009.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Read and write buffer size per connection (see the module docs).
const BUFFER_BYTES: usize = 4 * 1024;

/// Most bytes queued for writing before a send fails: room for one maximal outgoing message
/// (1000 characters of `'`, escaped to 6 bytes each, plus the JSON around them) with margin.
const MAX_WRITE_BUFFER_BYTES: usize = 64 * 1024;

/// The connections of one server and the fan-out task that writes the hub's messages to them.
struct Room {
    hub: Arc<dyn ChatHub>,
    registry: Arc<fanout::Registry>,
    /// The fan-out task; it starts with the first connection, inside the runtime, and again with
    /// the next connection if it ever ended (its runtime shut down, or it panicked), so that chat
    /// delivery cannot stop for good.
    fanout: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Room {
    fn new(hub: Arc<dyn ChatHub>) -> Self {
        Self {
            hub,
            // A slow client catches up on as many messages as the hub lets a receiver lag.
            registry: Arc::new(fanout::Registry::new(DEFAULT_CAPACITY)),
            fanout: Mutex::new(None),
        }
    }

    fn hub(&self) -> &Arc<dyn ChatHub> {
        &self.hub
    }

    fn history(&self) -> &std::sync::Mutex<fanout::History> {
        self.registry.history()
    }

    /// Adds a connection to the fan-out. Must run inside the tokio runtime.
    fn join(
        &self,
        sink: futures_util::stream::SplitSink<
            axum::extract::ws::WebSocket,
            axum::extract::ws::Message,
        >,
    ) -> fanout::Membership {
        ensure_running(&self.fanout, || {
            // Subscribed here, before the caller publishes its join notice, so that notice
            // reaches the newcomer too.
            let feed = self.hub.subscribe();
            tokio::spawn(fanout::run(Arc::clone(&self.registry), feed))
        });
        self.registry.join(sink)
    }
}

/// Starts the task in `slot` with `start` unless it is running.
fn ensure_running(
    slot: &Mutex<Option<tokio::task::JoinHandle<()>>>,
    start: impl FnOnce() -> tokio::task::JoinHandle<()>,
) {
    let mut task = slot.lock().unwrap_or_else(PoisonError::into_inner);
    if !task.as_ref().is_some_and(|t| !t.is_finished()) {
        *task = Some(start());
    }
}

/// The chat room's shared state: the hub, the token keys and the live-connection count.
#[derive(Clone)]
pub struct Chat {
    room: Arc<Room>,
    keys: Option<JwtKeys>,
    active: Arc<AtomicUsize>,
    rules: ConnectionRules,
}

impl fmt::Debug for Chat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chat")
            .field("hub", &self.room.hub)
            .field("active", &self.active_connections())
            .finish_non_exhaustive()
    }
}

impl Chat {
    /// A room on an in-process [`LocalHub`], checking tokens with `keys` (`None`: every token is
    /// refused, connections without one are anonymous).
    pub fn new(keys: Option<JwtKeys>) -> Self {
        Self::with_hub(Arc::new(LocalHub::default()), keys)
    }

    /// A room on another hub, e.g. one shared by several instances.
    pub fn with_hub(hub: Arc<dyn ChatHub>, keys: Option<JwtKeys>) -> Self {
        Self {
            room: Arc::new(Room::new(hub)),
            keys,
            active: Arc::new(AtomicUsize::new(0)),
            rules: ConnectionRules::default(),
        }
    }

    /// A room whose keys come from `jwt_secret` (HS256, 30 s leeway, `exp` required).
    pub fn from_secret(jwt_secret: Option<&str>) -> Self {
        // A secret that fails here is rejected by config validation already; without keys every
        // token is simply refused, which is the safe side.
        Self::new(jwt_secret.and_then(|s| JwtKeys::hs256(s).ok()))
    }

    /// Replaces the per-connection timing and rate rules.
    #[must_use]
    pub fn with_rules(mut self, rules: ConnectionRules) -> Self {
        self.rules = rules;
        self
    }

    /// Open chat connections right now (the `ws_connections_active` figure).
    pub fn active_connections(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// The hub messages go through.
    pub fn hub(&self) -> &Arc<dyn ChatHub> {
        self.room.hub()
    }

    /// Who the request is: the `sub` of a valid token from `Authorization: Bearer` or
    /// `?access_token=`, else `anonymous_` and 8 random digits. `X-User-ID` is never read.
    ///
    /// # Errors
    ///
    /// 401 `INVALID_TOKEN` when a token is present but not valid (or not a bearer token).
    pub fn identify(
        &self,
        headers: &HeaderMap,
        query_token: Option<&str>,
    ) -> Result<String, ApiError> {
        let token = match headers.get(AUTHORIZATION) {
            Some(value) => Some(bearer(value)?),
            None => query_token,
        };
        match token {
            Some(token) => self.verify(token),
            None => Ok(format!(
                "anonymous_{:08}",
                rand::rng().random_range(0..100_000_000u32)
            )),
        }
    }

    /// The token check, one call: the `sub` of a valid token.
    fn verify(&self, token: &str) -> Result<String, ApiError> {
        match &self.keys {
            Some(keys) => keys.verify(token).map(|claims| claims.sub),
            None => Err(invalid_token("no key is configured to check tokens")),
        }
    }
}

fn invalid_token(message: &'static str) -> ApiError {
    ApiError::new(ErrorCode::InvalidToken, message).with_header(
        WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer error=\"invalid_token\""),
    )
}

fn bearer(value: &HeaderValue) -> Result<&str, ApiError> {
    let malformed = || invalid_token("the Authorization header is not a bearer token");
    let value = value.to_str().map_err(|_| malformed())?;
    let (scheme, token) = value.split_once(' ').ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(malformed());
    }
    Ok(token.trim())
}

/// The query of `/ws/chat`.
#[derive(Debug, serde::Deserialize)]
struct ChatQuery {
    access_token: Option<String>,
}

/// The chat routes: `GET /ws/chat`. Merge them where no timeout or compression applies.
pub fn routes() -> Router<AppState> {
    Router::new().route("/ws/chat", get(upgrade))
}

async fn upgrade(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<ChatQuery>, axum::extract::rejection::QueryRejection>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let query_token = match &query {
        Ok(Query(q)) => q.access_token.as_deref(),
        Err(_) => return ApiError::validation("the query string is malformed").into_response(),
    };
    // Identity first: a bad token is refused with 401 whether or not the upgrade is well formed.
    let user_id = match state.chat.identify(&headers, query_token) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(e) => {
            return ApiError::validation(format!("a WebSocket upgrade is required: {e}"))
                .into_response()
        }
    };
    let chat = state.chat.clone();
    let shutdown = state.shutdown.clone();
    // Counts in `ws_connections_active` from here; moved into the connection task, so it is
    // released when the connection ends or the upgrade fails.
    let metric = state.metrics.ws_connection();
    ws.read_buffer_size(BUFFER_BYTES)
        .write_buffer_size(BUFFER_BYTES)
        .max_write_buffer_size(MAX_WRITE_BUFFER_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .max_message_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| async move {
            connection::run(
                socket,
                user_id,
                chat.room,
                chat.active,
                chat.rules,
                shutdown,
            )
            .await;
            drop(metric);
        })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    #[tokio::test]
    async fn the_fan_out_is_started_once_and_again_if_it_ended() {
        let slot = Mutex::new(None);
        let starts = AtomicUsize::new(0);
        let start = |forever: bool| {
            starts.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                if forever {
                    std::future::pending::<()>().await;
                }
            })
        };
        ensure_running(&slot, || start(false));
        // Let the task finish.
        while !slot.lock().unwrap().as_ref().unwrap().is_finished() {
            tokio::task::yield_now().await;
        }
        ensure_running(&slot, || start(true));
        ensure_running(&slot, || start(true));
        ensure_running(&slot, || start(true));
        assert_eq!(starts.load(Ordering::Relaxed), 2);
    }
}
