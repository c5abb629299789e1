//! Serving connections with hyper directly, for the connection-level settings `axum::serve` hides.
//!
//! - **Slow headers (slowloris) and idle keep-alive:** a connection that goes
//!   `header_read_timeout` without a request head arriving while no answer is on its way (a client
//!   sending its head a byte at a time, or a keep-alive connection left idle) is closed, within a
//!   quarter of that timeout after it. A watchdog per connection checks this a few times per
//!   timeout instead of hyper's own `header_read_timeout`, which does the same with a timer it
//!   makes, registers with tokio and drops for every request: without any such timeout the demo
//!   needs 2.8 % less CPU per request under load, with this watchdog 1.8 % less than with hyper's
//!   (`BENCHMARKS.md`, fifteenth round).
//! - **Oversized headers:** `max_header_size` and `max_headers` make hyper answer 431 and close
//!   instead of buffering without bound.
//! - **Graceful shutdown:** on the shutdown signal the accept loop stops, every connection is told
//!   to finish its in-flight request and close, and the server waits up to the grace period.
//!   Upgraded (WebSocket) and streaming (SSE) connections are ended by the app itself through
//!   [`crate::Shutdown`], since hyper no longer tracks an upgraded connection.
//! - **One system call per small response:** hyper writes through `OneWrite`, which sends a
//!   response of up to 4 KiB with one plain `send` instead of a `writev` of its parts.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::serve::Listener;
use axum::Router;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::sync::watch;
use tokio::time::Sleep;
use tower::util::Oneshot;
use tower::ServiceExt;

