//! Bare axum: the baseline of the load benchmark (`benches/load.rs`). The demo's
//! `GET /api/v1/users` and plaintext route with no middleware at all, on tokio's default
//! multi-thread runtime like the demo (under `taskset -c 0` it has one worker).
//!
//! Run with
//!
//! ```not_rust
//! cargo run --release --example bare -- 127.0.0.1:9001
//! ```

mod users;

#[tokio::main]
async fn main() {
    users::serve(users::addr_from_args(), users::routes()).await;
}
