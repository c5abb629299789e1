//! Connection-level hardening, checked with raw sockets: slow headers, oversized headers, idle
//! keep-alive connections.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::spawn_app;

/// Reads until the peer closes; returns what was read and how long it took.
async fn read_to_close(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, Duration) {
    let start = Instant::now();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match tokio::time::timeout(
            limit.saturating_sub(start.elapsed()),
            stream.read(&mut chunk),
        )
        .await
        {
            Ok(Ok(0)) | Ok(Err(_)) => return (buf, start.elapsed()),
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => panic!("connection still open after {limit:?}"),
        }
    }
}

#[tokio::test]
async fn slow_request_headers_are_cut_off_after_10_s() {
    let s = spawn_app().await;
    let mut stream = TcpStream::connect(s.addr()).await.unwrap();
    // Half a request head, then nothing: the slowloris pattern.
    stream
        .write_all(b"GET /api/v1/users HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let (_, took) = read_to_close(&mut stream, Duration::from_secs(20)).await;
    assert!(took >= Duration::from_secs(9), "closed too early: {took:?}");
    assert!(took <= Duration::from_secs(14), "closed too late: {took:?}");
}

#[tokio::test]
async fn idle_keep_alive_connection_is_closed() {
    let s = spawn_app().await;
    let mut stream = TcpStream::connect(s.addr()).await.unwrap();
    stream
        .write_all(b"GET /api/v1/users HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 12];
    stream.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    // The connection stays usable for keep-alive, then closes once idle.
    let (_, took) = read_to_close(&mut stream, Duration::from_secs(20)).await;
    assert!(
        took <= Duration::from_secs(14),
        "idle connection kept {took:?}"
    );
}

#[tokio::test]
async fn oversized_request_headers_are_refused() {
    let s = spawn_app().await;
    let mut stream = TcpStream::connect(s.addr()).await.unwrap();
    let big = "a".repeat(64 * 1024);
    let req = format!("GET /api/v1/users HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n");
    // The server may close before it has read everything; a failed write is fine.
    let _ = stream.write_all(req.as_bytes()).await;
    let (answer, _) = read_to_close(&mut stream, Duration::from_secs(5)).await;
    let head = String::from_utf8_lossy(&answer);
    assert!(
        head.is_empty() || head.starts_with("HTTP/1.1 431"),
        "expected 431 or a closed connection, got {head:?}"
    );

    let mut stream = TcpStream::connect(s.addr()).await.unwrap();
    let many: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let req = format!("GET /api/v1/users HTTP/1.1\r\nHost: x\r\n{many}\r\n");
    let _ = stream.write_all(req.as_bytes()).await;
    let (answer, _) = read_to_close(&mut stream, Duration::from_secs(5)).await;
    let head = String::from_utf8_lossy(&answer);
    assert!(
        head.is_empty() || head.starts_with("HTTP/1.1 431"),
        "too many headers: got {head:?}"
    );

    // The server is still fine for everyone else.
    let res = s.client.get(s.url("/api/v1/users")).send().await.unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn garbage_on_the_wire_gets_400_and_the_server_keeps_serving() {
    let s = spawn_app().await;
    let mut stream = TcpStream::connect(s.addr()).await.unwrap();
    stream
        .write_all(b"\x00\x01\x02 NOT HTTP\r\n\r\n")
        .await
        .unwrap();
    let (answer, _) = read_to_close(&mut stream, Duration::from_secs(5)).await;
    let head = String::from_utf8_lossy(&answer);
    assert!(
        head.is_empty() || head.starts_with("HTTP/1.1 400"),
        "{head:?}"
    );
    let res = s.client.get(s.url("/api/v1/users")).send().await.unwrap();
    assert_eq!(res.status(), 200);
}
