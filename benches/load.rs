//! Load benchmark: bare axum vs the crosscut demo vs the same concerns from stock tower-http layers,
//! each server pinned to CPU 0 and `wrk` pinned to CPU 1.
//!
//! Run with
//!
//! ```not_rust
//! cargo bench --bench load
//! LOAD_DURATION=3 LOAD_ROUNDS=1 cargo bench --bench load     # a quick look, about a minute
//! ```
//!
//! It builds the servers in release (`crosscut-demo --features test-hooks` and the root
//! package's examples `bare`, `bare-headers` and `stock`, see `benches/servers/`), starts them all
//! with `taskset -c 0` (each idle until its turn), checks every route answers 200, warms each up
//! for a second, then drives `GET /api/v1/users` and `GET /__test/plaintext` at 64 and 512
//! connections with `taskset -c 1 wrk -t1 -cN -dDs --latency`: per round, route and connection
//! count, bare axum first and again after every other server (whose order rotates every round).
//! Servers:
//!
//! | name | what |
//! |---|---|
//! | `bare` | axum, the demo's handlers, no middleware |
//! | `bare-spin` | bare plus a 3 µs busy wait per request: what 3 µs of the server's own work costs under load |
//! | `bare-headers` | bare plus the demo's 16 response headers as constants: what the headers alone cost |
//! | `bare-bytes` | bare plus one header as long as those 16 together: what their bytes alone cost |
//! | `bare-headers-log` | bare-headers plus the demo's access log line per request, written as the demo writes it (`RUST_LOG=info`, stdout to a file): the floor for the demo with its log on |
//! | `demo-conn` | bare's routes behind the demo's listener and serve loop, no middleware |
//! | `demo-log` | the demo, full stack, access log on (`RUST_LOG=info`, stdout to a file) |
//! | `demo-nolog` | the demo, access log off (`RUST_LOG=warn`) |
//! | `stock-log` | tower-http + tower_governor, `TraceLayer` at INFO to a file |
//! | `stock-nolog` | the same with `RUST_LOG=warn` |
//!
//! The table gives each server's median over its runs of requests/s, p50 and p99, and its ratio to
//! bare axum: each run against the mean of the bare runs just before and just after it, then the
//! median of those ratios. The machine's speed drifts by tens of percent within minutes; a bare
//! run seconds away drifts much less. The last two columns are the server process's CPU time per
//! request during its runs (utime and stime from `/proc/<pid>/stat`, over the requests wrk
//! counted): how much of a request is the server's own code and how much the kernel's TCP work.
//!
//! Then a shared-core pass (`LOAD_SHARED_ROUNDS`, default 3; 0 skips it) runs bare and each other
//! server at the same time, both on CPU 0 and each with its own wrk on CPU 1, and compares their
//! CPU time per request measured over the same seconds: the machine's drift, which moves bare runs
//! seconds apart by tens of percent, cannot come between them. For a server that is CPU-bound,
//! bare's CPU per request over the server's is the throughput one core gives it relative to bare.
//!
//! Environment: `LOAD_DURATION` (seconds per wrk run, default 8), `LOAD_ROUNDS` (default 3),
//! `LOAD_CONNS` (default `64,512`), `LOAD_SERVERS` (comma-separated names, default all),
//! `LOAD_ROUTES` (`users,plaintext`), `LOAD_SKIP_BUILD=1` (use the binaries already built). Server
//! logs go to `target/load/`; the table is also written to `target/load/results.md`.
//!
//! Needs Linux with `taskset` and `wrk` (`sudo apt-get install wrk`) and two CPUs.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use crosscut_suite::{CpuTime, ServerProcess};
use std::time::{Duration, Instant};

/// One server variant the benchmark starts.
struct Server {
    name: &'static str,
    bin: &'static str,
    rust_log: &'static str,
    demo: bool,
    /// Arguments after the listen address (not for the demo, which takes flags).
    args: &'static [&'static str],
}

