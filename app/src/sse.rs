//! `GET /sse/metrics[?interval_ms=N]`: live figures as Server-Sent Events (`CONTRACT.md` section 6).
//!
//! Each stream reads the sampler's latest sample at its own interval, so a subscriber costs a timer
//! and a small serialization per event, never a system scan. A stream ends when the client goes
//! away (hyper drops the body, which drops the stream and its [`SubscriberGuard`]) or when the server
//! starts shutting down.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use axum::Router;
use crosscut::error::ApiError;
use futures_util::{stream, Stream, StreamExt};
use serde::Serialize;
use tokio::time::{Interval, MissedTickBehavior};

use crate::AppState;

/// Default time between events.
pub const DEFAULT_INTERVAL_MS: u64 = 1000;
/// Shortest accepted `interval_ms`.
pub const MIN_INTERVAL_MS: u64 = 100;
/// Longest accepted `interval_ms`.
pub const MAX_INTERVAL_MS: u64 = 60_000;
/// Time between keep-alive comments, so idle proxies keep the stream open.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Counts the SSE streams open right now (the `sse_subscribers_active` figure). Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct SseGauge(Arc<AtomicUsize>);

impl SseGauge {
    /// A gauge at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Streams open right now.
    pub fn active(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    /// Counts one stream until the returned guard is dropped.
    pub fn enter(&self) -> SubscriberGuard {
        self.0.fetch_add(1, Ordering::Relaxed);
        SubscriberGuard(Arc::clone(&self.0))
    }
}

/// Holds one count in an [`SseGauge`]; lives inside the stream, so the count falls when the
/// stream is dropped for any reason.
#[derive(Debug)]
pub struct SubscriberGuard(Arc<AtomicUsize>);

impl Drop for SubscriberGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The SSE routes: `GET /sse/metrics`. Merge them where no timeout or compression applies.
pub fn routes() -> Router<AppState> {
    Router::new().route("/sse/metrics", get(metrics))
}

#[derive(Debug, serde::Deserialize)]
struct SseQuery {
    // A string, so that a bad value gets our message naming the field rather than serde's.
    interval_ms: Option<String>,
}

/// Parses `interval_ms`: absent is the default; otherwise an integer in 100-60000.
fn interval(raw: Option<&str>) -> Result<Duration, ApiError> {
    let Some(raw) = raw else {
        return Ok(Duration::from_millis(DEFAULT_INTERVAL_MS));
    };
    match raw.trim().parse::<u64>() {
        Ok(ms) if (MIN_INTERVAL_MS..=MAX_INTERVAL_MS).contains(&ms) => {
            Ok(Duration::from_millis(ms))
        }
        _ => Err(ApiError::validation(format!(
            "interval_ms must be an integer from {MIN_INTERVAL_MS} to {MAX_INTERVAL_MS}"
        ))),
    }
}

/// The `metrics` object of an event.
#[derive(Debug, Serialize)]
struct Figures {
    cpu_usage: f32,
    memory_used: u64,
    memory_total: u64,
    process_count: usize,
    uptime: u64,
    process_rss_bytes: u64,
    active_connections: u64,
    requests_total: u64,
}

#[derive(Debug, Serialize)]
struct Payload {
    id: u64,
    timestamp: u64,
    metrics: Figures,
}

/// Open connections and requests served so far, from the connection tracker.
fn traffic(state: &AppState) -> (u64, u64) {
    (
        state.tracker.open_connections() as u64,
        state.tracker.total_requests(),
    )
}

fn event(state: &AppState, id: u64) -> Event {
    let sample = state.sampler.latest();
    let (active_connections, requests_total) = traffic(state);
    let payload = Payload {
        id,
        timestamp: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        metrics: Figures {
            cpu_usage: sample.cpu_usage,
            memory_used: sample.memory_used,
            memory_total: sample.memory_total,
            process_count: sample.process_count,
            uptime: state.sampler.uptime().as_secs(),
            process_rss_bytes: sample.process_rss_bytes,
            active_connections,
            requests_total,
        },
    };
    // Numbers and a fixed shape: serialization cannot fail, the fallback only avoids an unwrap.
    let data = serde_json::to_string(&payload).unwrap_or_default();
    Event::default().id(id.to_string()).data(data)
}

/// What one stream carries between events.
struct Subscriber {
    state: AppState,
    ticks: Interval,
    sent: u64,
    _guard: SubscriberGuard,
    // The same count in Prometheus' `sse_subscribers_active`.
    _metric: crosscut::metrics::GaugeGuard,
}

fn events(state: AppState, every: Duration) -> impl Stream<Item = Result<Event, Infallible>> {
    let mut ticks = tokio::time::interval(every);
    // A client that reads slowly gets fewer events, not a burst of stale ones.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let shutdown = state.shutdown.clone();
    let subscriber = Subscriber {
        _guard: state.sse.enter(),
        _metric: state.metrics.sse_subscriber(),
        state,
        ticks,
        sent: 0,
    };
    stream::unfold(subscriber, |mut sub| async move {
        // The first tick completes at once: a new subscriber sees figures immediately.
        sub.ticks.tick().await;
        sub.sent += 1;
        let event = event(&sub.state, sub.sent);
        Some((Ok(event), sub))
    })
    .take_until(async move { shutdown.wait().await })
}

async fn metrics(
    State(state): State<AppState>,
    query: Result<Query<SseQuery>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let Ok(Query(query)) = query else {
        return Err(ApiError::validation("the query string is malformed"));
    };
    let every = interval(query.interval_ms.as_deref())?;
    Ok(Sse::new(events(state, every)).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_is_validated() {
        assert_eq!(interval(None).unwrap(), Duration::from_millis(1000));
        assert_eq!(interval(Some("100")).unwrap(), Duration::from_millis(100));
        assert_eq!(interval(Some("60000")).unwrap(), Duration::from_secs(60));
        for bad in ["99", "60001", "-1", "abc", "", "1.5"] {
            assert!(interval(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn guard_counts_down_on_drop() {
        let gauge = SseGauge::new();
        let g = gauge.enter();
        assert_eq!(gauge.active(), 1);
        drop(g);
        assert_eq!(gauge.active(), 0);
    }
}
