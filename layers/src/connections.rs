//! Connection and request counters, and shedding connections past a limit.
//!
//! One cloneable [`Tracker`] holds the counts; two pieces feed it:
//!
//! - [`TrackedListener`] wraps any [`axum::serve::Listener`] (so it works with plain
//!   [`axum::serve()`] as well as a hand-written hyper loop). It counts open and total TCP
//!   connections through a guard held inside the returned [`TrackedIo`], so a connection counts as
//!   open exactly as long as the server holds its socket, upgraded WebSocket connections included.
//!   Past `max_connections` open connections a new connection is answered
//!   `503 Service Unavailable` with the [`ErrorCode::Overloaded`] JSON body, `Connection: close` and
//!   `Retry-After: 1`, and closed; connections already open are untouched.
//! - [`TrackingLayer`] counts in-flight and total requests. A request counts as in flight until its
//!   response body has been sent in full (or dropped), so a streaming response is in flight while it
//!   streams. It can add `X-Active-Connections` and `X-Total-Requests` to every response (on by
//!   default).
//!
//! # Example
//!
//! The layer alone:
//!
//! ```
//! use axum::{body::Body, routing::get, Router};
//! use crosscut::connections::{Tracker, TrackingLayer};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let tracker = Tracker::new();
//! let app = Router::new()
//!     .route("/", get(|| async { "hi" }))
//!     .layer(TrackingLayer::new(tracker.clone()));
//!
//! let res = app
//!     .oneshot(http::Request::get("/").body(Body::empty()).unwrap())
//!     .await
//!     .unwrap();
//! assert_eq!(res.headers()["x-total-requests"], "1");
//! drop(res); // the response is done: nothing is in flight any more
//! assert_eq!(tracker.total_requests(), 1);
//! assert_eq!(tracker.in_flight_requests(), 0);
//! # }
//! ```
//!
//! With the listener, under `axum::serve`:
//!
//! ```no_run
//! use axum::{routing::get, Router};
//! use crosscut::connections::{TrackedListener, Tracker, TrackingLayer};
//!
//! # async fn run() -> std::io::Result<()> {
//! let tracker = Tracker::new();
//! let app = Router::new()
//!     .route("/", get(|| async { "hi" }))
//!     .layer(TrackingLayer::new(tracker.clone()));
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:8080").await?;
//! // At most 10 000 open connections; the next one is answered 503 and closed.
//! let listener = TrackedListener::new(listener, tracker, 10_000);
//! axum::serve(listener, app).await
//! # }
//! ```

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::serve::Listener;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tower_layer::Layer;
use tower_service::Service;

use crate::error::{ApiError, ErrorCode};

/// `X-Active-Connections`: open connections when the response was sent.
pub const X_ACTIVE_CONNECTIONS: HeaderName = HeaderName::from_static("x-active-connections");
/// `X-Total-Requests`: requests received since start, this one included.
pub const X_TOTAL_REQUESTS: HeaderName = HeaderName::from_static("x-total-requests");

#[derive(Debug, Default)]
struct Counts {
    open_connections: AtomicUsize,
    total_connections: AtomicU64,
    rejected_connections: AtomicU64,
    // Rejections being written right now; bounded so a flood cannot pile up tasks and sockets.
    rejecting: AtomicUsize,
    in_flight_requests: AtomicUsize,
    total_requests: AtomicU64,
}

/// A cloneable handle to the connection and request counts. Clones share the counts.
///
/// All reads are relaxed atomic loads: each figure is exact on its own, but two figures read one
/// after the other may straddle a connection or request.
#[derive(Debug, Clone, Default)]
pub struct Tracker {
    counts: Arc<Counts>,
}

impl Tracker {
    /// A tracker with every count at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Connections open now (admitted by a [`TrackedListener`] and not yet closed).
    pub fn open_connections(&self) -> usize {
        self.counts.open_connections.load(Ordering::Relaxed)
    }

    /// Connections admitted since start. Rejected connections are not included.
    pub fn total_connections(&self) -> u64 {
        self.counts.total_connections.load(Ordering::Relaxed)
    }

