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

use axum::response::Response;
use http::header::{HeaderName, HeaderValue};

/// The demo's headers on `GET /api/v1/users` without `Origin`: nine security headers, a request
/// id, four RateLimit headers and the two connection counters, values of the same length.
const HEADERS: [(&str, &str); 16] = [
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    (
        "strict-transport-security",
        "max-age=31536000; includeSubDomains",
    ),
    ("content-security-policy", "default-src 'self'"),
    ("referrer-policy", "no-referrer"),
    ("x-xss-protection", "0"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    ("x-permitted-cross-domain-policies", "none"),
    ("x-request-id", "9f3eb1df-f782-42d2-8410-30a9f0bdb59f"),
    ("ratelimit-limit", "1000000000"),
    ("ratelimit-remaining", "999999999"),
    ("ratelimit-reset", "0"),
    ("ratelimit-policy", "1000000000;w=1"),
    ("x-active-connections", "64"),
    ("x-total-requests", "1234567"),
];

async fn add_headers(mut res: Response) -> Response {
    let headers = res.headers_mut();
    headers.reserve(HEADERS.len());
    for (name, value) in HEADERS {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    res
}

#[tokio::main]
async fn main() {
    let app = users::routes().layer(axum::middleware::map_response(add_headers));
    users::serve(users::addr_from_args(), app).await;
}
