//! Answers 413 `PAYLOAD_TOO_LARGE` as JSON for request bodies over a limit.
//!
//! Two ways a body can be too large, both answered with [`ApiError`]'s body:
//!
//! - its `Content-Length` (or the body's exact size hint) is over the limit: the layer answers at
//!   once, without calling the handler or reading a byte of the body;
//! - its length is not known up front (`Transfer-Encoding: chunked`): the body is wrapped in
//!   [`http_body_util::Limited`], which fails once the limit is passed. axum's `Bytes`, `String`,
//!   `Json` and `Form` extractors turn that failure into a plain-text 413; this layer replaces every
//!   413 response that does not already carry an [`ErrorCode`] with the JSON one.
//!
//! A body whose size is known and within the limit is passed on unwrapped: hyper already stops it
//! at its `Content-Length`, and skipping the wrapper saves an allocation per request.
//!
//! # axum's `DefaultBodyLimit`
//!
//! axum's body extractors apply their own default limit of 2 MiB unless told otherwise, which would
//! undercut a larger configured limit. With a limit above 2 MiB this layer inserts
//! [`DefaultBodyLimit::disable`] into every request it passes on, since the body it hands over is
//! already bounded by the configured limit; at or below 2 MiB its own limit is always reached
//! first, and axum is left alone.
//! A route that wants less can still add `DefaultBodyLimit::max(n)` further in: the innermost one
//! wins.
//!
//! # Example
//!
//! ```
//! use axum::{body::{Body, Bytes}, routing::post, Router};
//! use crosscut::body_limit::BodyLimitLayer;
//! use http::{Request, StatusCode};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let app = Router::new()
//!     .route("/upload", post(|body: Bytes| async move { body.len().to_string() }))
//!     .layer(BodyLimitLayer::new(16));
//!
//! let req = Request::post("/upload").body(Body::from("far more than sixteen bytes")).unwrap();
//! let res = app.oneshot(req).await.unwrap();
//! assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
//! assert_eq!(res.headers()["content-type"], "application/json");
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::response::IntoResponse;
use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body::Body as HttpBody;
use http_body_util::Limited;
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::error::{ApiError, ErrorCode};

/// axum's default limit for its body extractors (`DEFAULT_LIMIT` in axum-core, not exported).
const AXUM_DEFAULT_LIMIT: u64 = 2_097_152;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Layer that applies the [`BodyLimit`] middleware.
///
/// See the [module docs](self) for an example.
#[derive(Debug, Clone, Copy)]
#[must_use]
pub struct BodyLimitLayer {
    limit: usize,
}

impl BodyLimitLayer {
    /// Answers 413 for bodies of more than `limit` bytes.
    pub const fn new(limit: usize) -> Self {
        Self { limit }
    }

    /// The configured limit in bytes.
    pub const fn limit(&self) -> usize {
        self.limit
    }
}

impl<S> Layer<S> for BodyLimitLayer {
    type Service = BodyLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BodyLimit {
            inner,
            limit: self.limit,
        }
    }
}

/// Middleware that answers 413 `PAYLOAD_TOO_LARGE` JSON for bodies over a limit.
///
/// See the [module docs](self) for an example.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit<S> {
    inner: S,
    limit: usize,
}

impl<S> BodyLimit<S> {
    /// Wraps `inner` with a limit of `limit` bytes.
    pub const fn new(inner: S, limit: usize) -> Self {
        Self { inner, limit }
    }

    define_inner_service_accessors!();
}

impl<S, ReqBody> Service<Request<ReqBody>> for BodyLimit<S>
where
    S: Service<Request<Body>, Response = Response<Body>>,
    ReqBody: HttpBody<Data = Bytes> + Send + 'static,
    ReqBody::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let limit = self.limit as u64;
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let hint = req.body().size_hint();
        if declared.is_some_and(|n| n > limit) || hint.lower() > limit {
            return ResponseFuture { inner: None };
        }

        let mut req = req;
        // Under axum's own limit, ours always trips first and axum's never matters; telling axum
        // is only needed above it, and costs an allocation (a boxed request extension).
        if limit > AXUM_DEFAULT_LIMIT {
            DefaultBodyLimit::disable().apply(&mut req);
        }
        let (parts, body) = req.into_parts();
        let body = match hint.upper() {
            Some(upper) if upper <= limit => Body::new(body),
            _ => Body::new(Limited::new(body, self.limit)),
        };
        ResponseFuture {
            inner: Some(self.inner.call(Request::from_parts(parts, body))),
        }
    }
}

pin_project! {
    /// Response future for [`BodyLimit`].
    pub struct ResponseFuture<F> {
        // `None` when the declared length was already over the limit.
        #[pin]
        inner: Option<F>,
    }
}

impl<F, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(inner) = self.project().inner.as_pin_mut() else {
            return Poll::Ready(Ok(too_large()));
        };
        let res = ready!(inner.poll(cx))?;
        // axum's extractors answer a `LengthLimitError` with a plain-text 413 of their own.
        if res.status() == StatusCode::PAYLOAD_TOO_LARGE
            && res.extensions().get::<ErrorCode>().is_none()
        {
            return Poll::Ready(Ok(too_large()));
        }
        Poll::Ready(Ok(res))
    }
}

