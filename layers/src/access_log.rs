//! One `tracing` INFO event per request, sent when the response head is known.
//!
//! The event has target [`TARGET`] (`crosscut::access`) and these fields:
//!
//! | field | value |
//! |---|---|
//! | `method` | `GET`, `POST`, ... |
//! | `path` | the URI path, **without the query string** (it may carry a token, e.g. `?access_token=`) |
//! | `status` | the response status as a number |
//! | `latency_us` | microseconds from the call to the response head |
//! | `client_ip` | the [`ClientIp`] extension if a layer set one, else the peer of axum's [`ConnectInfo`] |
//! | `user_agent` | the `User-Agent` header, when it is printable |
//! | `request_id` | the [`RequestId`](crate::request_id::RequestId) extension (feature `request-id`) |
//!
//! Its message is `request`. A field is left out when its value is unknown (no client address, no
//! printable `User-Agent`, no request id), and `status` is `"error"` when the inner service failed
//! instead of answering.
//!
//! No other header is read: `Authorization`, cookies and tokens never reach the log.
//!
//! One event rather than a span per request: a span costs allocations and subscriber calls on
//! enter, exit and close, where an event is a single call. When the event's level is disabled for
//! the target (`RUST_LOG=crosscut::access=warn`), the layer checks that once per request and then
//! captures nothing.
//!
//! Put it just inside the request id layer, so it logs the id, and outside every layer that can
//! answer on its own, so it logs their final status. A response that never completes (the client
//! went away first) is not logged.
//!
//! # Writing the line yourself
//!
//! The event goes through the subscriber's whole pipeline: dispatch, a visitor call per field,
//! the formatter's buffers. For an access log written to a file that is most of the layer's cost
//! (`benches/layers.rs`: `access_log` against `access_log_direct`, where the demo's sink writes
//! the same line). An [`AccessSink`] given with [`AccessLogLayer::with_sink`] receives the same
//! fields as an [`AccessEntry`] and writes them however it likes; the event is then not sent. By
//! default the sink asks `tracing` whether the event is enabled, so `RUST_LOG` still governs it.
//!
//! # Example
//!
//! ```
//! use axum::{body::Body, routing::get, Router};
//! use crosscut::access_log::AccessLogLayer;
//! use http::{Request, StatusCode};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // With a subscriber installed, e.g. `tracing_subscriber::fmt().init()`, this logs
//! // `INFO crosscut::access: request method=GET path="/hello" status=200 latency_us=...
//! // user_agent="doc"`.
//! let app = Router::new()
//!     .route("/hello", get(|| async { "hi" }))
//!     .layer(AccessLogLayer::new());
//!
//! let req = Request::get("/hello").header("user-agent", "doc").body(Body::empty()).unwrap();
//! let res = app.oneshot(req).await.unwrap();
//! assert_eq!(res.status(), StatusCode::OK);
//! # }
//! ```
//!
//! With a sink of your own:
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use axum::{body::Body, routing::get, Router};
//! use crosscut::access_log::{AccessEntry, AccessLogLayer, AccessSink};
//! use http::Request;
//! use tower::ServiceExt;
//!
//! /// Keeps `METHOD path status` of every request.
//! #[derive(Default)]
//! struct Lines(Mutex<Vec<String>>);
//!
//! impl AccessSink for Lines {
//!     // Log whatever the subscriber says; this program installs none.
//!     fn enabled(&self) -> bool {
//!         true
//!     }
//!
//!     fn record(&self, entry: &AccessEntry<'_>) {
//!         let line = format!("{} {} {:?}", entry.method, entry.path, entry.status);
//!         self.0.lock().unwrap().push(line);
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let lines = Arc::new(Lines::default());
//! let app = Router::new()
//!     .route("/hello", get(|| async { "hi" }))
//!     .layer(AccessLogLayer::with_sink(Arc::clone(&lines)));
//!
//! app.oneshot(Request::get("/hello?x=1").body(Body::empty()).unwrap()).await.unwrap();
//! assert_eq!(*lines.0.lock().unwrap(), ["GET /hello Some(200)"]);
//! # }
//! ```
//!
//! [`ConnectInfo`]: axum::extract::ConnectInfo

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use http::header::{HeaderValue, USER_AGENT};
use http::uri::PathAndQuery;
use http::{Method, Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

/// The `tracing` target of the access-log events, for filtering: `RUST_LOG=crosscut::access=info`.
pub const TARGET: &str = "crosscut::access";

/// The real client address, set as a request extension by a layer that knows better than the TCP
/// peer (a trusted-proxy resolver, the rate limiter).
///
/// When present the access log reports it instead of the peer from `ConnectInfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientIp(pub IpAddr);

/// One request's access-log fields, as an [`AccessSink`] receives them.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct AccessEntry<'a> {
    /// The request method.
    pub method: &'a Method,
    /// The URI path, without the query string.
    pub path: &'a str,
    /// The response status, or `None` when the inner service failed instead of answering.
    pub status: Option<u16>,
    /// From the call to the response head.
    pub latency: Duration,
    /// The [`ClientIp`] extension, else the peer of axum's [`ConnectInfo`], if either is there.
    pub client_ip: Option<IpAddr>,
    /// The `User-Agent` header, when it is there and printable.
    pub user_agent: Option<&'a str>,
    /// The request id, when the request id layer set one (feature `request-id`).
    pub request_id: Option<&'a str>,
}

