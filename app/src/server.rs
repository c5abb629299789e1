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
//! - **One system call per small response:** hyper writes through `OneWrite`, which sends a
//!   response of up to 4 KiB with one plain `send` instead of a `writev` of its parts.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
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
        .keep_alive(true);
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
            .serve_connection(
                OneWrite {
                    io: TokioIo::new(io),
                },
                service,
            )
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

/// Largest response (head and body together) that [`OneWrite`] joins into one `send`.
const JOIN_MAX: usize = 4 * 1024;

thread_local! {
    /// Where [`OneWrite`] joins a response: one buffer per thread, reused, never over `JOIN_MAX`.
    static JOINED: std::cell::RefCell<Vec<u8>> =
        std::cell::RefCell::new(Vec::with_capacity(JOIN_MAX));
}

/// An accepted connection as hyper sees it, sending a small response with one plain `send`.
///
/// hyper writes a response to a socket that supports vectored writes as a `writev` of separate
/// buffers (the encoded head, the body, a chunk's framing), even when there is only one. Joining
/// a small response into one buffer and sending it with `send` costs the demo less CPU per
/// request under load (`BENCHMARKS.md`, eleventh round). hyper's own way to one write,
/// `writev(false)`, copies every body into the connection's write buffer, which then keeps the
/// size of the largest response it ever sent for as long as the connection lives; here the copy
/// goes to one per-thread buffer of at most `JOIN_MAX` bytes, and anything larger is written
/// vectored as before.
struct OneWrite<I> {
    io: TokioIo<I>,
}

impl<I> hyper::rt::Read for OneWrite<I>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I> hyper::rt::Write for OneWrite<I>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if let [one] = bufs {
            return Pin::new(&mut self.io).poll_write(cx, one);
        }
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if bufs.is_empty() || total > JOIN_MAX {
            return Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        }
        // A write that is pending wrote nothing; hyper offers the same buffers again later.
        JOINED.with(|joined| match joined.try_borrow_mut() {
            Ok(mut joined) => {
                joined.clear();
                for buf in bufs {
                    joined.extend_from_slice(buf);
                }
                Pin::new(&mut self.io).poll_write(cx, &joined)
            }
            // Not reachable (nothing below calls back in here), but never worth a panic.
            Err(_) => Pin::new(&mut self.io).poll_write_vectored(cx, bufs),
        })
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    use tokio::net::{TcpListener, TcpStream};

    /// A socket that records each write it is asked for, and whether it came vectored.
    #[derive(Default)]
    struct Recorder {
        writes: Vec<(bool, Vec<u8>)>,
    }

    impl tokio::io::AsyncRead for Recorder {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    impl tokio::io::AsyncWrite for Recorder {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.writes.push((false, buf.to_vec()));
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[io::IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let joined: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            let n = joined.len();
            self.writes.push((true, joined));
            Poll::Ready(Ok(n))
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// Offers `bufs` to a `OneWrite` over a `Recorder`; returns what the socket was asked for.
    async fn one_write(bufs: &[&[u8]]) -> (usize, Vec<(bool, Vec<u8>)>) {
        use hyper::rt::Write;
        let mut conn = OneWrite {
            io: TokioIo::new(Recorder::default()),
        };
        assert!(
            conn.is_write_vectored(),
            "hyper must still see a vectored socket"
        );
        let slices: Vec<io::IoSlice<'_>> = bufs.iter().map(|b| io::IoSlice::new(b)).collect();
        let n = std::future::poll_fn(|cx| Pin::new(&mut conn).poll_write_vectored(cx, &slices))
            .await
            .unwrap();
        (n, conn.io.into_inner().writes)
    }

    #[tokio::test]
    async fn a_small_response_is_one_plain_write() {
        let head = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n".as_slice();
        let (n, writes) = one_write(&[head, b"hello"]).await;
        assert_eq!(n, head.len() + 5);
        assert_eq!(writes.len(), 1, "one write");
        assert!(!writes[0].0, "a plain write, not a vectored one");
        assert_eq!(writes[0].1, [head, b"hello".as_slice()].concat());
    }

    #[tokio::test]
    async fn only_a_response_too_large_to_join_is_written_vectored() {
        let body = vec![b'x'; JOIN_MAX];
        let (n, writes) = one_write(&[b"head", &body]).await;
        assert_eq!(n, 4 + JOIN_MAX);
        assert_eq!(writes.len(), 1);
        assert!(writes[0].0, "too large to join: handed on vectored");
        let (n, writes) = one_write(&[b"just one buffer"]).await;
        assert_eq!(n, 15);
        assert_eq!(
            writes,
            [(false, b"just one buffer".to_vec())],
            "one buffer: a plain write"
        );
    }

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

    // A small response goes out joined (`OneWrite`); a body far larger than the join buffer and
    // than hyper's write buffer must still arrive whole, and the connection stay usable after it.
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

    // A body of unknown length goes out chunked, each chunk with its framing in separate buffers
    // that `OneWrite` joins: every chunk, in order, and the terminating chunk.
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
