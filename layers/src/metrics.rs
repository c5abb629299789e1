//! Prometheus metrics per route template, in a registry the application owns.
//!
//! A [`Metrics`] handle owns its own [`prometheus_client`] registry: there is no process-global
//! recorder, so two servers in one process (or two tests) keep separate counts. [`MetricsLayer`]
//! records every request:
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `http_requests_total` | counter | `method`, `route`, `status` |
//! | `http_request_duration_seconds` | histogram | `method`, `route` |
//! | `http_requests_in_flight` | gauge | |
//!
//! `route` is the template axum matched (`/users/{id}`), never the raw path, so the number of
//! series stays bounded whatever paths clients send; a request no route matched (the fallback) is
//! labelled `unmatched`, and a method outside the standard nine is labelled `OTHER`. The duration
//! is measured until the response head is ready, and a request is in flight until then.
//!
//! The handle also carries figures the layer cannot see, for the application to feed:
//!
//! | metric | type | fed by |
//! |---|---|---|
//! | `http_connections_active`, `http_connections_total` | gauge, counter | [`Metrics::set_connections`], read at scrape time |
//! | `process_resident_memory_bytes` | gauge | [`Metrics::set_resident_memory_bytes`] |
//! | `ws_connections_active`, `sse_subscribers_active` | gauge | [`Metrics::ws_connection`], [`Metrics::sse_subscriber`] guards |
//! | `rate_limited_total` | counter | answers carrying [`ErrorCode::RateLimit`], counted by the layer; also [`Metrics::rate_limited`] |
//!
//! # Where to put the layer
//!
//! Add it with [`Router::layer`](axum::Router::layer): axum applies such a layer to each route
//! *after* routing, where the request carries its [`MatchedPath`]. Wrapped around the whole router
//! as a service instead, it would run before routing and label everything `unmatched`.
//!
//! # Example
//!
//! ```
//! use axum::{body::Body, routing::get, Router};
//! use crosscut::metrics::Metrics;
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let metrics = Metrics::new();
//! let app = Router::new()
//!     .route("/users/{id}", get(|| async { "John" }))
//!     .layer(metrics.layer());
//!
//! for id in ["1", "2"] {
//!     let req = http::Request::get(format!("/users/{id}")).body(Body::empty()).unwrap();
//!     app.clone().oneshot(req).await.unwrap();
//! }
//!
//! let text = metrics.render();
//! assert!(text.contains(r#"http_requests_total{method="GET",route="/users/{id}",status="200"} 2"#));
//! # }
//! ```

use std::fmt::{self, Write as _};
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::task::{ready, Context, Poll};
use std::time::Instant;

use axum::extract::MatchedPath;

use crate::error::ErrorCode;
use http::{Method, Request, Response};
use pin_project_lite::pin_project;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder,
};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tower_layer::Layer;
use tower_service::Service;

/// The content type of [`Metrics::render`]'s output (OpenMetrics text, which Prometheus reads).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Content type of [`Metrics::render_prometheus`]: the classic Prometheus text format.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Latency buckets in seconds: Prometheus's defaults, with two more below 5 ms because a fast API
/// answers most requests there.
const DURATION_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// The `method` label: a static string, so building a label set never allocates, and bounded,
/// since an extension method becomes `OTHER`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "OTHER",
    }
}

/// The `route` label: the matched template, shared with the request (cloning a [`MatchedPath`]
/// only bumps a reference count), or `unmatched`.
#[derive(Debug, Clone)]
enum Route {
    Matched(MatchedPath),
    Unmatched,
}

impl Route {
    fn as_str(&self) -> &str {
        match self {
            Self::Matched(p) => p.as_str(),
            Self::Unmatched => "unmatched",
        }
    }

    /// Equality that first compares where the text lives: every request to a route carries the
    /// same shared template, so the bytes rarely need comparing.
    fn same(&self, other: &Self) -> bool {
        let (a, b) = (self.as_str(), other.as_str());
        std::ptr::eq(a, b) || a == b
    }
}

