//! `GET /health`: the contract's shape, and figures that follow reality (connections opening and
//! closing, the process's resident memory as the kernel reports it).

use std::time::Duration;

use serde_json::Value;
use tokio::net::TcpStream;

use crate::common::{json, spawn_app, spawn_binary, TestServer};

async fn health(server: &TestServer) -> Value {
    let res = server
        .client
        .get(server.url("/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    json(res).await
}

/// Polls `/health` until `pred` holds, failing after 5 s.
async fn health_until(server: &TestServer, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let h = health(server).await;
        if pred(&h) {
            return h;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: last /health was {h}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn health_has_the_contract_shape() {
    let server = spawn_app().await;
    let h = health(&server).await;
    assert_eq!(h["status"], "healthy");
    assert!(h["uptime_seconds"].is_u64(), "{h}");
    for field in ["rss_bytes", "system_total_bytes", "system_available_bytes"] {
        assert!(
            h["memory"][field].as_u64().unwrap_or(0) > 0,
            "memory.{field} in {h}"
        );
    }
    assert!(
        h["memory"]["system_available_bytes"].as_u64()
            <= h["memory"]["system_total_bytes"].as_u64()
    );
    // This very request is on an open connection and in flight.
    assert_eq!(h["connections"]["active"], 1, "{h}");
    assert_eq!(h["connections"]["total"], 1, "{h}");
    assert_eq!(h["requests"]["in_flight"], 1, "{h}");
    assert_eq!(h["requests"]["total"], 1, "{h}");
}

#[tokio::test]
async fn request_totals_count_every_request() {
    let server = spawn_app().await;
    for _ in 0..4 {
        let res = server
            .client
            .get(server.url("/api/v1/users"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    let h = health(&server).await;
    assert_eq!(h["requests"]["total"], 5, "{h}");
    assert_eq!(h["requests"]["in_flight"], 1, "{h}");
}

#[tokio::test]
async fn connection_counts_follow_raw_connections() {
    let server = spawn_app().await;
    let before = health(&server).await;
    assert_eq!(before["connections"]["active"], 1, "{before}");

    let mut raw = Vec::new();
    for _ in 0..5 {
        raw.push(TcpStream::connect(server.addr()).await.unwrap());
    }
    let during = health_until(&server, "5 raw connections open", |h| {
        h["connections"]["active"] == 6
    })
    .await;
    assert_eq!(during["connections"]["total"], 6, "{during}");

    drop(raw);
    let after = health_until(&server, "raw connections closed", |h| {
        h["connections"]["active"] == 1
    })
    .await;
    // Closed connections leave the total alone.
    assert_eq!(after["connections"]["total"], 6, "{after}");
}

/// `VmRSS` of `pid` in bytes.
fn vm_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

#[tokio::test]
async fn health_rss_matches_the_kernels_figure() {
    let (child, _lines, addr) = spawn_binary(&[], &[]).await;
    let pid = child.id().unwrap();
    let client = crate::common::client();
    for _ in 0..3 {
        let h: Value = client
            .get(format!("http://{addr}/health"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let reported = h["memory"]["rss_bytes"].as_u64().unwrap();
        let kernel = vm_rss(pid);
        let diff = reported.abs_diff(kernel) as f64 / kernel as f64;
        eprintln!(
            "/health rss_bytes {reported}, VmRSS {kernel}, diff {:.2} %",
            diff * 100.0
        );
        assert!(
            diff < 0.10,
            "/health says {reported} B, the kernel {kernel} B"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
