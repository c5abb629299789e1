//! Scale benchmark: 10,000 WebSocket chat clients, then 10,000 SSE subscribers, against the demo
//! pinned to CPU 0, from a client pinned to CPU 1.
//!
//! Run with
//!
//! ```not_rust
//! ulimit -n 20000 && cargo bench --bench scale
//! SCALE_N=2000 cargo bench --bench scale            # a smaller run
//! ```
//!
//! It builds `crosscut-demo --features test-hooks` in release (skip with `SCALE_SKIP_BUILD=1`),
//! then:
//!
//! 1. **WebSocket.** Starts the demo (`taskset -c 0`, `RUST_LOG=warn`, `--max-connections 20000`,
//!    a rate limit no client reaches), reads its `VmRSS`, opens `SCALE_N` (default 10,000)
//!    `/ws/chat` connections, waits until the join notices have drained, and reads `VmRSS` again:
//!    the difference divided by N is the server memory per idle connection. Then one client sends
//!    a chat message `SCALE_BROADCASTS` times (default 9, 2 s apart); every client notes when the
//!    message reached it, and the bench reports p50, p99 and max of the time from send to receipt
//!    over all clients (measured at the clients, so it includes the client's own reading).
//! 2. **SSE.** Starts a fresh demo, opens N `/sse/metrics` streams (default interval 1 s), lets
//!    them run, and reports `VmRSS` per subscriber, the server's CPU use (utime + stime from
//!    `/proc/<pid>/stat`) over a `SCALE_SSE_SECS` window (default 10 s; 0 skips this phase), the events received, and
//!    how many distinct samples one subscriber saw (the sampler keeps scanning once a second).
//!
//! Connecting is slow on purpose of the contract, not of the bench: each join notice goes to every
//! client already connected, so N clients cost the server about N²/2 frame writes (minutes at
//! 10,000; `SCALE_RAMP_SECS`, default 1200, bounds the wait).
//!
//! The client process needs N + a few hundred file descriptors, and so does the server (it
//! inherits the limit): the bench checks `RLIMIT_NOFILE` and says how to raise it. Loopback has
//! ports enough for 10,000 connections from one address.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use crosscut_suite::{CpuTime, ServerProcess};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// The soft `RLIMIT_NOFILE` of this process, from `/proc/self/limits`.
fn nofile_limit() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    let mut nums = line.split_whitespace().filter_map(|w| {
        w.parse::<u64>()
            .ok()
            .or((w == "unlimited").then_some(u64::MAX))
    });
    Some((nums.next()?, nums.next()?))
}

/// `VmRSS` of `pid` in bytes.
fn rss(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024
}

/// The demo, pinned to CPU 0.
struct Demo {
    process: ServerProcess,
    port: u16,
}