/// Connection-level limits.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Time a client has to send a complete request head, and the longest a keep-alive
    /// connection may sit idle between requests; enforced to within a quarter of itself, or a
    /// whole one for a connection left idle after a long answer (see `Watchdog`).
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
        let activity = Arc::new(Activity::default());
        let service = ConnService {
            router: router.clone(),
            peer,
            activity: Arc::clone(&activity),
        };
        let timeout = options.header_read_timeout;
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
            let mut watchdog = Watchdog::new(activity, timeout);
            let result = tokio::select! {
                r = watchdog.watch(conn.as_mut(), peer) => r,
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

/// What a connection's watchdog reads: how many requests have arrived or been answered, and how
/// many answers are on their way. Written as hyper calls the service and drops the answers, read
/// by the watchdog, all in the connection's task.
#[derive(Debug, Default)]
struct Activity {
    /// Request heads arrived plus answers finished.
    events: AtomicU64,
    /// Answers handed to hyper and not yet sent in full (or dropped).
    answering: AtomicUsize,
}

/// Marks one answer as on its way until dropped: with the request's future while the router
/// works, then with the response body until hyper has sent it or dropped it.
#[derive(Debug)]
struct Busy(Arc<Activity>);

impl Busy {
    fn new(activity: Arc<Activity>) -> Self {
        activity.events.fetch_add(1, Ordering::Relaxed);
        activity.answering.fetch_add(1, Ordering::Relaxed);
        Self(activity)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.answering.fetch_sub(1, Ordering::Relaxed);
        self.0.events.fetch_add(1, Ordering::Relaxed);
    }
}

/// Checks a connection a few times per `header_read_timeout` and says when it has gone that long
/// with no request head and no answer on its way.
///
/// A check that sees no new event and no answer in progress counts as quiet; four quiet checks in
/// a row, a quarter of the timeout apart, mean at least the whole timeout without a request head
/// since the connection's last event, and at most a quarter more (up to a whole timeout more
/// after an answer that was still on its way at a check). The checks run in the connection's own
/// task, which its timer wakes for them; every other time the task wakes (for its socket, mostly)
/// the watchdog only reads whether that timer has fired.
struct Watchdog {
    activity: Arc<Activity>,
    period: Duration,
    timer: Pin<Box<Sleep>>,
    seen: u64,
    quiet: u32,
}

impl Watchdog {
    /// Quiet checks that make a whole timeout.
    const QUIET_CHECKS: u32 = 4;

    fn new(activity: Arc<Activity>, timeout: Duration) -> Self {
        let period = (timeout / Self::QUIET_CHECKS).max(Duration::from_millis(1));
        Self {
            activity,
            period,
            timer: Box::pin(tokio::time::sleep(period)),
            seen: 0,
            quiet: 0,
        }
    }

    /// Drives `conn` to its end, or closes it (by dropping it, as hyper does on its own timeout)
    /// once it has been quiet for the whole timeout.
    async fn watch<F: Future<Output = hyper::Result<()>>>(
        &mut self,
        mut conn: Pin<&mut F>,
        peer: SocketAddr,
    ) -> hyper::Result<()> {
        let mut armed = false;
        std::future::poll_fn(|cx| {
            if let Poll::Ready(result) = conn.as_mut().poll(cx) {
                return Poll::Ready(result);
            }
            if armed && !self.timer.is_elapsed() {
                return Poll::Pending;
            }
            loop {
                if armed {
                    let Some(wait) = self.check() else {
                        tracing::debug!(%peer, "no request head in time: closing the connection");
                        return Poll::Ready(Ok(()));
                    };
                    self.timer
                        .as_mut()
                        .reset(tokio::time::Instant::now() + wait);
                }
                // A timer keeps the waker it was last polled with, and this task's stays the
                // same: polled once per check, it wakes the task for the next one. Outside
                // tokio's budget, so that the poll always registers.
                armed = true;
                let timer = tokio::task::unconstrained(self.timer.as_mut());
                if std::pin::pin!(timer).poll(cx).is_pending() {
                    return Poll::Pending;
                }
                // The next check is already due (the task ran late): make it now.
            }
        })
        .await
    }

    /// Counts a check: `None` once the connection has been quiet for the whole timeout, else how
    /// long until the next check.
    fn check(&mut self) -> Option<Duration> {
        let events = self.activity.events.load(Ordering::Relaxed);
        let answering = self.activity.answering.load(Ordering::Relaxed) > 0;
        if events != self.seen || answering {
            self.seen = events;
            self.quiet = 0;
            // An answer on its way (a stream, a slow handler) is checked on once per timeout
            // rather than four times: an SSE subscriber would otherwise wake for a check more
            // often than for its events.
            return Some(if answering {
                self.period * Self::QUIET_CHECKS
            } else {
                self.period
            });
        }
        self.quiet += 1;
        (self.quiet < Self::QUIET_CHECKS).then_some(self.period)
    }
}

/// The router as hyper calls it on one connection: tells the watchdog about each request, gives
/// the handlers the peer address as `ConnectInfo`, and hands back a body that tells the watchdog
/// when the answer is done.
///
/// hyper's own service trait rather than hyper-util's `TowerToHyperService` around the router's
/// `map_request`, so that the response's body can carry its [`Busy`] mark.
struct ConnService {
    router: Router,
    peer: SocketAddr,
    activity: Arc<Activity>,
}

impl hyper::service::Service<http::Request<Incoming>> for ConnService {
    type Response = http::Response<Answer>;
    type Error = Infallible;
    type Future = Answering;

    fn call(&self, req: http::Request<Incoming>) -> Self::Future {
        let busy = Busy::new(Arc::clone(&self.activity));
        let mut req = req.map(Body::new);
        // What `into_make_service_with_connect_info` would insert, so `ConnectInfo` works.
        req.extensions_mut().insert(ConnectInfo(self.peer));
        Answering {
            inner: self.router.clone().oneshot(req),
            busy: Some(busy),
        }
    }
}

/// The future of one request through [`ConnService`].
struct Answering {
    inner: Oneshot<Router, http::Request<Body>>,
    busy: Option<Busy>,
}

impl Future for Answering {
    type Output = Result<http::Response<Answer>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let res = ready!(Pin::new(&mut self.inner).poll(cx))?;
        let busy = self.busy.take();
        Poll::Ready(Ok(res.map(|body| Answer { body, _busy: busy })))
    }
}

/// A response body that keeps its answer marked as on its way until hyper drops it.
struct Answer {
    body: Body,
    _busy: Option<Busy>,
}

