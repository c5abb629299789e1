//! `/sse/metrics` with reqwest streaming, against CONTRACT.md section 6.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::Value;

use crate::common::{assert_error, spawn_app, TestServer};

const WAIT: Duration = Duration::from_secs(10);

/// A Server-Sent Events reader over a streaming response.
struct Events {
    body: futures_util::stream::BoxStream<'static, reqwest::Result<Vec<u8>>>,
    buf: String,
}

/// One parsed event: its `id:` line, its `data:` JSON and when it arrived.
struct SseEvent {
    id: u64,
    data: Value,
    at: Instant,
}

impl Events {
    async fn open(server: &TestServer, query: &str) -> (Self, http::HeaderMap) {
        let res = server
            .client
            .get(server.url(&format!("/sse/metrics{query}")))
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), 200);
        let headers = res.headers().clone();
        let events = Self {
            body: res.bytes_stream().map(|r| r.map(|b| b.to_vec())).boxed(),
            buf: String::new(),
        };
        (events, headers)
    }

    /// The next event, skipping keep-alive comments; `None` when the stream ends.
    async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut id = None;
                let mut data = None;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim().parse().ok();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data = serde_json::from_str(v.trim()).ok();
                    }
                }
                if let (Some(id), Some(data)) = (id, data) {
                    return Some(SseEvent {
                        id,
                        data,
                        at: Instant::now(),
                    });
                }
                continue; // a comment or keep-alive
            }
            let chunk = tokio::time::timeout(WAIT, self.body.next())
                .await
                .expect("an event within the wait")?
                .ok()?;
            self.buf
                .push_str(std::str::from_utf8(&chunk).expect("UTF-8 stream"));
        }
    }
}

const FIELDS: [&str; 8] = [
    "cpu_usage",
    "memory_used",
    "memory_total",
    "process_count",
    "uptime",
    "process_rss_bytes",
    "active_connections",
    "requests_total",
];

#[tokio::test]
async fn events_arrive_with_increasing_ids_at_the_requested_interval() {
    let server = spawn_app().await;
    let (mut events, head) = Events::open(&server, "?interval_ms=200").await;
    assert_eq!(head["content-type"], "text/event-stream");
    assert_eq!(head["cache-control"], "no-cache");

    let mut got = Vec::new();
    for _ in 0..7 {
        got.push(events.next().await.expect("event"));
    }
    for (i, e) in got.iter().enumerate() {
        let n = i as u64 + 1;
        assert_eq!(e.id, n);
        assert_eq!(e.data["id"], n);
        assert!(e.data["timestamp"]
            .as_u64()
            .is_some_and(|t| t > 1_600_000_000));
        for field in FIELDS {
            assert!(
                e.data["metrics"][field].is_number(),
                "{field} in {}",
                e.data
            );
        }
        let m = &e.data["metrics"];
        assert!(m["memory_total"].as_u64() > Some(0));
        assert!(m["process_rss_bytes"].as_u64() > Some(0));
        assert!(m["active_connections"].as_u64() >= Some(1), "{m}");
        assert!(m["requests_total"].as_u64() >= Some(1), "{m}");
    }
    // Six intervals between the first and the last event.
    let span = got[6].at - got[0].at;
    println!("7 events at 200 ms: {span:?} from first to last");
    assert!(
        span >= Duration::from_millis(1000) && span <= Duration::from_millis(2000),
        "6 intervals of 200 ms took {span:?}"
    );
}

#[tokio::test]
async fn figures_are_live() {
    let server = spawn_app().await;
    let (mut events, _) = Events::open(&server, "?interval_ms=250").await;
    let first = events.next().await.expect("event");

    // The test runs in the server's process: touching 64 MiB moves its resident set size.
    let mut ballast = vec![0u8; 64 << 20];
    for page in ballast.chunks_mut(4096) {
        page[0] = 1;
    }
    let mut rss = vec![first.data["metrics"]["process_rss_bytes"].as_u64()];
    let mut memory_used = vec![first.data["metrics"]["memory_used"].as_u64()];
    let mut last = first;
    let deadline = Instant::now() + Duration::from_millis(3500);
    while Instant::now() < deadline {
        last = events.next().await.expect("event");
        rss.push(last.data["metrics"]["process_rss_bytes"].as_u64());
        memory_used.push(last.data["metrics"]["memory_used"].as_u64());
    }
    std::hint::black_box(&ballast);
    rss.dedup();
    memory_used.dedup();
    println!(
        "rss values: {rss:?}\nmemory_used values: {}",
        memory_used.len()
    );
    assert!(rss.len() > 1, "process_rss_bytes never changed: {rss:?}");
    assert!(memory_used.len() > 1, "memory_used never changed");
    let uptime = |e: &SseEvent| e.data["metrics"]["uptime"].as_u64().expect("uptime");
    assert!(uptime(&last) >= 3, "uptime {}", uptime(&last));
}

#[tokio::test]
async fn an_invalid_interval_is_refused_with_400() {
    let server = spawn_app().await;
    for bad in ["99", "60001", "0", "-5", "abc", "", "1e3"] {
        let res = server
            .client
            .get(server.url(&format!("/sse/metrics?interval_ms={bad}")))
            .send()
            .await
            .expect("request");
        let body = assert_error(res, 400, "VALIDATION_ERROR").await;
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.contains("interval_ms")),
            "{body}"
        );
    }
    for good in ["100", "60000"] {
        let res = server
            .client
            .get(server.url(&format!("/sse/metrics?interval_ms={good}")))
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), 200, "interval_ms={good}");
    }
}

#[tokio::test]
async fn dropping_the_client_ends_its_stream() {
    let server = spawn_app().await;
    let gauge = &server.running.state.sse;
    let before = gauge.active();
    let (mut events, _) = Events::open(&server, "?interval_ms=500").await;
    events.next().await.expect("event");
    assert_eq!(gauge.active(), before + 1);

    let dropped = Instant::now();
    drop(events);
    while gauge.active() != before {
        assert!(
            dropped.elapsed() < Duration::from_millis(1500),
            "stream still counted {:?} after the client left",
            dropped.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!("stream ended {:?} after the client left", dropped.elapsed());
}

#[tokio::test]
async fn shutdown_ends_the_stream() {
    let server = spawn_app().await;
    let (mut events, _) = Events::open(&server, "?interval_ms=200").await;
    events.next().await.expect("event");
    let stopping = tokio::spawn(server.running.stop());
    let started = Instant::now();
    while events.next().await.is_some() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "stream outlived shutdown"
        );
    }
    let drained = tokio::time::timeout(WAIT, stopping)
        .await
        .expect("server stops")
        .expect("join");
    assert!(drained, "shutdown waited out its grace period");
}