impl PartialEq for Route {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Route {}

impl Hash for Route {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl EncodeLabelValue for Route {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), fmt::Error> {
        encoder.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: Route,
    status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: Route,
}

impl RouteLabels {
    fn same(&self, other: &Self) -> bool {
        self.method == other.method && self.route.same(&other.route)
    }
}

impl RequestLabels {
    fn same(&self, other: &Self) -> bool {
        self.status == other.status && self.method == other.method && self.route.same(&other.route)
    }
}

/// Figures kept elsewhere, copied in by the application and encoded at scrape time.
#[derive(Debug, Default)]
struct External {
    connections_active: AtomicI64,
    connections_total: AtomicU64,
    resident_memory_bytes: AtomicI64,
}

#[derive(Debug)]
struct ExternalCollector(Arc<External>);

impl Collector for ExternalCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let ext = &self.0;
        let active = ConstGauge::new(ext.connections_active.load(Ordering::Relaxed));
        active.encode(encoder.encode_descriptor(
            "http_connections_active",
            "Open HTTP connections",
            None,
            active.metric_type(),
        )?)?;
        // Registered as `http_connections`: the encoder appends `_total` to a counter's name.
        let total = ConstCounter::new(ext.connections_total.load(Ordering::Relaxed));
        total.encode(encoder.encode_descriptor(
            "http_connections",
            "HTTP connections accepted since start",
            None,
            total.metric_type(),
        )?)?;
        let rss = ConstGauge::new(ext.resident_memory_bytes.load(Ordering::Relaxed));
        rss.encode(encoder.encode_descriptor(
            "process_resident_memory_bytes",
            "Resident memory size of this process in bytes",
            None,
            rss.metric_type(),
        )?)?;
        Ok(())
    }
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    in_flight: Gauge,
    ws_connections: Gauge,
    sse_subscribers: Gauge,
    rate_limited: Counter,
    external: Arc<External>,
}

/// A metrics registry and the handles that feed it. Cheap to clone; clones share the registry.
///
/// See the [module docs](self) for the metrics and an example.
#[derive(Debug, Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry holding the metrics the [module docs](self) list, every one at zero.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        // Counters are registered without `_total`; the encoder adds it.
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route template and status",
            requests.clone(),
        );
        let duration = Family::new_with_constructor(duration_histogram as fn() -> Histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time until the response head was ready, by method and route template",
            duration.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "http_requests_in_flight",
            "HTTP requests being handled",
            in_flight.clone(),
        );
        let ws_connections = Gauge::default();
        registry.register(
            "ws_connections_active",
            "Open WebSocket connections",
            ws_connections.clone(),
        );
        let sse_subscribers = Gauge::default();
        registry.register(
            "sse_subscribers_active",
            "Open Server-Sent Events streams",
            sse_subscribers.clone(),
        );
        let rate_limited = Counter::default();
        registry.register(
            "rate_limited",
            "Requests refused by the rate limiter",
            rate_limited.clone(),
        );
        let external = Arc::new(External::default());
        registry.register_collector(Box::new(ExternalCollector(external.clone())));
        Self {
            inner: Arc::new(Inner {
                registry,
                requests,
                duration,
                in_flight,
                ws_connections,
                sse_subscribers,
                rate_limited,
                external,
            }),
        }
    }

    /// A [`MetricsLayer`] recording into this registry.
    pub fn layer(&self) -> MetricsLayer {
        MetricsLayer {
            metrics: self.clone(),
        }
    }

    /// Every metric in the text exposition format; serve it with [`CONTENT_TYPE`].
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        // Writing into a `String` cannot fail, and every label value we encode is valid text.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.inner.registry);
        out
    }

    /// The metrics in the classic Prometheus text format (`text/plain; version=0.0.4`), for
    /// clients that do not ask for OpenMetrics.
    ///
    /// The two formats share their sample lines; they differ in that OpenMetrics names a counter
    /// family without its `_total` suffix in `# HELP`/`# TYPE` and ends with `# EOF`.
    pub fn render_prometheus(&self) -> String {
        to_prometheus_text(&self.render())
    }

    /// Sets `http_connections_active` and `http_connections_total`, e.g. from a connection
    /// tracker just before [`render`](Self::render).
    pub fn set_connections(&self, active: u64, total: u64) {
        let ext = &self.inner.external;
        ext.connections_active
            .store(i64::try_from(active).unwrap_or(i64::MAX), Ordering::Relaxed);
        ext.connections_total.store(total, Ordering::Relaxed);
    }

    /// Sets `http_connections_active` and `http_connections_total` from `tracker`.
    #[cfg(feature = "connections")]
    pub fn set_connections_from(&self, tracker: &crate::connections::Tracker) {
        self.set_connections(
            tracker.open_connections() as u64,
            tracker.total_connections(),
        );
    }

    /// Sets `process_resident_memory_bytes`.
    pub fn set_resident_memory_bytes(&self, bytes: u64) {
        self.inner
            .external
            .resident_memory_bytes
            .store(i64::try_from(bytes).unwrap_or(i64::MAX), Ordering::Relaxed);
    }

    /// The `ws_connections_active` gauge. Prefer [`ws_connection`](Self::ws_connection), whose
    /// guard cannot forget the decrement.
    pub fn ws_connections(&self) -> Gauge {
        self.inner.ws_connections.clone()
    }

    /// Counts one WebSocket connection in `ws_connections_active` until the guard is dropped.
    pub fn ws_connection(&self) -> GaugeGuard {
        GaugeGuard::new(self.ws_connections())
    }

    /// The `sse_subscribers_active` gauge. Prefer [`sse_subscriber`](Self::sse_subscriber).
    pub fn sse_subscribers(&self) -> Gauge {
        self.inner.sse_subscribers.clone()
    }

    /// Counts one SSE stream in `sse_subscribers_active` until the guard is dropped.
    pub fn sse_subscriber(&self) -> GaugeGuard {
        GaugeGuard::new(self.sse_subscribers())
    }

    /// The `rate_limited_total` counter; call `.inc()` on each refused request.
    pub fn rate_limited(&self) -> Counter {
        self.inner.rate_limited.clone()
    }
}

