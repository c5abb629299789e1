//! Bare axum plus the response headers the demo's contract puts on every answer, as constant
//! values inserted by one tower `MapResponse`: the floor of what those headers cost (a map insert
//! each, hyper encodes them, the kernel copies them) with no middleware work at all. A reference point of the load benchmark
//! (`benches/load.rs`), not a server anyone should run.
//!
//! With `one-header` after the address it sends the same number of header bytes as one header
//! (`x-pad`, its value padding) instead of sixteen: the load benchmark's `bare-bytes`, which tells
//! what the headers cost by their number (a map insert, hyper's encoding and the client's parsing
//! per field) from what they cost by their bytes.
//!
//! With `log` it also writes the demo's access log line for every request, the way the demo
//! writes it (the demo's subscriber set-up at `RUST_LOG`'s level, crosscut's access log layer
//! with the demo's `AccessLines` sink, the demo's batched writer to stdout, a request id in the
//! line): the load benchmark's `bare-headers-log`, the floor for the demo with its access log on.
//! The id is a constant put in the request's extensions, so no middleware work is done besides
//! the line.
//!
//! Run with
//!
//! ```not_rust
//! cargo run --release --example bare-headers -- 127.0.0.1:9001
//! cargo run --release --example bare-headers -- 127.0.0.1:9001 one-header
//! RUST_LOG=info cargo run --release --example bare-headers -- 127.0.0.1:9001 log > access.log
//! ```

mod users;

use axum::response::Response;
use crosscut::access_log::AccessLogLayer;
use crosscut::request_id::RequestId;
use crosscut::security_headers::SecurityHeadersLayer;
use crosscut_demo::log_format::{AccessLines, PlainText};
use crosscut_demo::log_writer::{batch_writer, FlushGuard};
use http::header::{HeaderName, HeaderValue};
use http::Request;
use tower::util::MapResponseLayer;
use tower::ServiceBuilder;

/// The demo's other headers on `GET /api/v1/users` without `Origin`: a request id, four RateLimit
/// headers and the two connection counters, values of the same length.
const OTHER_HEADERS: [(&str, &str); 7] = [
    ("x-request-id", "9f3eb1df-f782-42d2-8410-30a9f0bdb59f"),
    ("ratelimit-limit", "1000000000"),
    ("ratelimit-remaining", "999999999"),
    ("ratelimit-reset", "0"),
    ("ratelimit-policy", "1000000000;w=1"),
    ("x-active-connections", "64"),
    ("x-total-requests", "1234567"),
];

/// The nine security headers exactly as the library sends them, then the others, built once.
fn contract_headers() -> Vec<(HeaderName, HeaderValue)> {
    let security = SecurityHeadersLayer::new();
    let others = OTHER_HEADERS
        .into_iter()
        .map(|(n, v)| (HeaderName::from_static(n), HeaderValue::from_static(v)));
    security.headers().iter().cloned().chain(others).collect()
}

/// One `x-pad` header taking as many bytes on the wire as `headers` (`name: value\r\n` each).
fn as_one_header(headers: &[(HeaderName, HeaderValue)]) -> Vec<(HeaderName, HeaderValue)> {
    let wire: usize = headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum();
    let name = HeaderName::from_static("x-pad");
    let value = HeaderValue::try_from("p".repeat(wire - name.as_str().len() - 4))
        .expect("letters are a valid header value");
    vec![(name, value)]
}

/// The demo's subscriber and access log sink (`app/src/main.rs`), plain text to stdout; the
/// guard flushes the writer at exit.
fn demo_access_log() -> (AccessLogLayer, FlushGuard) {
    let (writer, guard) = batch_writer(std::io::stdout());
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer.clone())
        .with_ansi(false)
        .event_format(PlainText)
        .init();
    (AccessLogLayer::with_sink(AccessLines::text(writer)), guard)
}

#[tokio::main]
async fn main() {
    let mode = std::env::args().nth(2);
    let mut headers = contract_headers();
    if mode.as_deref() == Some("one-header") {
        headers = as_one_header(&headers);
    }
    // Kept for the life of the process, so that a request borrows the list instead of counting
    // a reference to it.
    let headers: &'static [(HeaderName, HeaderValue)] = headers.leak();
    // tower's `MapResponse` rather than axum's `map_response`, which boxes a future per request:
    // what is measured is the headers, not the middleware carrying them.
    let add_headers = MapResponseLayer::new(move |mut res: Response| {
        let map = res.headers_mut();
        map.reserve(headers.len());
        for (name, value) in headers {
            map.insert(name.clone(), value.clone());
        }
        res
    });
    if mode.as_deref() != Some("log") {
        users::serve(users::addr_from_args(), users::routes().layer(add_headers)).await;
        return;
    }
    let (access_log, _guard) = demo_access_log();
    let id = RequestId::from_header(&HeaderValue::from_static(OTHER_HEADERS[0].1))
        .expect("a UUID is an acceptable request id");
    // One `Router::layer`, as each of the demo's route groups has.
    let stack = ServiceBuilder::new()
        .map_request(move |mut req: Request<axum::body::Body>| {
            req.extensions_mut().insert(id.clone());
            req
        })
        .layer(access_log)
        .layer(add_headers);
    users::serve(users::addr_from_args(), users::routes().layer(stack)).await;
}