const SERVERS: [Server; 10] = [
    Server {
        name: "bare",
        bin: "examples/bare",
        rust_log: "warn",
        demo: false,
        args: &[],
    },
    Server {
        name: "bare-spin",
        bin: "examples/bare",
        rust_log: "warn",
        demo: false,
        args: &["3000"],
    },
    Server {
        name: "bare-headers",
        bin: "examples/bare-headers",
        rust_log: "warn",
        demo: false,
        args: &[],
    },
    Server {
        name: "bare-bytes",
        bin: "examples/bare-headers",
        rust_log: "warn",
        demo: false,
        args: &["one-header"],
    },
    Server {
        name: "bare-headers-log",
        bin: "examples/bare-headers",
        rust_log: "info",
        demo: false,
        args: &["log"],
    },
    Server {
        name: "demo-conn",
        bin: "examples/demo-conn",
        rust_log: "warn",
        demo: false,
        args: &[],
    },
    Server {
        name: "demo-log",
        bin: "crosscut-demo",
        rust_log: "info",
        demo: true,
        args: &[],
    },
    Server {
        name: "demo-nolog",
        bin: "crosscut-demo",
        rust_log: "warn",
        demo: true,
        args: &[],
    },
    Server {
        name: "stock-log",
        bin: "examples/stock",
        rust_log: "info",
        demo: false,
        args: &[],
    },
    Server {
        name: "stock-nolog",
        bin: "examples/stock",
        rust_log: "warn",
        demo: false,
        args: &[],
    },
];

const ROUTES: [(&str, &str); 2] = [
    ("users", "/api/v1/users"),
    ("plaintext", "/__test/plaintext"),
];

/// What one wrk run measured.
#[derive(Debug, Clone, Copy)]
struct Sample {
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    bad: u64,
    /// The server's CPU time per request while wrk ran, in user space and in the kernel, µs
    /// (utime and stime of `/proc/<pid>/stat` over the requests wrk counted).
    user_us: f64,
    sys_us: f64,
}

impl Sample {
    /// The mean of two runs (error counts added).
    fn mean(&self, other: &Self) -> Self {
        Self {
            rps: (self.rps + other.rps) / 2.0,
            p50_us: (self.p50_us + other.p50_us) / 2.0,
            p99_us: (self.p99_us + other.p99_us) / 2.0,
            bad: self.bad + other.bad,
            user_us: (self.user_us + other.user_us) / 2.0,
            sys_us: (self.sys_us + other.sys_us) / 2.0,
        }
    }
}

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn env_list(key: &str) -> Option<Vec<String>> {
    std::env::var(key)
        .ok()
        .map(|v| v.split(',').map(|s| s.trim().to_owned()).collect())
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

fn build() -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    for args in [
        &[
            "build",
            "--release",
            "-p",
            "crosscut-demo",
            "--features",
            "test-hooks",
        ][..],
        &[
            "build",
            "--release",
            "-p",
            "crosscut-suite",
            "--example",
            "bare",
            "--example",
            "bare-headers",
            "--example",
            "demo-conn",
            "--example",
            "stock",
        ][..],
    ] {
        eprintln!("load: {cargo} {}", args.join(" "));
        let status = Command::new(&cargo)
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if !status.success() {
            return Err(format!("`cargo {}` failed", args.join(" ")));
        }
    }
    Ok(())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port")
}

/// A server process pinned to CPU 0.
struct Running {
    process: ServerProcess,
    addr: SocketAddr,
}