fn too_large() -> Response<Body> {
    ApiError::from(ErrorCode::PayloadTooLarge).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::post;
    use axum::{Json, Router};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    fn app(limit: usize) -> Router {
        Router::new()
            .route(
                "/bytes",
                post(|b: Bytes| async move { b.len().to_string() }),
            )
            .route(
                "/json",
                post(|Json(v): Json<serde_json::Value>| async move { v.to_string() }),
            )
            .route(
                "/raw",
                post(|body: Body| async move {
                    match body.collect().await {
                        Ok(b) => b.to_bytes().len().to_string(),
                        Err(_) => "body error".to_owned(),
                    }
                }),
            )
            .layer(BodyLimitLayer::new(limit))
    }

    /// A body of `chunks` chunks of 100 bytes whose length is not known up front, like a
    /// `Transfer-Encoding: chunked` request.
    struct Chunked {
        chunks: usize,
    }

    impl HttpBody for Chunked {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
            if self.chunks == 0 {
                return Poll::Ready(None);
            }
            self.chunks -= 1;
            Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from_static(
                &[b'x'; 100],
            )))))
        }
    }

    fn chunked(total: usize) -> Body {
        Body::new(Chunked {
            chunks: total / 100,
        })
    }

    async fn json(res: Response<Body>) -> serde_json::Value {
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn body_within_limit_passes() {
        let req = Request::post("/bytes").body(Body::from("12345")).unwrap();
        let res = app(16).oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn declared_length_over_limit_is_refused_before_the_handler() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let called = Arc::new(AtomicBool::new(false));
        let flag = called.clone();
        let app = Router::new()
            .route(
                "/",
                post(move || {
                    flag.store(true, Ordering::SeqCst);
                    async { "called" }
                }),
            )
            .layer(BodyLimitLayer::new(16));
        let req = Request::post("/")
            .header(header::CONTENT_LENGTH, "17")
            .body(Body::from("x".repeat(17)))
            .unwrap();
        let res = app.oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert!(!called.load(Ordering::SeqCst));
        assert_eq!(json(res).await["code"], "PAYLOAD_TOO_LARGE");
    }

    #[tokio::test]
    async fn body_of_exactly_the_limit_passes() {
        let req = Request::post("/bytes")
            .body(Body::from("x".repeat(16)))
            .unwrap();
        let res = app(16).oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn chunked_oversized_body_gets_json_413_from_bytes_extractor() {
        let req = Request::post("/bytes").body(chunked(1000)).unwrap();
        let res = app(500).oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(res.headers()["content-type"], "application/json");
        let v = json(res).await;
        assert_eq!(v["code"], "PAYLOAD_TOO_LARGE");
        assert_eq!(v["error"], "Payload Too Large");
    }

    #[tokio::test]
    async fn chunked_oversized_body_gets_json_413_from_json_extractor() {
        let req = Request::post("/json")
            .header(header::CONTENT_TYPE, "application/json")
            .body(chunked(1000))
            .unwrap();
        let res = app(500).oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(json(res).await["code"], "PAYLOAD_TOO_LARGE");
    }

    #[tokio::test]
    async fn chunked_body_is_cut_for_raw_readers_too() {
        let req = Request::post("/raw").body(chunked(1000)).unwrap();
        let res = app(500).oneshot(req).await.unwrap();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"body error");
    }

    #[tokio::test]
    async fn chunked_body_within_limit_passes() {
        let req = Request::post("/bytes").body(chunked(400)).unwrap();
        let res = app(500).oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"400");
    }

    #[tokio::test]
    async fn axum_default_2mb_limit_does_not_undercut_a_larger_limit() {
        let size = 3 * 1024 * 1024;
        let app = app(4 * 1024 * 1024);
        let req = Request::post("/bytes")
            .body(Body::from(vec![b'x'; size]))
            .unwrap();
        let res = app.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let req = Request::post("/bytes").body(chunked(size)).unwrap();
        let res = app.oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn at_axum_default_our_limit_decides_both_ways() {
        // Here axum is not told to stand aside: a body of exactly the limit still passes, and
        // one chunk more still gets this layer's JSON 413.
        let limit = AXUM_DEFAULT_LIMIT as usize;
        let size = limit / 100 * 100;
        let req = Request::post("/bytes").body(chunked(size)).unwrap();
        let res = app(size).oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let req = Request::post("/bytes").body(chunked(size + 100)).unwrap();
        let res = app(size).oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(json(res).await["code"], "PAYLOAD_TOO_LARGE");
    }

    #[tokio::test]
    async fn json_413_from_inner_layers_is_kept() {
        let app = Router::new()
            .route(
                "/",
                post(|| async { ApiError::new(ErrorCode::PayloadTooLarge, "custom message") }),
            )
            .layer(BodyLimitLayer::new(16));
        let req = Request::post("/").body(Body::empty()).unwrap();
        let res = app.oneshot(req).await.unwrap();
        assert_eq!(json(res).await["message"], "custom message");
    }
}