impl Demo {
    fn start(bin: &Path, log: &Path) -> Result<Self, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let out = std::fs::File::create(log).map_err(|e| e.to_string())?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new("taskset")
            .args(["-c", "0"])
            .arg(bin)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--max-connections", "20000"])
            .args(["--rate-limit-per-second", "1000000000"])
            .args(["--rate-limit-burst", "1000000000"])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let mut demo = Self {
            process: ServerProcess::new(child, Duration::from_secs(15)),
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline || demo.process.exited().is_some() {
                demo.stop();
                return Err(format!("the demo did not start; see {}", log.display()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Let the sampler take its first samples and the allocator settle.
        std::thread::sleep(Duration::from_secs(2));
        Ok(demo)
    }

    fn pid(&self) -> u32 {
        self.process.pid()
    }

    fn stop(&mut self) {
        self.process.stop();
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn mib(bytes: f64) -> String {
    format!("{:.1} MiB", bytes / (1024.0 * 1024.0))
}

/// Waits until `counter` has not moved for `quiet`, or `max` has passed.
async fn wait_quiet(counter: &AtomicU64, quiet: Duration, max: Duration) {
    let start = Instant::now();
    let mut last = counter.load(Ordering::Relaxed);
    let mut since = Instant::now();
    while start.elapsed() < max {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = counter.load(Ordering::Relaxed);
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= quiet {
            return;
        }
    }
}

/// Shared by every WebSocket client task.
struct WsShared {
    base: Instant,
    frames: AtomicU64,
    /// (broadcast number, ns since `base` when it arrived)
    arrivals: Mutex<Vec<(u32, u64)>>,
}

async fn ws_phase(bin: &Path, logs: &Path, n: usize, broadcasts: u32) -> Result<String, String> {
    let demo = Demo::start(bin, &logs.join("scale-ws.log"))?;
    let pid = demo.pid();
    let before = rss(pid);
    let url = format!("ws://127.0.0.1:{}/ws/chat", demo.port);
    let shared = Arc::new(WsShared {
        base: Instant::now(),
        frames: AtomicU64::new(0),
        arrivals: Mutex::new(Vec::new()),
    });
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(4096);

    // Connect with at most 256 handshakes in flight; each connection then gets its own reader.
    let gate = Arc::new(Semaphore::new(256));
    let connected = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    // Clients whose connection is still open (the server may close a client that falls behind).
    let alive = Arc::new(AtomicUsize::new(0));
    let ramp = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let permit = gate.clone().acquire_owned().await.expect("semaphore open");
        let (url, shared, connected, failed, alive) = (
            url.clone(),
            shared.clone(),
            connected.clone(),
            failed.clone(),
            alive.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let ws = tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), true)
                .await;
            drop(permit);
            let (sink, mut stream) = match ws {
                Ok((ws, _)) => ws.split(),
                Err(_) => {
                    failed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            };
            connected.fetch_add(1, Ordering::Relaxed);
            alive.fetch_add(1, Ordering::Relaxed);
            // Keep the write half open for as long as the reader runs.
            let _sink = sink;
            while let Some(Ok(msg)) = stream.next().await {
                if let Message::Text(text) = msg {
                    // Chat frames only: the server's pings (one per client every 30 s, from
                    // about the time the ramp ends) would keep `wait_quiet` from ever seeing quiet.
                    shared.frames.fetch_add(1, Ordering::Relaxed);
                    if let Some(pos) = text.find("bench-mark-") {
                        let k: u32 = text[pos + 11..]
                            .split(|c: char| !c.is_ascii_digit())
                            .next()
                            .and_then(|d| d.parse().ok())
                            .unwrap_or(u32::MAX);
                        let at = shared.base.elapsed().as_nanos() as u64;
                        shared.arrivals.lock().expect("not poisoned").push((k, at));
                    }
                }
            }
            alive.fetch_sub(1, Ordering::Relaxed);
        }));
    }
    // Wait for the last handshakes. Every join is announced to everyone already connected, so
    // connecting N clients costs the server about N²/2 frame writes: this takes minutes at 10,000.
    let limit = Duration::from_secs(env_or("SCALE_RAMP_SECS", 1200));
    let mut shown = 0;
    while connected.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed) < n {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let done = connected.load(Ordering::Relaxed);
        if done >= shown + 1000 {
            shown = done - done % 1000;
            eprintln!(
                "scale: {done} connected after {:.0} s",
                ramp.elapsed().as_secs_f64()
            );
        }
        if ramp.elapsed() > limit {
            return Err(format!(
                "connecting took more than {} s (SCALE_RAMP_SECS)",
                limit.as_secs()
            ));
        }
    }
    let ramp_secs = ramp.elapsed().as_secs_f64();
    let ok = connected.load(Ordering::Relaxed);
    eprintln!(
        "scale: {ok} WebSocket clients connected ({} failed) in {ramp_secs:.1} s; draining join notices",
        failed.load(Ordering::Relaxed)
    );
    // Every join is broadcast to everyone already there: let those notices drain first.
    wait_quiet(
        &shared.frames,
        Duration::from_secs(3),
        Duration::from_secs(180),
    )
    .await;
    let after = rss(pid);
    let open = alive.load(Ordering::Relaxed);
    let per_conn = (after.saturating_sub(before)) as f64 / open.max(1) as f64;
    eprintln!("scale: {open} of {ok} clients still connected after the join notices drained");

