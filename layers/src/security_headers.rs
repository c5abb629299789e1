//! Adds the usual hardening headers to every response, unless the handler set them itself.
//!
//! The defaults are the nine headers of the crosscut contract:
//!
//! | header | value |
//! |---|---|
//! | `X-Content-Type-Options` | `nosniff` |
//! | `X-Frame-Options` | `DENY` |
//! | `Strict-Transport-Security` | `max-age=31536000; includeSubDomains` |
//! | `Content-Security-Policy` | `default-src 'self'` |
//! | `Referrer-Policy` | `no-referrer` |
//! | `X-XSS-Protection` | `0` (the old `1; mode=block` opens holes in current browsers) |
//! | `Cross-Origin-Opener-Policy` | `same-origin` |
//! | `Cross-Origin-Resource-Policy` | `same-origin` |
//! | `X-Permitted-Cross-Domain-Policies` | `none` |
//!
//! Values are parsed once, when the layer is built, and shared by every clone; per response the
//! layer only looks each header up and clones a static value into the map when it is missing. A
//! header the handler already set is kept, so a route can loosen its own policy (a page with a
//! different CSP, an embeddable widget without `X-Frame-Options`).
//!
//! Put this layer outside every layer that can answer on its own (timeout, body limit, auth, rate
//! limit, panic catching), so their 4xx/5xx answers carry the headers too.
//!
//! # Example
//!
//! ```
//! use axum::{body::Body, routing::get, Router};
//! use crosscut::security_headers::SecurityHeadersLayer;
//! use http::Request;
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let app = Router::new()
//!     .route("/", get(|| async { "hello" }))
//!     .layer(SecurityHeadersLayer::new());
//!
//! let res = app.oneshot(Request::get("/").body(Body::empty()).unwrap()).await.unwrap();
//! assert_eq!(res.headers()["x-content-type-options"], "nosniff");
//! assert_eq!(res.headers()["x-frame-options"], "DENY");
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::header::{self, HeaderName, HeaderValue};
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

/// `Cross-Origin-Opener-Policy`, not among `http`'s constants.
pub const CROSS_ORIGIN_OPENER_POLICY: HeaderName =
    HeaderName::from_static("cross-origin-opener-policy");
/// `Cross-Origin-Resource-Policy`, not among `http`'s constants.
pub const CROSS_ORIGIN_RESOURCE_POLICY: HeaderName =
    HeaderName::from_static("cross-origin-resource-policy");
/// `X-Permitted-Cross-Domain-Policies`, not among `http`'s constants.
pub const X_PERMITTED_CROSS_DOMAIN_POLICIES: HeaderName =
    HeaderName::from_static("x-permitted-cross-domain-policies");

fn defaults() -> Vec<(HeaderName, HeaderValue)> {
    vec![
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        ),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'self'"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (header::X_XSS_PROTECTION, HeaderValue::from_static("0")),
        (
            CROSS_ORIGIN_OPENER_POLICY,
            HeaderValue::from_static("same-origin"),
        ),
        (
            CROSS_ORIGIN_RESOURCE_POLICY,
            HeaderValue::from_static("same-origin"),
        ),
        (
            X_PERMITTED_CROSS_DOMAIN_POLICIES,
            HeaderValue::from_static("none"),
        ),
    ]
}

/// Layer that applies the [`SecurityHeaders`] middleware.
///
/// See the [module docs](self) for the defaults and an example.
#[derive(Debug, Clone)]
#[must_use]
pub struct SecurityHeadersLayer {
    headers: Arc<[(HeaderName, HeaderValue)]>,
}

impl SecurityHeadersLayer {
    /// The layer with the nine default headers.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder starting from the defaults, to change, remove or add headers.
    ///
    /// ```
    /// use crosscut::security_headers::SecurityHeadersLayer;
    /// use http::header::{HeaderValue, CONTENT_SECURITY_POLICY, X_FRAME_OPTIONS};
    ///
    /// let layer = SecurityHeadersLayer::builder()
    ///     .header(CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'self' data:"))
    ///     .remove(&X_FRAME_OPTIONS)
    ///     .build();
    /// assert_eq!(layer.headers().len(), 8);
    /// ```
    pub fn builder() -> SecurityHeadersBuilder {
        SecurityHeadersBuilder {
            headers: defaults(),
        }
    }

    /// The headers this layer adds, in the order it adds them.
    pub fn headers(&self) -> &[(HeaderName, HeaderValue)] {
        &self.headers
    }
}

impl Default for SecurityHeadersLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Layer<S> for SecurityHeadersLayer {
    type Service = SecurityHeaders<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SecurityHeaders {
            inner,
            headers: self.headers.clone(),
        }
    }
}

