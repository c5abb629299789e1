//! CORS from a plain list of allowed origins.
//!
//! Give [`CorsLayer::from_origins`] the origins as a user writes them in a config file:
//!
//! - an exact origin such as `https://app.example` or `http://localhost:3000` is allowed as is;
//! - `"*"` allows any origin, without credentials; the request's origin is echoed back.
//!
//! An allowed origin gets `Access-Control-Allow-Origin` (its own value) and `Vary: Origin`. A
//! preflight (`OPTIONS`) is answered at once with **204**, `Access-Control-Allow-Methods: GET, POST,
//! PUT, DELETE, OPTIONS`, `Access-Control-Allow-Headers: Content-Type, Authorization, X-Request-ID`
//! and `Access-Control-Max-Age: 86400`. Any other origin gets no `Access-Control-Allow-*` header at
//! all, so the browser blocks the response.
//!
//! # Why not `tower_http::cors`
//!
//! This layer started as a wrapper around tower-http's `Cors`, fixing three things on the way out:
//! preflights get 204 No Content rather than 200 (the answer has no content), a refused origin's
//! preflight does not get the allowed methods and headers either, and the lists are sent in the
//! contract's spelling (`GET, POST`, `Content-Type`) rather than tower-http's (`GET,POST`,
//! `content-type`). Profiling the demo then showed tower-http's service costing an allocation per
//! request: axum clones a route's service for every request, and tower-http's `CorsLayer`, held
//! inside its `Cors`, owns a `Vec` of `Vary` values. The rules here are fixed at start-up and held
//! in one `Arc`, so a clone is one reference count, and an answer is a few static header inserts.
//!
//! A request is a preflight when it is `OPTIONS` with both `Origin` and
//! `Access-Control-Request-Method` (the Fetch standard's definition); any other `OPTIONS` goes to the
//! inner service like any request. Every answer gets `Vary: Origin`, since whether it carries
//! `Access-Control-Allow-Origin` depends on that header.
//!
//! Put this layer outside auth and rate limiting, so a preflight is never refused with 401 or 429,
//! and so a browser can read the error responses those layers answer.
//!
//! # Example
//!
//! ```
//! use axum::{body::Body, routing::get, Router};
//! use crosscut::cors::CorsLayer;
//! use http::{Request, StatusCode};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), crosscut::cors::CorsConfigError> {
//! let app = Router::new()
//!     .route("/", get(|| async { "hello" }))
//!     .layer(CorsLayer::from_origins(["https://app.example"])?);
//!
//! let preflight = Request::options("/")
//!     .header("origin", "https://app.example")
//!     .header("access-control-request-method", "POST")
//!     .body(Body::empty())
//!     .unwrap();
//! let res = app.oneshot(preflight).await.unwrap();
//! assert_eq!(res.status(), StatusCode::NO_CONTENT);
//! assert_eq!(res.headers()["access-control-allow-origin"], "https://app.example");
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

const ALLOW_METHODS: HeaderValue = HeaderValue::from_static("GET, POST, PUT, DELETE, OPTIONS");
const ALLOW_HEADERS: HeaderValue =
    HeaderValue::from_static("Content-Type, Authorization, X-Request-ID");
const MAX_AGE: HeaderValue = HeaderValue::from_static("86400");
const VARY_ORIGIN: HeaderValue = HeaderValue::from_static("origin");
const VARY_ACCEPT_ENCODING_ORIGIN: HeaderValue =
    HeaderValue::from_static("accept-encoding, origin");

/// Adds `origin` to what the response varies on.
///
/// A second `Vary` field line costs the header map an allocation (its list of extra values); the
/// usual case, `accept-encoding` alone from the compression layer, becomes one field with both
/// names instead, which means the same (RFC 9110, section 5.3).
fn vary_origin(headers: &mut http::HeaderMap) {
    match headers.entry(header::VARY) {
        header::Entry::Vacant(slot) => {
            slot.insert(VARY_ORIGIN);
        }
        header::Entry::Occupied(mut slot) => {
            let only_accept_encoding = slot.iter().count() == 1
                && slot
                    .get()
                    .as_bytes()
                    .eq_ignore_ascii_case(b"accept-encoding");
            if only_accept_encoding {
                slot.insert(VARY_ACCEPT_ENCODING_ORIGIN);
            } else {
                slot.append(VARY_ORIGIN);
            }
        }
    }
}

