//! gzip and brotli response compression, never on event streams.
//!
//! A thin wrapper over tower-http's `CompressionLayer` with gzip and brotli on and tower-http's
//! [`DefaultPredicate`] deciding what to compress. That predicate skips:
//!
//! - `text/event-stream` (Server-Sent Events): compressing would buffer events inside the encoder,
//!   so a client would receive them late and in bursts;
//! - gRPC and images (already compressed);
//! - bodies known to be under 32 bytes, where the encoding costs more than it saves.
//!
//! The tests below pin the event-stream rule, so an upgrade of tower-http that changed it would
//! fail here. Only responses to clients that send a matching `Accept-Encoding` are compressed.
//!
//! # Differences from `tower_http::compression`
//!
//! A request whose `Accept-Encoding` offers neither gzip, brotli nor `*` skips tower-http's service
//! and goes straight to the inner one. tower-http wraps every response body in its
//! `CompressionBody`, which holds the state of every encoder inline: moving that large value
//! through the futures and boxing it for axum showed up in profiles as a tenth of the demo's CPU,
//! for responses that were never going to be compressed. Both paths answer with axum's `Body`, and
//! both send `Vary: Accept-Encoding` when compression is on.
//!
//! Do not put this layer on WebSocket routes: an upgrade has no body to compress, and keeping it
//! to plain HTTP route groups keeps the wrapper off long-lived connections.
//!
//! # Example
//!
//! ```
//! use axum::{body::Body, routing::get, Router};
//! use crosscut::compression::CompressionLayer;
//! use http::Request;
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let app = Router::new()
//!     .route("/", get(|| async { "a response long enough to be worth compressing, surely" }))
//!     .layer(CompressionLayer::new());
//!
//! let req = Request::get("/").header("accept-encoding", "gzip").body(Body::empty()).unwrap();
//! let res = app.oneshot(req).await.unwrap();
//! assert_eq!(res.headers()["content-encoding"], "gzip");
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_http::compression::DefaultPredicate;
use tower_layer::Layer;
use tower_service::Service;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const VARY_ACCEPT_ENCODING: HeaderValue = HeaderValue::from_static("accept-encoding");

/// Layer that applies the [`Compression`] middleware.
///
/// See the [module docs](self) for what is compressed and an example.
#[derive(Clone)]
#[must_use]
pub struct CompressionLayer {
    inner: tower_http::compression::CompressionLayer<DefaultPredicate>,
    enabled: bool,
}

impl CompressionLayer {
    /// gzip and brotli, never on `text/event-stream`, images, gRPC or tiny bodies.
    pub fn new() -> Self {
        let inner = tower_http::compression::CompressionLayer::new()
            .gzip(true)
            .br(true)
            .compress_when(DefaultPredicate::new());
        Self {
            inner,
            enabled: true,
        }
    }

    /// A layer that never compresses but has the same service type as [`CompressionLayer::new`],
    /// so a config switch can turn compression off without changing the router's type.
    pub fn disabled() -> Self {
        let inner = tower_http::compression::CompressionLayer::new()
            .gzip(false)
            .br(false)
            .compress_when(DefaultPredicate::new());
        Self {
            inner,
            enabled: false,
        }
    }
}

// By hand: tower-http's `DefaultPredicate` has no `Debug`.
impl std::fmt::Debug for CompressionLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompressionLayer")
            .field("gzip", &self.enabled)
            .field("br", &self.enabled)
            .finish()
    }
}

impl Default for CompressionLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Layer<S> for CompressionLayer {
    type Service = Compression<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Compression {
            inner: self.inner.layer(inner),
            enabled: self.enabled,
        }
    }
}

/// The compression middleware: tower-http's for clients that accept gzip or brotli, a direct
/// call for everyone else.
///
/// See the [module docs](self) for an example.
#[derive(Clone)]
pub struct Compression<S> {
    inner: tower_http::compression::Compression<S, DefaultPredicate>,
    enabled: bool,
}

impl<S: std::fmt::Debug> std::fmt::Debug for Compression<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compression")
            .field("inner", self.inner.get_ref())
            .field("enabled", &self.enabled)
            .finish()
    }
}

impl<S> Compression<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        self.inner.get_ref()
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        self.inner.get_mut()
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner.into_inner()
    }
}

/// Whether an `Accept-Encoding` value offers an encoding this layer produces.
fn offers_compression(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    let has = |needle: &[u8]| {
        bytes
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
    };
    has(b"gzip") || has(b"br") || bytes.contains(&b'*')
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Compression<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError> + Send + Sync,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<
        S::Future,
        tower_http::compression::ResponseFuture<S::Future, DefaultPredicate>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let wanted = self.enabled
            && req
                .headers()
                .get_all(header::ACCEPT_ENCODING)
                .iter()
                .any(offers_compression);
        let kind = if wanted {
            Kind::Compressed {
                inner: self.inner.call(req),
            }
        } else {
            Kind::Plain {
                inner: self.inner.get_mut().call(req),
                vary: self.enabled,
            }
        };
        ResponseFuture { kind }
    }
}