    /// Connections answered 503 because the limit was reached, since start.
    pub fn rejected_connections(&self) -> u64 {
        self.counts.rejected_connections.load(Ordering::Relaxed)
    }

    /// Requests whose response has not been sent in full yet.
    pub fn in_flight_requests(&self) -> usize {
        self.counts.in_flight_requests.load(Ordering::Relaxed)
    }

    /// Requests received since start.
    pub fn total_requests(&self) -> u64 {
        self.counts.total_requests.load(Ordering::Relaxed)
    }

    /// A [`TrackingLayer`] feeding this tracker.
    pub fn layer(&self) -> TrackingLayer {
        TrackingLayer::new(self.clone())
    }

    /// Counts one more open connection unless that would exceed `max`.
    fn try_open(&self, max: usize) -> Option<ConnectionGuard> {
        self.counts
            .open_connections
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        self.counts
            .total_connections
            .fetch_add(1, Ordering::Relaxed);
        Some(ConnectionGuard {
            counts: self.counts.clone(),
        })
    }

    fn start_request(&self) -> RequestGuard {
        self.counts
            .in_flight_requests
            .fetch_add(1, Ordering::Relaxed);
        self.counts.total_requests.fetch_add(1, Ordering::Relaxed);
        RequestGuard {
            counts: self.counts.clone(),
        }
    }
}

/// Holds one open connection in the count; lets go of it on drop.
#[derive(Debug)]
struct ConnectionGuard {
    counts: Arc<Counts>,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.counts.open_connections.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Holds one request in the in-flight count; lets go of it on drop.
#[derive(Debug)]
struct RequestGuard {
    counts: Arc<Counts>,
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.counts
            .in_flight_requests
            .fetch_sub(1, Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------------------------------------
// Request tracking layer
// ---------------------------------------------------------------------------------------------

/// Layer that applies the [`Tracking`] middleware: counts in-flight and total requests.
///
/// See the [module docs](self) for an example.
#[derive(Debug, Clone)]
#[must_use]
pub struct TrackingLayer {
    tracker: Tracker,
    headers: bool,
}

impl TrackingLayer {
    /// Counts into `tracker` and adds the `X-Active-Connections` and `X-Total-Requests` headers.
    pub fn new(tracker: Tracker) -> Self {
        Self {
            tracker,
            headers: true,
        }
    }

    /// Whether to add the `X-Active-Connections` and `X-Total-Requests` headers (default `true`).
    ///
    /// ```
    /// # use crosscut::connections::{Tracker, TrackingLayer};
    /// let layer = TrackingLayer::new(Tracker::new()).headers(false);
    /// # let _ = layer;
    /// ```
    pub fn headers(mut self, on: bool) -> Self {
        self.headers = on;
        self
    }
}

impl<S> Layer<S> for TrackingLayer {
    type Service = Tracking<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Tracking {
            inner,
            tracker: self.tracker.clone(),
            headers: self.headers,
        }
    }
}

/// Middleware that counts in-flight and total requests into a [`Tracker`].
///
/// See the [module docs](self) for an example.
#[derive(Debug, Clone)]
pub struct Tracking<S> {
    inner: S,
    tracker: Tracker,
    headers: bool,
}

impl<S> Tracking<S> {
    define_inner_service_accessors!();
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Tracking<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<TrackedBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let guard = self.tracker.start_request();
        ResponseFuture {
            inner: self.inner.call(req),
            guard: Some(guard),
            headers: self.headers,
        }
    }
}

pin_project! {
    /// Response future for [`Tracking`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        // Moved into the body once the head is ready; dropped with the future if it never is.
        guard: Option<RequestGuard>,
        headers: bool,
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<TrackedBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = ready!(this.inner.poll(cx))?;
        let guard = this.guard.take();
        let mut res = res.map(|inner| TrackedBody { inner, guard });
        if *this.headers {
            if let Some(counts) = res.body().guard.as_ref().map(|g| g.counts.clone()) {
                let open = counts.open_connections.load(Ordering::Relaxed) as u64;
                let total = counts.total_requests.load(Ordering::Relaxed);
                let headers = res.headers_mut();
                crate::room::make_room(headers, 2);
                headers.insert(X_ACTIVE_CONNECTIONS, crate::value::number(open));
                headers.insert(X_TOTAL_REQUESTS, crate::value::number(total));
            }
        }
        Poll::Ready(Ok(res))
    }
}

