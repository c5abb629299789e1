//! What the in-process benches share: the route every scenario answers, the request, and the
//! scenarios themselves (bare axum, each crosscut layer alone, the preset, the full stack).

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::get;
use axum::Router;
use bytes::BytesMut;
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
use crosscut_demo::log_format::AccessLines;
use crosscut_demo::log_writer::BatchWriter;
use http::header::{ACCEPT_ENCODING, AUTHORIZATION, CONTENT_TYPE, ORIGIN, USER_AGENT};
use http::{HeaderValue, Request, StatusCode, Uri};
use http_body_util::BodyExt;
use tower::layer::util::Identity;
use tower::{ServiceBuilder, ServiceExt};

const PATH: &str = "/api/v1/users";
const USERS_JSON: &str = r#"{"users":[{"user_id":"user1","name":"John","version":"v1"},{"user_id":"user2","name":"Jane","version":"v1"}]}"#;
const SECRET: &str = "a benchmark secret that is at least 32 bytes long";

pub(crate) async fn users() -> ([(http::HeaderName, &'static str); 1], &'static str) {
    ([(CONTENT_TYPE, "application/json")], USERS_JSON)
}

pub(crate) fn routes() -> Router {
    Router::new().route(PATH, get(users))
}

/// The request line's target and header values every request carries, parsed once.
///
/// hyper hands a handler header values and a URI that are slices of the connection's read
/// buffer: cloning one is a reference-count increment. Values built from `&str` for each request
/// are copies that allocate, and allocate again the first time a layer clones them, which no
/// request from a server does; these are slices of one shared buffer, as hyper's are.
pub(crate) struct Head {
    uri: Uri,
    user_agent: HeaderValue,
    origin: HeaderValue,
    authorization: HeaderValue,
    accept_encoding: HeaderValue,
}

impl Head {
    /// The head with `Authorization: Bearer <token>` for a day-long HS256 token signed with
    /// [`SECRET`].
    pub(crate) fn new() -> Self {
        let keys = JwtKeys::hs256(SECRET).expect("valid secret");
        let token = keys
            .issue("bench", ["read", "write"], Duration::from_secs(24 * 3600))
            .expect("token");
        let parts = [
            PATH.to_owned(),
            "criterion/0.5".to_owned(),
            "https://app.example".to_owned(),
            format!("Bearer {token}"),
            "gzip, br".to_owned(),
        ];
        let mut buffer = BytesMut::new();
        let mut ranges = Vec::new();
        for part in &parts {
            let start = buffer.len();
            buffer.extend_from_slice(part.as_bytes());
            ranges.push(start..buffer.len());
        }
        // `split` turns the buffer into a shared one, like hyper's read buffer after a request.
        let buffer = buffer.split().freeze();
        let value = |i: usize| {
            HeaderValue::from_maybe_shared(buffer.slice(ranges[i].clone())).expect("header value")
        };
        Self {
            uri: Uri::from_maybe_shared(buffer.slice(ranges[0].clone())).expect("valid path"),
            user_agent: value(1),
            origin: value(2),
            authorization: value(3),
            accept_encoding: value(4),
        }
    }
}

/// Which request a scenario sends; each scenario's `bare` runs get the same one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ask {
    /// `User-Agent`, `Origin` and `Authorization`: a browser calling the API, which every layer
    /// has something to do with.
    Browser,
    /// The same with `Accept-Encoding: gzip, br`.
    Gzip,
    /// The request the load bench's wrk sends: the path and no header a layer reads (wrk's `Host`
    /// is left out; no layer looks at it). No CORS headers come back, so the response reaches
    /// the security headers with fewer headers than a browser's does.
    Wrk,
}

/// The request every scenario answers, as `ask` says.
pub(crate) fn request(head: &Head, ask: Ask) -> Request<Body> {
    let mut builder = Request::get(head.uri.clone());
    if ask != Ask::Wrk {
        builder = builder
            .header(USER_AGENT, head.user_agent.clone())
            .header(ORIGIN, head.origin.clone())
            .header(AUTHORIZATION, head.authorization.clone());
    }
    if ask == Ask::Gzip {
        builder = builder.header(ACCEPT_ENCODING, head.accept_encoding.clone());
    }
    let mut req = builder.body(Body::empty()).expect("valid request");
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40_000))));
    req
}

pub(crate) async fn call(app: Router, req: Request<Body>) -> usize {
    let res = app.oneshot(req).await.expect("infallible");
    assert_eq!(res.status(), StatusCode::OK);
    let body = res.into_body().collect().await.expect("body").to_bytes();
    body.len()
}

/// The demo's default burst (200) refilled a billion times a second: the limiter does its
/// bookkeeping on every request and never answers 429, and its RateLimit numbers are the small
/// ones a client under the default quota sees (cut from the limiter's preformatted table).
pub(crate) fn unlimited() -> RateLimit {
    RateLimit::per_second(1_000_000_000).burst(200)
}

/// A burst of a billion, as the load bench gives the demo: `RateLimit-Remaining` lies past the
/// preformatted table and is formatted on every request.
pub(crate) fn unlimited_huge_burst() -> RateLimit {
    RateLimit::per_second(1_000_000_000).burst(1_000_000_000)
}

