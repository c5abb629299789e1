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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    use tokio::net::{TcpListener, TcpStream};

    /// A body of `len` bytes that a shifted or truncated copy cannot pass for.
    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    /// Serves `router` with the default options on an ephemeral port until the test ends.
    async fn start(router: Router) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(
            listener,
            router,
            ServeOptions::default(),
            std::future::pending(),
        ));
        addr
    }

    /// Reads one response head; returns its lowercased header lines.
    async fn read_head(reader: &mut BufReader<TcpStream>) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).await.unwrap();
            let line = line.trim_end().to_ascii_lowercase();
            if line.is_empty() {
                return lines;
            }
            lines.push(line);
        }
    }

    // The serve loop copies each body behind its head (`writev(false)`); a body far larger than
    // hyper's write buffer must still arrive whole, and the connection must stay usable after it.
    #[tokio::test]
    async fn bodies_larger_than_the_write_buffer_arrive_whole() {
        const LEN: usize = 3 * 1024 * 1024;
        let addr = start(Router::new().route("/big", get(|| async { pattern(LEN) }))).await;
        let mut reader = BufReader::new(TcpStream::connect(addr).await.unwrap());
        for _ in 0..2 {
            reader
                .get_mut()
                .write_all(b"GET /big HTTP/1.1\r\nhost: test\r\n\r\n")
                .await
                .unwrap();
            let head = read_head(&mut reader).await;
            assert_eq!(head[0], "http/1.1 200 ok");
            assert!(head.contains(&format!("content-length: {LEN}")), "{head:?}");
            let mut body = vec![0; LEN];
            reader.read_exact(&mut body).await.unwrap();
            assert!(body == pattern(LEN), "the body arrived altered");
        }
    }

    // A body of unknown length goes out chunked through the same copying strategy: every chunk,
    // in order, and the terminating chunk.
    #[tokio::test]
    async fn streamed_bodies_arrive_whole_and_in_order() {
        const CHUNKS: usize = 500;
        let router = Router::new().route(
            "/stream",
            get(|| async {
                let chunks = (0..CHUNKS).map(|i| {
                    Ok::<_, std::convert::Infallible>(format!("{i:04}:{}\n", "x".repeat(1000)))
                });
                Body::from_stream(futures_util::stream::iter(chunks))
            }),
        );
        let addr = start(router).await;
        let mut reader = BufReader::new(TcpStream::connect(addr).await.unwrap());
        reader
            .get_mut()
            .write_all(b"GET /stream HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let head = read_head(&mut reader).await;
        assert!(
            head.contains(&"transfer-encoding: chunked".to_owned()),
            "{head:?}"
        );
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).await.unwrap();
        let body = dechunk(&rest);
        let expected: String = (0..CHUNKS)
            .map(|i| format!("{i:04}:{}\n", "x".repeat(1000)))
            .collect();
        assert!(
            body == expected.as_bytes(),
            "the streamed body arrived altered"
        );
    }

    /// The data of a chunked body that ends with its zero-length chunk.
    fn dechunk(mut raw: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let eol = raw
                .windows(2)
                .position(|w| w == b"\r\n")
                .expect("chunk size line");
            let size = std::str::from_utf8(&raw[..eol]).unwrap();
            let size = usize::from_str_radix(size, 16).expect("hex chunk size");
            raw = &raw[eol + 2..];
            if size == 0 {
                assert_eq!(raw, b"\r\n", "nothing after the last chunk");
                return out;
            }
            out.extend_from_slice(&raw[..size]);
            assert_eq!(&raw[size..size + 2], b"\r\n");
            raw = &raw[size + 2..];
        }
    }
}
