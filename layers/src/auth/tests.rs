use std::time::Duration;

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{json, Value};
use tower::ServiceExt;

use super::jwt::unix_now;
use super::test_keys::{ED_PRIVATE_PEM, ED_PUBLIC_PEM, RSA_PRIVATE_PEM, RSA_PUBLIC_PEM};
use super::*;

const SECRET: &str = "0123456789abcdef0123456789abcdef-test";

fn keys() -> JwtKeys {
    JwtKeys::hs256(SECRET).unwrap()
}

async fn whoami(claims: Claims) -> String {
    claims.sub
}

async fn maybe(claims: Option<Claims>) -> String {
    claims.map_or_else(|| "anonymous".to_owned(), |c| c.sub)
}

fn app(layer: JwtAuthLayer) -> Router {
    Router::new()
        .route("/write", get(whoami))
        .layer(require("write"))
        .route("/me", get(whoami))
        .route("/maybe", get(maybe))
        .layer(layer)
}

async fn call(app: Router, path: &str, auth: Option<&str>) -> (StatusCode, http::HeaderMap, Value) {
    let mut req = Request::get(path);
    if let Some(auth) = auth {
        req = req.header(AUTHORIZATION, auth);
    }
    let res = app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (parts.status, parts.headers, body)
}

async fn call_bearer(layer: JwtAuthLayer, token: &str) -> (StatusCode, http::HeaderMap, Value) {
    call(app(layer), "/me", Some(&format!("Bearer {token}"))).await
}

fn hs256_token(claims: &Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::default(),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

fn assert_invalid(status: StatusCode, headers: &http::HeaderMap, body: &Value) {
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["code"], "INVALID_TOKEN");
    assert_eq!(headers[WWW_AUTHENTICATE], "Bearer error=\"invalid_token\"");
}