impl Running {
    fn start(server: &Server, bin: &Path, logs: &Path) -> Result<Self, String> {
        let port = free_port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut cmd = Command::new("taskset");
        cmd.arg("-c").arg("0").arg(bin);
        if server.demo {
            // A rate limit no client reaches and room for every wrk connection: the limiter does
            // its bookkeeping on every request but never answers 429 or 503.
            cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .args(["--rate-limit-per-second", "1000000000"])
                .args(["--rate-limit-burst", "1000000000"])
                .args(["--max-connections", "20000"]);
        } else {
            cmd.arg(addr.to_string()).args(server.args);
        }
        let log = std::fs::File::create(logs.join(format!("{}.log", server.name)))
            .map_err(|e| e.to_string())?;
        let err = std::fs::File::create(logs.join(format!("{}.stderr", server.name)))
            .map_err(|e| e.to_string())?;
        let child = cmd
            .env("RUST_LOG", server.rust_log)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let mut running = Self {
            process: ServerProcess::new(child, Duration::from_secs(10)),
            addr,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(addr).is_err() {
            if let Some(status) = running.process.exited() {
                return Err(format!(
                    "{} exited with {status}; see target/load/{}.stderr",
                    server.name, server.name
                ));
            }
            if Instant::now() > deadline {
                running.stop();
                return Err(format!("{} did not start listening", server.name));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(running)
    }

    fn pid(&self) -> u32 {
        self.process.pid()
    }

    fn stop(&mut self) {
        self.process.stop();
    }
}

/// tokio threads of `pid` (named `tokio-rt-worker`, or `tokio-runtime-w...` in older tokio): the
/// runtime's workers and its blocking pool, which share the name (the demo's second is the
/// blocking thread its system sampler scans procfs on once a second).
fn tokio_threads(pid: u32) -> usize {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .map(|c| c.starts_with("tokio-rt-worker") || c.starts_with("tokio-runtime-w"))
                .unwrap_or(false)
        })
        .count()
}

/// One plain HTTP/1.1 GET; returns the status line and the whole response.
fn get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: load-bench\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// Runs wrk against `url` served by process `pid`, and measures that process's CPU meanwhile.
fn wrk(url: &str, pid: u32, conns: u32, secs: u32) -> Result<Sample, String> {
    let before = CpuTime::of(pid);
    let out = Command::new("taskset")
        .args(["-c", "1", "wrk", "-t1"])
        .arg(format!("-c{conns}"))
        .arg(format!("-d{secs}s"))
        .args(["--latency", url])
        .output()
        .map_err(|e| format!("cannot run wrk: {e}"))?;
    let used = CpuTime::of(pid).since(&before);
    let text = String::from_utf8_lossy(&out.stdout);
    let (mut sample, requests) =
        parse_wrk(&text).ok_or_else(|| format!("cannot parse wrk output:\n{text}"))?;
    let per_request = |secs: f64| secs * 1e6 / requests.max(1) as f64;
    sample.user_us = per_request(used.user);
    sample.sys_us = per_request(used.kernel);
    Ok(sample)
}

/// `1.23ms` / `456.78us` / `1.01s` in microseconds.
fn duration_us(s: &str) -> Option<f64> {
    let (num, mul) = if let Some(n) = s.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60e6)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1e6)
    } else {
        return None;
    };
    num.parse::<f64>().ok().map(|v| v * mul)
}

/// The sample and the number of requests wrk completed.
fn parse_wrk(text: &str) -> Option<(Sample, u64)> {
    let mut rps = None;
    let mut requests = None;
    let (mut p50, mut p99) = (None, None);
    let mut bad = 0;
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", v] => rps = v.parse().ok(),
            [n, "requests", "in", ..] => requests = n.parse().ok(),
            ["50%", v] => p50 = duration_us(v),
            ["99%", v] => p99 = duration_us(v),
            ["Non-2xx", "or", "3xx", "responses:", n] => bad += n.parse::<u64>().unwrap_or(0),
            ["Socket", "errors:", rest @ ..] => {
                // `connect 0, read 0, write 0, timeout 0`
                bad += rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>();
            }
            _ => {}
        }
    }
    let sample = Sample {
        rps: rps?,
        p50_us: p50?,
        p99_us: p99?,
        bad,
        user_us: 0.0,
        sys_us: 0.0,
    };
    Some((sample, requests?))
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn fmt_us(us: f64) -> String {
    if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}

