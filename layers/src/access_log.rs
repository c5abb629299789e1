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
//! [`ConnectInfo`]: axum::extract::ConnectInfo

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Instant;

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

/// Layer that applies the [`AccessLog`] middleware.
///
/// See the [module docs](self) for the fields and an example.
#[derive(Debug, Clone, Copy, Default)]
#[must_use]
pub struct AccessLogLayer {
    _priv: (),
}

impl AccessLogLayer {
    /// The layer.
    pub const fn new() -> Self {
        Self { _priv: () }
    }
}

impl<S> Layer<S> for AccessLogLayer {
    type Service = AccessLog<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AccessLog { inner }
    }
}

/// Middleware that logs one event per request.
///
/// See the [module docs](self) for the fields and an example.
#[derive(Debug, Clone, Copy)]
pub struct AccessLog<S> {
    inner: S,
}

impl<S> AccessLog<S> {
    /// Wraps `inner`.
    pub const fn new(inner: S) -> Self {
        Self { inner }
    }

    define_inner_service_accessors!();
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
}

impl Captured {
    fn from_request<B>(req: &Request<B>) -> Self {
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
        }
    }

    fn log(self, status: Option<u16>) {
        let latency_us = u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX);
        let user_agent = self.user_agent.as_ref().and_then(|v| v.to_str().ok());
        let request_id = self.request_id.as_ref().and_then(|v| v.to_str().ok());
        let path = self.path_and_query.as_ref().map_or("", PathAndQuery::path);
        // The message is a plain `&str` field rather than the macro's format string: every
        // formatter writes it the same way (bare, first), and it skips a `format_args!` that each
        // formatter would run through `core::fmt` once per request.
        match status {
            Some(status) => tracing::info!(
                target: TARGET,
                message = "request",
                method = %self.method,
                path,
                status,
                latency_us,
                client_ip = self.client_ip.map(|ip| tracing::field::display(Addr(ip))),
                user_agent,
                request_id,
            ),
            // The service failed instead of answering; hyper will drop the connection.
            None => tracing::info!(
                target: TARGET,
                message = "request",
                method = %self.method,
                path,
                status = "error",
                latency_us,
                client_ip = self.client_ip.map(|ip| tracing::field::display(Addr(ip))),
                user_agent,
                request_id,
            ),
        }
    }
}

/// An address displayed as `IpAddr` displays it, with IPv4 (the usual case) written in one piece:
/// the standard `Display` goes through the formatting machinery once per octet, which a profile
/// of this layer put at a sixth of its cost.
struct Addr(IpAddr);

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let IpAddr::V4(v4) = self.0 else {
            return self.0.fmt(f);
        };
        let mut text = [0u8; 15];
        let mut len = 0;
        for (i, octet) in v4.octets().into_iter().enumerate() {
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
        f.write_str(std::str::from_utf8(&text[..len]).map_err(|_| std::fmt::Error)?)
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
        let captured = tracing::enabled!(target: TARGET, tracing::Level::INFO)
            .then(|| Captured::from_request(&req));
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
            let captured = Captured::from_request(&req);
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
            assert_eq!(Addr(ip).to_string(), ip.to_string());
        }
    }
}