/// Where the access log's entries go instead of a `tracing` event; see the module docs.
///
/// `record` runs on the request's task when the response head is ready: it must not block (write
/// to a buffer another thread drains, as a log file writer does).
pub trait AccessSink: Send + Sync + 'static {
    /// Whether to capture the request at all, asked once per request before it is passed on.
    ///
    /// By default what `tracing` says of an INFO event with target [`TARGET`], so that the
    /// subscriber's filter (`RUST_LOG`) applies to the sink as to the event; without a
    /// subscriber that is `false`.
    fn enabled(&self) -> bool {
        tracing::enabled!(target: TARGET, tracing::Level::INFO)
    }

    /// Writes one request's entry.
    fn record(&self, entry: &AccessEntry<'_>);
}

impl<T: AccessSink + ?Sized> AccessSink for Arc<T> {
    fn enabled(&self) -> bool {
        (**self).enabled()
    }

    fn record(&self, entry: &AccessEntry<'_>) {
        (**self).record(entry);
    }
}

/// Layer that applies the [`AccessLog`] middleware.
///
/// See the [module docs](self) for the fields and an example.
#[derive(Clone, Default)]
#[must_use]
pub struct AccessLogLayer {
    // `None`: the `tracing` event.
    sink: Option<Arc<dyn AccessSink>>,
}

impl AccessLogLayer {
    /// The layer, sending a `tracing` event per request.
    pub const fn new() -> Self {
        Self { sink: None }
    }

    /// The layer, handing each request's entry to `sink` instead of sending an event.
    pub fn with_sink(sink: impl AccessSink) -> Self {
        Self {
            sink: Some(Arc::new(sink)),
        }
    }
}

impl std::fmt::Debug for AccessLogLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLogLayer")
            .field("sink", &sink_name(self.sink.as_ref()))
            .finish()
    }
}

fn sink_name(sink: Option<&Arc<dyn AccessSink>>) -> &'static str {
    if sink.is_some() {
        "custom"
    } else {
        "tracing"
    }
}

impl<S> Layer<S> for AccessLogLayer {
    type Service = AccessLog<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AccessLog {
            inner,
            sink: self.sink.clone(),
        }
    }
}

/// Middleware that logs one event per request.
///
/// See the [module docs](self) for the fields and an example.
#[derive(Clone)]
pub struct AccessLog<S> {
    inner: S,
    sink: Option<Arc<dyn AccessSink>>,
}

impl<S> AccessLog<S> {
    /// Wraps `inner`, sending a `tracing` event per request.
    pub const fn new(inner: S) -> Self {
        Self { inner, sink: None }
    }

    define_inner_service_accessors!();
}

impl<S: std::fmt::Debug> std::fmt::Debug for AccessLog<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog")
            .field("inner", &self.inner)
            .field("sink", &sink_name(self.sink.as_ref()))
            .finish()
    }
}

/// What the event needs from the request, taken before the request moves into the inner service.
/// Every field is a cheap clone: `Method` and the path share their bytes, header values are
/// `Bytes`. The path and query rather than the whole `Uri`: the scheme and authority are never
/// logged, and each would be one more reference count to take and give back.
struct Captured {
    method: Method,
    // `None` for an authority-form target (`CONNECT host:port`), whose path is empty.
    path_and_query: Option<PathAndQuery>,
    client_ip: Option<IpAddr>,
    user_agent: Option<HeaderValue>,
    request_id: Option<HeaderValue>,
    start: Instant,
    sink: Option<Arc<dyn AccessSink>>,
}

