//! Serving connections with hyper directly, for the connection-level settings `axum::serve` hides.
//!
//! - **Slow headers (slowloris):** hyper's `header_read_timeout` closes a connection that has not
//!   sent a complete request head in time. hyper starts that timer whenever it waits for a request
//!   head, so the same setting also closes keep-alive connections left idle between requests.
//! - **Oversized headers:** `max_header_size` and `max_headers` make hyper answer 431 and close
//!   instead of buffering without bound.
//! - **Graceful shutdown:** on the shutdown signal the accept loop stops, every connection is told
//!   to finish its in-flight request and close, and the server waits up to the grace period.
//!   Upgraded (WebSocket) and streaming (SSE) connections are ended by the app itself through
//!   [`crate::Shutdown`], since hyper no longer tracks an upgraded connection.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::serve::Listener;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::watch;
use tower::ServiceExt;

/// Connection-level limits.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Time a client has to send a complete request head, and the longest a keep-alive
    /// connection may sit idle between requests.
    pub header_read_timeout: Duration,
    /// Largest request head, in bytes.
    pub max_header_bytes: usize,
    /// Most header fields in one request.
    pub max_headers: usize,
    /// How long in-flight requests get to finish after the shutdown signal.
    pub shutdown_grace: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
            max_headers: 100,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then drains in-flight requests for up
/// to `options.shutdown_grace`. Returns whether every connection drained within the grace period.
pub async fn serve<L>(
    mut listener: L,
    router: Router,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> bool
where
    L: Listener<Addr = SocketAddr>,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        .max_header_size(options.max_header_bytes)
        .max_headers(options.max_headers)
        .keep_alive(true)
        // One buffer per response (the head with the body copied after it) and one `write`,
        // rather than hyper's default for a socket of a `writev` of the head and the body: the
        // demo's answers are small, and copying their body costs less than the kernel's second
        // segment. `benches/ab.sh`: 4 to 8 % less CPU per request under load (`BENCHMARKS.md`).
        .writev(false);
    // Dropping `signal_tx` tells every connection to finish; each connection holds a clone of
    // `close_rx`, so `close_tx.closed()` completes once the last one is gone.
    let (signal_tx, signal_rx) = watch::channel(());
    let (close_tx, close_rx) = watch::channel(());
    tokio::pin!(shutdown);

    loop {
        let (io, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let router = router.clone();
        let service =
            TowerToHyperService::new(router.map_request(move |req: http::Request<Incoming>| {
                let mut req = req.map(Body::new);
                // What `into_make_service_with_connect_info` would insert, so `ConnectInfo` works.
                req.extensions_mut().insert(ConnectInfo(peer));
                req
            }));
        let conn = builder
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades();
        let mut signal_rx = signal_rx.clone();
        let close_rx = close_rx.clone();
        tokio::spawn(async move {
            tokio::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                _ = signal_rx.changed() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            // A client that vanishes, times out or sends garbage ends its own connection; that is
            // routine, not an error of the server.
            if let Err(err) = result {
                tracing::debug!(%peer, error = %err, "connection ended with an error");
            }
            drop(close_rx);
        });
    }

    drop(listener);
    drop(signal_tx);
    drop(close_rx);
    tokio::select! {
        () = close_tx.closed() => true,
        () = tokio::time::sleep(options.shutdown_grace) => {
            tracing::warn!(
                grace_secs = options.shutdown_grace.as_secs(),
                "grace period over with requests still in flight; closing them"
            );
            false
        }
    }
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
