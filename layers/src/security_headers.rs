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
//! Values are parsed once, when the layer is built, into a ready-made header map shared by every
//! clone. A response with few headers of its own and no room for nine more (a handler's response
//! when this layer is used alone) gets a copy of that map with its own headers put back over it:
//! +650 to +898 ns per request over a bare router in the paired pass of `benches/layers.rs` when
//! this was built, against +1,607 and +1,613 for looking up and inserting the nine headers one by
//! one. A response whose map already has the room (an inner crosscut layer grew it for the whole
//! stack) or that has many headers gets the missing ones inserted in place. A header the handler
//! already set is kept, so a route can loosen its own policy (a page with a different CSP, an
//! embeddable widget without `X-Frame-Options`).
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
use http::HeaderMap;
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
    headers: Arc<Headers>,
}

/// The configured headers, as a list and as a ready-made map.
#[derive(Debug)]
struct Headers {
    list: Box<[(HeaderName, HeaderValue)]>,
    /// The same headers in a map with room for the rest of the stack's: copied whole into a
    /// response that has few headers of its own.
    template: HeaderMap,
}

/// A response with at most this many headers of its own, and no room for the configured ones,
/// gets a copy of the template with its own headers put back over it; any other response gets the
/// missing headers inserted one by one (after one growth, if it needs one).
///
/// Copying the prepared map is one allocation of a right-sized map and a copy of its entries;
/// inserting nine headers hashes and probes nine times, and first grows the handler's map (sized
/// for a few headers) once. Timed per response (release build, best of five rounds of 200,000,
/// `cargo test --release -p crosscut --all-features --lib reinsert_threshold -- --ignored
/// --nocapture`, three runs): with 1 own header 339 to 527 ns against 444 to 736, with 2 404 to
/// 628 against 442 to 788, with 3 498 to 732 against 475 to 825 (the copy faster in two runs of
/// three), with 4 558 to 787 against 523 to 681, with 5 630 to 734 against 511 to 533, with 8 872
/// to 1,202 against 605 to 947. The inserts won from nine headers on while the one growth made
/// room for twenty more than the map held; since it makes room for the whole response
/// (`crate::room`), they win from four.
const REINSERT_MAX: usize = 3;

impl Headers {
    fn new(list: Vec<(HeaderName, HeaderValue)>) -> Self {
        let mut template = HeaderMap::with_capacity(list.len() + crate::room::STACK_HEADERS);
        for (name, value) in &list {
            template.insert(name.clone(), value.clone());
        }
        Self {
            list: list.into_boxed_slice(),
            template,
        }
    }

    /// Adds every configured header `map` does not have yet.
    fn apply(&self, map: &mut HeaderMap) {
        // A map an inner layer has already grown for the whole stack takes the inserts without
        // growing. Copying the template there would throw that growth away and start from a copy
        // whose entry list has no spare room: the next header inserted after it reallocates and
        // moves every entry, and a full stack inserts several: under load those reallocations
        // alone were 1.4 % of the demo's CPU.
        let fits = map.len() + self.list.len() <= map.capacity();
        if !fits && map.len() <= REINSERT_MAX {
            let own = std::mem::replace(map, self.template.clone());
            // The response's own values replace the template's: a header the handler set wins.
            let mut last: Option<HeaderName> = None;
            for (name, value) in own {
                match name {
                    Some(name) => {
                        map.insert(name.clone(), value);
                        last = Some(name);
                    }
                    // A further value of the header just inserted.
                    None => {
                        if let Some(name) = &last {
                            map.append(name, value);
                        }
                    }
                }
            }
            return;
        }
        // At most one growth up front instead of rehashes partway through the inserts.
        crate::room::make_room(map, self.list.len());
        for (name, value) in self.list.iter() {
            if let header::Entry::Vacant(slot) = map.entry(name) {
                slot.insert(value.clone());
            }
        }
    }
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
        &self.headers.list
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
            headers: Arc::new(Headers::new(self.headers)),
        }
    }
}

/// Middleware that adds security headers the response does not already have.
///
/// See the [module docs](self) for an example.
#[derive(Debug, Clone)]
pub struct SecurityHeaders<S> {
    inner: S,
    headers: Arc<Headers>,
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
        headers: Option<Arc<Headers>>,
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
            headers.apply(res.headers_mut());
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
    use std::time::Instant;
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

