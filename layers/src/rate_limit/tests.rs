use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::get;
use axum::Router;
use http::header::RETRY_AFTER;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use super::key::group;
use super::*;

fn app<X, K>(layer: RateLimitLayer<X, K>) -> Router
where
    X: KeyExtractor<Body, Key = K> + Send + Sync + 'static,
    K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(layer)
}

fn req(peer: Option<&str>, xff: &[&str]) -> Request<Body> {
    let mut builder = Request::get("/");
    for value in xff {
        builder = builder.header("x-forwarded-for", *value);
    }
    if let Some(peer) = peer {
        let addr: SocketAddr = peer.parse().unwrap();
        builder = builder.extension(ConnectInfo(addr));
    }
    builder.body(Body::empty()).unwrap()
}

async fn send(app: &Router, req: Request<Body>) -> (StatusCode, HeaderMap) {
    let res = app.clone().oneshot(req).await.unwrap();
    (res.status(), res.headers().clone())
}

fn trusted() -> RateLimitLayer {
    RateLimitLayer::new(RateLimit::per_second(1).burst(1))
        .trusted_proxies(["10.0.0.0/8".parse().unwrap(), "fd00::/8".parse().unwrap()])
}

#[tokio::test]
async fn burst_past_quota_gets_429_with_retry_after() {
    let app = app(RateLimitLayer::new(RateLimit::per_second(1).burst(3)));
    for _ in 0..3 {
        assert_eq!(
            send(&app, req(Some("192.0.2.1:1000"), &[])).await.0,
            StatusCode::OK
        );
    }
    let res = app
        .clone()
        .oneshot(req(Some("192.0.2.1:1000"), &[]))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.headers()[RETRY_AFTER], "1");
    assert_eq!(res.headers()["ratelimit-remaining"], "0");
    assert_eq!(res.headers()["ratelimit-limit"], "3");
    assert_eq!(res.headers()["ratelimit-reset"], "3");
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["code"], "RATE_LIMIT");
}

#[tokio::test]
async fn headers_count_down() {
    let app = app(RateLimitLayer::new(RateLimit::per_second(100).burst(200)));
    let mut seen = Vec::new();
    for _ in 0..3 {
        let (status, headers) = send(&app, req(Some("192.0.2.2:1"), &[])).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["ratelimit-limit"], "200");
        assert_eq!(headers["ratelimit-policy"], "200;w=2");
        assert_eq!(headers["ratelimit-reset"], "1");
        seen.push(
            headers["ratelimit-remaining"]
                .to_str()
                .unwrap()
                .parse::<u32>()
                .unwrap(),
        );
    }
    // A cell may come back between requests on a slow machine, never more than one at 100/s.
    assert_eq!(seen[0], 199);
    assert!(seen[1] <= 198 + 1 && seen[2] <= seen[1], "{seen:?}");
}

