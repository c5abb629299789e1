//! Per-client rate limiting on governor's keyed GCRA, with the IETF RateLimit headers.
//!
//! [`RateLimitLayer`] counts each request against its client's quota ([`RateLimit`]: requests a
//! second and burst size) and answers 429 `RATE_LIMIT` with `Retry-After` (whole seconds, at least 1)
//! once the quota is spent. Every response of a limited route carries `RateLimit-Limit` (the burst),
//! `RateLimit-Remaining`, `RateLimit-Reset` (seconds until the whole burst is back) and
//! `RateLimit-Policy` (`200;w=2` for 100 a second with bursts of 200).
//!
//! Clients are keyed by IP by default ([`ClientIp`]: the peer address, `X-Forwarded-For` only from
//! trusted proxies, IPv6 per /64), or by any function of the request ([`KeyExtractor`]).
//!
//! Idle keys are reclaimed in the background: the first request served inside a tokio runtime starts a
//! task that every 30 s ([`RateLimitLayer::reclaim_every`]) drops the keys whose state is the same as a
//! fresh key's. The task holds only a weak reference and ends once the layer is dropped.
//!
//! # Example
//!
//! Per client IP, behind a proxy at 10.0.0.1:
//!
//! ```
//! use std::net::SocketAddr;
//! use axum::{body::Body, extract::ConnectInfo, routing::get, Router};
//! use crosscut::rate_limit::{RateLimit, RateLimitLayer};
//! use http::{Request, StatusCode};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let app = Router::new()
//!     .route("/", get(|| async { "hi" }))
//!     .layer(
//!         RateLimitLayer::new(RateLimit::per_second(1).burst(2))
//!             .trusted_proxies(["10.0.0.0/8".parse().unwrap()]),
//!     );
//! // In a server, `into_make_service_with_connect_info::<SocketAddr>()` provides this.
//! let request = || {
//!     let mut req = Request::get("/").header("x-forwarded-for", "203.0.113.7");
//!     req.extensions_mut().unwrap().insert(ConnectInfo(SocketAddr::from(([10, 0, 0, 1], 4000))));
//!     req.body(Body::empty()).unwrap()
//! };
//!
//! let res = app.clone().oneshot(request()).await.unwrap();
//! assert_eq!(res.status(), StatusCode::OK);
//! assert_eq!(res.headers()["ratelimit-limit"], "2");
//! assert_eq!(res.headers()["ratelimit-remaining"], "1");
//! assert_eq!(res.headers()["ratelimit-policy"], "2;w=2");
//!
//! app.clone().oneshot(request()).await.unwrap();
//! let res = app.oneshot(request()).await.unwrap();
//! assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
//! assert_eq!(res.headers()["retry-after"], "1");
//! # }
//! ```
//!
//! Per JWT subject, with the [`auth`](crate::auth) layer in front (requests without claims share one
//! key):
//!
//! ```
//! # #[cfg(feature = "auth-jwt")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use std::time::Duration;
//! use axum::{body::Body, routing::get, Router};
//! use crosscut::auth::{Claims, JwtAuthLayer, JwtKeys};
//! use crosscut::rate_limit::{RateLimit, RateLimitLayer};
//! use http::{header::AUTHORIZATION, Request, StatusCode};
//! use tower::ServiceExt;
//!
//! let keys = JwtKeys::hs256("an example secret of at least 32 bytes").unwrap();
//! let by_subject = |req: &Request<Body>| req.extensions().get::<Claims>().map(|c| c.sub.clone());
//! let app = Router::new()
//!     .route("/", get(|| async { "hi" }))
//!     // Added first, so it runs after (inside) the auth layer and sees the claims.
//!     .layer(RateLimitLayer::keyed_by(RateLimit::per_second(1), by_subject))
//!     .layer(JwtAuthLayer::new(keys.clone()));
//!
//! let as_user = |sub: &str| {
//!     let token = keys.issue(sub, ["read"], Duration::from_secs(60)).unwrap();
//!     Request::get("/").header(AUTHORIZATION, format!("Bearer {token}")).body(Body::empty()).unwrap()
//! };
//! assert_eq!(app.clone().oneshot(as_user("alice")).await.unwrap().status(), StatusCode::OK);
//! let res = app.clone().oneshot(as_user("alice")).await.unwrap();
//! assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
//! // Another subject has its own quota.
//! assert_eq!(app.oneshot(as_user("bob")).await.unwrap().status(), StatusCode::OK);
//! # }
//! # #[cfg(not(feature = "auth-jwt"))]
//! # fn main() {}
//! ```
//!
//! # Differences from `tower_governor`
//!
//! `RateLimit::per_second(100)` means 100 requests a second. `tower_governor`'s `per_second(n)` means
//! one request every `n` seconds. Over-quota requests get the uniform JSON error body, and the
//! reclamation of idle keys needs no set-up.

mod headers;
mod key;
mod layer;
mod quota;

pub use headers::{RATELIMIT_LIMIT, RATELIMIT_POLICY, RATELIMIT_REMAINING, RATELIMIT_RESET};
pub use key::{ClientIp, KeyExtractor, X_FORWARDED_FOR};
pub use layer::{RateLimitLayer, RateLimitService, ResponseFuture, DEFAULT_RECLAIM_INTERVAL};
pub use quota::RateLimit;

#[cfg(test)]
mod tests;
