//! Keeps the client's `X-Request-ID` or makes a new UUID, and echoes it on every response.
//!
//! The id is put in the request extensions as a [`RequestId`], so the access log, handlers and error
//! reports further in read the same value, and copied onto the response, including error responses
//! answered by layers further in (timeout, body limit, auth, a caught panic).
//!
//! A client's id is kept when it is 1 to 128 visible ASCII characters (`0x21..=0x7E`); anything else
//! (empty, too long, spaces, control or non-ASCII bytes) is replaced, because the id ends up in logs
//! and must not let a client forge log lines or blow up their size. New ids are UUID v4 from uuid's
//! thread-local fast RNG, so no system call is made per request.
//!
//! Put this layer outermost: everything inside it, and every error answered inside it, then knows
//! the id.
//!
//! # Example
//!
//! ```
//! use axum::{body::Body, routing::get, Extension, Router};
//! use crosscut::request_id::{RequestId, RequestIdLayer, X_REQUEST_ID};
//! use http::Request;
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let app = Router::new()
//!     .route("/", get(|Extension(id): Extension<RequestId>| async move { id.to_string() }))
//!     .layer(RequestIdLayer::new());
//!
//! let req = Request::get("/").header("x-request-id", "abc-123").body(Body::empty()).unwrap();
//! let res = app.oneshot(req).await.unwrap();
//! assert_eq!(res.headers()[X_REQUEST_ID], "abc-123");
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::header::{HeaderName, HeaderValue};
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

/// The `x-request-id` header name.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client-sent id that is kept.
const MAX_LEN: usize = 128;

/// The id of the request being handled, found in the request extensions.
///
/// Always 1 to 128 visible ASCII characters, so it is safe to log and to send back as a header.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// Wraps `value` if it is an acceptable id: 1 to 128 visible ASCII characters.
    pub fn from_header(value: &HeaderValue) -> Option<Self> {
        is_acceptable(value.as_bytes()).then(|| Self(value.clone()))
    }

    /// A new random id (UUID v4, hyphenated, lower case).
    pub fn generate() -> Self {
        let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
        uuid::Uuid::new_v4().hyphenated().encode_lower(&mut text);
        // The id is cloned into the request, the response and the request's extensions: bytes
        // owned behind one reference count make each clone an increment. A `HeaderValue` made
        // from a string copies it into a buffer whose first clone allocates a second time to
        // become shareable.
        let shared = bytes::Bytes::from_owner(text);
        // A hyphenated UUID is always a valid header value; the fallback only avoids a panic path.
        Self(HeaderValue::from_maybe_shared(shared).unwrap_or(HeaderValue::from_static("invalid")))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Only visible ASCII ever gets in, so this never falls back.
        self.0.to_str().unwrap_or_default()
    }

    /// The id as a header value, ready to be sent.
    pub fn header_value(&self) -> &HeaderValue {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn is_acceptable(bytes: &[u8]) -> bool {
    (1..=MAX_LEN).contains(&bytes.len()) && bytes.iter().all(|b| (0x21..=0x7E).contains(b))
}

/// Layer that applies the [`RequestIdService`] middleware.
///
/// See the [module docs](self) for an example.
#[derive(Debug, Clone, Copy, Default)]
#[must_use]
pub struct RequestIdLayer {
    _priv: (),
}

impl RequestIdLayer {
    /// The layer: keeps an acceptable client id, otherwise makes a UUID v4.
    pub const fn new() -> Self {
        Self { _priv: () }
    }
}

impl<S> Layer<S> for RequestIdLayer {
    type Service = RequestIdService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestIdService { inner }
    }
}

/// Middleware that sets the [`RequestId`] extension and the `x-request-id` response header.
///
/// See the [module docs](self) for an example.
#[derive(Debug, Clone, Copy)]
pub struct RequestIdService<S> {
    inner: S,
}

impl<S> RequestIdService<S> {
    /// Wraps `inner`.
    pub const fn new(inner: S) -> Self {
        Self { inner }
    }

    define_inner_service_accessors!();
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequestIdService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let id = match req
            .headers()
            .get(X_REQUEST_ID)
            .and_then(RequestId::from_header)
        {
            Some(id) => id,
            None => {
                let id = RequestId::generate();
                // Replaced in the request too, so a handler or proxy reading the header sees the
                // same id as the extension and the log.
                req.headers_mut().insert(X_REQUEST_ID, id.0.clone());
                id
            }
        };
        let value = id.0.clone();
        req.extensions_mut().insert(id);
        ResponseFuture {
            inner: self.inner.call(req),
            id: Some(value),
        }
    }
}

