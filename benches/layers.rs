//! Per-layer cost, in process: an axum router driven with `tower::ServiceExt::oneshot`, bare and
//! with each crosscut layer alone, then the preset and the full stack in the demo's order.
//!
//! Run with
//!
//! ```not_rust
//! cargo bench --bench layers                 # everything, about two minutes
//! cargo bench --bench layers -- rate_limit   # one scenario (criterion filter)
//! ```
//!
//! Every scenario answers the same `GET /api/v1/users` (a 111-byte JSON body like the demo's) to
//! the same request: `User-Agent`, `Origin`, `Authorization: Bearer <HS256 token>` and the peer
//! address as axum's `ConnectInfo`; only `compression_gzip` adds `Accept-Encoding: gzip, br`. Each
//! iteration builds the request, runs it through the router and reads the response body to its
//! end (compression and the tracking layer do their work while the body is read), so
//! `layer - bare` is what the layer adds to one request. The access log runs with a fmt
//! subscriber enabled at INFO writing to `std::io::sink()` through the demo's plain-text formatter
//! and batched writer, as the demo logs to a file.
//!
//! At the end the bench prints each scenario's mean and its difference from `bare`, read back from
//! criterion's `estimates.json` files of this run. Then a paired pass measures the same
//! differences with the machine's drift paired out: for each layer, `LAYERS_PAIRED_ROUNDS`
//! rounds (default 41; 0 skips the pass) each time a batch of 2,000 requests through `bare` and
//! a batch through the layer back to back (alternating which goes first), and the table gives the
//! median of the per-round differences with its interquartile range. Criterion measures each
//! scenario for a few seconds, one after the other, and on a shared machine the baseline itself
//! moves by more than a layer costs between them; two batches a few milliseconds apart move
//! together (a machine slower as a whole still scales both, so compare runs row by row).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::get;
use axum::Router;
use criterion::Criterion;
use crosscut::access_log::AccessLogLayer;
use crosscut::auth::{JwtAuthLayer, JwtKeys};
use crosscut::body_limit::BodyLimitLayer;
use crosscut::catch_panic::CatchPanicLayer;
use crosscut::compression::CompressionLayer;
use crosscut::connections::Tracker;
use crosscut::cors::CorsLayer;
use crosscut::metrics::Metrics;
use crosscut::preset::{Stack, StackConfig};
use crosscut::rate_limit::{RateLimit, RateLimitLayer};
use crosscut::request_id::RequestIdLayer;
use crosscut::security_headers::SecurityHeadersLayer;
use crosscut::timeout::TimeoutLayer;
use http::header::{ACCEPT_ENCODING, AUTHORIZATION, CONTENT_TYPE, ORIGIN, USER_AGENT};
use http::{HeaderValue, Request, StatusCode};
use http_body_util::BodyExt;
use tower::layer::util::Identity;
use tower::{ServiceBuilder, ServiceExt};

const GROUP: &str = "layers";
const PATH: &str = "/api/v1/users";
const USERS_JSON: &str = r#"{"users":[{"user_id":"user1","name":"John","version":"v1"},{"user_id":"user2","name":"Jane","version":"v1"}]}"#;
const SECRET: &str = "a benchmark secret that is at least 32 bytes long";

async fn users() -> ([(http::HeaderName, &'static str); 1], &'static str) {
    ([(CONTENT_TYPE, "application/json")], USERS_JSON)
}

fn routes() -> Router {
    Router::new().route(PATH, get(users))
}

/// The request every scenario answers; `gzip` adds `Accept-Encoding`.
fn request(bearer: &HeaderValue, gzip: bool) -> Request<Body> {
    let mut builder = Request::get(PATH)
        .header(USER_AGENT, "criterion/0.5")
        .header(ORIGIN, "https://app.example")
        .header(AUTHORIZATION, bearer.clone());
    if gzip {
        builder = builder.header(ACCEPT_ENCODING, "gzip, br");
    }
    let mut req = builder.body(Body::empty()).expect("valid request");
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40_000))));
    req
}

async fn call(app: Router, req: Request<Body>) -> usize {
    let res = app.oneshot(req).await.expect("infallible");
    assert_eq!(res.status(), StatusCode::OK);
    let body = res.into_body().collect().await.expect("body").to_bytes();
    body.len()
}

