//! The validated claims and their extractor.

use std::convert::Infallible;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use http::header::{HeaderValue, WWW_AUTHENTICATE};
use http::request::Parts;
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ErrorCode};

/// The claims of a validated token, put into request extensions by [`JwtAuth`](super::JwtAuth).
///
/// Handlers take it as an extractor: `claims: Claims` answers 401 `AUTH_REQUIRED` when the request
/// carries no validated token, and `claims: Option<Claims>` is `None` for an anonymous request.
///
/// The extractor only reads what the auth layer put into the extensions; it never parses a token
/// itself, so a route without [`JwtAuthLayer`](super::JwtAuthLayer) always sees no claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The subject: who the token was issued to.
    pub sub: String,
    /// The permissions granted, e.g. `["read", "write"]`. Absent in the token means none.
    #[serde(default)]
    pub perms: Vec<String>,
    /// Expiry, Unix seconds. Required.
    pub exp: u64,
    /// Issued at, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Not before, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
}

impl Claims {
    /// Whether the claims grant `perm` (exact, case-sensitive match).
    pub fn has_perm(&self, perm: &str) -> bool {
        self.perms.iter().any(|p| p == perm)
    }
}

/// 401 `AUTH_REQUIRED` with `WWW-Authenticate: Bearer` (RFC 6750 §3: no error code when the request
/// carried no credentials).
pub(crate) fn auth_required() -> ApiError {
    ApiError::from(ErrorCode::AuthRequired)
        .with_header(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
}

impl<S: Send + Sync> FromRequestParts<S> for Claims {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Claims>()
            .cloned()
            .ok_or_else(auth_required)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Claims {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Claims>().cloned())
    }
}
