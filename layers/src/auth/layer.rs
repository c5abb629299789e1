//! The bearer-token layer.

use std::task::{Context, Poll};

use axum::response::{IntoResponse, Response};
use http::header::AUTHORIZATION;
use http::{HeaderMap, Request};
use tower_layer::Layer;
use tower_service::Service;

use super::claims::auth_required;
use super::jwt::{invalid_token, KeyError};
use super::{JwtKeys, ResponseFuture};

/// Layer that applies the [`JwtAuth`] middleware: validates `Authorization: Bearer <JWT>` and puts the
/// [`Claims`](super::Claims) into request extensions.
///
/// See the [module docs](super) for an example.
#[derive(Debug, Clone)]
#[must_use]
pub struct JwtAuthLayer {
    keys: JwtKeys,
    optional: bool,
}

impl JwtAuthLayer {
    /// A layer that requires a valid token on every request, checked with `keys`.
    pub fn new(keys: JwtKeys) -> Self {
        Self {
            keys,
            optional: false,
        }
    }

    /// A layer checking HS256 tokens against `secret`, the common case in one call.
    ///
    /// # Errors
    ///
    /// [`KeyError::SecretTooShort`] for a secret under 32 bytes.
    pub fn hs256(secret: impl AsRef<[u8]>) -> Result<Self, KeyError> {
        JwtKeys::hs256(secret).map(Self::new)
    }

    /// Optional mode: a request without a token passes as anonymous (no `Claims` extension), while a
    /// request with an invalid token is still refused with 401 `INVALID_TOKEN`.
    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }

    /// The keys this layer validates with, e.g. to check a token that arrives some other way.
    pub fn keys(&self) -> &JwtKeys {
        &self.keys
    }
}

impl<S> Layer<S> for JwtAuthLayer {
    type Service = JwtAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        JwtAuth {
            inner,
            keys: self.keys.clone(),
            optional: self.optional,
        }
    }
}

/// Middleware that validates bearer JWTs. See [`JwtAuthLayer`].
#[derive(Debug, Clone)]
pub struct JwtAuth<S> {
    inner: S,
    keys: JwtKeys,
    optional: bool,
}

impl<S> JwtAuth<S> {
    define_inner_service_accessors!();
}

/// What the `Authorization` header holds, as far as bearer auth is concerned.
enum Bearer<'a> {
    /// No `Authorization` header, or one with another scheme (RFC 6750 §3: "lacks any authentication
    /// information").
    Missing,
    /// `Bearer` with something that cannot be a token (empty, not visible ASCII).
    Malformed,
    Token(&'a str),
}

fn bearer(headers: &HeaderMap) -> Bearer<'_> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Bearer::Missing;
    };
    let Ok(value) = value.to_str() else {
        return Bearer::Malformed;
    };
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Bearer::Missing;
    }
    match rest.trim() {
        "" => Bearer::Malformed,
        token => Bearer::Token(token),
    }
}

impl<S, B> Service<Request<B>> for JwtAuth<S>
where
    S: Service<Request<B>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let claims = match bearer(req.headers()) {
            Bearer::Missing if self.optional => None,
            Bearer::Missing => return ResponseFuture::reject(auth_required().into_response()),
            Bearer::Malformed => {
                tracing::debug!(kind = "malformed_header", "bearer token rejected");
                return ResponseFuture::reject(
                    invalid_token("the bearer token is invalid").into_response(),
                );
            }
            Bearer::Token(token) => match self.keys.verify(token) {
                Ok(claims) => Some(claims),
                Err(e) => return ResponseFuture::reject(e.into_response()),
            },
        };
        if let Some(claims) = claims {
            req.extensions_mut().insert(claims);
        }
        ResponseFuture::inner(self.inner.call(req))
    }
}