pin_project! {
    /// Response body for [`Tracking`]: the request stays in flight until this body ends or is
    /// dropped.
    pub struct TrackedBody<B> {
        #[pin]
        inner: B,
        guard: Option<RequestGuard>,
    }
}

impl<B: Body> Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        // hyper may keep a finished body around until the connection's next request; the request
        // is over once the last frame (or an error) has come out, so let go of the count then.
        if !matches!(frame, Some(Ok(_))) {
            this.guard.take();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

// ---------------------------------------------------------------------------------------------
// Tracked listener
// ---------------------------------------------------------------------------------------------

/// Most rejections written at the same time; past this a connection over the limit is closed
/// without an answer, so a flood costs neither unbounded tasks nor unbounded sockets.
const MAX_CONCURRENT_REJECTIONS: usize = 1024;

/// A [`Listener`] that counts open and total connections into a [`Tracker`] and answers
/// connections past `max_connections` with 503 `OVERLOADED`.
///
/// See the [module docs](self) for an example.
#[derive(Debug)]
pub struct TrackedListener<L> {
    inner: L,
    tracker: Tracker,
    max_connections: usize,
    reject_timeout: Duration,
    overloaded: Bytes,
    extra_headers: Vec<(HeaderName, HeaderValue)>,
    #[cfg(feature = "request-id")]
    request_ids: bool,
}

impl<L> TrackedListener<L> {
    /// Wraps `inner`, admitting at most `max_connections` open connections at a time.
    pub fn new(inner: L, tracker: Tracker, max_connections: usize) -> Self {
        Self {
            inner,
            tracker,
            max_connections,
            reject_timeout: Duration::from_secs(1),
            overloaded: overloaded_response(&[], None),
            extra_headers: Vec::new(),
            #[cfg(feature = "request-id")]
            request_ids: false,
        }
    }

    /// Headers added to the 503 answer, e.g. the security headers every other answer carries
    /// (the 503 is written before any HTTP layer runs, so those layers cannot add them).
    #[must_use]
    pub fn response_headers(
        mut self,
        headers: impl IntoIterator<Item = (HeaderName, HeaderValue)>,
    ) -> Self {
        self.extra_headers = headers.into_iter().collect();
        self.overloaded = overloaded_response(&self.extra_headers, None);
        self
    }

    /// Gives each 503 answer a new `X-Request-ID` (a UUID), as the request id layer does for
    /// every other answer.
    #[cfg(feature = "request-id")]
    #[must_use]
    pub fn with_request_ids(mut self) -> Self {
        self.request_ids = true;
        self
    }

    fn rejection(&self) -> Bytes {
        #[cfg(feature = "request-id")]
        if self.request_ids {
            let id = crate::request_id::RequestId::generate();
            return overloaded_response(&self.extra_headers, Some(id.as_str()));
        }
        self.overloaded.clone()
    }

    /// How long writing the 503 to a rejected connection may take before the connection is
    /// dropped (default 1 s), so a client that does not read cannot hold the socket.
    #[must_use]
    pub fn reject_timeout(mut self, timeout: Duration) -> Self {
        self.reject_timeout = timeout;
        self
    }

    /// The tracker this listener counts into.
    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    /// The wrapped listener.
    pub fn get_ref(&self) -> &L {
        &self.inner
    }

    /// Consumes `self`, returning the wrapped listener.
    pub fn into_inner(self) -> L {
        self.inner
    }
}

/// The whole 503 answer, head and body: built once per listener, or per rejection when it
/// carries a request id.
fn overloaded_response(extra: &[(HeaderName, HeaderValue)], request_id: Option<&str>) -> Bytes {
    let body = ApiError::new(
        ErrorCode::Overloaded,
        "the server is at its connection limit; retry shortly",
    )
    .body();
    let mut head = format!(
        "HTTP/1.1 503 Service Unavailable\r\n\
         content-type: application/json\r\n\
         content-length: {}\r\n\
         connection: close\r\n\
         retry-after: 1\r\n",
        body.len()
    );
    let mut bytes = Vec::with_capacity(head.len() + body.len() + 512);
    if let Some(id) = request_id {
        head.push_str("x-request-id: ");
        head.push_str(id);
        head.push_str("\r\n");
    }
    bytes.extend_from_slice(head.as_bytes());
    for (name, value) in extra {
        bytes.extend_from_slice(name.as_str().as_bytes());
        bytes.extend_from_slice(b": ");
        bytes.extend_from_slice(value.as_bytes());
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(b"\r\n");
    bytes.extend_from_slice(body.as_bytes());
    Bytes::from(bytes)
}

/// Writes the 503, half-closes, then reads whatever the client sent until it closes too: closing
/// a socket with unread input makes the kernel send a reset, which can destroy the 503 before the
/// client reads it.
async fn reject<I>(mut io: I, response: Bytes) -> io::Result<()>
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    io.write_all(&response).await?;
    io.flush().await?;
    io.shutdown().await?;
    let mut buf = [0u8; 1024];
    let mut drained = 0usize;
    // Bounded: a client streaming forever is cut off after 64 KiB (the timeout bounds time).
    while drained < 64 * 1024 {
        match io.read(&mut buf).await? {
            0 => break,
            n => drained += n,
        }
    }
    Ok(())
}

impl<L> Listener for TrackedListener<L>
where
    L: Listener,
{
    type Io = TrackedIo<L::Io>;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (io, addr) = self.inner.accept().await;
            if let Some(guard) = self.tracker.try_open(self.max_connections) {
                return (TrackedIo { inner: io, guard }, addr);
            }
            let counts = &self.tracker.counts;
            counts.rejected_connections.fetch_add(1, Ordering::Relaxed);
            if counts.rejecting.fetch_add(1, Ordering::AcqRel) >= MAX_CONCURRENT_REJECTIONS {
                counts.rejecting.fetch_sub(1, Ordering::AcqRel);
                drop(io);
                continue;
            }
            let response = self.rejection();
            let timeout = self.reject_timeout;
            let counts = counts.clone();
            // Answer off the accept path: accepting the next connection never waits on a
            // rejected client.
            tokio::spawn(async move {
                let _ = tokio::time::timeout(timeout, reject(io, response)).await;
                counts.rejecting.fetch_sub(1, Ordering::AcqRel);
            });
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

pin_project! {
    /// The IO type of a [`TrackedListener`]: the wrapped connection, counted as open until dropped.
    #[derive(Debug)]
    pub struct TrackedIo<I> {
        #[pin]
        inner: I,
        guard: ConnectionGuard,
    }
}

impl<I> TrackedIo<I> {
    /// The wrapped connection.
    pub fn get_ref(&self) -> &I {
        &self.inner
    }

    /// The wrapped connection, mutably (e.g. to set socket options).
    pub fn get_mut(&mut self) -> &mut I {
        &mut self.inner
    }
}

impl<I: AsyncRead> AsyncRead for TrackedIo<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.project().inner.poll_read(cx, buf)
    }
}