/// A limit no benchmark reaches, so the limiter does its bookkeeping and never answers 429.
fn unlimited() -> RateLimit {
    RateLimit::per_second(1_000_000_000).burst(1_000_000_000)
}

fn scenarios() -> Vec<(&'static str, Router, bool)> {
    let keys = JwtKeys::hs256(SECRET).expect("valid secret");
    let cors = CorsLayer::from_origins(["*"]).expect("valid origins");
    let stack = Stack::new(StackConfig::default()).expect("valid preset");
    let metrics = Metrics::new();
    let tracker = Tracker::new();

    let full = {
        // The demo's order and grouping (DESIGN.md, `crosscut_demo::app`): the rate limit and
        // http() in one `Router::layer` on the plain routes, then outer() (request id, access log,
        // security headers), tracking, metrics and inner() (catch panic, CORS) in one on the whole
        // router, outermost first.
        let metrics = Metrics::new();
        let tracker = Tracker::new();
        routes()
            .layer(
                ServiceBuilder::new()
                    .layer(RateLimitLayer::new(unlimited()))
                    .layer(stack.http()),
            )
            .layer(
                ServiceBuilder::new()
                    .layer(stack.outer())
                    .layer(tracker.layer())
                    .layer(metrics.layer())
                    .layer(stack.inner()),
            )
    };

    vec![
        ("bare", routes(), false),
        // What any `Router::layer` call costs before the layer does anything: axum boxes the
        // route once more, clones that box for every request and boxes its future.
        ("noop_layer", routes().layer(Identity::new()), false),
        ("request_id", routes().layer(RequestIdLayer::new()), false),
        ("access_log", routes().layer(AccessLogLayer::new()), false),
        (
            "security_headers",
            routes().layer(SecurityHeadersLayer::new()),
            false,
        ),
        ("cors", routes().layer(cors), false),
        (
            "timeout",
            routes().layer(TimeoutLayer::new(Duration::from_secs(30))),
            false,
        ),
        ("catch_panic", routes().layer(CatchPanicLayer::new()), false),
        (
            "body_limit",
            routes().layer(BodyLimitLayer::new(1024 * 1024)),
            false,
        ),
        (
            "compression_identity",
            routes().layer(CompressionLayer::new()),
            false,
        ),
        (
            "compression_gzip",
            routes().layer(CompressionLayer::new()),
            true,
        ),
        (
            "rate_limit",
            routes().layer(RateLimitLayer::new(unlimited())),
            false,
        ),
        (
            "auth_jwt_hs256",
            routes().layer(JwtAuthLayer::new(keys)),
            false,
        ),
        ("connections", routes().layer(tracker.layer()), false),
        ("metrics", routes().layer(metrics.layer()), false),
        ("preset", stack.apply(routes()), false),
        ("full_stack", full, false),
    ]
}

/// `Bearer <token>` for a day-long HS256 token signed with [`SECRET`].
fn bearer() -> HeaderValue {
    let keys = JwtKeys::hs256(SECRET).expect("valid secret");
    let token = keys
        .issue("bench", ["read", "write"], Duration::from_secs(24 * 3600))
        .expect("token");
    HeaderValue::from_str(&format!("Bearer {token}")).expect("header value")
}

fn bench(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let bearer = bearer();

    // Built inside the runtime: some layers start background tasks on first use.
    let scenarios = rt.block_on(async { scenarios() });
    let mut group = c.benchmark_group(GROUP);
    for (name, app, gzip) in scenarios {
        // Fail loudly, before measuring, if a scenario does not answer 200.
        rt.block_on(call(app.clone(), request(&bearer, gzip)));
        group.bench_function(name, |b| {
            b.to_async(rt)
                .iter(|| call(app.clone(), request(&bearer, gzip)));
        });
    }
    group.finish();
}

/// Where criterion writes its results: `CRITERION_HOME`, else `<target>/criterion`.
fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("criterion")
}

