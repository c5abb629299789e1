//! Bearer JWT authentication: a validating layer, a [`Claims`] extractor and permission checks.
//!
//! - [`JwtAuthLayer`] validates `Authorization: Bearer <JWT>` with one configured algorithm (HS256
//!   from a secret of at least 32 bytes; RS256 and EdDSA from PEM public keys), requires `exp`, honours
//!   `nbf`, tolerates 30 s of clock skew by default, and puts the [`Claims`] into request extensions.
//!   A missing token is answered 401 `AUTH_REQUIRED` with `WWW-Authenticate: Bearer`; any invalid
//!   token (malformed, truncated, badly signed, expired, not yet valid, `alg: none` or another
//!   algorithm) 401 `INVALID_TOKEN` with `WWW-Authenticate: Bearer error="invalid_token"`.
//!   [`JwtAuthLayer::optional`] lets requests without a token through as anonymous.
//! - [`Claims`] is an extractor (`claims: Claims` or `claims: Option<Claims>`).
//! - [`require`] answers 403 `FORBIDDEN` when the claims lack a permission.
//! - [`JwtKeys`] validates a token that arrives another way (a WebSocket `?access_token=`), and
//!   signs tokens.
//!
//! Tokens and the `Authorization` header are never logged; a rejection logs its kind (`expired`,
//! `bad_signature`, ...) at debug level.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use axum::{body::Body, routing::{get, post}, Router};
//! use crosscut::auth::{require, Claims, JwtAuthLayer, JwtKeys};
//! use http::{header::AUTHORIZATION, Request, StatusCode};
//! use tower::ServiceExt;
//!
//! async fn whoami(claims: Claims) -> String {
//!     claims.sub
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // Built once from configuration; a secret under 32 bytes is an error, not a panic.
//! let keys = JwtKeys::hs256("an example secret of at least 32 bytes").unwrap();
//!
//! let app = Router::new()
//!     .route("/posts", post(|| async { "created" }))
//!     .layer(require("write"))
//!     .route("/me", get(whoami))
//!     .layer(JwtAuthLayer::new(keys.clone()));
//!
//! // No token: 401.
//! let res = app.clone().oneshot(Request::get("/me").body(Body::empty()).unwrap()).await.unwrap();
//! assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(res.headers()["www-authenticate"], "Bearer");
//!
//! // A valid token: the handler sees the claims.
//! let reader = keys.issue("alice", ["read"], Duration::from_secs(60)).unwrap();
//! let req = Request::get("/me").header(AUTHORIZATION, format!("Bearer {reader}"));
//! let res = app.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
//! assert_eq!(res.status(), StatusCode::OK);
//!
//! // Valid, but without `write`: 403.
//! let req = Request::post("/posts").header(AUTHORIZATION, format!("Bearer {reader}"));
//! let res = app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
//! assert_eq!(res.status(), StatusCode::FORBIDDEN);
//! # }
//! ```
//!
//! # Ordering
//!
//! [`require`] reads the claims [`JwtAuthLayer`] inserts, so it must run after it: with
//! `Router::layer`, add `require` first (it wraps the routes) and the auth layer after (it wraps
//! both). A route behind `require` without the auth layer always answers 401.

mod claims;
mod future;
mod jwt;
mod layer;
mod require;

pub use claims::Claims;
pub use future::ResponseFuture;
pub use jsonwebtoken::Algorithm;
pub use jwt::{JwtKeys, KeyError, DEFAULT_LEEWAY, MIN_SECRET_LEN};
pub use layer::{JwtAuth, JwtAuthLayer};
pub use require::{require, RequirePermission, RequirePermissionLayer};

#[cfg(test)]
mod test_keys;
#[cfg(test)]
mod tests;
