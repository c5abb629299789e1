//! Turns a panicking handler into a 500 `INTERNAL_ERROR` JSON answer and logs the panic message.
//!
//! The client sees only [`ApiError::internal`]'s fixed body; the panic message goes to the log as a
//! `tracing` ERROR event with target `crosscut::panic`. The connection and the server stay up, and
//! the next request is served as usual.
//!
//! # Differences from `tower_http::catch_panic`
//!
//! tower-http's `CatchPanic` boxes every response body into an `UnsyncBoxBody`, so each request
//! pays an allocation (and axum boxes it once more into its `Body`) just in case something panics.
//! This layer is the same idea (catch the panic in `call` and in every `poll`) but keeps the inner
//! service's `Response<Body>` as it is, so the path without a panic costs nothing extra.
//!
//! Put it inside the metrics layer, so a panic is counted as the 500 it becomes, and inside the
//! security headers and request id, so the 500 carries them.
//!
//! # Example
//!
//! ```
//! use axum::{body::Body, routing::get, Router};
//! use crosscut::catch_panic::CatchPanicLayer;
//! use http::{Request, StatusCode};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! async fn boom() -> &'static str {
//!     panic!("database handle was poisoned")
//! }
//!
//! let app = Router::new().route("/", get(boom)).layer(CatchPanicLayer::new());
//!
//! let res = app.oneshot(Request::get("/").body(Body::empty()).unwrap()).await.unwrap();
//! assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
//! assert_eq!(res.headers()["content-type"], "application/json");
//! # }
//! ```

use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::response::IntoResponse;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::error::ApiError;

/// Layer that applies the [`CatchPanic`] middleware.
///
/// See the [module docs](self) for an example.
#[derive(Debug, Clone, Copy, Default)]
#[must_use]
pub struct CatchPanicLayer {
    _priv: (),
}

impl CatchPanicLayer {
    /// The layer: logs the panic message, answers 500 `INTERNAL_ERROR`.
    pub const fn new() -> Self {
        Self { _priv: () }
    }
}

impl<S> Layer<S> for CatchPanicLayer {
    type Service = CatchPanic<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CatchPanic { inner }
    }
}

/// Middleware that answers 500 `INTERNAL_ERROR` when the inner service panics.
///
/// See the [module docs](self) for an example.
#[derive(Debug, Clone, Copy)]
pub struct CatchPanic<S> {
    inner: S,
}

impl<S> CatchPanic<S> {
    /// Wraps `inner`.
    pub const fn new(inner: S) -> Self {
        Self { inner }
    }

    define_inner_service_accessors!();
}

impl<S, ReqBody> Service<Request<ReqBody>> for CatchPanic<S>
where
    S: Service<Request<ReqBody>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        // A service may panic while building its future, not only while it runs.
        match catch_unwind(AssertUnwindSafe(|| self.inner.call(req))) {
            Ok(future) => ResponseFuture {
                inner: Some(future),
            },
            Err(panic) => {
                log_panic(&*panic);
                ResponseFuture { inner: None }
            }
        }
    }
}

pin_project! {
    /// Response future for [`CatchPanic`].
    pub struct ResponseFuture<F> {
        // `None` when the service panicked in `call`: the future then answers 500 at once.
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
        let mut this = self.project();
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            return Poll::Ready(Ok(ApiError::internal().into_response()));
        };
        match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(poll) => poll,
            Err(panic) => {
                // Dropped now: a future that panicked must not be polled again.
                this.inner.set(None);
                log_panic(&*panic);
                Poll::Ready(Ok(ApiError::internal().into_response()))
            }
        }
    }
}

fn log_panic(panic: &(dyn Any + Send)) {
    let message = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(non-string panic payload)");
    tracing::error!(target: "crosscut::panic", panic = message, "handler panicked");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use http::StatusCode;
    use http_body_util::BodyExt;
    use std::convert::Infallible;
    use tower::{ServiceBuilder, ServiceExt};

    async fn maybe_panic(req: Request<Body>) -> Result<Response<Body>, Infallible> {
        tokio::task::yield_now().await;
        if req.uri().path() == "/panic" {
            panic!("secret detail: password=hunter2");
        }
        if req.uri().path() == "/panic-string" {
            panic!("{}", String::from("formatted secret"));
        }
        Ok(Response::new(Body::from("ok")))
    }

    async fn body(res: Response<Body>) -> String {
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn panic_becomes_500_json_and_next_request_succeeds() {
        let mut svc = ServiceBuilder::new()
            .layer(CatchPanicLayer::new())
            .service_fn(maybe_panic);

        let req = Request::get("/panic").body(Body::empty()).unwrap();
        let res = svc.ready().await.unwrap().call(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            res.extensions().get::<ErrorCode>(),
            Some(&ErrorCode::InternalError)
        );
        let text = body(res).await;
        assert!(!text.contains("hunter2"), "detail leaked: {text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["code"], "INTERNAL_ERROR");

        let req = Request::get("/").body(Body::empty()).unwrap();
        let res = svc.ready().await.unwrap().call(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(body(res).await, "ok");
    }

    #[tokio::test]
    async fn formatted_panic_is_caught() {
        let svc = ServiceBuilder::new()
            .layer(CatchPanicLayer::new())
            .service_fn(maybe_panic);
        let req = Request::get("/panic-string").body(Body::empty()).unwrap();
        let res = svc.oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[derive(Clone)]
    struct PanicsInCall;

    impl Service<Request<Body>> for PanicsInCall {
        type Response = Response<Body>;
        type Error = Infallible;
        type Future = std::future::Ready<Result<Response<Body>, Infallible>>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _req: Request<Body>) -> Self::Future {
            panic!("panicked before returning a future")
        }
    }

    #[tokio::test]
    async fn panic_in_call_is_caught() {
        let svc = CatchPanicLayer::new().layer(PanicsInCall);
        let res = svc.oneshot(Request::new(Body::empty())).await.unwrap();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