#[tokio::test]
async fn retry_after_once_waited_lets_the_client_through() {
    let app = app(RateLimitLayer::new(RateLimit::per_second(10).burst(1)));
    assert_eq!(
        send(&app, req(Some("192.0.2.3:1"), &[])).await.0,
        StatusCode::OK
    );
    let (status, headers) = send(&app, req(Some("192.0.2.3:1"), &[])).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers[RETRY_AFTER], "1");
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        send(&app, req(Some("192.0.2.3:1"), &[])).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn xff_from_untrusted_peer_is_ignored() {
    let app = app(trusted());
    assert_eq!(
        send(&app, req(Some("192.0.2.4:1"), &["198.51.100.1"]))
            .await
            .0,
        StatusCode::OK
    );
    // A different spoofed address from the same peer is still the same key.
    let (status, _) = send(&app, req(Some("192.0.2.4:1"), &["198.51.100.2"])).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn xff_from_trusted_proxy_is_used() {
    let app = app(trusted());
    let proxy = Some("10.0.0.1:443");
    assert_eq!(
        send(&app, req(proxy, &["198.51.100.1"])).await.0,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, req(proxy, &["198.51.100.2"])).await.0,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, req(proxy, &["198.51.100.1"])).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[test]
fn client_is_right_most_untrusted_xff_entry() {
    let ip = ClientIp::trusting(["10.0.0.0/8".parse().unwrap()]);
    let peer: IpAddr = "10.0.0.1".parse().unwrap();
    let headers = |values: &[&str]| {
        let mut map = HeaderMap::new();
        for v in values {
            map.append("x-forwarded-for", v.parse().unwrap());
        }
        map
    };
    let client = |values: &[&str]| ip.client(peer, &headers(values)).to_string();
    // The left-most entry is whatever the client claimed; the right-most untrusted one is who
    // connected to our first proxy.
    assert_eq!(client(&["1.1.1.1, 2.2.2.2, 10.0.0.5"]), "2.2.2.2");
    assert_eq!(client(&["1.1.1.1", "2.2.2.2, 10.0.0.5"]), "2.2.2.2");
    assert_eq!(client(&["2.2.2.2:5555"]), "2.2.2.2");
    assert_eq!(client(&["[2001:db8::1]:80"]), "2001:db8::1");
    assert_eq!(client(&["::ffff:2.2.2.2"]), "2.2.2.2");
    // Unparsable entries stop the walk: the peer is the key.
    assert_eq!(client(&["2.2.2.2, unknown"]), "10.0.0.1");
    assert_eq!(client(&["2.2.2.2,,10.0.0.5"]), "10.0.0.1");
    // Only trusted hops: the left-most one.
    assert_eq!(client(&["10.1.1.1, 10.0.0.5"]), "10.1.1.1");
    assert_eq!(client(&[]), "10.0.0.1");
}

#[tokio::test]
async fn ipv6_clients_share_a_key_per_64() {
    let app = app(RateLimitLayer::new(RateLimit::per_second(1).burst(1)));
    assert_eq!(
        send(&app, req(Some("[2001:db8:1:2::1]:1"), &[])).await.0,
        StatusCode::OK
    );
    let same_64 = send(&app, req(Some("[2001:db8:1:2:ffff::9]:1"), &[]))
        .await
        .0;
    assert_eq!(same_64, StatusCode::TOO_MANY_REQUESTS);
    let other_64 = send(&app, req(Some("[2001:db8:1:3::1]:1"), &[])).await.0;
    assert_eq!(other_64, StatusCode::OK);
}

#[test]
fn ipv4_is_keyed_by_full_address_and_mapped_ipv6_as_ipv4() {
    let v4: IpAddr = "192.0.2.7".parse().unwrap();
    assert_eq!(group(v4), v4);
    assert_eq!(group("::ffff:192.0.2.7".parse().unwrap()), v4);
    assert_eq!(
        group("2001:db8:aa:bb:1:2:3:4".parse().unwrap()),
        "2001:db8:aa:bb::".parse::<IpAddr>().unwrap()
    );
}

#[tokio::test]
async fn requests_without_connect_info_share_one_key() {
    let app = app(RateLimitLayer::new(RateLimit::per_second(1).burst(1)));
    assert_eq!(
        send(&app, req(None, &["198.51.100.1"])).await.0,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, req(None, &["198.51.100.2"])).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn closure_keys_and_none_share_the_unknown_key() {
    let by_header =
        |req: &Request<Body>| req.headers().get("x-user").map(|v| v.as_bytes().to_vec());
    let app = app(RateLimitLayer::keyed_by(
        RateLimit::per_second(1),
        by_header,
    ));
    let user = |name: &str| {
        Request::get("/")
            .header("x-user", name)
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(send(&app, user("a")).await.0, StatusCode::OK);
    assert_eq!(send(&app, user("b")).await.0, StatusCode::OK);
    assert_eq!(send(&app, user("a")).await.0, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(send(&app, req(None, &[])).await.0, StatusCode::OK);
    assert_eq!(
        send(&app, req(None, &[])).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn idle_keys_are_reclaimed_in_the_background() {
    let layer = RateLimitLayer::new(RateLimit::per_second(1000).burst(1))
        .reclaim_every(Duration::from_millis(20));
    let app = app(layer.clone());
    for i in 0..100u8 {
        let peer = format!("192.0.2.{i}:1");
        assert_eq!(send(&app, req(Some(&peer), &[])).await.0, StatusCode::OK);
    }
    assert_eq!(layer.tracked_keys(), 100);
    let deadline = Instant::now() + Duration::from_secs(5);
    while layer.tracked_keys() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(layer.tracked_keys(), 0);
}

#[test]
fn quota_numbers_mean_what_they_say() {
    let limit = RateLimit::per_second(100).burst(200);
    assert_eq!(limit.rate(), 100);
    assert_eq!(limit.burst_size(), 200);
    assert_eq!(limit.replenish_interval(), Duration::from_millis(10));
    assert_eq!(limit.window(), Duration::from_secs(2));
    assert_eq!(RateLimit::per_second(3).window(), Duration::from_secs(1));
    assert_eq!(
        RateLimit::per_second(2).burst(5).window(),
        Duration::from_secs(3)
    );
}

fn vm_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

/// 1,000,000 distinct client addresses through the limiter, then reclamation: the key count goes back
/// to 0 after each of three rounds, and memory plateaus instead of growing round after round.
#[test]
fn one_million_distinct_keys_are_reclaimed() {
    // 1 µs per request: every key is as good as fresh a microsecond after its request.
    let layer = RateLimitLayer::new(RateLimit::per_second(1_000_000).burst(1));
    let push = |offset: u32| {
        for i in 0..1_000_000u32 {
            assert!(layer.check(IpAddr::V4(Ipv4Addr::from(offset + i))));
        }
    };
    let mut figures = vec![format!("before {}", vm_rss_kib())];
    for round in 0..3u32 {
        push(0x0B00_0000 + round * 0x0100_0000);
        assert_eq!(layer.tracked_keys(), 1_000_000);
        let filled = vm_rss_kib();
        std::thread::sleep(Duration::from_millis(5));
        layer.reclaim();
        assert_eq!(layer.tracked_keys(), 0);
        figures.push(format!(
            "round {round}: 1M keys {filled}, reclaimed {}",
            vm_rss_kib()
        ));
    }
    println!("VmRSS KiB: {}", figures.join("; "));
}
