//! Shared helpers: start the demo server in this process on 127.0.0.1:0, or the real binary as a
//! child process, and build clients.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use crosscut_demo::{Config, Running};

/// A configuration for tests: loopback, ephemeral port, generous rate limit so tests do not trip
/// it unless they mean to.
pub fn test_config() -> Config {
    Config {
        host: "127.0.0.1".into(),
        port: 0,
        rate_limit_per_second: 10_000,
        rate_limit_burst: 10_000,
        jwt_secret: Some(TEST_SECRET.into()),
        ..Config::default()
    }
}

/// The HS256 secret `test_config` uses.
pub const TEST_SECRET: &str = "test-secret-that-is-at-least-32-bytes-long!";

/// A running in-process server and a client for it.
pub struct TestServer {
    pub running: Running,
    pub client: reqwest::Client,
}

impl TestServer {
    pub fn addr(&self) -> SocketAddr {
        self.running.addr
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.running.addr, path)
    }
}

/// Starts the demo with `config` (port forced to 0, host to loopback).
pub async fn spawn_with(mut config: Config) -> TestServer {
    config.host = "127.0.0.1".into();
    config.port = 0;
    let running = crosscut_demo::spawn(config, false)
        .await
        .expect("server starts");
    TestServer {
        running,
        client: client(),
    }
}

/// Starts the demo with [`test_config`].
pub async fn spawn_app() -> TestServer {
    spawn_with(test_config()).await
}

/// A client that does not follow redirects or add compression, with a timeout so a hung server
/// fails the test instead of hanging it.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client builds")
}

/// Path of the `crosscut-demo` binary, built once per test run (the root package cannot see it
/// through `CARGO_BIN_EXE_*`, which only covers its own binaries).
pub fn demo_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args([
                "build",
                "-q",
                "-p",
                "crosscut-demo",
                "--bin",
                "crosscut-demo",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(Stdio::null())
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building crosscut-demo failed");
        // The test executable lives in target/<profile>/deps; the binary one level up.
        let exe = std::env::current_exe().expect("current exe");
        let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
        dir.join("crosscut-demo")
    })
    .clone()
}

/// Reads lines from a child's stdout until one contains `needle`, returning the line.
pub async fn wait_for_line(
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    needle: &str,
) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let line = tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("no line containing {needle:?} within 30 s"))
            .expect("read stdout")
            .unwrap_or_else(|| panic!("stdout closed before a line containing {needle:?}"));
        if line.contains(needle) {
            return line;
        }
    }
}

/// Starts the real binary with `args` and extra environment, on port 0, and returns the child,
/// its stdout lines and the address it logged.
pub async fn spawn_binary(
    args: &[&str],
    env: &[(&str, &str)],
) -> (
    tokio::process::Child,
    tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    SocketAddr,
) {
    use tokio::io::AsyncBufReadExt;
    let mut cmd = tokio::process::Command::new(demo_binary());
    cmd.args(["--host", "127.0.0.1", "--port", "0"])
        .args(args)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("binary starts");
    let stdout = child.stdout.take().expect("stdout piped");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let line = wait_for_line(&mut lines, "listening on http://").await;
    let addr = line
        .rsplit("http://")
        .next()
        .map(|s| {
            s.chars()
                .take_while(|c| c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '[' | ']'))
                .collect::<String>()
        })
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    (child, lines, addr)
}

/// The JSON body of a response.
pub async fn json(res: reqwest::Response) -> serde_json::Value {
    res.json().await.expect("JSON body")
}

/// Asserts the contract's error shape and code, returning the body.
pub async fn assert_error(res: reqwest::Response, status: u16, code: &str) -> serde_json::Value {
    assert_eq!(res.status().as_u16(), status, "status");
    assert_eq!(
        res.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json"),
        "error content type"
    );
    let body = json(res).await;
    assert_eq!(body["code"], code, "code in {body}");
    assert!(
        body["error"].is_string() && body["message"].is_string(),
        "{body}"
    );
    body
}

/// A bearer token for [`TEST_SECRET`] with subject `sub` and permissions `perms`, valid an hour.
pub fn bearer(sub: &str, perms: &[&str]) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({"sub": sub, "perms": perms, "exp": exp}),
        &jsonwebtoken::EncodingKey::from_secret(TEST_SECRET.as_bytes()),
    )
    .unwrap()
}
