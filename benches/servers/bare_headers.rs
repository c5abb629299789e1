//! Bare axum plus the response headers the demo's contract puts on every answer, as constant
//! values set by one `map_response`: the floor of what those bytes cost (hyper encodes them, the
//! kernel copies them) with no middleware work at all. A reference point of the load benchmark
//! (`benches/load.rs`), not a server anyone should run.
//!
//! Run with
//!
//! ```not_rust
//! cargo run --release --example bare-headers -- 127.0.0.1:9001
//! ```

mod users;

use std::sync::Arc;

use axum::response::Response;
use crosscut::security_headers::SecurityHeadersLayer;
use http::header::{HeaderName, HeaderValue};

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
fn contract_headers() -> Arc<[(HeaderName, HeaderValue)]> {
    let security = SecurityHeadersLayer::new();
    let others = OTHER_HEADERS
        .into_iter()
        .map(|(n, v)| (HeaderName::from_static(n), HeaderValue::from_static(v)));
    security.headers().iter().cloned().chain(others).collect()
}

#[tokio::main]
async fn main() {
    let headers = contract_headers();
    let app = users::routes().layer(axum::middleware::map_response(move |mut res: Response| {
        let headers = Arc::clone(&headers);
        async move {
            let map = res.headers_mut();
            map.reserve(headers.len());
            for (name, value) in headers.iter() {
                map.insert(name.clone(), value.clone());
            }
            res
        }
    }));
    users::serve(users::addr_from_args(), app).await;
}
