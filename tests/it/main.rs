//! Black-box integration tests: each module starts the real demo server on an ephemeral port and
//! talks to it over HTTP or WebSocket. One test binary keeps link time down.

#![allow(unreachable_pub, missing_docs)]
mod api;
mod auth;
mod browser;
mod chat;
mod common;
mod config;
mod edge;
mod hardening;
mod health;
mod lifecycle;
mod logging;
mod metrics;
mod rate_limit;
mod sse;