/// Holds a gauge one higher until dropped: a long-lived connection keeps it in its task, so the
/// gauge comes back down however the task ends.
#[derive(Debug)]
#[must_use = "the gauge goes back down as soon as the guard is dropped"]
pub struct GaugeGuard(Gauge);

impl GaugeGuard {
    /// Increments `gauge` now and decrements it on drop.
    pub fn new(gauge: Gauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Layer that applies the [`RecordMetrics`] middleware.
///
/// See the [module docs](self) for where to put it and an example.
#[derive(Debug, Clone)]
#[must_use]
pub struct MetricsLayer {
    metrics: Metrics,
}

impl MetricsLayer {
    /// Records into `metrics`; the same as [`Metrics::layer`].
    pub fn new(metrics: Metrics) -> Self {
        Self { metrics }
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = RecordMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RecordMetrics {
            inner,
            handles: Arc::new(Handles {
                metrics: Arc::clone(&self.metrics.inner),
                durations: RwLock::default(),
                requests: RwLock::default(),
            }),
        }
    }
}

/// Most label sets a [`Handles`] cache keeps; further ones are looked up in the families.
const CACHED_LABEL_SETS: usize = 32;

/// The metric handles one layer instance has used, so a request finds its counter and histogram
/// without hashing its labels into the families.
///
/// `Router::layer` builds one instance per route, so a cache holds the few method and status
/// combinations of one route template and a lookup is a short scan that compares pointers. The
/// handles share their state with the families' entries, which are never removed; a request
/// records through the cached handle in place, without cloning it.
#[derive(Debug)]
struct Handles {
    metrics: Arc<Inner>,
    durations: RwLock<Vec<(RouteLabels, Histogram)>>,
    requests: RwLock<Vec<(RequestLabels, Counter)>>,
}

impl Handles {
    fn observe(&self, labels: &RouteLabels, secs: f64) {
        with_cached(
            &self.durations,
            labels,
            RouteLabels::same,
            || self.metrics.duration.get_or_create(labels).clone(),
            |h| h.observe(secs),
        );
    }

    fn count(&self, labels: &RequestLabels) {
        with_cached(
            &self.requests,
            labels,
            RequestLabels::same,
            || self.metrics.requests.get_or_create(labels).clone(),
            |c| {
                c.inc();
            },
        );
    }
}

/// Runs `record` on the handle cached for `labels`, or on the family's (kept while the cache has
/// room).
fn with_cached<L: Clone, M: Clone>(
    cache: &RwLock<Vec<(L, M)>>,
    labels: &L,
    same: fn(&L, &L) -> bool,
    family: impl FnOnce() -> M,
    record: impl Fn(&M),
) {
    let full = {
        let cached = cache.read().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, handle)) = cached.iter().find(|(l, _)| same(l, labels)) {
            record(handle);
            return;
        }
        cached.len() >= CACHED_LABEL_SETS
    };
    let handle = family();
    record(&handle);
    // A full cache stays as it is, and requests past it never queue on its write lock.
    if !full {
        let mut cache = cache.write().unwrap_or_else(PoisonError::into_inner);
        if cache.len() < CACHED_LABEL_SETS && !cache.iter().any(|(l, _)| same(l, labels)) {
            cache.push((labels.clone(), handle));
        }
    }
}

/// Middleware that records each request's count, latency and in-flight state.
///
/// See the [module docs](self) for an example.
#[derive(Debug, Clone)]
pub struct RecordMetrics<S> {
    inner: S,
    handles: Arc<Handles>,
}

