//! The demo's concerns built the usual way from stock tower-http layers and tower_governor: the
//! comparison point of the load benchmark (`benches/load.rs`).
//!
//! From the outside in: `SetRequestIdLayer` (UUID v4), `TraceLayer` (a span per request and the
//! response event at INFO, to a fmt subscriber through tracing-appender's non-blocking writer to
//! stdout), `PropagateRequestIdLayer`, one `SetResponseHeaderLayer` per security header (nine),
//! `CatchPanicLayer`, `CorsLayer` (any origin), a per-IP `GovernorLayer` with a quota that does not
//! trip, and `TimeoutLayer` (30 s). `RUST_LOG` sets the level (`info` logs every request, `warn`
//! none), as for the demo.
//!
//! Run with
//!
//! ```not_rust
//! RUST_LOG=info cargo run --release --example stock -- 127.0.0.1:9003 > stock.log
//! ```

mod users;

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, StatusCode};
use tower::ServiceBuilder;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::GovernorLayer;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::CorsLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

fn header(name: &'static str, value: &'static str) -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::if_not_present(
        HeaderName::from_static(name),
        HeaderValue::from_static(value),
    )
}

#[tokio::main]
async fn main() {
    let (writer, _guard) = tracing_appender::non_blocking(std::io::stdout());
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .init();

    // tower_governor's `per_nanosecond(1)`: one token back every nanosecond, far beyond any load
    // one client can send, so the limiter does its bookkeeping but never answers 429.
    let governor = GovernorConfigBuilder::default()
        .per_nanosecond(1)
        .burst_size(1_000_000)
        .finish()
        .expect("valid governor quota");

    let stack = ServiceBuilder::new()
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(header("x-content-type-options", "nosniff"))
        .layer(header("x-frame-options", "DENY"))
        .layer(header(
            "strict-transport-security",
            "max-age=31536000; includeSubDomains",
        ))
        .layer(header("content-security-policy", "default-src 'self'"))
        .layer(header("referrer-policy", "no-referrer"))
        .layer(header("x-xss-protection", "0"))
        .layer(header("cross-origin-opener-policy", "same-origin"))
        .layer(header("cross-origin-resource-policy", "same-origin"))
        .layer(header("x-permitted-cross-domain-policies", "none"))
        .layer(CatchPanicLayer::new())
        .layer(CorsLayer::permissive())
        .layer(GovernorLayer::new(governor))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(30),
        ));

    users::serve(users::addr_from_args(), users::routes().layer(stack)).await;
}