/// base64url without padding, enough to hand-craft a token.
fn b64url(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[tokio::test]
async fn missing_token_is_401_auth_required_with_challenge() {
    let (status, headers, body) = call(app(JwtAuthLayer::new(keys())), "/me", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "AUTH_REQUIRED");
    assert_eq!(headers[WWW_AUTHENTICATE], "Bearer");
}

#[tokio::test]
async fn other_scheme_counts_as_missing_token() {
    let (status, _, body) = call(
        app(JwtAuthLayer::new(keys())),
        "/me",
        Some("Basic dXNlcjpwdw=="),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "AUTH_REQUIRED");
}

#[tokio::test]
async fn valid_token_reaches_handler_with_claims() {
    let token = keys()
        .issue("alice", ["read"], Duration::from_secs(60))
        .unwrap();
    let (status, _, body) = call_bearer(JwtAuthLayer::new(keys()), &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "alice");
    // The scheme is case-insensitive.
    let (status, _, _) = call(
        app(JwtAuthLayer::new(keys())),
        "/me",
        Some(&format!("bearer {token}")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn expired_token_is_invalid() {
    let token = hs256_token(
        &json!({"sub": "a", "perms": [], "exp": unix_now() - 120}),
        SECRET.as_bytes(),
    );
    let (status, headers, body) = call_bearer(JwtAuthLayer::new(keys()), &token).await;
    assert_invalid(status, &headers, &body);
    assert_eq!(body["message"], "the bearer token has expired");
}

#[tokio::test]
async fn expired_within_leeway_is_accepted_and_leeway_is_configurable() {
    let token = hs256_token(
        &json!({"sub": "a", "perms": [], "exp": unix_now() - 10}),
        SECRET.as_bytes(),
    );
    let (status, _, _) = call_bearer(JwtAuthLayer::new(keys()), &token).await;
    assert_eq!(status, StatusCode::OK);
    let strict = JwtAuthLayer::new(keys().leeway(Duration::ZERO));
    let (status, headers, body) = call_bearer(strict, &token).await;
    assert_invalid(status, &headers, &body);
}

#[tokio::test]
async fn nbf_in_the_future_is_invalid() {
    let now = unix_now();
    let token = hs256_token(
        &json!({"sub": "a", "exp": now + 600, "nbf": now + 120}),
        SECRET.as_bytes(),
    );
    let (status, headers, body) = call_bearer(JwtAuthLayer::new(keys()), &token).await;
    assert_invalid(status, &headers, &body);
    assert_eq!(body["message"], "the bearer token is not yet valid");
}

#[tokio::test]
async fn token_without_exp_is_invalid() {
    let token = hs256_token(&json!({"sub": "a", "perms": ["write"]}), SECRET.as_bytes());
    let (status, headers, body) = call_bearer(JwtAuthLayer::new(keys()), &token).await;
    assert_invalid(status, &headers, &body);
}

#[tokio::test]
async fn bad_signature_is_invalid() {
    let token = hs256_token(
        &json!({"sub": "a", "exp": unix_now() + 60}),
        b"another secret that is also long enough!!",
    );
    let (status, headers, body) = call_bearer(JwtAuthLayer::new(keys()), &token).await;
    assert_invalid(status, &headers, &body);
}

#[tokio::test]
async fn alg_none_token_is_invalid() {
    let header = b64url(br#"{"alg":"none","typ":"JWT"}"#);
    let claims = b64url(
        format!(
            r#"{{"sub":"admin","perms":["write"],"exp":{}}}"#,
            unix_now() + 60
        )
        .as_bytes(),
    );
    for token in [format!("{header}.{claims}."), format!("{header}.{claims}")] {
        let (status, headers, body) = call_bearer(JwtAuthLayer::new(keys()), &token).await;
        assert_invalid(status, &headers, &body);
    }
}

#[tokio::test]
async fn rs256_token_against_hs256_verifier_is_invalid() {
    let rs = JwtKeys::rs256_pem(RSA_PUBLIC_PEM.as_bytes())
        .unwrap()
        .with_private_pem(RSA_PRIVATE_PEM.as_bytes())
        .unwrap();
    let token = rs.issue("a", ["write"], Duration::from_secs(60)).unwrap();
    let (status, headers, body) = call_bearer(JwtAuthLayer::new(keys()), &token).await;
    assert_invalid(status, &headers, &body);
}

#[tokio::test]
async fn hs256_token_signed_with_rsa_public_key_against_rs256_verifier_is_invalid() {
    let rs = JwtKeys::rs256_pem(RSA_PUBLIC_PEM.as_bytes()).unwrap();
    let token = hs256_token(
        &json!({"sub": "a", "perms": ["write"], "exp": unix_now() + 60}),
        RSA_PUBLIC_PEM.as_bytes(),
    );
    let (status, headers, body) = call_bearer(JwtAuthLayer::new(rs), &token).await;
    assert_invalid(status, &headers, &body);
}

#[tokio::test]
async fn rs256_and_eddsa_tokens_verify_with_their_public_keys() {
    let rs = JwtKeys::rs256_pem(RSA_PUBLIC_PEM.as_bytes())
        .unwrap()
        .with_private_pem(RSA_PRIVATE_PEM.as_bytes())
        .unwrap();
    let token = rs
        .issue("rsa-user", ["read"], Duration::from_secs(60))
        .unwrap();
    assert_eq!(rs.verify(&token).unwrap().sub, "rsa-user");

    let ed = JwtKeys::ed25519_pem(ED_PUBLIC_PEM.as_bytes())
        .unwrap()
        .with_private_pem(ED_PRIVATE_PEM.as_bytes())
        .unwrap();
    assert_eq!(ed.algorithm(), Algorithm::EdDSA);
    let token = ed
        .issue("ed-user", ["read"], Duration::from_secs(60))
        .unwrap();
    let (status, _, body) = call_bearer(JwtAuthLayer::new(ed.clone()), &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "ed-user");
    // An EdDSA verifier refuses the RSA token.
    let rs_token = rs.issue("x", ["read"], Duration::from_secs(60)).unwrap();
    assert_eq!(
        ed.verify(&rs_token).unwrap_err().code(),
        crate::ErrorCode::InvalidToken
    );
}

#[tokio::test]
async fn truncated_and_garbage_tokens_are_invalid() {
    let token = keys()
        .issue("a", ["read"], Duration::from_secs(60))
        .unwrap();
    let truncated = &token[..token.len() - 5];
    let no_signature = &token[..token.rfind('.').unwrap()];
    for bad in [
        truncated,
        no_signature,
        "garbage",
        "a.b.c",
        "....",
        "%%%",
        "eyJhbGciOiJIUzI1NiJ9",
    ] {
        let (status, headers, body) = call_bearer(JwtAuthLayer::new(keys()), bad).await;
        assert_invalid(status, &headers, &body);
    }
    // `Bearer` with nothing after it.
    let (status, headers, body) =
        call(app(JwtAuthLayer::new(keys())), "/me", Some("Bearer ")).await;
    assert_invalid(status, &headers, &body);
}

#[tokio::test]
async fn non_ascii_authorization_header_is_invalid() {
    let req = Request::get("/me")
        .header(
            AUTHORIZATION,
            http::HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap(),
        )
        .body(Body::empty())
        .unwrap();
    let res = app(JwtAuthLayer::new(keys())).oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn optional_mode_passes_anonymous_but_refuses_invalid() {
    let layer = JwtAuthLayer::new(keys()).optional();
    let (status, _, body) = call(app(layer.clone()), "/maybe", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "anonymous");

    let token = keys()
        .issue("bob", ["read"], Duration::from_secs(60))
        .unwrap();
    let (status, _, body) = call(
        app(layer.clone()),
        "/maybe",
        Some(&format!("Bearer {token}")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "bob");

    let (status, headers, body) = call(app(layer.clone()), "/maybe", Some("Bearer garbage")).await;
    assert_invalid(status, &headers, &body);

    // The `Claims` extractor still insists on claims when the layer lets anonymous through.
    let (status, headers, body) = call(app(layer), "/me", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "AUTH_REQUIRED");
    assert_eq!(headers[WWW_AUTHENTICATE], "Bearer");
}

#[tokio::test]
async fn missing_permission_is_403_forbidden() {
    let token = keys()
        .issue("reader", ["read"], Duration::from_secs(60))
        .unwrap();
    let (status, _, body) = call(
        app(JwtAuthLayer::new(keys())),
        "/write",
        Some(&format!("Bearer {token}")),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], "FORBIDDEN");

    let token = keys()
        .issue("writer", ["read", "write"], Duration::from_secs(60))
        .unwrap();
    let (status, _, body) = call(
        app(JwtAuthLayer::new(keys())),
        "/write",
        Some(&format!("Bearer {token}")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "writer");
}

#[tokio::test]
async fn require_without_claims_is_401() {
    let app = Router::new()
        .route("/write", get(|| async { "ok" }))
        .layer(require("write"));
    let (status, headers, body) = call(app, "/write", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "AUTH_REQUIRED");
    assert_eq!(headers[WWW_AUTHENTICATE], "Bearer");
}

#[test]
fn short_secret_is_rejected() {
    assert_eq!(
        JwtKeys::hs256("x".repeat(31)).unwrap_err(),
        KeyError::SecretTooShort { len: 31 }
    );
    assert!(JwtKeys::hs256("x".repeat(32)).is_ok());
    assert!(JwtAuthLayer::hs256("short").is_err());
    assert!(JwtKeys::rs256_pem(b"not a pem").is_err());
}

#[test]
fn verify_only_keys_cannot_sign_and_debug_hides_keys() {
    let rs = JwtKeys::rs256_pem(RSA_PUBLIC_PEM.as_bytes()).unwrap();
    assert_eq!(
        rs.issue("a", ["r"], Duration::from_secs(1)).unwrap_err(),
        KeyError::CannotSign
    );
    let debug = format!("{:?}", keys());
    assert!(!debug.contains(SECRET), "{debug}");
}

#[test]
fn issued_token_carries_iat_and_exp() {
    let claims = keys()
        .verify(
            &keys()
                .issue("a", ["read", "write"], Duration::from_secs(3600))
                .unwrap(),
        )
        .unwrap();
    let now = unix_now();
    assert!(claims.iat.is_some_and(|iat| iat.abs_diff(now) <= 2));
    assert!(claims.exp.abs_diff(now + 3600) <= 2);
    assert_eq!(claims.perms, ["read", "write"]);
    assert!(claims.nbf.is_none());
}