impl<S> RecordMetrics<S> {
    define_inner_service_accessors!();
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RecordMetrics<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let route = match req.extensions().get::<MatchedPath>() {
            Some(p) => Route::Matched(p.clone()),
            None => Route::Unmatched,
        };
        let labels = RouteLabels {
            method: method_label(req.method()),
            route,
        };
        let handles = InFlight::new(Arc::clone(&self.handles));
        ResponseFuture {
            inner: self.inner.call(req),
            state: Some(Pending {
                handles,
                labels,
                start: Instant::now(),
            }),
        }
    }
}

/// What a response future needs to record once the head is ready.
#[derive(Debug)]
struct Pending {
    // Dropped when the head is ready, or with the future if it never is.
    handles: InFlight,
    labels: RouteLabels,
    start: Instant,
}

/// The layer's handles, holding one request in the in-flight gauge until dropped.
#[derive(Debug)]
struct InFlight(Arc<Handles>);

impl InFlight {
    fn new(handles: Arc<Handles>) -> Self {
        handles.metrics.in_flight.inc();
        Self(handles)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.metrics.in_flight.dec();
    }
}

pin_project! {
    /// Response future for [`RecordMetrics`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        state: Option<Pending>,
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        if let (Ok(res), Some(p)) = (&result, this.state.take()) {
            let handles = &p.handles.0;
            handles.observe(&p.labels, p.start.elapsed().as_secs_f64());
            handles.count(&RequestLabels {
                method: p.labels.method,
                route: p.labels.route,
                status: res.status().as_u16(),
            });
            // Whichever layer refused the request, its answer carries the code: counting here
            // needs no hook in the rate limiter.
            if res.extensions().get::<ErrorCode>() == Some(&ErrorCode::RateLimit) {
                handles.metrics.rate_limited.inc();
            }
        }
        Poll::Ready(result)
    }
}