pin_project! {
    /// Response future for [`Compression`].
    pub struct ResponseFuture<F, C> {
        #[pin]
        kind: Kind<F, C>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, C> {
        Plain { #[pin] inner: F, vary: bool },
        Compressed { #[pin] inner: C },
    }
}

impl<F, C, B, CB, E> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<Response<B>, E>>,
    C: Future<Output = Result<Response<CB>, E>>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    CB: http_body::Body<Data = Bytes> + Send + 'static,
    CB::Error: Into<BoxError>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Plain { inner, vary } => {
                // `Body::new` does not box a body that already is axum's `Body`.
                let mut res = ready!(inner.poll(cx))?.map(Body::new);
                if *vary {
                    // The answer would differ for a client that accepts gzip: caches must know.
                    res.headers_mut().append(header::VARY, VARY_ACCEPT_ENCODING);
                }
                Poll::Ready(Ok(res))
            }
            KindProj::Compressed { inner } => {
                Poll::Ready(Ok(ready!(inner.poll(cx))?.map(Body::new)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use axum::Router;
    use http::{header, Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    const LONG: &str = "data: {\"cpu_usage\": 12.5, \"memory_used\": 123456789}\n\n";

    fn app() -> Router {
        Router::new()
            .route(
                "/sse",
                get(|| async {
                    (
                        [(header::CONTENT_TYPE, "text/event-stream")],
                        LONG.repeat(20),
                    )
                }),
            )
            .route(
                "/json",
                get(|| async {
                    (
                        [(header::CONTENT_TYPE, "application/json")],
                        LONG.repeat(20),
                    )
                }),
            )
            .layer(CompressionLayer::new())
    }

    async fn get_with(path: &str, accept: Option<&str>) -> http::Response<Body> {
        let mut req = Request::get(path);
        if let Some(accept) = accept {
            req = req.header(header::ACCEPT_ENCODING, accept);
        }
        app()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn json_is_gzipped_when_accepted() {
        let res = get_with("/json", Some("gzip")).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()[header::CONTENT_ENCODING], "gzip");
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert!(body.len() < LONG.len() * 20);
    }

    #[tokio::test]
    async fn brotli_is_offered() {
        let res = get_with("/json", Some("br")).await;
        assert_eq!(res.headers()[header::CONTENT_ENCODING], "br");
    }

    #[tokio::test]
    async fn sse_is_not_compressed() {
        for accept in ["gzip", "br", "gzip, br"] {
            let res = get_with("/sse", Some(accept)).await;
            assert!(
                !res.headers().contains_key(header::CONTENT_ENCODING),
                "{accept}"
            );
            let body = res.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(body, LONG.repeat(20).as_bytes());
        }
    }

    #[tokio::test]
    async fn disabled_layer_never_compresses() {
        let app = Router::new()
            .route("/", get(|| async { LONG.repeat(20) }))
            .layer(CompressionLayer::disabled());
        let req = Request::get("/")
            .header(header::ACCEPT_ENCODING, "gzip, br")
            .body(Body::empty())
            .unwrap();
        let res = app.oneshot(req).await.unwrap();
        assert!(!res.headers().contains_key(header::CONTENT_ENCODING));
    }

    #[tokio::test]
    async fn nothing_compressed_without_accept_encoding() {
        let res = get_with("/json", None).await;
        assert!(!res.headers().contains_key(header::CONTENT_ENCODING));
    }

    #[tokio::test]
    async fn without_accept_encoding_the_body_is_untouched_and_vary_is_sent() {
        let res = get_with("/json", None).await;
        assert!(!res.headers().contains_key(header::CONTENT_ENCODING));
        assert_eq!(res.headers()[header::VARY], "accept-encoding");
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, LONG.repeat(20).as_bytes());
        let res = get_with("/json", Some("identity")).await;
        assert!(!res.headers().contains_key(header::CONTENT_ENCODING));
    }

    #[test]
    fn offers_compression_reads_the_header() {
        for (v, want) in [
            ("gzip", true),
            ("GZip;q=0.5", true),
            ("br", true),
            ("deflate, *;q=0.1", true),
            ("identity", false),
            ("deflate", false),
            ("", false),
        ] {
            assert_eq!(
                offers_compression(&HeaderValue::from_static(v)),
                want,
                "{v}"
            );
        }
    }
}
