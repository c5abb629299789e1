//! The per-client rate limit (CONTRACT.md sections 2 and 3): 429 `RATE_LIMIT` with `Retry-After`,
//! the IETF RateLimit headers, `/health` and `/metrics` exempt, `X-Forwarded-For` believed only from
//! trusted proxies.

use std::time::Duration;

use crosscut_demo::Config;

use crate::common::{assert_error, spawn_with, test_config, TestServer};

fn limited(per_second: u32, burst: u32) -> Config {
    Config {
        rate_limit_per_second: per_second,
        rate_limit_burst: burst,
        ..test_config()
    }
}

fn header<'a>(res: &'a reqwest::Response, name: &str) -> &'a str {
    res.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

fn num(res: &reqwest::Response, name: &str) -> u64 {
    header(res, name)
        .parse()
        .unwrap_or_else(|_| panic!("{name} is not an integer"))
}

async fn get(s: &TestServer, path: &str, xff: Option<&str>) -> reqwest::Response {
    let mut req = s.client.get(s.url(path));
    if let Some(xff) = xff {
        req = req.header("x-forwarded-for", xff);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn a_burst_past_the_quota_gets_429_until_retry_after_has_passed() {
    let s = spawn_with(limited(1, 3)).await;
    for expected_remaining in [2, 1, 0] {
        let res = get(&s, "/api/v1/users", None).await;
        assert_eq!(res.status(), 200);
        assert_eq!(num(&res, "ratelimit-remaining"), expected_remaining);
        assert_eq!(header(&res, "ratelimit-limit"), "3");
        assert_eq!(header(&res, "ratelimit-policy"), "3;w=3");
        let reset = num(&res, "ratelimit-reset");
        assert!((1..=3).contains(&reset), "reset {reset}");
    }

    let res = get(&s, "/api/v1/users", None).await;
    let retry_after = num(&res, "retry-after");
    assert!((1..=2).contains(&retry_after), "retry-after {retry_after}");
    assert_eq!(num(&res, "ratelimit-remaining"), 0);
    assert_eq!(header(&res, "ratelimit-limit"), "3");
    assert!(res.headers().contains_key("ratelimit-reset"));
    assert!(res.headers().contains_key("ratelimit-policy"));
    assert_error(res, 429, "RATE_LIMIT").await;

    // Every limited route shares the quota, writes and unknown versions included.
    let res = s.client.post(s.url("/api/v1/users")).send().await.unwrap();
    assert_error(res, 429, "RATE_LIMIT").await;

    tokio::time::sleep(Duration::from_secs(retry_after) + Duration::from_millis(50)).await;
    let res = get(&s, "/api/v1/users", None).await;
    assert_eq!(res.status(), 200, "through again after Retry-After");
    assert_eq!(num(&res, "ratelimit-remaining"), 0);
    let res = get(&s, "/api/v1/users", None).await;
    assert_error(res, 429, "RATE_LIMIT").await;
}

#[tokio::test]
async fn health_and_metrics_are_never_limited_and_429s_are_counted() {
    let s = spawn_with(limited(1, 1)).await;
    assert_eq!(get(&s, "/api/v1/users", None).await.status(), 200);
    for _ in 0..3 {
        let res = get(&s, "/api/v1/users", None).await;
        assert_error(res, 429, "RATE_LIMIT").await;
    }
    for _ in 0..20 {
        for path in ["/health", "/metrics"] {
            let res = get(&s, path, None).await;
            assert_eq!(res.status(), 200, "{path}");
            assert!(!res.headers().contains_key("ratelimit-limit"), "{path}");
        }
    }
    let metrics = get(&s, "/metrics", None).await.text().await.unwrap();
    assert!(
        metrics.lines().any(|l| l == "rate_limited_total 3"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_spoofed_forwarded_for_from_an_untrusted_peer_does_not_change_the_key() {
    let s = spawn_with(limited(1, 3)).await;
    for (i, xff) in ["203.0.113.1", "203.0.113.2", "198.51.100.7, 203.0.113.3"]
        .into_iter()
        .enumerate()
    {
        let res = get(&s, "/api/v1/users", Some(xff)).await;
        assert_eq!(res.status(), 200);
        assert_eq!(num(&res, "ratelimit-remaining"), 2 - i as u64, "{xff}");
    }
    for xff in ["203.0.113.4", "2001:db8::1", "garbage"] {
        let res = get(&s, "/api/v1/users", Some(xff)).await;
        assert_error(res, 429, "RATE_LIMIT").await;
    }
    let res = get(&s, "/api/v1/users", None).await;
    assert_error(res, 429, "RATE_LIMIT").await;
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_quota() {
    let mut config = limited(1, 2);
    config.trusted_proxies = vec!["127.0.0.1/32".into()];
    let s = spawn_with(config).await;

    let a = Some("203.0.113.10");
    assert_eq!(
        num(&get(&s, "/api/v1/users", a).await, "ratelimit-remaining"),
        1
    );
    assert_eq!(
        num(&get(&s, "/api/v1/users", a).await, "ratelimit-remaining"),
        0
    );
    assert_error(get(&s, "/api/v1/users", a).await, 429, "RATE_LIMIT").await;

    // Another client behind the same proxy is not affected.
    let res = get(&s, "/api/v1/users", Some("203.0.113.20")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(num(&res, "ratelimit-remaining"), 1);

    // The right-most address that is not a trusted proxy is the client: a client cannot escape its
    // quota by prepending addresses, and the proxy's own address on the right is skipped.
    let res = get(&s, "/api/v1/users", Some("198.51.100.1, 203.0.113.10")).await;
    assert_error(res, 429, "RATE_LIMIT").await;
    let res = get(&s, "/api/v1/users", Some("203.0.113.10, 127.0.0.1")).await;
    assert_error(res, 429, "RATE_LIMIT").await;

    // The proxy's own requests (no header) are keyed by its address.
    let res = get(&s, "/api/v1/users", None).await;
    assert_eq!(res.status(), 200);
    assert_eq!(num(&res, "ratelimit-remaining"), 1);
}