/// OpenMetrics text to Prometheus 0.0.4 text: counter families get their `_total` name back in
/// `# HELP` and `# TYPE`, and the `# EOF` and `# UNIT` lines go.
fn to_prometheus_text(open_metrics: &str) -> String {
    let counters: Vec<&str> = open_metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open_metrics.len() + 16 * counters.len());
    for line in open_metrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = line
            .strip_prefix("# HELP ")
            .map(|rest| ("# HELP ", rest))
            .or_else(|| line.strip_prefix("# TYPE ").map(|rest| ("# TYPE ", rest)));
        match meta {
            Some((kind, rest)) => {
                let name = rest.split(' ').next().unwrap_or("");
                out.push_str(kind);
                out.push_str(name);
                if counters.contains(&name) && !name.ends_with("_total") {
                    out.push_str("_total");
                }
                out.push_str(&rest[name.len()..]);
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use axum::Router;
    use tower::{ServiceBuilder, ServiceExt};

    fn app(metrics: &Metrics) -> Router {
        Router::new()
            .route("/users/{id}", get(|| async { "John" }))
            .route("/slow", get(|| async { "x" }))
            .layer(metrics.layer())
    }

    async fn hit(app: &Router, method: Method, path: &str) -> u16 {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .unwrap();
        app.clone().oneshot(req).await.unwrap().status().as_u16()
    }

    /// The sample lines (not comments) of a rendering.
    fn samples(text: &str) -> Vec<&str> {
        text.lines().filter(|l| !l.starts_with('#')).collect()
    }

    #[tokio::test]
    async fn labels_by_template_not_raw_path() {
        let metrics = Metrics::new();
        let app = app(&metrics);
        for id in 0..100 {
            assert_eq!(hit(&app, Method::GET, &format!("/users/{id}")).await, 200);
        }
        let text = metrics.render();
        assert!(
            text.contains(
                r#"http_requests_total{method="GET",route="/users/{id}",status="200"} 100"#
            ),
            "{text}"
        );
        assert!(text.contains(
            r#"http_request_duration_seconds_count{method="GET",route="/users/{id}"} 100"#
        ));
        assert!(!text.contains("/users/42"));
        assert!(text.contains("http_requests_in_flight 0"));
    }

    #[tokio::test]
    async fn unmatched_and_unusual_methods_stay_bounded() {
        let metrics = Metrics::new();
        let app = app(&metrics);
        for i in 0..50 {
            assert_eq!(hit(&app, Method::GET, &format!("/nope/{i}")).await, 404);
        }
        let odd = Method::from_bytes(b"BREW").unwrap();
        hit(&app, odd, "/users/1").await;
        let text = metrics.render();
        assert!(
            text.contains(r#"http_requests_total{method="GET",route="unmatched",status="404"} 50"#),
            "{text}"
        );
        assert!(
            text.contains(r#"method="OTHER",route="/users/{id}",status="405""#),
            "{text}"
        );
    }

    #[tokio::test]
    async fn counts_stay_exact_past_the_handle_cache() {
        // One layer around a service answering the status the path asks for: more label sets
        // than one instance caches, each hit several times, some before the cache fills.
        let metrics = Metrics::new();
        let svc = ServiceBuilder::new().layer(metrics.layer()).service_fn(
            |req: Request<Body>| async move {
                let code: u16 = req.uri().path()[1..].parse().unwrap();
                let mut res = Response::new(Body::empty());
                *res.status_mut() = http::StatusCode::from_u16(code).unwrap();
                Ok::<_, std::convert::Infallible>(res)
            },
        );
        let statuses: Vec<u16> = (200..200 + 2 * CACHED_LABEL_SETS as u16).collect();
        for round in 1..=3 {
            for code in &statuses {
                let req = Request::get(format!("/{code}"))
                    .body(Body::empty())
                    .unwrap();
                assert_eq!(svc.clone().oneshot(req).await.unwrap().status(), *code);
            }
            let text = metrics.render();
            for code in &statuses {
                let line = format!(
                    r#"http_requests_total{{method="GET",route="unmatched",status="{code}"}} {round}"#
                );
                assert!(text.contains(&line), "{line} missing from\n{text}");
            }
            let count = format!(
                r#"http_request_duration_seconds_count{{method="GET",route="unmatched"}} {}"#,
                round * statuses.len()
            );
            assert!(text.contains(&count), "{count} missing");
        }
    }

    #[tokio::test]
    async fn two_registries_keep_separate_counts() {
        let a = Metrics::new();
        let b = Metrics::new();
        let (app_a, app_b) = (app(&a), app(&b));
        hit(&app_a, Method::GET, "/slow").await;
        hit(&app_a, Method::GET, "/slow").await;
        hit(&app_b, Method::GET, "/slow").await;
        assert!(a
            .render()
            .contains(r#"http_requests_total{method="GET",route="/slow",status="200"} 2"#));
        assert!(b
            .render()
            .contains(r#"http_requests_total{method="GET",route="/slow",status="200"} 1"#));
    }

    #[test]
    fn external_figures_and_guards_render() {
        let m = Metrics::new();
        m.set_connections(3, 17);
        m.set_resident_memory_bytes(12_345_678);
        m.rate_limited().inc();
        let ws = m.ws_connection();
        let _sse = m.sse_subscriber();
        let _sse2 = m.sse_subscriber();
        let text = m.render();
        for line in [
            "http_connections_active 3",
            "http_connections_total 17",
            "process_resident_memory_bytes 12345678",
            "rate_limited_total 1",
            "ws_connections_active 1",
            "sse_subscribers_active 2",
        ] {
            assert!(samples(&text).contains(&line), "{line} missing in {text}");
        }
        drop(ws);
        assert!(samples(&m.render()).contains(&"ws_connections_active 0"));
    }

    #[test]
    fn every_sample_line_is_name_labels_value() {
        let m = Metrics::new();
        m.set_connections(1, 1);
        let text = m.render();
        assert!(text.ends_with("# EOF\n"));
        for line in samples(&text) {
            let (_, value) = line.rsplit_once(' ').unwrap();
            value
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("bad value in {line}"));
        }
    }

    #[tokio::test]
    async fn rate_limit_answers_are_counted() {
        use axum::response::IntoResponse;
        let m = Metrics::new();
        let app = Router::new()
            .route(
                "/limited",
                get(|| async {
                    crate::error::ApiError::from(ErrorCode::RateLimit).into_response()
                }),
            )
            .route("/ok", get(|| async { "ok" }))
            .layer(m.layer());
        for path in ["/limited", "/limited", "/ok"] {
            let req = Request::get(path).body(Body::empty()).unwrap();
            app.clone().oneshot(req).await.unwrap();
        }
        assert!(
            m.render().contains("rate_limited_total 2"),
            "{}",
            m.render()
        );
    }

    #[test]
    fn prometheus_text_names_counters_with_total_and_has_no_eof() {
        let m = Metrics::new();
        m.rate_limited().inc();
        let text = m.render_prometheus();
        assert!(
            text.contains("# TYPE rate_limited_total counter\n"),
            "{text}"
        );
        assert!(text.contains("# HELP rate_limited_total Requests refused by the rate limiter.\n"));
        assert!(text.contains("rate_limited_total 1\n"));
        assert!(text.contains("# TYPE http_request_duration_seconds histogram\n"));
        assert!(!text.contains("# EOF"));
        assert!(
            !text.contains(".."),
            "help text ends with one period: {text}"
        );
    }
}
