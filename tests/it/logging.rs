//! The access log as an operator reads it from the real binary: one line per request with the
//! request id, the client behind a trusted proxy, and never a token.

use std::time::Duration;

use crate::common::{bearer, spawn_binary, wait_for_line};

#[tokio::test]
async fn access_line_has_the_fields_and_no_secrets() {
    let (mut child, mut lines, addr) = spawn_binary(
        &["--log-format", "json", "--trusted-proxies", "127.0.0.1/32"],
        &[("CROSSCUT_JWT_SECRET", crate::common::TEST_SECRET)],
    )
    .await;
    let token = bearer("logger", &["write"]);
    let client = crate::common::client();
    let res = client
        .get(format!("http://{addr}/api/v1/users?access_token={token}"))
        .header("x-request-id", "trace-me-123")
        .header("user-agent", "crosscut-test/1.0")
        .header("x-forwarded-for", "203.0.113.7")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let line = wait_for_line(&mut lines, "trace-me-123").await;
    let v: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
    assert_eq!(v["level"], "INFO");
    assert_eq!(v["method"], "GET");
    assert_eq!(v["path"], "/api/v1/users");
    assert_eq!(v["status"], 200);
    assert!(v["latency_us"].as_u64().is_some(), "{v}");
    assert_eq!(
        v["client_ip"], "203.0.113.7",
        "client behind the trusted proxy: {v}"
    );
    assert_eq!(v["user_agent"], "crosscut-test/1.0");
    assert_eq!(v["request_id"], "trace-me-123");
    assert!(!line.contains(&token), "token in the access log: {line}");

    // An unanswered-looking failure (401 from the auth layer) is logged too, still without the token.
    let res = client
        .delete(format!("http://{addr}/api/v1/users/user1"))
        .header("x-request-id", "denied-456")
        .bearer_auth("not.a.jwt")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let line = wait_for_line(&mut lines, "denied-456").await;
    assert!(line.contains("401"), "{line}");
    assert!(!line.contains("not.a.jwt"));

    // Nothing written so far mentions the token anywhere (drain what is buffered).
    child.start_kill().ok();
    while let Ok(Ok(Some(l))) =
        tokio::time::timeout(Duration::from_secs(5), lines.next_line()).await
    {
        assert!(
            !l.contains(&token) && !l.contains("not.a.jwt"),
            "secret in log: {l}"
        );
    }
}

/// The text line (stdout is a pipe, so the demo writes the access line itself, without the
/// `tracing` event): the stock format's fields, the token nowhere.
#[tokio::test]
async fn text_access_line_has_the_fields_and_no_secrets() {
    let (mut child, mut lines, addr) = spawn_binary(
        &["--trusted-proxies", "127.0.0.1/32"],
        &[("CROSSCUT_JWT_SECRET", crate::common::TEST_SECRET)],
    )
    .await;
    let token = bearer("logger", &["read"]);
    let res = crate::common::client()
        .get(format!("http://{addr}/api/v1/users?access_token={token}"))
        .header("x-request-id", "text-789")
        .header("user-agent", "crosscut-test \"quoted\"")
        .header("x-forwarded-for", "203.0.113.8")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let line = wait_for_line(&mut lines, "text-789").await;
    let (_, rest) = line.split_once("Z  INFO ").expect(&line);
    let (head, tail) = rest.split_once(" latency_us=").expect(&line);
    assert_eq!(
        head,
        "crosscut::access: request method=GET path=\"/api/v1/users\" status=200"
    );
    let tail = tail.trim_start_matches(|c: char| c.is_ascii_digit());
    assert_eq!(
        tail,
        " client_ip=203.0.113.8 user_agent=\"crosscut-test \\\"quoted\\\"\" request_id=\"text-789\""
    );
    assert!(!line.contains(&token));
    child.start_kill().ok();
}

/// `RUST_LOG` turns the access log off while the rest of the log goes on.
#[tokio::test]
async fn rust_log_silences_the_access_log() {
    // Without the directive the same request is logged.
    let (mut child, mut lines, addr) = spawn_binary(&[], &[]).await;
    let res = crate::common::client()
        .get(format!("http://{addr}/health"))
        .header("x-request-id", "loud-1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    wait_for_line(&mut lines, "loud-1").await;
    child.start_kill().ok();

    let (mut child, mut lines, addr) =
        spawn_binary(&[], &[("RUST_LOG", "info,crosscut::access=warn")]).await;
    let client = crate::common::client();
    for id in ["quiet-1", "quiet-2"] {
        let res = client
            .get(format!("http://{addr}/health"))
            .header("x-request-id", id)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    // Lines reach stdout within the writer's flush period; wait several.
    tokio::time::sleep(Duration::from_millis(400)).await;
    child.start_kill().ok();
    while let Ok(Ok(Some(l))) =
        tokio::time::timeout(Duration::from_secs(5), lines.next_line()).await
    {
        assert!(!l.contains("quiet-"), "access line despite RUST_LOG: {l}");
    }
}
