//! Reusable tower layers for axum: the cross-cutting concerns of an HTTP service, each a real
//! [`tower::Layer`] usable on its own, plus a preset that stacks them in the right order.
//!
//! Every layer that can answer on its own (401, 403, 408, 413, 429, 500, 503) answers with the same
//! JSON body, built by [`error::ApiError`].
//!
//! # Feature flags
//!
//! No feature is on by default: turn on the layers you use, or `full` for all of them.
//!
//! | feature | module | what it brings |
//! |---|---|---|
//! | `request-id` | [`request_id`] | `X-Request-ID` kept or generated, echoed on the response |
//! | `access-log` | [`access_log`] | one `tracing` event per request with status and latency |
//! | `security-headers` | [`security_headers`] | the usual hardening headers, built once |
//! | `cors` | [`cors`] | CORS from an exact-origin list, 204 preflights |
//! | `timeout` | [`timeout`] | 408 JSON when a handler runs too long |
//! | `catch-panic` | [`catch_panic`] | 500 JSON for a panicking handler; the message is logged, never sent |
//! | `body-limit` | [`body_limit`] | 413 JSON for bodies over a limit |
//! | `compression` | [`compression`] | gzip and brotli, never on event streams |
//! | `auth-jwt` | [`auth`] | bearer JWT validation, a `Claims` extractor and permission checks |
//! | `rate-limit` | [`rate_limit`] | keyed GCRA limiting with RateLimit headers |
//! | `connections` | [`connections`] | open-connection and request counters, overload shedding |
//! | `metrics` | [`metrics`] | Prometheus metrics per route template, no global recorder |
//! | `preset` | [`preset`] | the recommended stack in one line |
//! | `full` | all of the above | |
#![cfg_attr(docsrs, feature(doc_cfg))]

#[macro_use]
mod macros;

pub mod error;

#[cfg(any(
    feature = "request-id",
    feature = "security-headers",
    feature = "cors",
    feature = "rate-limit",
    feature = "connections"
))]
mod room;
#[cfg(any(feature = "rate-limit", feature = "connections"))]
mod value;

#[cfg(feature = "access-log")]
pub mod access_log;
#[cfg(feature = "auth-jwt")]
pub mod auth;
#[cfg(feature = "body-limit")]
pub mod body_limit;
#[cfg(feature = "catch-panic")]
pub mod catch_panic;
#[cfg(feature = "compression")]
pub mod compression;
#[cfg(feature = "connections")]
pub mod connections;
#[cfg(feature = "cors")]
pub mod cors;
#[cfg(feature = "metrics")]
pub mod metrics;
#[cfg(feature = "preset")]
pub mod preset;
#[cfg(feature = "rate-limit")]
pub mod rate_limit;
#[cfg(feature = "request-id")]
pub mod request_id;
#[cfg(feature = "security-headers")]
pub mod security_headers;
#[cfg(feature = "timeout")]
pub mod timeout;

pub use error::{ApiError, ErrorCode};
