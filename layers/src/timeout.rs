//! Answers 408 `REQUEST_TIMEOUT` as JSON when the inner service runs past a duration.
//!
//! # Differences from `tower_http::timeout`
//!
//! tower-http's `TimeoutLayer` answers with an empty body, so a client of an API that promises one
//! JSON error shape would get a bare 408. This layer answers with [`ApiError`]'s body instead:
//!
//! ```json
//! {"error": "Request Timeout", "message": "the request took too long to handle", "code": "REQUEST_TIMEOUT"}
//! ```
//!
//! Like tower-http's (and unlike `tower::timeout`), it never returns an error: an error would make
//! hyper close the connection without any response.
//!
//! The inner future is dropped at the deadline, which cancels the handler at its next `.await`.
//! The deadline counts from the call; the timer behind it is only made if the handler has to
//! wait, so a handler that answers on its first poll costs one clock read, and the response
//! future carries a pointer rather than a timer (a timer built for every request was most of
//! this layer's cost, and moved with the future through every layer outside it).
//! Only use it on plain request/response routes: a WebSocket upgrade or an event stream is meant
//! to outlive any such deadline.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use axum::{body::Body, routing::get, Router};
//! use crosscut::timeout::TimeoutLayer;
//! use http::{Request, StatusCode};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let app = Router::new()
//!     .route("/slow", get(|| async { tokio::time::sleep(Duration::from_secs(5)).await; "late" }))
//!     .layer(TimeoutLayer::new(Duration::from_millis(20)));
//!
//! let res = app.oneshot(Request::get("/slow").body(Body::empty()).unwrap()).await.unwrap();
//! assert_eq!(res.status(), StatusCode::REQUEST_TIMEOUT);
//! assert_eq!(res.headers()["content-type"], "application/json");
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::response::IntoResponse;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_layer::Layer;
use tower_service::Service;

use crate::error::{ApiError, ErrorCode};

/// Layer that applies the [`Timeout`] middleware.
///
/// See the [module docs](self) for an example.
#[derive(Debug, Clone, Copy)]
#[must_use]
pub struct TimeoutLayer {
    timeout: Duration,
}

impl TimeoutLayer {
    /// Answers 408 when the inner service has not answered within `timeout`.
    pub const fn new(timeout: Duration) -> Self {
        Self { timeout }
    }

    /// The configured duration.
    pub const fn timeout(&self) -> Duration {
        self.timeout
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Timeout {
            inner,
            timeout: self.timeout,
        }
    }
}

/// Middleware that answers 408 `REQUEST_TIMEOUT` JSON past a duration.
///
/// See the [module docs](self) for an example.
#[derive(Debug, Clone, Copy)]
pub struct Timeout<S> {
    inner: S,
    timeout: Duration,
}

impl<S> Timeout<S> {
    /// Wraps `inner` with a `timeout`.
    pub const fn new(inner: S, timeout: Duration) -> Self {
        Self { inner, timeout }
    }

    define_inner_service_accessors!();
}

impl<S, ReqBody> Service<Request<ReqBody>> for Timeout<S>
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
        // `checked_add`: a timeout of centuries is no timeout, not a panic.
        let deadline = Instant::now().checked_add(self.timeout);
        ResponseFuture {
            inner: self.inner.call(req),
            deadline,
            sleep: None,
        }
    }
}

pin_project! {
    /// Response future for [`Timeout`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        // `None` when the timeout is too far off to represent.
        deadline: Option<Instant>,
        // Made the first time the inner future has to wait.
        sleep: Option<Pin<Box<Sleep>>>,
    }
}

impl<F, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // The inner future first: a response that is ready wins over a deadline passed meanwhile.
        if let Poll::Ready(res) = this.inner.poll(cx) {
            return Poll::Ready(res);
        }
        let Some(deadline) = *this.deadline else {
            return Poll::Pending;
        };
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Ok(ApiError::from(ErrorCode::RequestTimeout).into_response()));
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;
    use http_body_util::BodyExt;
    use std::convert::Infallible;
    use tower::{ServiceBuilder, ServiceExt};

    async fn sleepy(req: Request<Body>) -> Result<Response<Body>, Infallible> {
        let ms: u64 = req.uri().path()[1..].parse().unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(Response::new(Body::from("done")))
    }

    async fn call(timeout_ms: u64, path: &str) -> Response<Body> {
        let svc = ServiceBuilder::new()
            .layer(TimeoutLayer::new(Duration::from_millis(timeout_ms)))
            .service_fn(sleepy);
        let req = Request::get(path).body(Body::empty()).unwrap();
        svc.oneshot(req).await.unwrap()
    }

    #[tokio::test]
    async fn request_completes_within_timeout() {
        let res = call(2000, "/1").await;
        assert_eq!(res.status(), StatusCode::OK);
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"done");
    }

    #[tokio::test]
    async fn slow_request_gets_408_json() {
        let res = call(20, "/5000").await;
        assert_eq!(res.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(res.headers()["content-type"], "application/json");
        assert_eq!(
            res.extensions().get::<ErrorCode>(),
            Some(&ErrorCode::RequestTimeout)
        );
        let body = res.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["code"], "REQUEST_TIMEOUT");
        assert_eq!(v["error"], "Request Timeout");
        assert!(v["message"].is_string());
    }

    #[tokio::test]
    async fn deadline_counts_from_the_call_not_the_first_wait() {
        // 30 ms of work before the first `.await`, then 30 ms of waiting: 60 ms in all, past a
        // 45 ms deadline, though the wait alone is within it.
        let svc = ServiceBuilder::new()
            .layer(TimeoutLayer::new(Duration::from_millis(45)))
            .service_fn(|_req: Request<Body>| async {
                std::thread::sleep(Duration::from_millis(30));
                tokio::time::sleep(Duration::from_millis(30)).await;
                Ok::<_, Infallible>(Response::new(Body::empty()))
            });
        let res = svc.oneshot(Request::new(Body::empty())).await.unwrap();
        assert_eq!(res.status(), StatusCode::REQUEST_TIMEOUT);
    }

    #[tokio::test]
    async fn a_timeout_too_long_to_represent_never_fires() {
        let svc = ServiceBuilder::new()
            .layer(TimeoutLayer::new(Duration::MAX))
            .service_fn(sleepy);
        let res = svc
            .oneshot(Request::get("/20").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn handler_is_cancelled_at_the_deadline() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let finished = Arc::new(AtomicBool::new(false));
        let flag = finished.clone();
        let svc = ServiceBuilder::new()
            .layer(TimeoutLayer::new(Duration::from_millis(20)))
            .service_fn(move |_req: Request<Body>| {
                let flag = flag.clone();
                async move {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    flag.store(true, Ordering::SeqCst);
                    Ok::<_, Infallible>(Response::new(Body::empty()))
                }
            });
        let res = svc.oneshot(Request::new(Body::empty())).await.unwrap();
        assert_eq!(res.status(), StatusCode::REQUEST_TIMEOUT);
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(!finished.load(Ordering::SeqCst));
    }
}