    // A fresh connection sends the broadcasts (it is not one of the measured receivers).
    let (sender, _) =
        tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), true)
            .await
            .map_err(|e| format!("the sender could not connect: {e}"))?;
    let (mut sink, mut own) = sender.split();
    let drain_own = tokio::spawn(async move { while let Some(Ok(_)) = own.next().await {} });
    wait_quiet(
        &shared.frames,
        Duration::from_secs(2),
        Duration::from_secs(60),
    )
    .await;
    let mut sends = Vec::new();
    let mut lines = Vec::new();
    // CPU time each side spent on each broadcast (both are idle otherwise): whichever is close
    // to the broadcast's duration is the one that sets it.
    let mut cpu = Vec::new();
    let me = std::process::id();
    for k in 0..broadcasts {
        let text =
            format!(r#"{{"username":"bench","content":"bench-mark-{k} ","message_type":"Text"}}"#);
        let (server0, client0) = (CpuTime::of(pid), CpuTime::of(me));
        let at = shared.base.elapsed().as_nanos() as u64;
        sink.send(Message::text(text))
            .await
            .map_err(|e| format!("send: {e}"))?;
        sends.push(at);
        tokio::time::sleep(Duration::from_secs(2)).await;
        cpu.push((
            CpuTime::of(pid).since(&server0).total() * 1000.0,
            CpuTime::of(me).since(&client0).total() * 1000.0,
        ));
    }
    wait_quiet(
        &shared.frames,
        Duration::from_secs(2),
        Duration::from_secs(60),
    )
    .await;
    let arrivals = shared.arrivals.lock().expect("not poisoned").clone();
    let mut p50s = Vec::new();
    let mut p99s = Vec::new();
    for (k, sent) in sends.iter().enumerate() {
        let mut ms: Vec<f64> = arrivals
            .iter()
            .filter(|(b, _)| *b == k as u32)
            .map(|(_, at)| at.saturating_sub(*sent) as f64 / 1e6)
            .collect();
        ms.sort_by(|a, b| a.total_cmp(b));
        let (p50, p99, max) = (
            percentile(&ms, 0.5),
            percentile(&ms, 0.99),
            percentile(&ms, 1.0),
        );
        let (server_ms, client_ms) = cpu[k];
        eprintln!(
            "scale: broadcast {}: reached {}/{open} clients; p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms; \
             CPU server {server_ms:.0} ms, client {client_ms:.0} ms",
            k + 1,
            ms.len()
        );
        lines.push(format!(
            "| {} | {}/{open} | {p50:.1} ms | {p99:.1} ms | {max:.1} ms | {server_ms:.0} ms | {client_ms:.0} ms |",
            k + 1,
            ms.len()
        ));
        p50s.push(p50);
        p99s.push(p99);
    }
    p50s.sort_by(|a, b| a.total_cmp(b));
    p99s.sort_by(|a, b| a.total_cmp(b));

    let mut out = format!(
        "### WebSocket: {ok} `/ws/chat` clients\n\n\
         | figure | value |\n|---|---:|\n\
         | connected / failed | {ok} / {} |\n\
         | time to connect all | {ramp_secs:.1} s |\n\
         | still connected once the join notices drained | {open} |\n\
         | server VmRSS before | {} |\n\
         | server VmRSS with {open} idle clients | {} |\n\
         | **RSS per connection** | **{:.1} KiB** |\n\
         | broadcast to all, p50 (median of {broadcasts}) | {:.1} ms |\n\
         | broadcast to all, p99 (median of {broadcasts}) | {:.1} ms |\n\n\
         | broadcast | reached | p50 | p99 | max | server CPU | client CPU |\n|---:|---:|---:|---:|---:|---:|---:|\n{}\n",
        failed.load(Ordering::Relaxed),
        mib(before as f64),
        mib(after as f64),
        per_conn / 1024.0,
        percentile(&p50s, 0.5),
        percentile(&p99s, 0.5),
        lines.join("\n"),
    );
    drop(sink);
    drain_own.abort();
    for t in &tasks {
        t.abort();
    }
    drop(demo);
    out.push('\n');
    Ok(out)
}

