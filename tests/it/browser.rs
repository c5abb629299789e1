//! The web page in headless Chromium, driven over the W3C WebDriver protocol with plain reqwest:
//! two browsers chat with each other, the metrics panel updates, and the console stays free of
//! errors (CSP violations included) under the contract's security headers.
//!
//! Skips with a message when `chromedriver` or `chromium` is not installed.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{spawn_app, TestServer};

const WAIT: Duration = Duration::from_secs(20);

/// The W3C element reference key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// A running chromedriver, killed on drop.
struct Driver {
    _child: tokio::process::Child,
    base: String,
    http: reqwest::Client,
    _profiles: Vec<TempDir>,
}

/// A directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "crosscut-browser-{tag}-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Driver {
    async fn start(driver: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = tokio::process::Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client");
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + WAIT;
        loop {
            let ready = http
                .get(format!("{base}/status"))
                .send()
                .await
                .ok()
                .map(|r| r.json::<Value>());
            if let Some(body) = ready {
                if body.await.ok().and_then(|v| v["value"]["ready"].as_bool()) == Some(true) {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "chromedriver not ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self {
            _child: child,
            base,
            http,
            _profiles: Vec::new(),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.expect("webdriver request");
        let status = res.status();
        let v: Value = res.json().await.expect("webdriver JSON");
        assert!(status.is_success(), "{method} {path}: {status} {v}");
        v["value"].clone()
    }

    async fn session(&mut self, chromium: &Path) -> Session<'_> {
        let profile = TempDir::new("profile");
        let args = [
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            format!("--user-data-dir={}", profile.0.display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        self._profiles.push(profile);
        let v = self
            .call(reqwest::Method::POST, "/session", Some(caps))
            .await;
        let id = v["sessionId"].as_str().expect("session id").to_owned();
        Session { driver: self, id }
    }
}

/// One browser session.
struct Session<'a> {
    driver: &'a Driver,
    id: String,
}

impl Session<'_> {
    async fn post(&self, path: &str, body: Value) -> Value {
        let path = format!("/session/{}{path}", self.id);
        self.driver
            .call(reqwest::Method::POST, &path, Some(body))
            .await
    }

    async fn get(&self, path: &str) -> Value {
        let path = format!("/session/{}{path}", self.id);
        self.driver.call(reqwest::Method::GET, &path, None).await
    }

    async fn goto(&self, url: &str) {
        self.post("/url", json!({"url": url})).await;
    }

    async fn find_all(&self, css: &str) -> Vec<String> {
        let v = self
            .post("/elements", json!({"using": "css selector", "value": css}))
            .await;
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e[ELEMENT].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    async fn find(&self, css: &str) -> String {
        let v = self
            .post("/element", json!({"using": "css selector", "value": css}))
            .await;
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element id for {css}: {v}"))
            .to_owned()
    }

    async fn text(&self, css: &str) -> String {
        let el = self.find(css).await;
        let v = self.get(&format!("/element/{el}/text")).await;
        v.as_str().unwrap_or_default().to_owned()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let el = self.find(css).await;
        self.post(&format!("/element/{el}/clear"), json!({})).await;
        self.post(&format!("/element/{el}/value"), json!({"text": text}))
            .await;
    }

    async fn click(&self, css: &str) {
        let el = self.find(css).await;
        self.post(&format!("/element/{el}/click"), json!({})).await;
    }

    /// Polls `css`'s text until `pred` holds; returns the text.
    async fn wait_text(&self, css: &str, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let text = self.text(css).await;
            if pred(&text) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: {css} still reads {text:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn console(&self) -> Vec<Value> {
        let v = self.post("/se/log", json!({"type": "browser"})).await;
        v.as_array().cloned().unwrap_or_default()
    }

    async fn quit(self) {
        let path = format!("/session/{}", self.id);
        self.driver.call(reqwest::Method::DELETE, &path, None).await;
    }
}

fn event_number(text: &str) -> Option<u64> {
    text.strip_prefix('#').and_then(|n| n.parse().ok())
}

#[tokio::test]
async fn two_browsers_chat_and_watch_metrics_without_console_errors() {
    let (Some(driver), Some(chromium)) = (
        on_path(&["chromedriver"]),
        on_path(&["chromium", "chromium-browser", "google-chrome"]),
    ) else {
        println!("skipped: chromium not installed (apt-get install chromium chromium-driver)");
        return;
    };
    let server: TestServer = spawn_app().await;
    let page = server.url("/");

    // The page is served under the contract's CSP, so a violation would show in the console.
    let res = server.client.get(&page).send().await.expect("page");
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok()),
        Some("default-src 'self'")
    );

    let mut driver = Driver::start(&driver).await;
    let a_id = driver.session(&chromium).await.id;
    let b_id = driver.session(&chromium).await.id;
    let a = Session {
        driver: &driver,
        id: a_id,
    };
    let b = Session {
        driver: &driver,
        id: b_id,
    };
    a.goto(&page).await;
    b.goto(&page).await;
    for s in [&a, &b] {
        s.wait_text("#chat-status", "chat connects", |t| t == "chat: connected")
            .await;
    }

    // Typed text shows as typed: markup is not interpreted, entities are not shown.
    let said = "<b>hi</b> & 'bye' \"now\"";
    a.type_into("#username", "Alice <admin>").await;
    a.type_into("#message", said).await;
    a.click("#send").await;
    let started = Instant::now();
    let seen = b
        .wait_text("#messages", "message reaches the other browser", |t| {
            t.contains(said)
        })
        .await;
    println!(
        "chat message shown in the other browser after {:?}",
        started.elapsed()
    );
    assert!(seen.contains("Alice <admin>:"), "{seen}");
    assert!(!seen.contains("&lt;") && !seen.contains("&amp;"), "{seen}");
    assert!(
        b.find_all("#messages b").await.is_empty(),
        "markup was rendered"
    );
    a.wait_text("#messages", "sender sees its own message", |t| {
        t.contains(said)
    })
    .await;

    // The metrics panel updates from the SSE stream.
    let first = b
        .wait_text("#m-event", "first metrics event", |t| {
            event_number(t).is_some()
        })
        .await;
    let first = event_number(&first).unwrap_or_default();
    b.wait_text("#m-event", "metrics keep updating", |t| {
        event_number(t).is_some_and(|n| n > first)
    })
    .await;
    let rss = b.text("#m-rss").await;
    assert!(rss.ends_with("iB"), "rss shown as {rss:?}");

    for (name, s) in [("A", &a), ("B", &b)] {
        let logs = s.console().await;
        let severe: Vec<&Value> = logs.iter().filter(|e| e["level"] == "SEVERE").collect();
        assert!(
            severe.is_empty(),
            "browser {name} console errors: {severe:#?}"
        );
    }
    a.quit().await;
    b.quit().await;
}