impl<I: AsyncWrite> AsyncWrite for TrackedIo<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body as AxumBody;
    use axum::routing::get;
    use axum::Router;
    use http_body_util::BodyExt;
    use tokio::net::{TcpListener, TcpStream};
    use tower::ServiceExt;

    fn get_req(path: &str) -> Request<AxumBody> {
        Request::get(path).body(AxumBody::empty()).unwrap()
    }

    #[tokio::test]
    async fn counts_requests_and_adds_headers() {
        let tracker = Tracker::new();
        let app = Router::new()
            .route("/", get(|| async { "hi" }))
            .layer(tracker.layer());
        for n in 1..=3u64 {
            let res = app.clone().oneshot(get_req("/")).await.unwrap();
            assert_eq!(res.headers()[X_TOTAL_REQUESTS], n.to_string().as_str());
            assert_eq!(res.headers()[X_ACTIVE_CONNECTIONS], "0");
            assert_eq!(
                tracker.in_flight_requests(),
                1,
                "in flight until the body is sent"
            );
            let body = res.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(&body[..], b"hi");
            assert_eq!(tracker.in_flight_requests(), 0);
        }
        assert_eq!(tracker.total_requests(), 3);
    }

    #[tokio::test]
    async fn headers_can_be_turned_off() {
        let tracker = Tracker::new();
        let app = Router::new()
            .route("/", get(|| async { "hi" }))
            .layer(tracker.layer().headers(false));
        let res = app.oneshot(get_req("/")).await.unwrap();
        assert!(res.headers().get(X_TOTAL_REQUESTS).is_none());
        assert!(res.headers().get(X_ACTIVE_CONNECTIONS).is_none());
        assert_eq!(tracker.total_requests(), 1);
    }

    #[tokio::test]
    async fn dropped_future_leaves_no_request_in_flight() {
        let tracker = Tracker::new();
        let app = Router::new()
            .route(
                "/",
                get(|| async {
                    std::future::pending::<()>().await;
                }),
            )
            .layer(tracker.layer());
        let fut = app.oneshot(get_req("/"));
        let timed_out = tokio::time::timeout(Duration::from_millis(20), fut).await;
        assert!(timed_out.is_err());
        assert_eq!(tracker.total_requests(), 1);
        assert_eq!(tracker.in_flight_requests(), 0);
    }

    #[test]
    fn overloaded_response_is_well_formed() {
        let bytes = overloaded_response(&[], None);
        let text = std::str::from_utf8(&bytes).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(head.contains("connection: close"));
        assert!(head.contains("retry-after: 1"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["code"], "OVERLOADED");
        assert_eq!(v["error"], "Service Unavailable");
    }

    async fn read_to_end(mut s: TcpStream) -> String {
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
            .await
            .unwrap()
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[tokio::test]
    async fn listener_counts_and_sheds_past_the_limit() {
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let tracker = Tracker::new();
        let mut listener = TrackedListener::new(tcp, tracker.clone(), 2);

        let c1 = TcpStream::connect(addr).await.unwrap();
        let (io1, _) = listener.accept().await;
        let c2 = TcpStream::connect(addr).await.unwrap();
        let (io2, _) = listener.accept().await;
        assert_eq!(tracker.open_connections(), 2);
        assert_eq!(tracker.total_connections(), 2);

        // The third is answered 503 while `accept` waits for the next connection.
        let c3 = TcpStream::connect(addr).await.unwrap();
        let pending = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
        assert!(
            pending.is_err(),
            "the connection past the limit is not handed out"
        );
        let answer = read_to_end(c3).await;
        assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
        assert!(answer.contains("\"code\":\"OVERLOADED\""), "{answer}");
        assert_eq!(tracker.rejected_connections(), 1);
        assert_eq!(tracker.open_connections(), 2);

        // A connection closing makes room for the next one; the open ones were never touched.
        drop(io1);
        assert_eq!(tracker.open_connections(), 1);
        let c4 = TcpStream::connect(addr).await.unwrap();
        let (io4, _) = listener.accept().await;
        assert_eq!(tracker.open_connections(), 2);
        assert_eq!(tracker.total_connections(), 3);

        drop((io2, io4, c1, c2, c4));
        assert_eq!(tracker.open_connections(), 0);
    }

    #[tokio::test]
    async fn tracked_io_passes_bytes_through() {
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let mut listener = TrackedListener::new(tcp, Tracker::new(), 10);
        let mut client = TcpStream::connect(addr).await.unwrap();
        let (mut io, _) = listener.accept().await;
        client.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        io.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        io.write_all(b"pong").await.unwrap();
        client.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"pong");
    }
}
