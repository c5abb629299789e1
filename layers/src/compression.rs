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

use tower_http::compression::DefaultPredicate;
use tower_layer::Layer;

/// The compression middleware: tower-http's, with the predicate this module describes.
pub type Compression<S> = tower_http::compression::Compression<S, DefaultPredicate>;

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
        self.inner.layer(inner)
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
}