impl Captured {
    fn from_request<B>(req: &Request<B>, sink: Option<Arc<dyn AccessSink>>) -> Self {
        let ext = req.extensions();
        let client_ip = ext.get::<ClientIp>().map(|ip| ip.0).or_else(|| {
            ext.get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip())
        });
        #[cfg(feature = "request-id")]
        let request_id = ext
            .get::<crate::request_id::RequestId>()
            .map(|id| id.header_value().clone());
        #[cfg(not(feature = "request-id"))]
        let request_id = None;
        Self {
            method: req.method().clone(),
            path_and_query: req.uri().path_and_query().cloned(),
            client_ip,
            user_agent: req.headers().get(USER_AGENT).cloned(),
            request_id,
            start: Instant::now(),
            sink,
        }
    }

    fn log(self, status: Option<u16>) {
        let entry = AccessEntry {
            method: &self.method,
            path: self.path_and_query.as_ref().map_or("", PathAndQuery::path),
            status,
            latency: self.start.elapsed(),
            client_ip: self.client_ip,
            user_agent: self.user_agent.as_ref().and_then(|v| v.to_str().ok()),
            request_id: self.request_id.as_ref().and_then(|v| v.to_str().ok()),
        };
        match &self.sink {
            Some(sink) => sink.record(&entry),
            None => event(&entry),
        }
    }
}

/// Sends `entry` as the module's `tracing` event.
fn event(entry: &AccessEntry<'_>) {
    let latency_us = u64::try_from(entry.latency.as_micros()).unwrap_or(u64::MAX);
    let client_ip = entry
        .client_ip
        .map(|ip| tracing::field::display(ClientIp(ip)));
    let (path, user_agent, request_id) = (entry.path, entry.user_agent, entry.request_id);
    // The message is a plain `&str` field rather than the macro's format string: every
    // formatter writes it the same way (bare, first), and it skips a `format_args!` that each
    // formatter would run through `core::fmt` once per request.
    match entry.status {
        Some(status) => tracing::info!(
            target: TARGET,
            message = "request",
            method = %entry.method,
            path,
            status,
            latency_us,
            client_ip,
            user_agent,
            request_id,
        ),
        // The service failed instead of answering; hyper will drop the connection.
        None => tracing::info!(
            target: TARGET,
            message = "request",
            method = %entry.method,
            path,
            status = "error",
            latency_us,
            client_ip,
            user_agent,
            request_id,
        ),
    }
}

impl ClientIp {
    /// Appends the address as `IpAddr` displays it, with IPv4 (the usual case) written without
    /// the formatting machinery, which `IpAddr`'s `Display` runs once per octet (a profile of this
    /// layer put that at a sixth of its cost).
    pub fn push_to(self, out: &mut String) {
        match self.0 {
            IpAddr::V4(v4) => out.push_str(v4_text(v4.octets(), &mut [0; 15])),
            // Writing to a `String` does not fail.
            IpAddr::V6(_) => drop(std::fmt::Write::write_fmt(out, format_args!("{}", self.0))),
        }
    }
}

/// `a.b.c.d` for `octets`, written into `text`.
fn v4_text(octets: [u8; 4], text: &mut [u8; 15]) -> &str {
    let mut len = 0;
    for (i, octet) in octets.into_iter().enumerate() {
        if i > 0 {
            text[len] = b'.';
            len += 1;
        }
        if octet >= 100 {
            text[len] = b'0' + octet / 100;
            len += 1;
        }
        if octet >= 10 {
            text[len] = b'0' + octet / 10 % 10;
            len += 1;
        }
        text[len] = b'0' + octet % 10;
        len += 1;
    }
    // Digits and dots only.
    std::str::from_utf8(&text[..len]).unwrap_or("0.0.0.0")
}

impl std::fmt::Display for ClientIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => f.write_str(v4_text(v4.octets(), &mut [0; 15])),
            IpAddr::V6(_) => self.0.fmt(f),
        }
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for AccessLog<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let enabled = match &self.sink {
            Some(sink) => sink.enabled(),
            None => tracing::enabled!(target: TARGET, tracing::Level::INFO),
        };
        let captured = enabled.then(|| Captured::from_request(&req, self.sink.clone()));
        ResponseFuture {
            inner: self.inner.call(req),
            captured,
        }
    }
}

