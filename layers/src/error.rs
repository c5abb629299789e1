//! The one JSON error body every crosscut layer and handler answers with.
//!
//! Every failure a layer or handler reports becomes an [`ApiError`]: an HTTP status, a machine-readable
//! [`ErrorCode`] and a human message. Its [`IntoResponse`] impl is the only place an error body is
//! formatted, so a client sees the same shape whether the 401 came from the auth layer, the 404 from
//! the router fallback or the 500 from a caught panic:
//!
//! ```json
//! {"error": "Not Found", "message": "no user with id 42", "code": "NOT_FOUND"}
//! ```
//!
//! The response also carries the [`ErrorCode`] as an extension, so an outer layer (the access log,
//! metrics) can see which error was answered without parsing the body.
//!
//! # Example
//!
//! ```
//! use axum::{routing::get, Router};
//! use crosscut::error::{ApiError, ErrorCode};
//!
//! async fn user(axum::extract::Path(id): axum::extract::Path<u32>) -> Result<String, ApiError> {
//!     if id == 1 {
//!         Ok("John".to_owned())
//!     } else {
//!         Err(ApiError::not_found(format!("no user with id {id}")))
//!     }
//! }
//!
//! let app: Router = Router::new()
//!     .route("/users/{id}", get(user))
//!     .fallback(|| async { ApiError::not_found("no such route") });
//! # let _ = app;
//! # let err = ApiError::new(ErrorCode::Forbidden, "needs write");
//! # assert_eq!(err.status(), http::StatusCode::FORBIDDEN);
//! ```

use std::borrow::Cow;
use std::fmt;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use http::{HeaderMap, StatusCode};

/// Machine-readable error codes, one per kind of failure the contract names.
///
/// An enum rather than strings so that a misspelt code is a compile error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// 400: malformed JSON, a missing or invalid field.
    ValidationError,
    /// 400: an API version the server does not offer.
    UnsupportedVersion,
    /// 401: no bearer token where one is required.
    AuthRequired,
    /// 401: a token that is malformed, expired, not yet valid, badly signed or of the wrong algorithm.
    InvalidToken,
    /// 403: a valid token that lacks the needed permission.
    Forbidden,
    /// 404: unknown path, resource or id.
    NotFound,
    /// 405: known path, wrong method.
    MethodNotAllowed,
    /// 408: the handler ran past the request timeout.
    RequestTimeout,
    /// 413: the body is larger than allowed.
    PayloadTooLarge,
    /// 429: the client is over its quota.
    RateLimit,
    /// 500: a handler panicked or failed.
    InternalError,
    /// 503: the server is at its connection limit.
    Overloaded,
}

impl ErrorCode {
    /// The code as it appears in the `code` field of the body, e.g. `"NOT_FOUND"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ValidationError => "VALIDATION_ERROR",
            Self::UnsupportedVersion => "UNSUPPORTED_VERSION",
            Self::AuthRequired => "AUTH_REQUIRED",
            Self::InvalidToken => "INVALID_TOKEN",
            Self::Forbidden => "FORBIDDEN",
            Self::NotFound => "NOT_FOUND",
            Self::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            Self::RequestTimeout => "REQUEST_TIMEOUT",
            Self::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            Self::RateLimit => "RATE_LIMIT",
            Self::InternalError => "INTERNAL_ERROR",
            Self::Overloaded => "OVERLOADED",
        }
    }

    /// The HTTP status this code is answered with.
    pub const fn status(self) -> StatusCode {
        match self {
            Self::ValidationError | Self::UnsupportedVersion => StatusCode::BAD_REQUEST,
            Self::AuthRequired | Self::InvalidToken => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RateLimit => StatusCode::TOO_MANY_REQUESTS,
            Self::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error answered to the client as the uniform JSON body.
///
/// See the [module docs](self) for the body's shape and an example.
#[derive(Debug, Clone)]
pub struct ApiError {
    code: ErrorCode,
    message: Cow<'static, str>,
    // Boxed and optional: most errors carry no extra header, and this keeps `Result<T, ApiError>` small.
    headers: Option<Box<HeaderMap>>,
}

impl ApiError {
    /// An error with `code`'s status and the given human-readable message.
    pub fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            message: message.into(),
            headers: None,
        }
    }

    /// 400 `VALIDATION_ERROR`; the message should name the field and the problem.
    pub fn validation(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::ValidationError, message)
    }

    /// 404 `NOT_FOUND`.
    pub fn not_found(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// 500 `INTERNAL_ERROR` with a fixed message: internal detail belongs in the log, never the body.
    pub fn internal() -> Self {
        Self::new(
            ErrorCode::InternalError,
            "the server failed to handle the request",
        )
    }

    /// Adds a header to the error response, e.g. `Retry-After` or `WWW-Authenticate`.
    #[must_use]
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers
            .get_or_insert_with(Default::default)
            .insert(name, value);
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    /// The machine-readable code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The JSON body, `{"error","message","code"}`.
    pub fn body(&self) -> String {
        let reason = self.status().canonical_reason().unwrap_or("Error");
        // Serializing a `&str` cannot fail; the fallback only keeps this free of `unwrap`.
        let message = serde_json::to_string(self.message()).unwrap_or_else(|_| "\"\"".to_owned());
        format!(
            "{{\"error\":\"{reason}\",\"message\":{message},\"code\":\"{}\"}}",
            self.code.as_str()
        )
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

/// `application/json`, built once.
static JSON: HeaderValue = HeaderValue::from_static("application/json");

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = Response::new(Body::from(self.body()));
        *res.status_mut() = self.status();
        let headers = res.headers_mut();
        headers.insert(CONTENT_TYPE, JSON.clone());
        if let Some(extra) = self.headers {
            for (name, value) in extra.iter() {
                headers.insert(name.clone(), value.clone());
            }
        }
        res.extensions_mut().insert(self.code);
        res
    }
}