async fn sse_phase(bin: &Path, logs: &Path, n: usize, window: u64) -> Result<String, String> {
    let demo = Demo::start(bin, &logs.join("scale-sse.log"))?;
    let pid = demo.pid();
    let before = rss(pid);
    let port = demo.port;
    let events = Arc::new(AtomicU64::new(0));
    let connected = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let samples = Arc::new(Mutex::new(Vec::<String>::new()));
    let gate = Arc::new(Semaphore::new(256));
    let ramp = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        // Held until the response head arrives, so at most 256 subscriptions are in flight.
        let mut permit = Some(gate.clone().acquire_owned().await.expect("semaphore open"));
        let (events, connected, failed, samples) = (
            events.clone(),
            connected.clone(),
            failed.clone(),
            samples.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let stream = TcpStream::connect(("127.0.0.1", port)).await;
            let Ok(mut stream) = stream else {
                failed.fetch_add(1, Ordering::Relaxed);
                return;
            };
            let req = format!(
                "GET /sse/metrics HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n\r\n"
            );
            if stream.write_all(req.as_bytes()).await.is_err() {
                failed.fetch_add(1, Ordering::Relaxed);
                return;
            }
            let mut buf = vec![0u8; 2048];
            let mut head = true;
            let mut carry: Vec<u8> = Vec::new();
            while let Ok(len) = stream.read(&mut buf).await {
                if len == 0 {
                    break;
                }
                let chunk = &buf[..len];
                if head {
                    head = false;
                    drop(permit.take());
                    if chunk.starts_with(b"HTTP/1.1 200") {
                        connected.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                }
                if i == 0 {
                    let text = String::from_utf8_lossy(chunk);
                    let mut s = samples.lock().expect("not poisoned");
                    s.extend(
                        text.lines()
                            .filter_map(|l| l.strip_prefix("data: "))
                            .map(str::to_owned),
                    );
                }
                // One `data:` line per event; keep the last bytes so a line split across two
                // reads is still counted once (chunked framing sits between events, not inside).
                let mut window = std::mem::take(&mut carry);
                window.extend_from_slice(chunk);
                let found = window.windows(6).filter(|w| *w == b"data: ").count();
                events.fetch_add(found as u64, Ordering::Relaxed);
                carry = window[window.len().saturating_sub(5)..].to_vec();
            }
        }));
    }
    while connected.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed) < n {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if ramp.elapsed() > Duration::from_secs(300) {
            return Err("subscribing took more than 5 minutes".to_owned());
        }
    }
    let ramp_secs = ramp.elapsed().as_secs_f64();
    let ok = connected.load(Ordering::Relaxed);
    eprintln!(
        "scale: {ok} SSE subscribers streaming ({} failed) after {ramp_secs:.1} s; measuring {window} s",
        failed.load(Ordering::Relaxed)
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = rss(pid);
    let per_sub = (after.saturating_sub(before)) as f64 / ok.max(1) as f64;

    let (t0, e0, s0) = (
        CpuTime::of(pid),
        events.load(Ordering::Relaxed),
        samples.lock().expect("not poisoned").len(),
    );
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(window)).await;
    let secs = start.elapsed().as_secs_f64();
    let (t1, e1) = (CpuTime::of(pid), events.load(Ordering::Relaxed));
    let cpu = t1.since(&t0).total() / secs * 100.0;
    let rate = (e1 - e0) as f64 / secs;
    let window_samples: Vec<String> = samples.lock().expect("not poisoned")[s0..].to_vec();
    // Distinct system figures one subscriber saw: the part of each event that only a new scan changes.
    let figures = |d: &str| {
        d.split_once(r#""metrics":"#)
            .map(|(_, m)| m.to_owned())
            .unwrap_or_default()
    };
    let mut distinct: Vec<String> = window_samples.iter().map(|d| figures(d)).collect();
    distinct.dedup();
    let last = rss(pid);

    let out = format!(
        "### SSE: {ok} `/sse/metrics` subscribers (1 event/s each)\n\n\
         | figure | value |\n|---|---:|\n\
         | subscribed / failed | {ok} / {} |\n\
         | time to subscribe all | {ramp_secs:.1} s |\n\
         | server VmRSS before | {} |\n\
         | server VmRSS with {ok} subscribers | {} (end of window: {}) |\n\
         | **RSS per subscriber** | **{:.1} KiB** |\n\
         | **server CPU while streaming** ({window} s window) | **{cpu:.1} % of one core** |\n\
         | events received per second (all streams) | {rate:.0} |\n\
         | events one subscriber got in the window / distinct samples among them | {} / {} |\n\n",
        failed.load(Ordering::Relaxed),
        mib(before as f64),
        mib(after as f64),
        mib(last as f64),
        per_sub / 1024.0,
        window_samples.len(),
        distinct.len(),
    );
    for t in &tasks {
        t.abort();
    }
    drop(demo);
    Ok(out)
}