pin_project! {
    /// Response future for [`AccessLog`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        // `None` when the event is disabled, or once it has been sent.
        captured: Option<Captured>,
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        if let Some(captured) = this.captured.take() {
            captured.log(result.as_ref().ok().map(|res| res.status().as_u16()));
        }
        Poll::Ready(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use std::io;
    use std::sync::{Arc, Mutex};
    use tower::{ServiceBuilder, ServiceExt};
    use tracing_subscriber::fmt::MakeWriter;

    /// Collects everything the subscriber writes, to assert on the JSON lines.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    impl Buffer {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }

        fn lines(&self) -> Vec<serde_json::Value> {
            self.text()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        }
    }

    async fn handler(_req: Request<Body>) -> Result<Response<Body>, std::convert::Infallible> {
        let mut res = Response::new(Body::from("created"));
        *res.status_mut() = http::StatusCode::CREATED;
        Ok(res)
    }

    async fn logged(req: Request<Body>, level: tracing::Level) -> Vec<serde_json::Value> {
        let buf = Buffer::default();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_max_level(level)
            .with_writer(buf.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        send(req).await;
        buf.lines()
    }

    /// Sends `req` through the layer under the subscriber the caller has set.
    async fn send(req: Request<Body>) {
        let svc = ServiceBuilder::new()
            .layer(AccessLogLayer::new())
            .service_fn(handler);
        let res = svc.oneshot(req).await.unwrap();
        assert_eq!(res.status(), http::StatusCode::CREATED);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn one_event_with_all_fields() {
        let mut req = Request::post("/api/v1/users?access_token=secret-query")
            .header("user-agent", "test-agent/1.0")
            .header("authorization", "Bearer secret-token")
            .body(Body::empty())
            .unwrap();
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([10, 0, 0, 7], 4242))));
        let lines = logged(req, tracing::Level::INFO).await;
        assert_eq!(lines.len(), 1, "{lines:?}");
        let line = &lines[0];
        assert_eq!(line["target"], TARGET);
        assert_eq!(line["level"], "INFO");
        let f = &line["fields"];
        assert_eq!(f["method"], "POST");
        assert_eq!(f["path"], "/api/v1/users");
        assert_eq!(f["status"], 201);
        assert!(f["latency_us"].is_u64());
        assert_eq!(f["client_ip"], "10.0.0.7");
        assert_eq!(f["user_agent"], "test-agent/1.0");
        assert_eq!(f["message"], "request");
        let text = line.to_string();
        assert!(!text.contains("secret"), "{text}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn text_line_reads_as_before() {
        let buf = Buffer::default();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .without_time()
            .with_writer(buf.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let mut req = Request::get("/a/b?q=1")
            .header("user-agent", "ua")
            .body(Body::empty())
            .unwrap();
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([10, 0, 0, 7], 4242))));
        send(req).await;
        let text = buf.text();
        // The message bare and first, then the fields in their order; only the latency varies.
        let (head, tail) = text.split_once(" latency_us=").expect(&text);
        assert_eq!(
            head,
            " INFO crosscut::access: request method=GET path=\"/a/b\" status=201"
        );
        let tail = tail.trim_start_matches(|c: char| c.is_ascii_digit());
        assert_eq!(tail, " client_ip=10.0.0.7 user_agent=\"ua\"\n");
    }

    #[test]
    fn path_as_the_uri_gives_it() {
        for target in [
            "/",
            "/api/v1/users?access_token=x",
            "/a%20b/c",
            "*",
            "http://example.com",
            "http://example.com/x?y=1",
            "example.com:443",
        ] {
            let req = Request::get(target).body(()).unwrap();
            let captured = Captured::from_request(&req, None);
            let path = captured
                .path_and_query
                .as_ref()
                .map_or("", PathAndQuery::path);
            assert_eq!(path, req.uri().path(), "{target}");
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn client_ip_extension_overrides_peer() {
        let mut req = Request::get("/").body(Body::empty()).unwrap();
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([10, 0, 0, 1], 1))));
        req.extensions_mut()
            .insert(ClientIp(IpAddr::from([203, 0, 113, 9])));
        let lines = logged(req, tracing::Level::INFO).await;
        assert_eq!(lines[0]["fields"]["client_ip"], "203.0.113.9");
    }

    #[cfg(feature = "request-id")]
    #[tokio::test(flavor = "current_thread")]
    async fn request_id_is_logged() {
        let mut req = Request::get("/").body(Body::empty()).unwrap();
        let id = crate::request_id::RequestId::from_header(&HeaderValue::from_static("rid-42"));
        req.extensions_mut().insert(id.unwrap());
        let lines = logged(req, tracing::Level::INFO).await;
        assert_eq!(lines[0]["fields"]["request_id"], "rid-42");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn nothing_logged_when_level_disabled() {
        let req = Request::get("/").body(Body::empty()).unwrap();
        let lines = logged(req, tracing::Level::WARN).await;
        assert!(lines.is_empty(), "{lines:?}");
    }

    #[test]
    fn addresses_display_as_the_standard_library_displays_them() {
        let mut v4: Vec<IpAddr> = [
            [0, 0, 0, 0],
            [127, 0, 0, 1],
            [10, 9, 99, 100],
            [255, 255, 255, 255],
            [1, 20, 199, 250],
        ]
        .into_iter()
        .map(IpAddr::from)
        .collect();
        v4.extend((0..=255u8).map(|o| IpAddr::from([o, o, o, o])));
        for ip in v4
            .into_iter()
            .chain(["::1", "2001:db8::7", "::ffff:1.2.3.4"].map(|s| s.parse().unwrap()))
        {
            assert_eq!(ClientIp(ip).to_string(), ip.to_string());
            let mut pushed = String::new();
            ClientIp(ip).push_to(&mut pushed);
            assert_eq!(pushed, ip.to_string());
        }
    }
}