/// Builder for a [`SecurityHeadersLayer`] with other headers than the defaults.
///
/// See [`SecurityHeadersLayer::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct SecurityHeadersBuilder {
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl SecurityHeadersBuilder {
    /// A builder with no header at all, for a policy written from scratch.
    pub fn empty() -> Self {
        Self {
            headers: Vec::new(),
        }
    }

    /// Sets `name` to `value`, replacing a default of the same name or adding a new header.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        match self.headers.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.headers.push((name, value)),
        }
        self
    }

    /// Stops adding `name`.
    pub fn remove(mut self, name: &HeaderName) -> Self {
        self.headers.retain(|(n, _)| n != name);
        self
    }

    /// The layer.
    pub fn build(self) -> SecurityHeadersLayer {
        SecurityHeadersLayer {
            headers: self.headers.into(),
        }
    }
}

/// Middleware that adds security headers the response does not already have.
///
/// See the [module docs](self) for an example.
#[derive(Debug, Clone)]
pub struct SecurityHeaders<S> {
    inner: S,
    headers: Arc<[(HeaderName, HeaderValue)]>,
}

impl<S> SecurityHeaders<S> {
    define_inner_service_accessors!();
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SecurityHeaders<S>
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
        ResponseFuture {
            inner: self.inner.call(req),
            headers: Some(self.headers.clone()),
        }
    }
}

pin_project! {
    /// Response future for [`SecurityHeaders`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        headers: Option<Arc<[(HeaderName, HeaderValue)]>>,
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
        if let Some(headers) = this.headers.take() {
            let map = res.headers_mut();
            // At most one growth up front instead of rehashes partway through the inserts.
            crate::room::make_room(map, headers.len());
            for (name, value) in headers.iter() {
                if let header::Entry::Vacant(slot) = map.entry(name) {
                    slot.insert(value.clone());
                }
            }
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
    use std::convert::Infallible;
    use tower::{service_fn, ServiceBuilder, ServiceExt};

    async fn call(layer: SecurityHeadersLayer, res: Response<Body>) -> Response<Body> {
        let mut res = Some(res);
        let svc =
            ServiceBuilder::new()
                .layer(layer)
                .service(service_fn(move |_req: Request<Body>| {
                    let res = res.take().unwrap();
                    async move { Ok::<_, Infallible>(res) }
                }));
        svc.oneshot(Request::new(Body::empty())).await.unwrap()
    }

    #[tokio::test]
    async fn all_nine_defaults_are_added() {
        let res = call(SecurityHeadersLayer::new(), Response::new(Body::empty())).await;
        let h = res.headers();
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(
            h["strict-transport-security"],
            "max-age=31536000; includeSubDomains"
        );
        assert_eq!(h["content-security-policy"], "default-src 'self'");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert_eq!(h["x-xss-protection"], "0");
        assert_eq!(h["cross-origin-opener-policy"], "same-origin");
        assert_eq!(h["cross-origin-resource-policy"], "same-origin");
        assert_eq!(h["x-permitted-cross-domain-policies"], "none");
        assert_eq!(h.len(), 9);
    }

    #[tokio::test]
    async fn handler_set_header_is_kept() {
        let mut res = Response::new(Body::empty());
        res.headers_mut().insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'"),
        );
        let res = call(SecurityHeadersLayer::new(), res).await;
        assert_eq!(
            res.headers()["content-security-policy"],
            "default-src 'none'"
        );
        assert_eq!(
            res.headers()
                .get_all(header::CONTENT_SECURITY_POLICY)
                .iter()
                .count(),
            1
        );
        assert_eq!(res.headers()["x-frame-options"], "DENY");
    }

    #[tokio::test]
    async fn error_responses_get_the_headers() {
        let res = call(
            SecurityHeadersLayer::new(),
            ApiError::from(ErrorCode::PayloadTooLarge).into_response(),
        )
        .await;
        assert_eq!(res.status(), http::StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(res.headers()["x-content-type-options"], "nosniff");
        assert_eq!(res.headers()["content-type"], "application/json");
    }

    #[tokio::test]
    async fn builder_overrides_removes_and_adds() {
        let layer = SecurityHeadersLayer::builder()
            .header(
                header::X_FRAME_OPTIONS,
                HeaderValue::from_static("SAMEORIGIN"),
            )
            .remove(&header::STRICT_TRANSPORT_SECURITY)
            .header(
                HeaderName::from_static("permissions-policy"),
                HeaderValue::from_static("camera=()"),
            )
            .build();
        let res = call(layer, Response::new(Body::empty())).await;
        assert_eq!(res.headers()["x-frame-options"], "SAMEORIGIN");
        assert!(!res.headers().contains_key("strict-transport-security"));
        assert_eq!(res.headers()["permissions-policy"], "camera=()");
        assert_eq!(res.headers().len(), 9);
    }

    #[tokio::test]
    async fn empty_builder_adds_nothing() {
        let res = call(
            SecurityHeadersBuilder::empty().build(),
            Response::new(Body::empty()),
        )
        .await;
        assert!(res.headers().is_empty());
    }
}