/// The batched writer [`log_to_sink`] set up, for the access log's lines written directly.
static LOG_WRITER: OnceLock<BatchWriter> = OnceLock::new();

/// Installs the access log's subscriber as the demo sets it up for a log file: enabled at INFO,
/// every event formatted by the demo's plain-text formatter into its batched writer (here in front
/// of a sink), which the scenarios' [`AccessLines`] sinks write to as well. Keep the guard until
/// the end: it flushes.
pub(crate) fn log_to_sink() -> crosscut_demo::log_writer::FlushGuard {
    let (writer, guard) = crosscut_demo::log_writer::batch_writer(std::io::sink());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .with_writer(writer.clone())
        .with_ansi(false)
        .event_format(crosscut_demo::log_format::PlainText)
        .init();
    let _ = LOG_WRITER.set(writer);
    guard
}

/// The single-threaded runtime every scenario runs on.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Every scenario: its name, its router (routes built once, as a server has them) and the request
/// it is sent.
pub(crate) fn scenarios() -> Vec<(&'static str, Router, Ask)> {
    let keys = JwtKeys::hs256(SECRET).expect("valid secret");
    let cors = CorsLayer::from_origins(["*"]).expect("valid origins");
    let stack = Stack::new(StackConfig::default()).expect("valid preset");
    // The access log as the demo has it: lines written by `AccessLines::text`, not sent as events.
    let writer = LOG_WRITER
        .get()
        .expect("log_to_sink before the scenarios")
        .clone();
    let direct = AccessLogLayer::with_sink(AccessLines::text(writer));
    let demo_stack = stack.clone().with_access_log(direct.clone());
    let metrics = Metrics::new();
    let tracker = Tracker::new();

    let full = {
        // The demo's order and grouping (DESIGN.md, `crosscut_demo::app`): outer() (request id,
        // access log, security headers), tracking, metrics, inner() (catch panic, CORS), the rate
        // limit and http(), outermost first, in one `Router::layer` on the plain routes. The
        // limiter has the burst the load bench gives the demo.
        let metrics = Metrics::new();
        let tracker = Tracker::new();
        routes().layer(
            ServiceBuilder::new()
                .layer(demo_stack.outer())
                .layer(tracker.layer())
                .layer(metrics.layer())
                .layer(stack.inner())
                .layer(RateLimitLayer::new(unlimited_huge_burst()))
                .layer(stack.http()),
        )
    };

    vec![
        ("bare", routes(), Ask::Browser),
        // What any `Router::layer` call costs before the layer does anything: axum boxes the
        // route once more, clones that box for every request and boxes its future.
        ("noop_layer", routes().layer(Identity::new()), Ask::Browser),
        (
            "request_id",
            routes().layer(RequestIdLayer::new()),
            Ask::Browser,
        ),
        // The library's default, a `tracing` event through the demo's formatter.
        (
            "access_log",
            routes().layer(AccessLogLayer::new()),
            Ask::Browser,
        ),
        // The demo's, the same line written without the event.
        ("access_log_direct", routes().layer(direct), Ask::Browser),
        (
            "security_headers",
            routes().layer(SecurityHeadersLayer::new()),
            Ask::Browser,
        ),
        ("cors", routes().layer(cors), Ask::Browser),
        (
            "timeout",
            routes().layer(TimeoutLayer::new(Duration::from_secs(30))),
            Ask::Browser,
        ),
        (
            "catch_panic",
            routes().layer(CatchPanicLayer::new()),
            Ask::Browser,
        ),
        (
            "body_limit",
            routes().layer(BodyLimitLayer::new(1024 * 1024)),
            Ask::Browser,
        ),
        (
            "compression_identity",
            routes().layer(CompressionLayer::new()),
            Ask::Browser,
        ),
        (
            "compression_gzip",
            routes().layer(CompressionLayer::new()),
            Ask::Gzip,
        ),
        (
            "rate_limit",
            routes().layer(RateLimitLayer::new(unlimited())),
            Ask::Browser,
        ),
        (
            "rate_limit_burst_1e9",
            routes().layer(RateLimitLayer::new(unlimited_huge_burst())),
            Ask::Browser,
        ),
        (
            "auth_jwt_hs256",
            routes().layer(JwtAuthLayer::new(keys)),
            Ask::Browser,
        ),
        ("connections", routes().layer(tracker.layer()), Ask::Browser),
        ("metrics", routes().layer(metrics.layer()), Ask::Browser),
        ("preset", stack.apply(routes()), Ask::Browser),
        ("full_stack", full.clone(), Ask::Browser),
        ("full_stack_wrk", full, Ask::Wrk),
    ]
    .into_iter()
    // What `axum::serve` does through `into_make_service`: every handler becomes a `Route` once,
    // with its layers applied. A `Router<()>` driven with `oneshot` as it is would instead build
    // each handler's route again, and apply every layer to it, on every request.
    .map(|(name, router, ask)| (name, router.with_state(()), ask))
    .collect()
}

/// Nanoseconds per request of `n` requests through `app`.
pub(crate) fn batch(
    rt: &tokio::runtime::Runtime,
    app: &Router,
    head: &Head,
    ask: Ask,
    n: u32,
) -> f64 {
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..n {
            std::hint::black_box(call(app.clone(), request(head, ask)).await);
        }
        start.elapsed().as_nanos() as f64 / f64::from(n)
    })
}