type Key = (usize, u32, &'static str); // (route index, connections, server)

/// One measurement and the bare-axum baseline it is compared with: the mean of the bare runs
/// just before and just after it (for bare itself, the run itself).
#[derive(Debug, Clone, Copy)]
struct Paired {
    sample: Sample,
    baseline: Sample,
}

fn report(results: &BTreeMap<Key, Vec<Paired>>, rounds: usize, secs: u32) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "wrk -t1, {secs} s per run, {rounds} round(s); medians over all runs; each run's ratio is to \
         the mean of the bare axum runs just before and after it (median of those ratios)\n\n"
    ));
    out.push_str(
        "| route | conns | server | req/s | p50 | p99 | req/s ÷ bare | p50 ÷ bare | p99 ÷ bare | errors | server CPU/req, user | kernel |\n",
    );
    out.push_str("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for ((route, conns, server), runs) in results {
        let paired = |f: fn(&Sample) -> f64| {
            median(runs.iter().map(|p| f(&p.sample) / f(&p.baseline)).collect())
        };
        let med = |f: fn(&Sample) -> f64| median(runs.iter().map(|p| f(&p.sample)).collect());
        out.push_str(&format!(
            "| {} | {} | {} | {:.0} | {} | {} | {:.2} | {:.2} | {:.2} | {} | {:.1} µs | {:.1} µs |\n",
            ROUTES[*route].1,
            conns,
            server,
            med(|s| s.rps),
            fmt_us(med(|s| s.p50_us)),
            fmt_us(med(|s| s.p99_us)),
            paired(|s| s.rps),
            paired(|s| s.p50_us),
            paired(|s| s.p99_us),
            runs.iter().map(|p| p.sample.bad).sum::<u64>(),
            med(|s| s.user_us),
            med(|s| s.sys_us),
        ));
    }
    out
}

/// The shared-core pass's table.
fn report_shared(shared: &BTreeMap<Key, Vec<(f64, f64)>>, rounds: usize, secs: u32) -> String {
    let mut out = format!(
        "\nShared core: bare and the server on CPU 0 at the same time, one wrk each on CPU 1, {secs} s \
         per run, {rounds} round(s), medians. `bare CPU ÷ server CPU` is bare's CPU time per request \
         over the server's, measured in the same seconds: the share of bare's throughput one core \
         gives the server. `req/s ÷ bare` is what each got of the shared core.\n\n"
    );
    out.push_str("| route | conns | server | bare CPU ÷ server CPU | req/s ÷ bare |\n");
    out.push_str("|---|---:|---|---:|---:|\n");
    for ((route, conns, server), runs) in shared {
        out.push_str(&format!(
            "| {} | {} | {} | {:.2} | {:.2} |\n",
            ROUTES[*route].1,
            conns,
            server,
            median(runs.iter().map(|r| r.0).collect()),
            median(runs.iter().map(|r| r.1).collect()),
        ));
    }
    out
}