impl From<ErrorCode> for ApiError {
    /// An error with the code's generic message, for places that have nothing more specific to say.
    fn from(code: ErrorCode) -> Self {
        let message = match code {
            ErrorCode::ValidationError => "the request is invalid",
            ErrorCode::UnsupportedVersion => "unsupported API version",
            ErrorCode::AuthRequired => "a bearer token is required",
            ErrorCode::InvalidToken => "the bearer token is invalid",
            ErrorCode::Forbidden => "the token lacks the needed permission",
            ErrorCode::NotFound => "no such resource",
            ErrorCode::MethodNotAllowed => "method not allowed on this resource",
            ErrorCode::RequestTimeout => "the request took too long to handle",
            ErrorCode::PayloadTooLarge => "the request body is too large",
            ErrorCode::RateLimit => "too many requests",
            ErrorCode::InternalError => "the server failed to handle the request",
            ErrorCode::Overloaded => "the server is at its connection limit",
        };
        Self::new(code, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body_json(res: Response) -> serde_json::Value {
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn body_has_reason_message_and_code() {
        let res = ApiError::not_found("no user with id 7").into_response();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        assert_eq!(res.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(
            res.extensions().get::<ErrorCode>(),
            Some(&ErrorCode::NotFound)
        );
        let v = body_json(res).await;
        assert_eq!(
            v,
            serde_json::json!({"error": "Not Found", "message": "no user with id 7", "code": "NOT_FOUND"})
        );
    }

    #[tokio::test]
    async fn message_is_json_escaped() {
        let res = ApiError::validation("field \"name\" has \\ and \n").into_response();
        let v = body_json(res).await;
        assert_eq!(v["message"], "field \"name\" has \\ and \n");
    }

    #[tokio::test]
    async fn extra_headers_are_sent() {
        let res = ApiError::from(ErrorCode::RateLimit)
            .with_header(http::header::RETRY_AFTER, HeaderValue::from_static("3"))
            .into_response();
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(res.headers()[http::header::RETRY_AFTER], "3");
    }

    #[test]
    fn every_code_maps_to_an_error_status() {
        for code in [
            ErrorCode::ValidationError,
            ErrorCode::UnsupportedVersion,
            ErrorCode::AuthRequired,
            ErrorCode::InvalidToken,
            ErrorCode::Forbidden,
            ErrorCode::NotFound,
            ErrorCode::MethodNotAllowed,
            ErrorCode::RequestTimeout,
            ErrorCode::PayloadTooLarge,
            ErrorCode::RateLimit,
            ErrorCode::InternalError,
            ErrorCode::Overloaded,
        ] {
            assert!(code.status().is_client_error() || code.status().is_server_error());
            assert!(code
                .as_str()
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b == b'_'));
        }
    }
}