pin_project! {
    /// Response future for [`RequestIdService`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        id: Option<HeaderValue>,
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut res = ready!(this.inner.poll(cx))?;
        if let Some(id) = this.id.take() {
            // Overwritten rather than kept: the response must name this request's id, whatever an
            // inner service copied from elsewhere.
            let headers = res.headers_mut();
            crate::room::make_room(headers, 1);
            headers.insert(X_REQUEST_ID, id);
        }
        Poll::Ready(Ok(res))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ApiError, ErrorCode};
    use axum::body::Body;
    use axum::response::IntoResponse;
    use http_body_util::BodyExt;
    use tower::{service_fn, ServiceBuilder, ServiceExt};

    async fn echo_id(req: Request<Body>) -> Result<Response<Body>, std::convert::Infallible> {
        let id = req
            .extensions()
            .get::<RequestId>()
            .map(|id| id.to_string())
            .unwrap_or_default();
        let header = req
            .headers()
            .get(X_REQUEST_ID)
            .map(|v| v.to_str().unwrap_or_default().to_owned())
            .unwrap_or_default();
        assert_eq!(id, header, "extension and request header agree");
        Ok(Response::new(Body::from(id)))
    }

    async fn run(id: Option<&[u8]>) -> (String, String) {
        let svc = ServiceBuilder::new()
            .layer(RequestIdLayer::new())
            .service_fn(echo_id);
        let mut req = Request::new(Body::empty());
        if let Some(id) = id {
            req.headers_mut()
                .insert(X_REQUEST_ID, HeaderValue::from_bytes(id).unwrap());
        }
        let res = svc.oneshot(req).await.unwrap();
        let header = res.headers()[X_REQUEST_ID].to_str().unwrap().to_owned();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        (header, String::from_utf8(body.to_vec()).unwrap())
    }

    fn is_uuid(s: &str) -> bool {
        uuid::Uuid::parse_str(s).is_ok_and(|u| u.get_version_num() == 4)
    }

    #[tokio::test]
    async fn client_id_is_kept() {
        let (header, seen) = run(Some(b"abc-123_XYZ")).await;
        assert_eq!(header, "abc-123_XYZ");
        assert_eq!(seen, "abc-123_XYZ");
    }

    #[tokio::test]
    async fn id_of_128_chars_is_kept() {
        let id = "a".repeat(128);
        let (header, _) = run(Some(id.as_bytes())).await;
        assert_eq!(header, id);
    }

    #[tokio::test]
    async fn id_of_129_chars_is_replaced() {
        let id = "a".repeat(129);
        let (header, seen) = run(Some(id.as_bytes())).await;
        assert!(is_uuid(&header), "{header}");
        assert_eq!(header, seen);
    }

    #[tokio::test]
    async fn non_visible_chars_are_replaced() {
        for bad in [
            &b"has space"[..],
            b"tab\there",
            b"caf\xC3\xA9",
            b"\xFF",
            b"",
        ] {
            let (header, seen) = run(Some(bad)).await;
            assert!(is_uuid(&header), "{bad:?} gave {header}");
            assert_eq!(header, seen);
        }
    }

    #[tokio::test]
    async fn missing_id_is_generated_and_unique() {
        let (a, _) = run(None).await;
        let (b, _) = run(None).await;
        assert!(is_uuid(&a) && is_uuid(&b));
        assert_ne!(a, b);
    }

    #[tokio::test]
    async fn error_responses_from_inner_services_get_the_id() {
        let svc = ServiceBuilder::new()
            .layer(RequestIdLayer::new())
            .service(service_fn(|_req: Request<Body>| async {
                Ok::<_, std::convert::Infallible>(
                    ApiError::from(ErrorCode::RequestTimeout).into_response(),
                )
            }));
        let req = Request::builder()
            .header(X_REQUEST_ID, "err-1")
            .body(Body::empty())
            .unwrap();
        let res = svc.oneshot(req).await.unwrap();
        assert_eq!(res.status(), http::StatusCode::REQUEST_TIMEOUT);
        assert_eq!(res.headers()[X_REQUEST_ID], "err-1");
    }
}
