//! Bare axum plus the response headers the demo's contract puts on every answer, as constant
//! values set by one `map_response`: the floor of what those bytes cost (hyper encodes them, the
//! kernel copies them) with no middleware work at all. A reference point of the load benchmark
//! (`benches/load.rs`), not a server anyone should run.
//!
//! With `one-header` after the address it sends the same number of header bytes as one header
//! (`x-pad`, its value padding) instead of sixteen: the load benchmark's `bare-bytes`, which tells
//! what the headers cost by their number (a map insert, hyper's encoding and the client's parsing
//! per field) from what they cost by their bytes.
//!
//! Run with
//!
//! ```not_rust
//! cargo run --release --example bare-headers -- 127.0.0.1:9001
//! cargo run --release --example bare-headers -- 127.0.0.1:9001 one-header
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

/// One `x-pad` header taking as many bytes on the wire as `headers` (`name: value\r\n` each).
fn as_one_header(headers: &[(HeaderName, HeaderValue)]) -> Arc<[(HeaderName, HeaderValue)]> {
    let wire: usize = headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum();
    let name = HeaderName::from_static("x-pad");
    let value = HeaderValue::try_from("p".repeat(wire - name.as_str().len() - 4))
        .expect("letters are a valid header value");
    Arc::new([(name, value)])
}

#[tokio::main]
async fn main() {
    let mut headers = contract_headers();
    if std::env::args().nth(2).as_deref() == Some("one-header") {
        headers = as_one_header(&headers);
    }
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