    /// A response with `own` headers of its own (one of them the handler's own CSP, one sent
    /// twice), through the layer; with `room`, its map has already been grown for the whole
    /// stack, as an inner crosscut layer leaves it.
    async fn with_own_headers(own: usize, room: bool) -> Response<Body> {
        let mut res = Response::new(Body::empty());
        let h = res.headers_mut();
        if room {
            crate::room::make_room(h, crate::room::STACK_HEADERS + own);
        }
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'"),
        );
        h.append(header::SET_COOKIE, HeaderValue::from_static("a=1"));
        h.append(header::SET_COOKIE, HeaderValue::from_static("b=2"));
        for i in 2..own {
            let name = HeaderName::try_from(format!("x-own-{i}")).unwrap();
            h.insert(name, HeaderValue::from(i));
        }
        assert_eq!(h.keys_len(), own);
        call(SecurityHeadersLayer::new(), res).await
    }

    #[tokio::test]
    async fn own_headers_survive_every_way_of_adding() {
        // Either side of REINSERT_MAX: the copied template and the one-by-one inserts; and the
        // inserts into a map that already has room.
        let cases = [2, REINSERT_MAX - 1, REINSERT_MAX, REINSERT_MAX + 1, 30];
        for (own, room) in cases.into_iter().flat_map(|n| [(n, false), (n, true)]) {
            let res = with_own_headers(own, room).await;
            let h = res.headers();
            assert_eq!(h.keys_len(), own + 8, "{own} own headers");
            let csp: Vec<_> = h.get_all(header::CONTENT_SECURITY_POLICY).iter().collect();
            assert_eq!(csp, ["default-src 'none'"], "{own} own headers");
            let cookies: Vec<_> = h.get_all(header::SET_COOKIE).iter().collect();
            assert_eq!(cookies, ["a=1", "b=2"], "{own} own headers");
            for i in 2..own {
                assert_eq!(h[format!("x-own-{i}").as_str()], i.to_string().as_str());
            }
            assert_eq!(h["x-frame-options"], "DENY", "{own} own headers");
            assert_eq!(h["x-permitted-cross-domain-policies"], "none");
        }
    }

    #[test]
    fn a_map_with_room_is_filled_in_place() {
        let h = Headers::new(defaults());
        let mut map = HeaderMap::new();
        map.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        crate::room::make_room(&mut map, crate::room::STACK_HEADERS);
        let capacity = map.capacity();
        h.apply(&mut map);
        assert_eq!(map.len(), 1 + h.list.len());
        assert_eq!(map.capacity(), capacity, "neither replaced nor grown");
        // A copy of the template would list its own headers first and this one after them.
        assert_eq!(map.keys().next(), Some(&header::CONTENT_TYPE));
        assert_eq!(map[header::CONTENT_TYPE], "text/plain");
    }

    #[tokio::test]
    async fn the_copied_map_has_room_for_the_rest_of_the_stack() {
        let res = call(SecurityHeadersLayer::new(), Response::new(Body::empty())).await;
        let h = res.headers();
        assert!(
            h.capacity() >= h.len() + crate::room::STACK_HEADERS,
            "{} of {}",
            h.len(),
            h.capacity()
        );
    }

    /// Times both ways of adding the headers for responses with 1 to 11 headers of their own;
    /// the figures behind [`REINSERT_MAX`].
    #[test]
    #[ignore = "a measurement, not a check; run it in release"]
    fn reinsert_threshold() {
        let h = Headers::new(defaults());
        for own in 1..12 {
            let mut base = HeaderMap::new();
            for i in 0..own {
                let name = HeaderName::try_from(format!("x-own-{i}")).unwrap();
                base.insert(name, HeaderValue::from(i));
            }
            let n = 200_000;
            let mut best = [u128::MAX; 2];
            for _ in 0..5 {
                for (way, slot) in best.iter_mut().enumerate() {
                    let t = Instant::now();
                    for _ in 0..n {
                        let mut map = base.clone();
                        if way == 0 {
                            h.apply(&mut map);
                        } else {
                            crate::room::make_room(&mut map, h.list.len());
                            for (name, value) in h.list.iter() {
                                if let header::Entry::Vacant(slot) = map.entry(name) {
                                    slot.insert(value.clone());
                                }
                            }
                        }
                        std::hint::black_box(&map);
                    }
                    *slot = (*slot).min(t.elapsed().as_nanos() / n);
                }
            }
            let way = if own <= REINSERT_MAX {
                "copy"
            } else {
                "inserts"
            };
            eprintln!(
                "{own:2} own headers: apply ({way}) {} ns, inserts {} ns",
                best[0], best[1]
            );
        }
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
