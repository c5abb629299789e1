//! Behaviour at the limits: shedding connections past `max_connections` with 503 `OVERLOADED`,
//! and graceful shutdown on SIGTERM letting an in-flight request finish.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{bearer, spawn_binary, spawn_with, test_config, wait_for_line, TEST_SECRET};

/// Reads until the peer closes, with a timeout so a hung server fails the test.
async fn read_all(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out))
        .await
        .expect("the server answers and closes in time")
        .expect("read");
    String::from_utf8_lossy(&out).into_owned()
}

/// Sends one `Connection: close` GET and returns the whole answer.
async fn raw_get(stream: &mut TcpStream, path: &str) -> String {
    let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    read_all(stream).await
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[tokio::test]
async fn one_connection_past_the_limit_gets_503_and_the_others_keep_working() {
    let server = spawn_with(crosscut_demo::Config {
        max_connections: 3,
        ..test_config()
    })
    .await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(TcpStream::connect(server.addr()).await.unwrap());
    }
    let mut extra = TcpStream::connect(server.addr()).await.unwrap();

    let answer = read_all(&mut extra).await;
    let (head, body) = answer.split_once("\r\n\r\n").expect("a complete response");
    assert!(
        head.starts_with("HTTP/1.1 503 Service Unavailable"),
        "{head}"
    );
    assert_eq!(header(head, "connection"), Some("close"), "{head}");
    assert_eq!(
        header(head, "content-type"),
        Some("application/json"),
        "{head}"
    );
    assert!(header(head, "retry-after").is_some(), "{head}");
    // Like every other answer: a request id and the security headers.
    let id = header(head, "x-request-id").expect("x-request-id on the 503");
    assert_eq!(id.len(), 36, "{id}");
    assert_eq!(header(head, "x-frame-options"), Some("DENY"), "{head}");
    assert_eq!(
        header(head, "content-security-policy"),
        Some("default-src 'self'"),
        "{head}"
    );
    assert_eq!(
        header(head, "content-length"),
        Some(body.len().to_string().as_str())
    );
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(json["code"], "OVERLOADED");
    assert_eq!(json["error"], "Service Unavailable");
    assert!(json["message"].is_string());

    // The three admitted connections were untouched and still serve.
    for stream in &mut open {
        let answer = raw_get(stream, "/api/v1/users").await;
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    }
    assert_eq!(server.running.state.tracker.rejected_connections(), 1);
    assert_eq!(server.running.state.tracker.total_connections(), 3);

    // Once they are closed there is room again.
    drop(open);
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.running.state.tracker.open_connections() > 0 {
        assert!(Instant::now() < deadline, "connections never closed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let res = server
        .client
        .get(server.url("/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn in_flight_request_finishes_after_sigterm_and_the_process_exits_0() {
    let grace = 5;
    let (mut child, mut lines, addr) = spawn_binary(
        &["--shutdown-grace-secs", &grace.to_string()],
        &[("CROSSCUT_JWT_SECRET", TEST_SECRET)],
    )
    .await;
    let pid = child.id().unwrap();

    // A PUT whose body arrives in two halves: the request is in the handler, waiting for the
    // rest of its body, when the signal comes.
    let body = br#"{"name":"Johnny"}"#;
    let (first, rest) = body.split_at(8);
    let head = format!(
        "PUT /api/v1/users/user1 HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        bearer("tester", &["read", "write"]),
        body.len()
    );
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(first).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let signalled = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    wait_for_line(&mut lines, "shutting down").await;

    // No new connections once shutdown has begun.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listener still accepts after SIGTERM"
    );

    stream.write_all(rest).await.unwrap();
    let answer = read_all(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(answer.contains("Johnny"), "{answer}");

    let exit = tokio::time::timeout(Duration::from_secs(grace + 2), child.wait())
        .await
        .expect("the process exits within the grace period")
        .unwrap();
    let took = signalled.elapsed();
    assert_eq!(exit.code(), Some(0), "exit status {exit:?}");
    assert!(took < Duration::from_secs(grace), "took {took:?}");
    eprintln!("exited 0 {took:?} after SIGTERM");
}
