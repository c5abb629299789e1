//! The recommended stack of edge layers, in the right order, from one config struct.
//!
//! For a plain HTTP API one line does it: `Stack::new(config)?.apply(router)`. An app with its own
//! layers (metrics, auth, rate limiting) or with long-lived routes (WebSocket, SSE) takes the three
//! pieces instead and puts its layers between them:
//!
//! ```text
//! outer()   request_id ─ access_log ─ security_headers
//!           ... metrics, connection tracking ...
//! inner()   catch_panic ─ cors
//!           ... rate limit ...
//! http()    compression ─ timeout ─ body_limit       (plain HTTP route groups only)
//!           ... auth ...
//! handler
//! ```
//!
//! Outermost first, and why:
//!
//! - **request_id** first, so the log line and every error answered further in carry the id;
//! - **access_log** next, so it sees the id and the final status of every answer, whoever gave it;
//! - **security_headers** outside every layer that can answer on its own, so 401, 404, 408, 413,
//!   429 and 500 answers carry the headers too;
//! - **catch_panic** inside metrics, so a panic is counted as the 500 it becomes;
//! - **cors** outside auth and rate limiting, so a preflight is never refused with 401 or 429 and a
//!   browser can read the errors those layers answer;
//! - **timeout** and **body_limit** only on plain HTTP routes: a WebSocket or an event stream must
//!   outlive any request deadline. Compression sits outside them; it only touches bodies on their
//!   way out, so its place changes nothing else (a 408 or 413 body may be compressed, which is
//!   harmless).
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use axum::{body::Body, routing::get, Router};
//! use crosscut::preset::{Stack, StackConfig};
//! use http::{Request, StatusCode};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), crosscut::preset::StackConfigError> {
//! let config = StackConfig {
//!     cors_origins: vec!["https://app.example".to_owned()],
//!     timeout: Duration::from_secs(10),
//!     ..StackConfig::default()
//! };
//! let app = Stack::new(config)?.apply(Router::new().route("/", get(|| async { "hello" })));
//!
//! let res = app.oneshot(Request::get("/missing").body(Body::empty()).unwrap()).await.unwrap();
//! assert_eq!(res.status(), StatusCode::NOT_FOUND);
//! assert!(res.headers().contains_key("x-request-id"));
//! assert_eq!(res.headers()["x-frame-options"], "DENY");
//! # Ok(())
//! # }
//! ```
//!
//! Composing by hand, with the long-lived routes kept out of `http()`. Each group takes its whole
//! stack in one `ServiceBuilder` and one `Router::layer` call (every call boxes each route once
//! more, and axum clones that box and boxes its future per request); the 404 fallback sits on one
//! group so that it gets the layers too:
//!
//! ```
//! # use axum::{routing::get, Router};
//! # use crosscut::preset::{Stack, StackConfig};
//! use tower::ServiceBuilder;
//! # fn main() -> Result<(), crosscut::preset::StackConfigError> {
//! let stack = Stack::new(StackConfig::default())?;
//! // Your own layers go between these: metrics after outer(), a rate limit after inner().
//! let edge = || ServiceBuilder::new().layer(stack.outer()).layer(stack.inner());
//! let api = Router::new()
//!     .route("/api/items", get(|| async { "[]" }))
//!     .layer(edge().layer(stack.http()));
//! let streams = Router::new()
//!     .route("/sse", get(|| async { "stream" }))
//!     .fallback(|| async { (http::StatusCode::NOT_FOUND, "no such route") })
//!     .layer(edge());
//! let app: Router = api.merge(streams);
//! # let _ = app;
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::time::Duration;

use axum::Router;
use tower::layer::util::{Identity, Stack as Layered};
use tower::util::Either;
use tower::ServiceBuilder;

use crate::access_log::AccessLogLayer;
use crate::body_limit::BodyLimitLayer;
use crate::catch_panic::CatchPanicLayer;
use crate::compression::CompressionLayer;
use crate::cors::{CorsConfigError, CorsLayer};
use crate::request_id::RequestIdLayer;
use crate::security_headers::SecurityHeadersLayer;
use crate::timeout::TimeoutLayer;