fn main() -> ExitCode {
    // Under `cargo bench` the harness passes `--bench`; no other arguments are taken.
    if !have("wrk") {
        eprintln!("load: `wrk` not found. Install it with `sudo apt-get install wrk` (Debian/Ubuntu) or build it from https://github.com/wg/wrk");
        return ExitCode::FAILURE;
    }
    if !have("taskset") {
        eprintln!(
            "load: `taskset` not found. Install util-linux (`sudo apt-get install util-linux`)."
        );
        return ExitCode::FAILURE;
    }
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        eprintln!("load: needs at least 2 CPUs (server on CPU 0, wrk on CPU 1)");
        return ExitCode::FAILURE;
    }
    let secs: u32 = env_or("LOAD_DURATION", 8);
    let rounds: usize = env_or("LOAD_ROUNDS", 3);
    let conns: Vec<u32> = env_list("LOAD_CONNS")
        .map(|v| v.iter().filter_map(|c| c.parse().ok()).collect())
        .unwrap_or_else(|| vec![64, 512]);
    let only_servers = env_list("LOAD_SERVERS");
    let only_routes = env_list("LOAD_ROUTES");
    let servers: Vec<&Server> = SERVERS
        .iter()
        .filter(|s| {
            s.name == "bare"
                || only_servers
                    .as_ref()
                    .is_none_or(|o| o.iter().any(|n| n == s.name))
        })
        .collect();
    let routes: Vec<usize> = (0..ROUTES.len())
        .filter(|&i| {
            only_routes
                .as_ref()
                .is_none_or(|o| o.iter().any(|n| n == ROUTES[i].0))
        })
        .collect();

    if std::env::var("LOAD_SKIP_BUILD").as_deref() != Ok("1") {
        if let Err(e) = build() {
            eprintln!("load: {e}");
            return ExitCode::FAILURE;
        }
    }
    let release = target_dir().join("release");
    let logs = target_dir().join("load");
    if let Err(e) = std::fs::create_dir_all(&logs) {
        eprintln!("load: cannot create {}: {e}", logs.display());
        return ExitCode::FAILURE;
    }

    let shared_rounds: usize = env_or("LOAD_SHARED_ROUNDS", 3);
    // Bare axum runs before the first server and after each one; then the shared-core pass.
    let runs = (2 * servers.len() - 1) * routes.len() * conns.len() * rounds
        + (servers.len() - 1) * routes.len() * conns.len() * shared_rounds;
    eprintln!(
        "load: {} servers x {} routes x {} connection counts x {rounds} rounds, bare between \
         each, then {shared_rounds} shared-core rounds, {secs} s each: about {} s",
        servers.len(),
        routes.len(),
        conns.len(),
        runs as u32 * (secs + 1) + servers.len() as u32 * 3
    );

    // Every server starts once and stays up, idle until its turn: then each measurement can sit
    // right between two runs of bare axum, and its ratio is to their mean. The machine's speed
    // drifts by tens of percent within minutes; a bare run five seconds away drifts far less.
    let mut running: Vec<(&Server, Running)> = Vec::new();
    let mut tokio_threads_seen: BTreeMap<&str, usize> = BTreeMap::new();
    for &server in &servers {
        let r = match Running::start(server, &release.join(server.bin), &logs) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("load: {e}");
                return ExitCode::FAILURE;
            }
        };
        // Sanity: every route answers 200 before anything is measured.
        for &route in &routes {
            match get(r.addr, ROUTES[route].1) {
                Ok(res) if res.starts_with("HTTP/1.1 200") => {
                    if route == routes[0] {
                        let head = res.split("\r\n\r\n").next().unwrap_or("");
                        eprintln!("load: {} answers:\n{head}\n", server.name);
                    }
                }
                Ok(res) => {
                    eprintln!(
                        "load: {} {} answered:\n{}",
                        server.name,
                        ROUTES[route].1,
                        res.lines().next().unwrap_or("")
                    );
                    return ExitCode::FAILURE;
                }
                Err(e) => {
                    eprintln!("load: {} {}: {e}", server.name, ROUTES[route].1);
                    return ExitCode::FAILURE;
                }
            }
        }
        let warm = format!("http://{}{}", r.addr, ROUTES[routes[0]].1);
        let _ = wrk(&warm, r.pid(), 64, 1);
        tokio_threads_seen.insert(server.name, tokio_threads(r.pid()));
        running.push((server, r));
    }
    type Target = (SocketAddr, u32);
    let (bare_addr, others): (Target, Vec<(&Server, Target)>) = {
        let bare = running
            .iter()
            .find(|(s, _)| s.name == "bare")
            .map(|(_, r)| (r.addr, r.pid()))
            .expect("bare is always measured");
        let others = running
            .iter()
            .filter(|(s, _)| s.name != "bare")
            .map(|(s, r)| (*s, (r.addr, r.pid())))
            .collect();
        (bare, others)
    };

    let mut results: BTreeMap<Key, Vec<Paired>> = BTreeMap::new();
    for round in 0..rounds {
        // Rotate the order every round so that no server always runs first or last.
        let mut order = others.clone();
        let len = order.len();
        if len > 0 {
            order.rotate_left(round % len);
        }
        for &r in &routes {
            for &c in &conns {
                let measure = |name: &str, (addr, pid): Target| -> Result<Sample, String> {
                    let url = format!("http://{addr}{}", ROUTES[r].1);
                    let s = wrk(&url, pid, c, secs)?;
                    eprintln!(
                        "load: round {} {:<12} {:<18} c={c:<4} {:>9.0} req/s  p50 {:>9}  p99 {:>9}  cpu {:.1}+{:.1} µs/req{}",
                        round + 1,
                        name,
                        ROUTES[r].1,
                        s.rps,
                        fmt_us(s.p50_us),
                        fmt_us(s.p99_us),
                        s.user_us,
                        s.sys_us,
                        if s.bad > 0 { format!("  ({} errors)", s.bad) } else { String::new() }
                    );
                    Ok(s)
                };
                let mut before = match measure("bare", bare_addr) {
                    Ok(s) => s,
                    Err(e) => {
                        eprintln!("load: {e}");
                        return ExitCode::FAILURE;
                    }
                };
                results.entry((r, c, "bare")).or_default().push(Paired {
                    sample: before,
                    baseline: before,
                });
                for &(server, addr) in &order {
                    let sample = measure(server.name, addr);
                    let after = measure("bare", bare_addr);
                    let (sample, after) = match (sample, after) {
                        (Ok(s), Ok(a)) => (s, a),
                        (Err(e), _) | (_, Err(e)) => {
                            eprintln!("load: {e}");
                            return ExitCode::FAILURE;
                        }
                    };
                    results.entry((r, c, "bare")).or_default().push(Paired {
                        sample: after,
                        baseline: after,
                    });
                    results
                        .entry((r, c, server.name))
                        .or_default()
                        .push(Paired {
                            sample,
                            baseline: before.mean(&after),
                        });
                    before = after;
                }
            }
        }
    }
    // The shared-core pass: bare and one other server at the same time, both on CPU 0, each driven
    // by its own wrk on CPU 1. Both see the same machine at the same moment, so their CPU time per
    // request compares without the drift between runs.
    let mut shared: BTreeMap<Key, Vec<(f64, f64)>> = BTreeMap::new();
    for round in 0..shared_rounds {
        for &r in &routes {
            for &c in &conns {
                for &(server, (addr, pid)) in &others {
                    let run = |(addr, pid): Target| {
                        wrk(&format!("http://{addr}{}", ROUTES[r].1), pid, c, secs)
                    };
                    let (b, s) = std::thread::scope(|scope| {
                        let b = scope.spawn(|| run(bare_addr));
                        let s = run((addr, pid));
                        (b.join().expect("wrk thread"), s)
                    });
                    let (b, s) = match (b, s) {
                        (Ok(b), Ok(s)) => (b, s),
                        (Err(e), _) | (_, Err(e)) => {
                            eprintln!("load: {e}");
                            return ExitCode::FAILURE;
                        }
                    };
                    let cost = (b.user_us + b.sys_us) / (s.user_us + s.sys_us);
                    eprintln!(
                        "load: shared {} {:<12} {:<18} c={c:<4} {:>7.0} vs bare {:>7.0} req/s  cpu {:.1} vs bare {:.1} µs/req  bare/server {cost:.2}",
                        round + 1,
                        server.name,
                        ROUTES[r].1,
                        s.rps,
                        b.rps,
                        s.user_us + s.sys_us,
                        b.user_us + b.sys_us,
                    );
                    shared
                        .entry((r, c, server.name))
                        .or_default()
                        .push((cost, s.rps / b.rps));
                }
            }
        }
    }
    for (_, mut r) in running {
        r.stop();
    }

    let mut table = report(&results, rounds, secs);
    if !shared.is_empty() {
        table.push_str(&report_shared(&shared, shared_rounds, secs));
    }
    table.push_str("\ntokio threads (workers and blocking pool) seen under `taskset -c 0`: ");
    table.push_str(
        &tokio_threads_seen
            .iter()
            .map(|(n, w)| format!("{n} {w}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    table.push('\n');
    println!("\n{table}");
    let path = logs.join("results.md");
    if std::fs::write(&path, &table).is_ok() {
        eprintln!("load: table written to {}", path.display());
    }
    ExitCode::SUCCESS
}