fn build() -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let args = [
        "build",
        "--release",
        "-p",
        "crosscut-demo",
        "--features",
        "test-hooks",
    ];
    eprintln!("scale: {cargo} {}", args.join(" "));
    let status = Command::new(&cargo)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    status
        .success()
        .then_some(())
        .ok_or_else(|| "the demo did not build".to_owned())
}

fn main() -> ExitCode {
    // Pin this client to CPU 1 by running itself again under taskset.
    if std::env::var_os("SCALE_PINNED").is_none() {
        let exe = std::env::current_exe().expect("own path");
        let status = Command::new("taskset")
            .args(["-c", "1"])
            .arg(exe)
            .args(std::env::args_os().skip(1))
            .env("SCALE_PINNED", "1")
            .status();
        return match status {
            Ok(s) if s.success() => ExitCode::SUCCESS,
            Ok(_) => ExitCode::FAILURE,
            Err(e) => {
                eprintln!("scale: cannot run taskset ({e}); install util-linux");
                ExitCode::FAILURE
            }
        };
    }
    let n: usize = env_or("SCALE_N", 10_000);
    let broadcasts: u32 = env_or("SCALE_BROADCASTS", 9);
    let window: u64 = env_or("SCALE_SSE_SECS", 10);
    let need = n as u64 + 256;
    match nofile_limit() {
        Some((soft, hard)) if soft < need => {
            eprintln!(
                "scale: RLIMIT_NOFILE is {soft} (hard {hard}); {n} connections need at least {need}.\n\
                 Raise it in the shell that runs the bench: `ulimit -n {}` (up to the hard limit; \
                 beyond it, raise `nofile` in /etc/security/limits.conf), or set SCALE_N lower.",
                need.max(20_000).min(hard.max(need))
            );
            return ExitCode::FAILURE;
        }
        _ => {}
    }
    if std::env::var("SCALE_SKIP_BUILD").as_deref() != Ok("1") {
        if let Err(e) = build() {
            eprintln!("scale: {e}");
            return ExitCode::FAILURE;
        }
    }
    let bin = target_dir().join("release").join("crosscut-demo");
    let logs = target_dir().join("load");
    let _ = std::fs::create_dir_all(&logs);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = rt.block_on(async {
        let mut out = String::new();
        out.push_str(&ws_phase(&bin, &logs, n, broadcasts).await?);
        if window > 0 {
            out.push_str(&sse_phase(&bin, &logs, n, window).await?);
        }
        Ok::<_, String>(out)
    });
    match result {
        Ok(out) => {
            println!("\n{out}");
            let path = logs.join("scale-results.md");
            if std::fs::write(&path, &out).is_ok() {
                eprintln!("scale: results written to {}", path.display());
            }
            // Drop the client's sockets quickly rather than wait for every task to wind down.
            rt.shutdown_timeout(Duration::from_secs(1));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("scale: {e}");
            ExitCode::FAILURE
        }
    }
}
