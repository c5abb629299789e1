//! `/ws/chat` with a real WebSocket client (tokio-tungstenite), against CONTRACT.md section 5.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::common::{spawn_app, TestServer, TEST_SECRET};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const WAIT: Duration = Duration::from_secs(10);

fn ws_url(server: &TestServer, query: &str) -> String {
    format!("ws://{}/ws/chat{query}", server.addr())
}

/// Connects and reads the client's own join notice; returns the socket and the server-given user id.
async fn connect(server: &TestServer) -> (Ws, String) {
    let (ws, _) = tokio_tungstenite::connect_async(ws_url(server, ""))
        .await
        .expect("websocket connects");
    joined(ws).await
}

async fn joined(mut ws: Ws) -> (Ws, String) {
    let notice = next_json(&mut ws).await;
    assert_eq!(notice["message_type"], "System", "{notice}");
    let content = notice["content"].as_str().expect("content").to_owned();
    let user = content
        .strip_prefix("User ")
        .and_then(|s| s.strip_suffix(" joined the chat"))
        .unwrap_or_else(|| panic!("not a join notice: {content}"))
        .to_owned();
    (ws, user)
}

/// The next text frame as JSON, skipping control frames.
async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a frame within the wait")
            .expect("stream open")
            .expect("frame reads");
        match msg {
            Message::Text(text) => return serde_json::from_str(text.as_str()).expect("JSON frame"),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// The next frame for which `pred` holds, skipping others.
async fn next_where(ws: &mut Ws, pred: impl Fn(&Value) -> bool) -> Value {
    loop {
        let v = next_json(ws).await;
        if pred(&v) {
            return v;
        }
    }
}

fn is_chat(v: &Value) -> bool {
    v["message_type"] == "Text"
}

async fn say(ws: &mut Ws, username: &str, content: &str) {
    let frame = json!({"username": username, "content": content, "message_type": "Text"});
    ws.send(Message::text(frame.to_string()))
        .await
        .expect("send");
}

/// Reads until the server's close frame and returns its code.
async fn close_code(ws: &mut Ws) -> CloseCode {
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("close within the wait")
        {
            Some(Ok(Message::Close(Some(frame)))) => return frame.code,
            Some(Ok(Message::Close(None))) => panic!("close frame without a code"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => panic!("connection failed before a close frame: {e}"),
            None => panic!("stream ended without a close frame"),
        }
    }
}

fn token(sub: &str, exp_offset: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let claims = json!({"sub": sub, "perms": ["read"], "exp": now + exp_offset});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(TEST_SECRET.as_bytes()),
    )
    .expect("token signs")
}

#[tokio::test]
async fn two_clients_see_each_others_messages_in_order() {
    let server = spawn_app().await;
    let (mut a, a_id) = connect(&server).await;
    let (mut b, b_id) = connect(&server).await;
    assert!(a_id.starts_with("anonymous_") && a_id.len() == "anonymous_".len() + 8);
    assert_ne!(a_id, b_id);

    for i in 0..5 {
        say(&mut a, "alice", &format!("a{i}")).await;
    }
    say(&mut b, "bob", "b0").await;

    // Each client sees both senders' messages, each sender's in the order it sent them.
    for ws in [&mut a, &mut b] {
        let mut from_a = Vec::new();
        let mut from_b = Vec::new();
        while from_a.len() < 5 || from_b.is_empty() {
            let m = next_where(ws, is_chat).await;
            if m["user_id"] == a_id.as_str() {
                assert_eq!(m["username"], "alice");
                from_a.push(m["content"].as_str().unwrap_or_default().to_owned());
            } else {
                assert_eq!(m["user_id"], b_id.as_str());
                from_b.push(m["content"].as_str().unwrap_or_default().to_owned());
            }
            for key in ["id", "timestamp"] {
                assert!(!m[key].is_null(), "{key} in {m}");
            }
        }
        assert_eq!(from_a, ["a0", "a1", "a2", "a3", "a4"]);
        assert_eq!(from_b, ["b0"]);
    }
}

