//! `GET /metrics`: valid Prometheus text, requests counted under their route templates, a bounded
//! set of series whatever paths clients send, and no sharing between two servers.

use std::collections::BTreeSet;

use futures_util::{stream, StreamExt};

use crate::common::{spawn_app, TestServer};

/// Checks every line of the exposition and returns the samples as `(series, value)`, where the
/// series is the name with its labels.
fn parse(text: &str) -> Vec<(String, f64)> {
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value in {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("value is not a float in {line:?}"));
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty()
                && name.chars().enumerate().all(|(i, c)| c == '_'
                    || c == ':'
                    || c.is_ascii_alphabetic()
                    || (i > 0 && c.is_ascii_digit())),
            "bad metric name in {line:?}"
        );
        if name_end < series.len() {
            let labels = series[name_end..]
                .strip_prefix('{')
                .and_then(|l| l.strip_suffix('}'))
                .unwrap_or_else(|| panic!("bad label braces in {line:?}"));
            for pair in split_labels(labels) {
                let (key, val) = pair
                    .split_once('=')
                    .unwrap_or_else(|| panic!("bad label {pair:?} in {line:?}"));
                assert!(
                    key.chars().all(|c| c == '_' || c.is_ascii_alphanumeric()),
                    "bad label name in {line:?}"
                );
                assert!(
                    val.len() >= 2 && val.starts_with('"') && val.ends_with('"'),
                    "unquoted label value in {line:?}"
                );
            }
        }
        samples.push((series.to_owned(), value));
    }
    assert!(!samples.is_empty(), "no samples in {text}");
    samples
}

/// Splits `a="x",b="y,z"` at the commas outside quotes.
fn split_labels(labels: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in labels.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&labels[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < labels.len() {
        out.push(&labels[start..]);
    }
    out
}

async fn scrape(server: &TestServer) -> Vec<(String, f64)> {
    let res = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        ct.starts_with("text/plain") || ct.starts_with("application/openmetrics-text"),
        "{ct}"
    );
    parse(&res.text().await.unwrap())
}

fn value(samples: &[(String, f64)], series: &str) -> Option<f64> {
    samples.iter().find(|(s, _)| s == series).map(|(_, v)| *v)
}

async fn get(server: &TestServer, path: &str) -> u16 {
    server
        .client
        .get(server.url(path))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn metrics_parse_and_count_by_route_template() {
    let server = spawn_app().await;
    for id in ["user1", "user2", "user1"] {
        assert_eq!(get(&server, &format!("/api/v1/users/{id}")).await, 200);
    }
    assert_eq!(get(&server, "/api/v1/users/nobody").await, 404);
    assert_eq!(get(&server, "/api/v1/users").await, 200);
    assert_eq!(get(&server, "/no/such/page").await, 404);

    let samples = scrape(&server).await;
    let count =
        |series: &str| value(&samples, series).unwrap_or_else(|| panic!("{series} missing"));
    assert_eq!(
        count(r#"http_requests_total{method="GET",route="/api/v1/users/{id}",status="200"}"#),
        3.0
    );
    assert_eq!(
        count(r#"http_requests_total{method="GET",route="/api/v1/users/{id}",status="404"}"#),
        1.0
    );
    assert_eq!(
        count(r#"http_requests_total{method="GET",route="/api/v1/users",status="200"}"#),
        1.0
    );
    assert_eq!(
        count(r#"http_requests_total{method="GET",route="unmatched",status="404"}"#),
        1.0
    );
    assert_eq!(
        count(r#"http_request_duration_seconds_count{method="GET",route="/api/v1/users/{id}"}"#),
        4.0
    );
    assert!(samples
        .iter()
        .all(|(s, _)| !s.contains("user1") && !s.contains("/no/such")));
    // The scrape itself is the one request in flight and on the one open connection.
    assert_eq!(count("http_requests_in_flight"), 1.0);
    assert_eq!(count("http_connections_active"), 1.0);
    assert_eq!(count("http_connections_total"), 1.0);
    assert!(count("process_resident_memory_bytes") > 1e6);
    for name in [
        "ws_connections_active",
        "sse_subscribers_active",
        "rate_limited_total",
    ] {
        assert_eq!(count(name), 0.0, "{name}");
    }
}

#[tokio::test]
async fn a_thousand_distinct_ids_add_no_series() {
    let server = spawn_app().await;
    // One hit and one miss first, so both statuses' series exist before the count.
    get(&server, "/api/v1/users/user1").await;
    get(&server, "/api/v1/users/warmup").await;
    get(&server, "/metrics").await;
    let before: BTreeSet<String> = scrape(&server).await.into_iter().map(|(s, _)| s).collect();

    let statuses: Vec<u16> = stream::iter(0..1000)
        .map(|i| {
            let server = &server;
            async move { get(server, &format!("/api/v1/users/{i}")).await }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == 404));

    let after = scrape(&server).await;
    let series: BTreeSet<String> = after.iter().map(|(s, _)| s.clone()).collect();
    assert_eq!(before, series, "new series appeared");
    assert_eq!(
        value(
            &after,
            r#"http_requests_total{method="GET",route="/api/v1/users/{id}",status="404"}"#
        ),
        Some(1001.0)
    );
}

#[tokio::test]
async fn two_servers_in_one_process_keep_separate_counts() {
    let a = spawn_app().await;
    let b = spawn_app().await;
    for _ in 0..3 {
        get(&a, "/api/v1/posts").await;
    }
    get(&b, "/api/v1/posts").await;
    let series = r#"http_requests_total{method="GET",route="/api/v1/posts",status="200"}"#;
    assert_eq!(value(&scrape(&a).await, series), Some(3.0));
    assert_eq!(value(&scrape(&b).await, series), Some(1.0));
}

#[tokio::test]
async fn classic_text_by_default_and_openmetrics_when_asked() {
    let server = crate::common::spawn_app().await;
    let res = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = res.text().await.unwrap();
    assert!(
        text.contains("# TYPE http_requests_total counter"),
        "{text}"
    );
    assert!(!text.contains("# EOF"));

    let res = server
        .client
        .get(server.url("/metrics"))
        .header("accept", "application/openmetrics-text; version=1.0.0")
        .send()
        .await
        .unwrap();
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    assert!(res.text().await.unwrap().ends_with("# EOF\n"));
}