/// What the preset needs to know; every field has the contract's default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackConfig {
    /// Allowed CORS origins: exact `scheme://host[:port]`, or `"*"` for any. Default `["*"]`.
    pub cors_origins: Vec<String>,
    /// Deadline for plain HTTP handlers. Default 30 s.
    pub timeout: Duration,
    /// Largest request body in bytes. Default 1 MiB.
    pub max_body_bytes: usize,
    /// Compress responses (gzip, br) for clients that accept it. Default on.
    pub compression: bool,
    /// Log one event per request. Default on.
    pub access_log: bool,
}

impl Default for StackConfig {
    fn default() -> Self {
        Self {
            cors_origins: vec!["*".to_owned()],
            timeout: Duration::from_secs(30),
            max_body_bytes: 1024 * 1024,
            compression: true,
            access_log: true,
        }
    }
}

/// Why a [`StackConfig`] was refused; names the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackConfigError {
    field: &'static str,
    message: String,
}

impl StackConfigError {
    /// The [`StackConfig`] field at fault.
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// What is wrong with it.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for StackConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for StackConfigError {}

impl From<CorsConfigError> for StackConfigError {
    fn from(err: CorsConfigError) -> Self {
        Self {
            field: "cors_origins",
            message: err.to_string(),
        }
    }
}

/// The layers outside everything: request id, access log, security headers (outermost first).
pub type OuterLayer = ServiceBuilder<
    Layered<
        SecurityHeadersLayer,
        Layered<Either<AccessLogLayer, Identity>, Layered<RequestIdLayer, Identity>>,
    >,
>;

/// The layers between metrics and rate limiting: panic catching, then CORS.
pub type InnerLayer = ServiceBuilder<Layered<CorsLayer, Layered<CatchPanicLayer, Identity>>>;

/// The layers of plain HTTP route groups: compression, timeout, body limit.
pub type HttpLayer = ServiceBuilder<
    Layered<BodyLimitLayer, Layered<TimeoutLayer, Layered<CompressionLayer, Identity>>>,
>;

/// The edge layers, configured once, handed out as [`outer`](Stack::outer),
/// [`inner`](Stack::inner) and [`http`](Stack::http), or all at once by [`apply`](Stack::apply).
///
/// See the [module docs](self) for the order and an example.
#[derive(Debug, Clone)]
#[must_use]
pub struct Stack {
    access_log: Option<AccessLogLayer>,
    security_headers: SecurityHeadersLayer,
    cors: CorsLayer,
    timeout: TimeoutLayer,
    body_limit: BodyLimitLayer,
    compression: CompressionLayer,
}

impl Stack {
    /// Checks `config` and builds every layer, so nothing is parsed per request.
    ///
    /// Refuses an invalid or empty origin list, a zero timeout and a zero body limit.
    pub fn new(config: StackConfig) -> Result<Self, StackConfigError> {
        if config.timeout.is_zero() {
            return Err(StackConfigError {
                field: "timeout",
                message: "must be more than zero".to_owned(),
            });
        }
        if config.max_body_bytes == 0 {
            return Err(StackConfigError {
                field: "max_body_bytes",
                message: "must be more than zero".to_owned(),
            });
        }
        Ok(Self {
            access_log: config.access_log.then(AccessLogLayer::new),
            security_headers: SecurityHeadersLayer::new(),
            cors: CorsLayer::from_origins(&config.cors_origins)?,
            timeout: TimeoutLayer::new(config.timeout),
            body_limit: BodyLimitLayer::new(config.max_body_bytes),
            compression: if config.compression {
                CompressionLayer::new()
            } else {
                CompressionLayer::disabled()
            },
        })
    }

    /// Replaces the security headers layer, e.g. one built with a different CSP.
    pub fn with_security_headers(mut self, layer: SecurityHeadersLayer) -> Self {
        self.security_headers = layer;
        self
    }

    /// Replaces the access log layer, e.g. with one writing to a sink of its own
    /// ([`AccessLogLayer::with_sink`]); this turns the access log on even if
    /// [`StackConfig::access_log`] turned it off.
    pub fn with_access_log(mut self, layer: AccessLogLayer) -> Self {
        self.access_log = Some(layer);
        self
    }

