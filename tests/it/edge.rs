//! The edge layers as a client sees them on the demo: security headers and request ids on every
//! answer (including the ones layers produce), CORS, caught panics, timeouts, body limits.

use std::time::Duration;

use crate::common::{assert_error, bearer, spawn_app, spawn_with, test_config};

const SECURITY_HEADERS: [(&str, &str); 9] = [
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    (
        "strict-transport-security",
        "max-age=31536000; includeSubDomains",
    ),
    ("content-security-policy", "default-src 'self'"),
    ("referrer-policy", "no-referrer"),
    ("x-xss-protection", "0"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    ("x-permitted-cross-domain-policies", "none"),
];

fn assert_edge_headers(res: &reqwest::Response, what: &str) {
    for (name, value) in SECURITY_HEADERS {
        assert_eq!(
            res.headers().get(name).and_then(|v| v.to_str().ok()),
            Some(value),
            "{what}: {name}"
        );
    }
    let id = res
        .headers()
        .get("x-request-id")
        .unwrap_or_else(|| panic!("{what}: no x-request-id"));
    assert!(!id.is_empty());
}

#[tokio::test]
async fn every_answer_carries_security_headers_and_request_id() {
    let mut config = test_config();
    config.request_timeout_secs = 1;
    config.max_body_bytes = 1024;
    let s = spawn_with(config).await;
    let c = &s.client;

    let res = c.get(s.url("/api/v1/users")).send().await.unwrap();
    assert_edge_headers(&res, "200");

    let res = c.get(s.url("/nope")).send().await.unwrap();
    assert_edge_headers(&res, "404");
    assert_error(res, 404, "NOT_FOUND").await;

    let res = c.patch(s.url("/api/v1/users")).send().await.unwrap();
    assert_edge_headers(&res, "405");
    assert_error(res, 405, "METHOD_NOT_ALLOWED").await;

    let res = c.get(s.url("/__test/sleep/3000")).send().await.unwrap();
    assert_edge_headers(&res, "408");
    assert_error(res, 408, "REQUEST_TIMEOUT").await;

    let res = c
        .post(s.url("/api/v1/users"))
        .bearer_auth(bearer("w", &["write"]))
        .header("content-type", "application/json")
        .body(vec![b' '; 4096])
        .send()
        .await
        .unwrap();
    assert_edge_headers(&res, "413");
    assert_error(res, 413, "PAYLOAD_TOO_LARGE").await;

    let res = c.get(s.url("/__test/panic")).send().await.unwrap();
    assert_edge_headers(&res, "500");
    assert_error(res, 500, "INTERNAL_ERROR").await;

    let res = c.get(s.url("/api/v3/users")).send().await.unwrap();
    assert_edge_headers(&res, "400");
}

#[tokio::test]
async fn panic_is_500_without_detail_and_the_next_request_succeeds() {
    let s = spawn_app().await;
    let res = s.client.get(s.url("/__test/panic")).send().await.unwrap();
    let body = assert_error(res, 500, "INTERNAL_ERROR").await;
    assert!(
        !body.to_string().contains("on purpose"),
        "panic message leaked: {body}"
    );
    let res = s.client.get(s.url("/api/v1/users")).send().await.unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn slow_handler_gets_408_and_fast_ones_do_not() {
    let mut config = test_config();
    config.request_timeout_secs = 1;
    let s = spawn_with(config).await;
    let start = std::time::Instant::now();
    let res = s
        .client
        .get(s.url("/__test/sleep/5000"))
        .send()
        .await
        .unwrap();
    assert_error(res, 408, "REQUEST_TIMEOUT").await;
    assert!(start.elapsed() < Duration::from_secs(3));
    let res = s
        .client
        .get(s.url("/__test/sleep/100"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn oversized_body_is_413_declared_or_streamed() {
    let mut config = test_config();
    config.max_body_bytes = 1000;
    let s = spawn_with(config).await;
    let token = bearer("w", &["write"]);
    let name = "x".repeat(2000);
    let res = s
        .client
        .post(s.url("/api/v1/users"))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "name": name }))
        .send()
        .await
        .unwrap();
    assert_error(res, 413, "PAYLOAD_TOO_LARGE").await;

    // Chunked: no Content-Length, so the limit must bite while the body streams.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..20).map(|_| Ok(vec![b' '; 100])).collect();
    let res = s
        .client
        .post(s.url("/api/v1/users"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_error(res, 413, "PAYLOAD_TOO_LARGE").await;

    // Just under the limit is fine.
    let res = s
        .client
        .post(s.url("/api/v1/users"))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "name": "x".repeat(900) }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        400,
        "900-char name is over the 100-char rule, but not over the body limit"
    );
}

#[tokio::test]
async fn request_id_is_echoed_when_valid_and_generated_otherwise() {
    let s = spawn_app().await;
    let get = |id: Option<&str>| {
        let mut req = s.client.get(s.url("/api/v1/users"));
        if let Some(id) = id {
            req = req.header("x-request-id", id);
        }
        req.send()
    };
    let res = get(Some("abc-123_XYZ")).await.unwrap();
    assert_eq!(res.headers()["x-request-id"], "abc-123_XYZ");

    let max = "a".repeat(128);
    let res = get(Some(&max)).await.unwrap();
    assert_eq!(res.headers()["x-request-id"], max.as_str());

    for bad in [None, Some(""), Some("has space"), Some(&*"b".repeat(129))] {
        let res = get(bad).await.unwrap();
        let id = res.headers()["x-request-id"].to_str().unwrap();
        assert_eq!(id.len(), 36, "{bad:?} -> {id}");
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
        assert_ne!(Some(id), bad);
    }
    let a = get(None).await.unwrap().headers()["x-request-id"].clone();
    let b = get(None).await.unwrap().headers()["x-request-id"].clone();
    assert_ne!(a, b, "generated ids are unique");
}

#[tokio::test]
async fn cors_allows_listed_origins_only() {
    let mut config = test_config();
    config.cors_origins = vec!["https://a.example".into(), "https://b.example".into()];
    let s = spawn_with(config).await;

    let res = s
        .client
        .get(s.url("/api/v1/users"))
        .header("origin", "https://b.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "https://b.example"
    );
    let vary: Vec<_> = res
        .headers()
        .get_all("vary")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert!(
        vary.iter()
            .any(|v| v.to_ascii_lowercase().contains("origin")),
        "{vary:?}"
    );

    let res = s
        .client
        .get(s.url("/api/v1/users"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        !res.headers()
            .keys()
            .any(|k| k.as_str().starts_with("access-control-allow")),
        "denied origin got CORS headers: {:?}",
        res.headers()
    );

    let res = s
        .client
        .request(reqwest::Method::OPTIONS, s.url("/api/v1/users"))
        .header("origin", "https://a.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type, authorization",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let h = res.headers();
    assert_eq!(h["access-control-allow-origin"], "https://a.example");
    assert_eq!(
        h["access-control-allow-methods"],
        "GET, POST, PUT, DELETE, OPTIONS"
    );
    assert_eq!(
        h["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .to_ascii_lowercase(),
        "content-type, authorization, x-request-id"
    );
    assert_eq!(h["access-control-max-age"], "86400");

    let res = s
        .client
        .request(reqwest::Method::OPTIONS, s.url("/api/v1/users"))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(!res.headers().contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn cors_wildcard_allows_any_origin_without_credentials() {
    let s = spawn_app().await;
    let res = s
        .client
        .get(s.url("/api/v1/users"))
        .header("origin", "https://anywhere.example")
        .send()
        .await
        .unwrap();
    let allowed = res.headers()["access-control-allow-origin"]
        .to_str()
        .unwrap();
    assert!(
        allowed == "*" || allowed == "https://anywhere.example",
        "{allowed}"
    );
    assert!(!res
        .headers()
        .contains_key("access-control-allow-credentials"));
}

#[tokio::test]
async fn compression_applies_when_accepted() {
    let s = spawn_app().await;
    let res = s
        .client
        .get(s.url("/api/v2/users"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()
            .get("content-encoding")
            .map(|v| v.to_str().unwrap()),
        Some("gzip")
    );
    let res = s
        .client
        .get(s.url("/api/v2/users"))
        .header("accept-encoding", "br")
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()
            .get("content-encoding")
            .map(|v| v.to_str().unwrap()),
        Some("br")
    );

    let mut config = test_config();
    config.enable_compression = false;
    let s = spawn_with(config).await;
    let res = s
        .client
        .get(s.url("/api/v2/users"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("content-encoding").is_none());
}

#[tokio::test]
async fn auth_and_rate_limit_answers_carry_the_edge_headers_too() {
    let mut config = test_config();
    config.rate_limit_per_second = 1;
    config.rate_limit_burst = 2;
    let s = spawn_with(config).await;
    let c = &s.client;

    let res = c.delete(s.url("/api/v1/users/user1")).send().await.unwrap();
    assert_edge_headers(&res, "401");
    assert_error(res, 401, "AUTH_REQUIRED").await;

    let res = c
        .delete(s.url("/api/v1/users/user1"))
        .bearer_auth(bearer("reader", &["read"]))
        .send()
        .await
        .unwrap();
    assert_edge_headers(&res, "403");
    assert_error(res, 403, "FORBIDDEN").await;

    let res = c.get(s.url("/api/v1/users")).send().await.unwrap();
    assert_edge_headers(&res, "429");
    assert_error(res, 429, "RATE_LIMIT").await;
}
