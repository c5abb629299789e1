//! `GET /health` and `GET /metrics`: what the server says about itself, every figure read live.
//!
//! Both sit outside the rate limiter (`app()` merges them into the unlimited group), so monitoring
//! keeps working when a client is over its quota. Counts come from the connection [`Tracker`]
//! (crate::AppState::tracker), system memory from the sampler's latest sample (at most one period
//! old), and the process RSS is read at the moment of the request, since it is the one figure a
//! caller compares against the system's own view.
//!
//! [`Tracker`]: crosscut::connections::Tracker

use axum::extract::State;
use axum::http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::sampler::current_rss_bytes;
use crate::AppState;

/// `/health` and `/metrics`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
}

/// The process RSS now; falls back to the latest sample where procfs is missing.
fn rss_bytes(state: &AppState) -> u64 {
    match current_rss_bytes() {
        0 => state.sampler.latest().process_rss_bytes,
        n => n,
    }
}

async fn health(State(state): State<AppState>) -> Response {
    let sample = state.sampler.latest();
    let tracker = &state.tracker;
    let body = serde_json::json!({
        "status": "healthy",
        "uptime_seconds": state.sampler.uptime().as_secs(),
        "memory": {
            "rss_bytes": rss_bytes(&state),
            "system_total_bytes": sample.memory_total,
            "system_available_bytes": sample.memory_available,
        },
        "connections": {
            "active": tracker.open_connections(),
            "total": tracker.total_connections(),
        },
        "requests": {
            "in_flight": tracker.in_flight_requests(),
            "total": tracker.total_requests(),
        },
    });
    // A health answer is a reading of this instant; a cached one would lie.
    (
        [(CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Json(body),
    )
        .into_response()
}

async fn metrics(State(state): State<AppState>, headers: http::HeaderMap) -> Response {
    let m = &state.metrics;
    // Figures that live elsewhere are copied in at scrape time rather than mirrored on every change.
    m.set_connections_from(&state.tracker);
    m.set_resident_memory_bytes(rss_bytes(&state));
    m.ws_connections()
        .set(i64::try_from(state.chat.active_connections()).unwrap_or(i64::MAX));
    m.sse_subscribers()
        .set(i64::try_from(state.sse.active()).unwrap_or(i64::MAX));
    // Prometheus asks for OpenMetrics in `Accept`; anyone else (curl, a script) gets the classic
    // text format the contract names.
    let open_metrics = headers
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let (content_type, body) = if open_metrics {
        (crosscut::metrics::CONTENT_TYPE, m.render())
    } else {
        (
            crosscut::metrics::PROMETHEUS_CONTENT_TYPE,
            m.render_prometheus(),
        )
    };
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response()
}