/// Why an origin list was refused by [`CorsLayer::from_origins`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsConfigError {
    origin: Option<String>,
    reason: &'static str,
}

impl CorsConfigError {
    /// The offending origin, `None` when the list itself was empty.
    pub fn origin(&self) -> Option<&str> {
        self.origin.as_deref()
    }

    /// What is wrong with it.
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

impl fmt::Display for CorsConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Some(origin) => write!(f, "invalid CORS origin {origin:?}: {}", self.reason),
            None => f.write_str(self.reason),
        }
    }
}

impl std::error::Error for CorsConfigError {}

fn parse_origin(origin: &str) -> Result<HeaderValue, CorsConfigError> {
    let err = |reason| CorsConfigError {
        origin: Some(origin.to_owned()),
        reason,
    };
    if origin.is_empty() {
        return Err(err("an origin cannot be empty"));
    }
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .ok_or_else(|| err("an origin starts with http:// or https://, or is \"*\""))?;
    if rest.is_empty() {
        return Err(err("an origin needs a host"));
    }
    if rest.contains('/') {
        return Err(err("an origin has no path, not even a trailing slash"));
    }
    if !rest
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
    {
        return Err(err("an origin is a scheme, a host and an optional port"));
    }
    HeaderValue::from_str(origin).map_err(|_| err("not a valid header value"))
}

/// Which origins are allowed; built once, shared by every clone of the layer and its services.
#[derive(Debug)]
struct Rules {
    any: bool,
    origins: Box<[HeaderValue]>,
}

impl Rules {
    /// The value for `Access-Control-Allow-Origin`, if `origin` is allowed: the origin itself.
    fn allow(&self, origin: Option<&HeaderValue>) -> Option<HeaderValue> {
        let origin = origin?;
        (self.any || self.origins.iter().any(|o| o == origin)).then(|| origin.clone())
    }
}

/// Layer that applies the [`Cors`] middleware.
///
/// See the [module docs](self) for the headers it sends and an example.
#[derive(Debug, Clone)]
#[must_use]
pub struct CorsLayer {
    rules: Arc<Rules>,
}

impl CorsLayer {
    /// The layer for a list of allowed origins: exact origins, or `"*"` for any origin.
    ///
    /// Refuses an empty list, an empty origin, and anything that is not `scheme://host[:port]`
    /// (a path or trailing slash would never match what a browser sends).
    ///
    /// ```
    /// use crosscut::cors::CorsLayer;
    ///
    /// assert!(CorsLayer::from_origins(["https://a.example", "http://localhost:3000"]).is_ok());
    /// assert!(CorsLayer::from_origins(["*"]).is_ok());
    /// assert!(CorsLayer::from_origins(Vec::<String>::new()).is_err());
    /// assert!(CorsLayer::from_origins([""]).is_err());
    /// assert!(CorsLayer::from_origins(["https://a.example/"]).is_err());
    /// ```
    pub fn from_origins<I, T>(origins: I) -> Result<Self, CorsConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        let mut any = false;
        let mut list = Vec::new();
        for origin in origins {
            let origin = origin.as_ref();
            if origin == "*" {
                any = true;
            } else {
                list.push(parse_origin(origin)?);
            }
        }
        if !any && list.is_empty() {
            return Err(CorsConfigError {
                origin: None,
                reason: "the CORS origin list is empty",
            });
        }
        Ok(Self::with(any, list))
    }

    /// The layer allowing any origin, like `from_origins(["*"])`.
    pub fn any() -> Self {
        Self::with(true, Vec::new())
    }

    fn with(any: bool, origins: Vec<HeaderValue>) -> Self {
        // With "*" the request's origin is echoed rather than a literal `*`: the same to the
        // browser, and still valid if credentials are ever turned on.
        Self {
            rules: Arc::new(Rules {
                any,
                origins: origins.into_boxed_slice(),
            }),
        }
    }
}

