//! The permission check.

use std::sync::Arc;
use std::task::{Context, Poll};

use axum::response::{IntoResponse, Response};
use http::Request;
use tower_layer::Layer;
use tower_service::Service;

use super::claims::auth_required;
use super::{Claims, ResponseFuture};
use crate::error::{ApiError, ErrorCode};

/// A [`RequirePermissionLayer`] for `perm`: 403 `FORBIDDEN` unless the request's [`Claims`] grant it,
/// 401 `AUTH_REQUIRED` when there are no claims at all.
///
/// Place it inside (after) [`JwtAuthLayer`](super::JwtAuthLayer), which provides the claims.
pub fn require(perm: impl Into<Arc<str>>) -> RequirePermissionLayer {
    RequirePermissionLayer::new(perm)
}

/// Layer that applies the [`RequirePermission`] middleware.
///
/// See the [module docs](super) for an example.
#[derive(Debug, Clone)]
#[must_use]
pub struct RequirePermissionLayer {
    perm: Arc<str>,
}

impl RequirePermissionLayer {
    /// Requires `perm`; same as [`require`].
    pub fn new(perm: impl Into<Arc<str>>) -> Self {
        Self { perm: perm.into() }
    }
}

impl<S> Layer<S> for RequirePermissionLayer {
    type Service = RequirePermission<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequirePermission {
            inner,
            perm: Arc::clone(&self.perm),
        }
    }
}

/// Middleware that refuses requests whose [`Claims`] lack a permission. See [`RequirePermissionLayer`].
#[derive(Debug, Clone)]
pub struct RequirePermission<S> {
    inner: S,
    perm: Arc<str>,
}

impl<S> RequirePermission<S> {
    define_inner_service_accessors!();
}

impl<S, B> Service<Request<B>> for RequirePermission<S>
where
    S: Service<Request<B>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        match req.extensions().get::<Claims>() {
            None => ResponseFuture::reject(auth_required().into_response()),
            Some(claims) if !claims.has_perm(&self.perm) => {
                let message = format!("the token lacks the '{}' permission", self.perm);
                ResponseFuture::reject(ApiError::new(ErrorCode::Forbidden, message).into_response())
            }
            Some(_) => ResponseFuture::inner(self.inner.call(req)),
        }
    }
}