#[tokio::test]
async fn join_and_leave_notices_reach_the_others() {
    let server = spawn_app().await;
    let (mut a, _) = connect(&server).await;
    let (b, b_id) = connect(&server).await;
    let joined = next_json(&mut a).await;
    assert_eq!(joined["message_type"], "System");
    assert_eq!(joined["content"], format!("User {b_id} joined the chat"));

    drop(b);
    let left = next_json(&mut a).await;
    assert_eq!(left["message_type"], "System");
    assert_eq!(left["content"], format!("User {b_id} left the chat"));
    // The count of open chat connections comes back down.
    let deadline = Instant::now() + WAIT;
    while server.running.state.chat.active_connections() != 1 {
        assert!(Instant::now() < deadline, "active count stays above 1");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn invalid_frames_get_an_error_and_the_connection_stays_open() {
    let server = spawn_app().await;
    let (mut a, _) = connect(&server).await;
    let (mut b, _) = connect(&server).await;

    let bad = [
        "this is not json".to_owned(),
        json!({"username": "x", "content": "hi", "message_type": "System"}).to_string(),
        json!({"username": "", "content": "hi", "message_type": "Text"}).to_string(),
        json!({"username": "n".repeat(65), "content": "hi", "message_type": "Text"}).to_string(),
        json!({"username": "x", "content": "hi", "message_type": "Video"}).to_string(),
    ];
    for frame in bad {
        a.send(Message::text(frame.clone())).await.expect("send");
        let err = next_where(&mut a, |v| v["type"] == "error").await;
        assert_eq!(err["code"], "INVALID_MESSAGE", "for {frame}: {err}");
        assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // Still usable, and b never saw the errors or a System message from a.
    say(&mut a, "alice", "still here").await;
    let m = next_where(&mut a, is_chat).await;
    assert_eq!(m["content"], "still here");
    let seen_by_b = next_where(&mut b, |v| {
        v["message_type"] != "System" || v["user_id"] != "system"
    })
    .await;
    assert_eq!(seen_by_b["content"], "still here", "b saw {seen_by_b}");
}

#[tokio::test]
async fn content_is_escaped_once_and_cut_to_1000_characters() {
    let server = spawn_app().await;
    let (mut a, _) = connect(&server).await;

    say(&mut a, "<b>me</b>", "<script>&").await;
    let m = next_where(&mut a, is_chat).await;
    assert_eq!(m["content"], "&lt;script&gt;&amp;");
    assert_eq!(m["username"], "&lt;b&gt;me&lt;/b&gt;");

    say(&mut a, "x", "\"quoted\" 'single' &amp;").await;
    let m = next_where(&mut a, is_chat).await;
    assert_eq!(
        m["content"],
        "&quot;quoted&quot; &#x27;single&#x27; &amp;amp;"
    );

    let long = "日本".repeat(750); // 1500 characters, 4500 bytes
    say(&mut a, "x", &long).await;
    let m = next_where(&mut a, is_chat).await;
    let content = m["content"].as_str().expect("content");
    assert_eq!(content.chars().count(), 1000);
    assert!(long.starts_with(content));
}

#[tokio::test]
async fn oversized_frame_closes_with_1009() {
    let server = spawn_app().await;
    let (mut a, _) = connect(&server).await;
    let content = "a".repeat(70 * 1024);
    say(&mut a, "x", &content).await;
    assert_eq!(close_code(&mut a).await, CloseCode::Size);
}

#[tokio::test]
async fn binary_frame_closes_with_1003() {
    let server = spawn_app().await;
    let (mut a, _) = connect(&server).await;
    a.send(Message::binary(vec![1u8, 2, 3]))
        .await
        .expect("send");
    assert_eq!(close_code(&mut a).await, CloseCode::Unsupported);
}

#[tokio::test]
async fn more_than_20_messages_a_second_are_dropped_with_rate_limit() {
    let server = spawn_app().await;
    let (mut a, _) = connect(&server).await;
    for i in 0..25 {
        say(&mut a, "x", &format!("m{i}")).await;
    }
    let (mut chats, mut limited) = (0, 0);
    while chats + limited < 25 {
        let v = next_json(&mut a).await;
        if v["type"] == "error" {
            assert_eq!(v["code"], "RATE_LIMIT");
            limited += 1;
        } else if is_chat(&v) {
            chats += 1;
        }
    }
    assert!(limited >= 4, "only {limited} of 25 limited");
    assert!(chats >= 20, "only {chats} of 25 delivered");
}

// Two workers: the server, 12 clients and the fast reader share this runtime, and a single thread
// starved by other tests running in parallel would make the fast client lag for reasons of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_delays_nobody_and_learns_what_it_missed() {
    let server = spawn_app().await;

    let (mut slow, _) = joined(small_window_client(&server).await).await;
    let (mut fast, _) = connect(&server).await;

    // Senders stay under the 20 messages/s limit with slack for scheduling jitter. They never read
    // either (small windows too), so they are slow clients as well: all the more load that must
    // not reach the fast client.
    const SENDERS: usize = 10;
    const ROUNDS: usize = 6;
    const PER_ROUND: usize = 18;
    let mut senders = Vec::new();
    for _ in 0..SENDERS {
        let (ws, _) = joined(small_window_client(&server).await).await;
        senders.push(ws);
    }
    let big = "'".repeat(1000); // 6000 bytes once escaped
    let total = SENDERS * ROUNDS * PER_ROUND;
    let started = Instant::now();
    let fast_reader = tokio::spawn(async move {
        // Messages from different connections may interleave in any order (the marker can overtake
        // another sender's last message), so count everything until all arrived or 3 s of silence.
        let (mut seen, mut lag_notices, mut last) = (0, 0, Duration::ZERO);
        while seen < total + 1 {
            let Ok(Some(Ok(msg))) = tokio::time::timeout(Duration::from_secs(3), fast.next()).await
            else {
                break;
            };
            let Message::Text(text) = msg else { continue };
            let v: Value = serde_json::from_str(text.as_str()).expect("JSON frame");
            if is_chat(&v) {
                seen += 1;
                last = started.elapsed();
            } else if v["content"].as_str().is_some_and(|c| c.contains("missed")) {
                lag_notices += 1;
            }
        }
        (seen, lag_notices, last)
    });
    // Steady rather than bursty: every sender sends one message per tick, 18 a second each. The
    // flood is then ~180 messages/s, enough to overrun the slow client within seconds, while a
    // fast client on a busy 2-core machine still keeps up with the hub.
    let mut tick = tokio::time::interval(Duration::from_millis(1000 / PER_ROUND as u64));
    for _ in 0..ROUNDS * PER_ROUND {
        tick.tick().await;
        for tx in &mut senders {
            let frame = json!({"username": "flood", "content": big, "message_type": "Text"});
            tx.send(Message::text(frame.to_string()))
                .await
                .expect("send");
        }
    }
    let sent_all = started.elapsed();
    let marker = json!({"username": "marker", "content": "end", "message_type": "Text"});
    senders[0]
        .send(Message::text(marker.to_string()))
        .await
        .expect("send marker");

    let (seen, lag_notices, done) = fast_reader.await.expect("fast reader");
    assert_eq!(lag_notices, 0, "the fast client fell behind");
    assert_eq!(seen, total + 1, "the fast client got every message");
    let delay = done.saturating_sub(sent_all);
    println!("fast client: {seen} messages, last one {delay:?} after the flood was sent");
    assert!(
        delay < Duration::from_secs(3),
        "fast client was delayed {delay:?}"
    );

    // Now the slow client reads: somewhere in its backlog is the notice of what it missed.
    let notice = next_where(&mut slow, |v| {
        v["message_type"] == "System" && v["content"].as_str().is_some_and(|c| c.contains("missed"))
    })
    .await;
    let content = notice["content"].as_str().unwrap_or_default();
    let missed: u64 = content
        .split_whitespace()
        .find_map(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no count in {content:?}"));
    println!("slow client: {content}");
    assert!(missed > 0);
}

/// A client with a 4 KiB receive buffer: when it stops reading, the server's queue for it fills
/// after a few messages instead of megabytes.
async fn small_window_client(server: &TestServer) -> Ws {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let tcp = socket.connect(server.addr()).await.expect("connect");
    let (ws, _) = tokio_tungstenite::client_async(ws_url(server, ""), MaybeTlsStream::Plain(tcp))
        .await
        .expect("handshake");
    ws
}

#[tokio::test]
async fn a_valid_tokens_sub_becomes_the_user_id() {
    let server = spawn_app().await;
    let mut req = ws_url(&server, "").into_client_request().expect("request");
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {}", token("alice", 600))
            .parse()
            .expect("header"),
    );
    // Never trusted.
    req.headers_mut()
        .insert("x-user-id", "mallory".parse().expect("header"));
    let (ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("connects");
    let (mut ws, id) = joined(ws).await;
    assert_eq!(id, "alice");
    say(&mut ws, "Alice", "hi").await;
    let m = next_where(&mut ws, is_chat).await;
    assert_eq!(m["user_id"], "alice");

    // The same through the query string, as a browser sends it.
    let url = ws_url(&server, &format!("?access_token={}", token("bob", 600)));
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connects");
    let (_ws, id) = joined(ws).await;
    assert_eq!(id, "bob");
}

#[tokio::test]
async fn an_invalid_token_is_refused_with_401_before_the_upgrade() {
    let server = spawn_app().await;
    let cases = [
        ws_url(&server, "?access_token=not.a.jwt"),
        ws_url(&server, &format!("?access_token={}", token("alice", -3600))),
    ];
    for url in cases {
        match tokio_tungstenite::connect_async(url.as_str()).await {
            Err(WsError::Http(res)) => {
                assert_eq!(res.status(), 401);
                let body: Value = serde_json::from_slice(res.body().as_deref().unwrap_or_default())
                    .expect("JSON");
                assert_eq!(body["code"], "INVALID_TOKEN");
            }
            other => panic!("expected a 401 for {url}, got {:?}", other.map(|_| ())),
        }
    }
    let mut req = ws_url(&server, "").into_client_request().expect("request");
    req.headers_mut()
        .insert("authorization", "Bearer garbage".parse().expect("header"));
    match tokio_tungstenite::connect_async(req).await {
        Err(WsError::Http(res)) => assert_eq!(res.status(), 401),
        other => panic!("expected a 401, got {:?}", other.map(|_| ())),
    }
}

#[tokio::test]
async fn shutdown_closes_clients_with_1001() {
    let server = spawn_app().await;
    let (mut a, _) = connect(&server).await;
    let stopping = tokio::spawn(server.running.stop());
    assert_eq!(close_code(&mut a).await, CloseCode::Away);
    drop(a);
    let _ = tokio::time::timeout(WAIT, stopping)
        .await
        .expect("server stops");
}

/// Measures the server's resident memory per idle chat connection (run with `--ignored`; it
/// starts the real binary so the figure excludes the clients).
#[tokio::test]
#[ignore = "measurement; run explicitly"]
async fn idle_connection_memory() {
    use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

    const N: usize = 2000;
    // Connecting thousands of clients from one address would hit the per-IP request limit.
    let unlimited = [
        "--rate-limit-per-second",
        "1000000000",
        "--rate-limit-burst",
        "1000000000",
    ];
    let (child, _lines, addr) = crate::common::spawn_binary(&unlimited, &[]).await;
    let pid = child.id().expect("pid");
    let rss = || {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("VmRSS")
            * 1024
    };
    // Warm up allocator pools and the runtime with a few connections first.
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let url = format!("ws://{addr}/ws/chat");
    let mut warm = Vec::new();
    for _ in 0..20 {
        let (ws, _) = tokio_tungstenite::connect_async_with_config(&url, Some(config), false)
            .await
            .expect("connect");
        warm.push(ws);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss();
    let mut clients = Vec::with_capacity(N);
    for _ in 0..N {
        let (ws, _) = tokio_tungstenite::connect_async_with_config(&url, Some(config), false)
            .await
            .expect("connect");
        clients.push(ws);
    }
    // Let the join notices (each client gets every later join) drain through the server.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss();
    let per = (after.saturating_sub(before)) / N as u64;
    println!(
        "{N} idle connections: server RSS {} KiB -> {} KiB, {per} bytes per connection",
        before / 1024,
        after / 1024
    );
    drop(clients);
    drop(warm);
    assert!(per < 16 * 1024, "{per} bytes per idle connection");
}

/// A server whose keepalive runs in seconds rather than minutes.
async fn spawn_fast_keepalive(pong_timeout_secs: u64) -> TestServer {
    crate::common::spawn_with(crosscut_demo::Config {
        ws_ping_interval_secs: 1,
        ws_pong_timeout_secs: pong_timeout_secs,
        ..crate::common::test_config()
    })
    .await
}

#[tokio::test]
async fn a_busy_room_still_gets_its_pings() {
    let server = spawn_fast_keepalive(30).await;
    let (mut reader, _) = connect(&server).await;
    // Ten senders at 18 messages a second each (under the per-connection limit of 20) for 4 s,
    // against a reader taking 50 frames a second: pings must keep flowing while the room is busy.
    // (The starved case, a writer whose feed is never empty because the server is CPU-bound, as
    // at 10,000 connections, is not reproducible here: the socket buffers absorb this backlog.
    // The writer's select puts the ping first for that case.)
    let flood = Duration::from_secs(4);
    let mut senders = Vec::new();
    for i in 0..10 {
        let (ws, _) = connect(&server).await;
        senders.push(tokio::spawn(async move {
            let (mut tx, mut rx) = ws.split();
            let drain = tokio::spawn(async move { while rx.next().await.is_some() {} });
            let end = Instant::now() + flood;
            while Instant::now() < end {
                let frame =
                    json!({"username": format!("s{i}"), "content": "busy", "message_type": "Text"});
                if tx.send(Message::text(frame.to_string())).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(55)).await;
            }
            drain.abort();
        }));
    }
    let start = Instant::now();
    let mut pings = 0;
    // Slow during the flood, then fast for a moment to take in what the socket still holds.
    while start.elapsed() < flood + Duration::from_millis(1500) {
        match tokio::time::timeout(WAIT, reader.next())
            .await
            .expect("frames keep coming")
        {
            Some(Ok(Message::Ping(_))) => pings += 1,
            Some(Ok(Message::Close(frame))) => panic!("closed in a busy room: {frame:?}"),
            Some(Ok(_)) => {}
            other => panic!("connection lost: {other:?}"),
        }
        if start.elapsed() < flood {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // One a second from t = 1 s: five sent in 5.5 s, allow one still in flight.
    assert!(
        pings >= 4,
        "pings seen in 5.5 s with a 1 s interval: {pings}"
    );
    for s in senders {
        s.await.unwrap();
    }
}

#[tokio::test]
async fn a_client_that_never_answers_pings_is_closed() {
    let server = spawn_fast_keepalive(2).await;
    let (mut silent, _) = connect(&server).await;
    // Not reading means tungstenite never sends the queued pongs.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(close_code(&mut silent).await, CloseCode::Policy);
}