impl<S> Layer<S> for CorsLayer {
    type Service = Cors<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Cors {
            inner,
            rules: self.rules.clone(),
        }
    }
}

/// Middleware that answers preflights and marks allowed origins.
///
/// See the [module docs](self) for an example.
#[derive(Debug, Clone)]
pub struct Cors<S> {
    inner: S,
    rules: Arc<Rules>,
}

impl<S> Cors<S> {
    define_inner_service_accessors!();
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Cors<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let headers = req.headers();
        let origin = headers.get(header::ORIGIN);
        let allowed = self.rules.allow(origin);
        if req.method() == Method::OPTIONS
            && origin.is_some()
            && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
        {
            return ResponseFuture {
                kind: Kind::Preflight {
                    allowed: Some(allowed),
                },
            };
        }
        ResponseFuture {
            kind: Kind::Inner {
                inner: self.inner.call(req),
                allowed,
            },
        }
    }
}

pin_project! {
    /// Response future for [`Cors`].
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        // The outer `Option` is taken when the answer is given, so a second poll cannot answer twice.
        Preflight { allowed: Option<Option<HeaderValue>> },
        Inner {
            #[pin]
            inner: F,
            allowed: Option<HeaderValue>,
        },
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    ResBody: Default,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Preflight { allowed } => {
                let allowed = allowed.take().expect("future polled after completion");
                let mut res = Response::new(ResBody::default());
                *res.status_mut() = StatusCode::NO_CONTENT;
                let headers = res.headers_mut();
                crate::room::make_room(headers, 5);
                headers.insert(header::VARY, VARY_ORIGIN);
                if let Some(origin) = allowed {
                    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
                    headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, ALLOW_METHODS);
                    headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOW_HEADERS);
                    headers.insert(header::ACCESS_CONTROL_MAX_AGE, MAX_AGE);
                }
                Poll::Ready(Ok(res))
            }
            KindProj::Inner { inner, allowed } => {
                let mut res = ready!(inner.poll(cx))?;
                let headers = res.headers_mut();
                // The header map's one growth, if it needs one, sized for the whole stack.
                crate::room::make_room(headers, 2);
                vary_origin(headers);
                if let Some(origin) = allowed.take() {
                    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
                }
                Poll::Ready(Ok(res))
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
    use tower::ServiceExt;

    fn app(origins: &[&str]) -> Router {
        Router::new()
            .route("/", get(|| async { "hello" }).post(|| async { "posted" }))
            .layer(CorsLayer::from_origins(origins).unwrap())
    }

    fn preflight(origin: &str) -> Request<Body> {
        Request::options("/")
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "content-type")
            .body(Body::empty())
            .unwrap()
    }

    fn get_from(origin: &str) -> Request<Body> {
        Request::get("/")
            .header(header::ORIGIN, origin)
            .body(Body::empty())
            .unwrap()
    }

    fn assert_no_allow_headers(res: &Response<Body>) {
        let leaked: Vec<_> = res
            .headers()
            .keys()
            .filter(|k| k.as_str().starts_with("access-control-allow"))
            .collect();
        assert!(leaked.is_empty(), "{leaked:?}");
        assert!(!res.headers().contains_key(header::ACCESS_CONTROL_MAX_AGE));
    }

    #[tokio::test]
    async fn preflight_from_allowed_origin_is_204_with_contract_headers() {
        let res = app(&["https://a.example"])
            .oneshot(preflight("https://a.example"))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        let h = res.headers();
        assert_eq!(h["access-control-allow-origin"], "https://a.example");
        assert_eq!(
            h["access-control-allow-methods"],
            "GET, POST, PUT, DELETE, OPTIONS"
        );
        assert_eq!(
            h["access-control-allow-headers"],
            "Content-Type, Authorization, X-Request-ID"
        );
        assert_eq!(h["access-control-max-age"], "86400");
        assert_eq!(h["vary"], "origin");
        assert!(!h.contains_key(header::ACCESS_CONTROL_ALLOW_CREDENTIALS));
    }

    #[tokio::test]
    async fn allowed_origin_gets_acao_and_vary() {
        let res = app(&["https://a.example", "https://b.example"])
            .oneshot(get_from("https://b.example"))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(
            res.headers()["access-control-allow-origin"],
            "https://b.example"
        );
        assert!(res.headers()["vary"]
            .to_str()
            .unwrap()
            .eq_ignore_ascii_case("origin"));
    }

    #[tokio::test]
    async fn disallowed_origin_has_no_acao() {
        let res = app(&["https://a.example"])
            .oneshot(get_from("https://evil.example"))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_no_allow_headers(&res);
    }

    #[tokio::test]
    async fn disallowed_origin_preflight_gets_no_allow_headers() {
        let res = app(&["https://a.example"])
            .oneshot(preflight("https://a.example.evil.com"))
            .await
            .unwrap();
        assert_no_allow_headers(&res);
    }

    #[tokio::test]
    async fn star_allows_any_origin_without_credentials() {
        let res = app(&["*"])
            .oneshot(preflight("https://anything.example"))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        assert_eq!(
            res.headers()["access-control-allow-origin"],
            "https://anything.example"
        );
        assert!(!res
            .headers()
            .contains_key(header::ACCESS_CONTROL_ALLOW_CREDENTIALS));
    }

    #[tokio::test]
    async fn same_origin_request_is_untouched() {
        let res = app(&["https://a.example"])
            .oneshot(Request::get("/").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_no_allow_headers(&res);
    }

    #[test]
    fn invalid_origin_lists_are_refused() {
        let none: [&str; 0] = [];
        assert_eq!(CorsLayer::from_origins(none).unwrap_err().origin(), None);
        for bad in [
            "",
            "a.example",
            "https://",
            "https://a.example/",
            "https://a.example/path",
            "https://a example",
            "ftp://a.example",
        ] {
            let err = CorsLayer::from_origins(["https://ok.example", bad]).unwrap_err();
            assert_eq!(err.origin(), Some(bad));
            assert!(err.to_string().contains("invalid CORS origin"));
        }
        assert!(CorsLayer::from_origins(["http://localhost:3000", "https://[::1]:8443"]).is_ok());
    }

    #[tokio::test]
    async fn plain_options_without_preflight_headers_reaches_the_service() {
        let res = app(&["https://a.example"])
            .oneshot(Request::options("/").body(Body::empty()).unwrap())
            .await
            .unwrap();
        // The route has no OPTIONS handler: the router's 405, not a CORS answer.
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_no_allow_headers(&res);
    }

    #[tokio::test]
    async fn clones_share_the_rules() {
        let layer = CorsLayer::from_origins(["https://a.example"]).unwrap();
        let clone = layer.clone();
        assert!(Arc::ptr_eq(&layer.rules, &clone.rules));
    }

    #[test]
    fn origin_joins_what_the_response_varies_on() {
        let vary = |existing: &[&'static str]| {
            let mut headers = http::HeaderMap::new();
            for v in existing {
                headers.append(header::VARY, HeaderValue::from_static(v));
            }
            vary_origin(&mut headers);
            headers
                .get_all(header::VARY)
                .iter()
                .map(|v| v.to_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(vary(&[]), ["origin"]);
        // The compression layer's value alone: one field naming both.
        assert_eq!(vary(&["accept-encoding"]), ["accept-encoding, origin"]);
        assert_eq!(vary(&["Accept-Encoding"]), ["accept-encoding, origin"]);
        // Anything else is kept as it is, with `origin` after it.
        assert_eq!(vary(&["cookie"]), ["cookie", "origin"]);
        assert_eq!(
            vary(&["accept-encoding", "cookie"]),
            ["accept-encoding", "cookie", "origin"]
        );
    }
}