    /// Request id, access log, security headers: to be the outermost layers of the app.
    pub fn outer(&self) -> OuterLayer {
        ServiceBuilder::new()
            .layer(RequestIdLayer::new())
            .option_layer(self.access_log.clone())
            .layer(self.security_headers.clone())
    }

    /// Panic catching, then CORS: inside metrics, outside rate limiting and auth.
    pub fn inner(&self) -> InnerLayer {
        ServiceBuilder::new()
            .layer(CatchPanicLayer::new())
            .layer(self.cors.clone())
    }

    /// Compression, timeout, body limit: for plain HTTP route groups, never WebSocket or SSE.
    pub fn http(&self) -> HttpLayer {
        ServiceBuilder::new()
            .layer(self.compression.clone())
            .layer(self.timeout)
            .layer(self.body_limit)
    }

    /// The whole stack on `router`, treating every route as plain HTTP.
    ///
    /// For routers with WebSocket or SSE routes, give each group [`outer`](Self::outer) and
    /// [`inner`](Self::inner), with [`http`](Self::http) on the plain group only, in one
    /// `Router::layer` call per group before merging them (the 404 fallback on one of the groups).
    ///
    /// One `Router::layer` call for all three: each call boxes every route once more and costs an
    /// allocation and a boxed future per request (about 150 to 250 ns here).
    pub fn apply<S>(&self, router: Router<S>) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        router.layer(
            ServiceBuilder::new()
                .layer(self.outer())
                .layer(self.inner())
                .layer(self.http()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request_id::X_REQUEST_ID;
    use axum::body::{Body, Bytes};
    use axum::routing::{get, post};
    use http::{header, Request, Response, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    fn app(config: StackConfig) -> Router {
        let router = Router::new()
            .route("/", get(|| async { "ok" }))
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "late"
                }),
            )
            .route(
                "/panic",
                get(|| async {
                    if true {
                        panic!("boom");
                    }
                    "unreachable"
                }),
            )
            .route(
                "/upload",
                post(|b: Bytes| async move { b.len().to_string() }),
            )
            .fallback(|| async { crate::ApiError::not_found("no such route") });
        Stack::new(config).unwrap().apply(router)
    }

    fn config() -> StackConfig {
        StackConfig {
            cors_origins: vec!["https://a.example".to_owned()],
            timeout: Duration::from_millis(50),
            max_body_bytes: 16,
            ..StackConfig::default()
        }
    }

