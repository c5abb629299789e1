//! Bare axum's routes served the way the demo serves its router: the demo's listener (TCP_NODELAY
//! and the connection tracker with its limit) and `crosscut_demo::server::serve` (hyper HTTP/1
//! with its header-read watchdog, header limits and graceful shutdown), and no middleware at all.
//! A reference point of the load benchmark (`benches/load.rs`): what the demo pays per request
//! before any layer runs.
//!
//! Run with
//!
//! ```not_rust
//! cargo run --release --example demo-conn -- 127.0.0.1:9001
//! ```

// This server has its own serve loop; `users::serve` is bare axum's.
#[allow(dead_code)]
mod users;

use crosscut::connections::{TrackedListener, Tracker};
use crosscut_demo::server::{serve, ServeOptions};

#[tokio::main]
async fn main() {
    let addr = users::addr_from_args();
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .expect("cannot bind the listen address");
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let listener = TrackedListener::new(listener, Tracker::new(), 20_000);
    println!("listening on http://{addr}");
    serve(
        listener,
        users::routes(),
        ServeOptions::default(),
        std::future::pending(),
    )
    .await;
}
