//! Bare axum: the baseline of the load benchmark (`benches/load.rs`). The demo's
//! `GET /api/v1/users` and plaintext route with no middleware at all, on tokio's default
//! multi-thread runtime like the demo (under `taskset -c 0` it has one worker).
//!
//! With a second argument, a number of nanoseconds, every request first busy-waits that long
//! (`bare-spin` in the load bench): in-process work of a known length and nothing else, to
//! measure what one microsecond spent in the server costs under load, where the kernel's share of
//! a request grows as the server slows (see `BENCHMARKS.md`).
//!
//! Run with
//!
//! ```not_rust
//! cargo run --release --example bare -- 127.0.0.1:9001
//! cargo run --release --example bare -- 127.0.0.1:9001 3000   # 3 µs of busy wait per request
//! ```

mod users;

use std::time::{Duration, Instant};

#[tokio::main]
async fn main() {
    let spin: Option<u64> = std::env::args().nth(2).map(|ns| {
        ns.parse()
            .expect("the second argument is a number of nanoseconds")
    });
    let routes = users::routes();
    let Some(ns) = spin else {
        users::serve(users::addr_from_args(), routes).await;
        return;
    };
    let spin = Duration::from_nanos(ns);
    let routes = routes.layer(tower::util::MapRequestLayer::new(move |req| {
        let start = Instant::now();
        while start.elapsed() < spin {
            std::hint::spin_loop();
        }
        req
    }));
    users::serve(users::addr_from_args(), routes).await;
}