impl hyper::body::Body for Answer {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
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
        start_with(router, ServeOptions::default()).await
    }

    /// Serves `router` with `options` on an ephemeral port until the test ends.
    async fn start_with(router: Router, options: ServeOptions) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, router, options, std::future::pending()));
        addr
    }

    /// The watchdog's timeout in the tests below: checks every 100 ms.
    const HEAD_TIMEOUT: Duration = Duration::from_millis(400);

    /// A server whose connections must send a request head within [`HEAD_TIMEOUT`], with a
    /// route that answers after `slow_ms` and one that streams a chunk every `gap_ms`, three times.
    async fn start_watched() -> SocketAddr {
        let router = Router::new()
            .route("/fast", get(|| async { "fast" }))
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(HEAD_TIMEOUT * 3).await;
                    "slow"
                }),
            )
            .route(
                "/drip",
                get(|| async {
                    let chunks = futures_util::stream::unfold(0, |i| async move {
                        if i == 3 {
                            return None;
                        }
                        tokio::time::sleep(HEAD_TIMEOUT * 3 / 2).await;
                        Some((Ok::<_, Infallible>(format!("drop {i}\n")), i + 1))
                    });
                    Body::from_stream(chunks)
                }),
            );
        let options = ServeOptions {
            header_read_timeout: HEAD_TIMEOUT,
            ..ServeOptions::default()
        };
        start_with(router, options).await
    }

    /// A connection to `addr` that has sent `bytes`.
    async fn send(addr: SocketAddr, bytes: &[u8]) -> TcpStream {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(bytes).await.unwrap();
        stream
    }

    /// Reads until the server closes the connection; returns what arrived and when it closed.
    async fn until_closed(stream: &mut TcpStream) -> (Vec<u8>, Duration) {
        let start = std::time::Instant::now();
        let mut got = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), async {
            let mut buf = [0u8; 4096];
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await;
        assert!(read.is_ok(), "the connection was still open after 10 s");
        (got, start.elapsed())
    }

    /// A connection closed `took` after its last event: once the timeout had passed and within a
    /// quarter of it more, plus slack for a loaded machine.
    fn assert_closed_in_time(took: Duration) {
        assert!(took >= HEAD_TIMEOUT - Duration::from_millis(20), "{took:?}");
        assert!(
            took < HEAD_TIMEOUT * 5 / 4 + Duration::from_millis(400),
            "{took:?}"
        );
    }

    // Half a request head and then nothing (slowloris): closed in time, with no answer.
    #[tokio::test]
    async fn a_half_sent_head_is_cut_off_after_the_timeout() {
        let addr = start_watched().await;
        let mut stream = send(addr, b"GET /fast HTTP/1.1\r\nhost:").await;
        let (got, took) = until_closed(&mut stream).await;
        assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
        assert_closed_in_time(took);
    }

    // A keep-alive connection left idle after its answer is closed the same way.
    #[tokio::test]
    async fn an_idle_keep_alive_connection_is_closed_after_the_timeout() {
        let addr = start_watched().await;
        let mut stream = send(addr, b"GET /fast HTTP/1.1\r\nhost: test\r\n\r\n").await;
        let mut first = [0u8; 12];
        stream.read_exact(&mut first).await.unwrap();
        assert_eq!(&first, b"HTTP/1.1 200");
        let (_, took) = until_closed(&mut stream).await;
        assert_closed_in_time(took);
    }

    // The timeout is for request heads: an answer that takes three timeouts to come, and a stream
    // that pauses longer than one between its chunks, are delivered whole.
    #[tokio::test]
    async fn answers_slower_than_the_timeout_are_not_cut_off() {
        let addr = start_watched().await;
        let mut stream = send(
            addr,
            b"GET /slow HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n",
        )
        .await;
        let (got, _) = until_closed(&mut stream).await;
        let got = String::from_utf8_lossy(&got);
        assert!(
            got.starts_with("HTTP/1.1 200") && got.ends_with("slow"),
            "{got:?}"
        );

        let mut stream = send(
            addr,
            b"GET /drip HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n",
        )
        .await;
        let (got, _) = until_closed(&mut stream).await;
        let got = String::from_utf8_lossy(&got);
        let body = got.split_once("\r\n\r\n").map_or("", |(_, body)| body);
        assert_eq!(
            String::from_utf8(dechunk(body.as_bytes())).unwrap(),
            "drop 0\ndrop 1\ndrop 2\n"
        );
    }

    // A client that keeps sending requests, each within the timeout, keeps its connection for as
    // long as it likes: here five timeouts.
    #[tokio::test]
    async fn requests_within_the_timeout_keep_the_connection() {
        let addr = start_watched().await;
        let mut reader = BufReader::new(TcpStream::connect(addr).await.unwrap());
        for _ in 0..10 {
            reader
                .get_mut()
                .write_all(b"GET /fast HTTP/1.1\r\nhost: test\r\n\r\n")
                .await
                .unwrap();
            let head = read_head(&mut reader).await;
            assert_eq!(head[0], "http/1.1 200 ok");
            let mut body = [0u8; 4];
            reader.read_exact(&mut body).await.unwrap();
            assert_eq!(&body, b"fast");
            tokio::time::sleep(HEAD_TIMEOUT / 2).await;
        }
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