    async fn json(res: Response<Body>) -> serde_json::Value {
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    fn assert_edge_headers(res: &Response<Body>, id: &str) {
        assert_eq!(res.headers()[X_REQUEST_ID], id, "{:?}", res.status());
        for name in [
            "x-content-type-options",
            "x-frame-options",
            "strict-transport-security",
            "content-security-policy",
            "referrer-policy",
            "x-xss-protection",
            "cross-origin-opener-policy",
            "cross-origin-resource-policy",
            "x-permitted-cross-domain-policies",
        ] {
            assert!(
                res.headers().contains_key(name),
                "{name} on {}",
                res.status()
            );
        }
    }

    async fn call(req: http::request::Builder, body: Body) -> Response<Body> {
        let req = req.header(X_REQUEST_ID, "edge-1").body(body).unwrap();
        app(config()).oneshot(req).await.unwrap()
    }

    #[tokio::test]
    async fn ok_response_has_edge_headers() {
        let res = call(Request::get("/"), Body::empty()).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_edge_headers(&res, "edge-1");
    }

    #[tokio::test]
    async fn timeout_408_has_edge_headers() {
        let res = call(Request::get("/slow"), Body::empty()).await;
        assert_eq!(res.status(), StatusCode::REQUEST_TIMEOUT);
        assert_edge_headers(&res, "edge-1");
        assert_eq!(json(res).await["code"], "REQUEST_TIMEOUT");
    }

    #[tokio::test]
    async fn panic_500_has_edge_headers() {
        let res = call(Request::get("/panic"), Body::empty()).await;
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_edge_headers(&res, "edge-1");
        assert_eq!(json(res).await["code"], "INTERNAL_ERROR");
    }

    #[tokio::test]
    async fn body_limit_413_has_edge_headers() {
        let res = call(Request::post("/upload"), Body::from("x".repeat(17))).await;
        assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_edge_headers(&res, "edge-1");
        assert_eq!(json(res).await["code"], "PAYLOAD_TOO_LARGE");
    }

    #[tokio::test]
    async fn not_found_has_edge_headers() {
        let res = call(Request::get("/nope"), Body::empty()).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        assert_edge_headers(&res, "edge-1");
    }

    #[tokio::test]
    async fn preflight_is_204_with_edge_headers() {
        let req = Request::options("/upload")
            .header(header::ORIGIN, "https://a.example")
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST");
        let res = call(req, Body::empty()).await;
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        assert_eq!(
            res.headers()["access-control-allow-origin"],
            "https://a.example"
        );
        assert_edge_headers(&res, "edge-1");
    }

    #[tokio::test]
    async fn error_reaching_a_cors_origin_is_readable() {
        let req = Request::get("/slow").header(header::ORIGIN, "https://a.example");
        let res = call(req, Body::empty()).await;
        assert_eq!(res.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(
            res.headers()["access-control-allow-origin"],
            "https://a.example"
        );
    }

    #[tokio::test]
    async fn generated_id_when_client_sends_none() {
        let req = Request::get("/").body(Body::empty()).unwrap();
        let res = app(config()).oneshot(req).await.unwrap();
        let id = res.headers()[X_REQUEST_ID].to_str().unwrap();
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    }

    #[tokio::test]
    async fn compression_follows_the_switch() {
        let long = "y".repeat(200);
        for (on, expect) in [(true, true), (false, false)] {
            let body = long.clone();
            let router = Router::new().route("/", get(move || async move { body }));
            let stack = Stack::new(StackConfig {
                compression: on,
                ..StackConfig::default()
            })
            .unwrap();
            let req = Request::get("/")
                .header(header::ACCEPT_ENCODING, "gzip")
                .body(Body::empty())
                .unwrap();
            let res = stack.apply(router).oneshot(req).await.unwrap();
            assert_eq!(res.headers().contains_key(header::CONTENT_ENCODING), expect);
        }
    }

    /// Keeps each entry's request id; enabled whatever the subscriber says.
    #[derive(Default)]
    struct Ids(std::sync::Mutex<Vec<String>>);

    impl crate::access_log::AccessSink for Ids {
        fn enabled(&self) -> bool {
            true
        }
        fn record(&self, entry: &crate::access_log::AccessEntry<'_>) {
            let id = entry.request_id.unwrap_or_default().to_owned();
            self.0.lock().unwrap().push(id);
        }
    }

    #[tokio::test]
    async fn access_log_with_a_sink_of_its_own() {
        let ids = std::sync::Arc::new(Ids::default());
        let config = StackConfig {
            access_log: false,
            ..config()
        };
        let router = Router::new().route("/", get(|| async { "ok" }));
        let app = Stack::new(config)
            .unwrap()
            .with_access_log(AccessLogLayer::with_sink(std::sync::Arc::clone(&ids)))
            .apply(router);
        let req = Request::get("/").header("x-request-id", "sink-1");
        let res = app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        // Once, inside the request id layer, so the entry carries the id.
        assert_eq!(*ids.0.lock().unwrap(), ["sink-1"]);
    }

    #[test]
    fn invalid_config_names_the_field() {
        let err = Stack::new(StackConfig {
            cors_origins: vec![String::new()],
            ..StackConfig::default()
        })
        .unwrap_err();
        assert_eq!(err.field(), "cors_origins");
        let err = Stack::new(StackConfig {
            cors_origins: vec![],
            ..StackConfig::default()
        })
        .unwrap_err();
        assert_eq!(err.field(), "cors_origins");
        let err = Stack::new(StackConfig {
            timeout: Duration::ZERO,
            ..StackConfig::default()
        })
        .unwrap_err();
        assert_eq!(err.field(), "timeout");
        let err = Stack::new(StackConfig {
            max_body_bytes: 0,
            ..StackConfig::default()
        })
        .unwrap_err();
        assert_eq!(err.field(), "max_body_bytes");
    }
}