/// Mean time per iteration in ns of `name`, if criterion measured it during this run.
fn mean_ns(name: &str, since: SystemTime) -> Option<f64> {
    let path = criterion_dir()
        .join(GROUP)
        .join(name)
        .join("new")
        .join("estimates.json");
    let fresh = std::fs::metadata(&path).ok()?.modified().ok()? >= since;
    if !fresh {
        return None;
    }
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
    json["mean"]["point_estimate"].as_f64()
}

fn summary(names: &[&str], since: SystemTime) {
    let Some(bare) = mean_ns("bare", since) else {
        return;
    };
    println!("\nper-layer cost (mean per request; layer - bare)");
    println!("{:<22} {:>10} {:>10}", "scenario", "mean ns", "+ns");
    for name in names {
        if let Some(ns) = mean_ns(name, since) {
            println!("{name:<22} {ns:>10.0} {:>+10.0}", ns - bare);
        }
    }
}

/// Nanoseconds per request of `n` requests through `app`.
fn batch(
    rt: &tokio::runtime::Runtime,
    app: &Router,
    bearer: &HeaderValue,
    gzip: bool,
    n: u32,
) -> f64 {
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..n {
            std::hint::black_box(call(app.clone(), request(bearer, gzip)).await);
        }
        start.elapsed().as_nanos() as f64 / f64::from(n)
    })
}

/// The `q` quantile (0 to 1) of `sorted`, nearest rank.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i]
}

/// Each layer against `bare` in interleaved batches; prints the median difference per request.
fn paired(rt: &tokio::runtime::Runtime, bearer: &HeaderValue, filter: Option<&str>, rounds: usize) {
    const BATCH: u32 = 2_000;
    let scenarios = rt.block_on(async { scenarios() });
    let (bare_name, bare, _) = &scenarios[0];
    assert_eq!(*bare_name, "bare");
    println!(
        "\npaired per-layer cost: {rounds} rounds of {BATCH} requests through bare and through the \
         layer back to back; + ns per request"
    );
    println!(
        "{:<22} {:>10} {:>10} {:>10}",
        "scenario", "median", "p25", "p75"
    );
    for (name, app, gzip) in &scenarios[1..] {
        // Criterion reads the filter as a regular expression; alternatives with `|` are enough here.
        if filter.is_some_and(|f| !f.split('|').any(|part| name.contains(part))) {
            continue;
        }
        // Warm both up so that the first round does not pay for cold caches.
        batch(rt, bare, bearer, *gzip, BATCH);
        batch(rt, app, bearer, *gzip, BATCH);
        let mut diffs: Vec<f64> = (0..rounds)
            .map(|round| {
                if round % 2 == 0 {
                    let b = batch(rt, bare, bearer, *gzip, BATCH);
                    batch(rt, app, bearer, *gzip, BATCH) - b
                } else {
                    let l = batch(rt, app, bearer, *gzip, BATCH);
                    l - batch(rt, bare, bearer, *gzip, BATCH)
                }
            })
            .collect();
        diffs.sort_by(f64::total_cmp);
        println!(
            "{name:<22} {:>+10.0} {:>+10.0} {:>+10.0}",
            quantile(&diffs, 0.5),
            quantile(&diffs, 0.25),
            quantile(&diffs, 0.75)
        );
    }
}

fn main() {
    // The access log's subscriber as the demo sets it up for a log file: enabled at INFO, every
    // event formatted by the demo's plain-text formatter into its batched writer (here in front of
    // a sink). The guard flushes at the end.
    let (writer, _guard) = crosscut_demo::log_writer::batch_writer(std::io::sink());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .with_writer(writer)
        .with_ansi(false)
        .event_format(crosscut_demo::log_format::PlainText)
        .init();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let since = SystemTime::now();
    let mut c = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    bench(&mut c, &rt);
    c.final_summary();

    let names: Vec<&str> = rt
        .block_on(async { scenarios() })
        .into_iter()
        .map(|(n, _, _)| n)
        .collect();
    summary(&names, since);

    let rounds: usize = std::env::var("LAYERS_PAIRED_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(41);
    // The positional argument criterion reads as its filter (`cargo bench --bench layers -- cors`).
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let profiling = std::env::args().any(|a| a == "--profile-time" || a == "--list");
    if rounds > 0 && !profiling {
        let bearer = bearer();
        paired(&rt, &bearer, filter.as_deref(), rounds);
    }
}
