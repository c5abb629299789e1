//! Routes that only exist with the `test-hooks` feature, so black-box tests can make a handler
//! panic or run long on a real server. The release binary built by `cargo run --release -p
//! crosscut-demo` does not have them; the load benchmark builds with the feature for its plaintext
//! route.

use std::time::Duration;

use axum::extract::Path;
use axum::routing::get;
use axum::Router;

use crate::AppState;

/// `/__test/panic` panics; `/__test/sleep/{ms}` answers after `ms` milliseconds (at most 60 s);
/// `/__test/plaintext` answers a fixed short text (the load benchmark's plaintext route).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/__test/plaintext", get(|| async { "Hello, World!" }))
        .route("/__test/panic", get(panic))
        .route("/__test/sleep/{ms}", get(sleep))
}

async fn panic() -> &'static str {
    panic!("test hook panicked on purpose")
}

async fn sleep(Path(ms): Path<u64>) -> String {
    tokio::time::sleep(Duration::from_millis(ms.min(60_000))).await;
    format!("slept {ms} ms")
}
