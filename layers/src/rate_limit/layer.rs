//! The layer, its service, and the background reclamation of idle keys.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DashMapStateStore;
use http::header::RETRY_AFTER;
use http::Request;
use ipnet::IpNet;
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::headers::{ceil_secs, retry_after, Values};
use super::{ClientIp, KeyExtractor, RateLimit};
use crate::error::{ApiError, ErrorCode};

/// How often idle keys are reclaimed unless [`RateLimitLayer::reclaim_every`] says otherwise.
pub const DEFAULT_RECLAIM_INTERVAL: Duration = Duration::from_secs(30);

/// `None` is the shared key of requests the extractor could not key.
type Limiter<K> = governor::RateLimiter<
    Option<K>,
    DashMapStateStore<Option<K>>,
    DefaultClock,
    StateInformationMiddleware,
>;

/// State shared by a layer and every service it made.
struct Shared<K: std::hash::Hash + Eq + Clone> {
    limiter: Limiter<K>,
    limit: RateLimit,
    values: Arc<Values>,
    reclaim_every: Duration,
    reclaimer_started: AtomicBool,
}

impl<K> Shared<K>
where
    K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
{
    /// Drops keys whose state is the same as a fresh key's, then gives the memory back.
    fn reclaim(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// Starts the reclaimer on first use inside a tokio runtime. One relaxed load on the hot path.
    fn ensure_reclaimer(self: &Arc<Self>) {
        if self.reclaimer_started.load(Ordering::Relaxed) {
            return;
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            self.start_reclaimer(&handle);
        }
    }

    fn start_reclaimer(self: &Arc<Self>, handle: &tokio::runtime::Handle) {
        if self
            .reclaimer_started
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        // Only a `Weak`: the task must not keep the limiter alive, and ends once every layer and
        // service holding it is dropped.
        let weak: Weak<Self> = Arc::downgrade(self);
        let every = self.reclaim_every;
        handle.spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await; // the first tick is immediate
            loop {
                ticks.tick().await;
                match weak.upgrade() {
                    Some(shared) => shared.reclaim(),
                    None => break,
                }
            }
        });
    }
}

/// Layer that applies the [`RateLimitService`] middleware: a keyed GCRA limiter answering 429
/// `RATE_LIMIT` over quota and adding the RateLimit headers to every response.
///
/// Clones share one limiter. See the [module docs](super) for an example.
#[must_use]
pub struct RateLimitLayer<X = ClientIp, K = IpAddr>
where
    K: std::hash::Hash + Eq + Clone,
{
    shared: Arc<Shared<K>>,
    extractor: X,
}

impl<X: Clone, K: std::hash::Hash + Eq + Clone> Clone for RateLimitLayer<X, K> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            extractor: self.extractor.clone(),
        }
    }
}

impl<X: std::fmt::Debug, K: std::hash::Hash + Eq + Clone> std::fmt::Debug for RateLimitLayer<X, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("limit", &self.shared.limit)
            .field("extractor", &self.extractor)
            .field("reclaim_every", &self.shared.reclaim_every)
            .finish()
    }
}

fn shared<K>(limit: RateLimit, reclaim_every: Duration) -> Arc<Shared<K>>
where
    K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
{
    Arc::new(Shared {
        limiter: governor::RateLimiter::dashmap(limit.quota()).with_middleware(),
        limit,
        values: Arc::new(Values::new(limit.burst_size(), limit.window().as_secs())),
        reclaim_every,
        reclaimer_started: AtomicBool::new(false),
    })
}

impl RateLimitLayer<ClientIp, IpAddr> {
    /// Limits each client IP to `limit` (see [`ClientIp`]); `X-Forwarded-For` is ignored until
    /// [`trusted_proxies`](Self::trusted_proxies) names the proxies whose header to believe.
    pub fn new(limit: RateLimit) -> Self {
        Self::keyed_by(limit, ClientIp::new())
    }

    /// Believes `X-Forwarded-For` from peers in these networks.
    pub fn trusted_proxies(mut self, proxies: impl IntoIterator<Item = IpNet>) -> Self {
        self.extractor = ClientIp::trusting(proxies);
        self
    }
}

impl<X, K> RateLimitLayer<X, K>
where
    K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
{
    /// Limits each key `extractor` returns to `limit`.
    ///
    /// A closure must name its request type, `|req: &Request<Body>| ...`; see the
    /// [module docs](super) for keying by JWT subject.
    pub fn keyed_by(limit: RateLimit, extractor: X) -> Self
    where
        X: KeyExtractor<Body, Key = K>,
    {
        Self {
            shared: shared(limit, DEFAULT_RECLAIM_INTERVAL),
            extractor,
        }
    }

    /// How often idle keys are dropped (default 30 s). Call before the layer is first used.
    pub fn reclaim_every(mut self, every: Duration) -> Self {
        let every = every.max(Duration::from_millis(1));
        self.shared = shared(self.shared.limit, every);
        self
    }

    /// Starts the reclamation task on `handle` now, rather than on first use inside a runtime.
    pub fn start_reclaimer(&self, handle: &tokio::runtime::Handle) {
        self.shared.start_reclaimer(handle);
    }

    /// The quota.
    pub fn limit(&self) -> RateLimit {
        self.shared.limit
    }

    /// How many keys the limiter holds state for (idle ones included until reclaimed).
    pub fn tracked_keys(&self) -> usize {
        self.shared.limiter.len()
    }

    /// Drops idle keys now, as the background task does periodically.
    pub fn reclaim(&self) {
        self.shared.reclaim();
    }

    #[cfg(test)]
    pub(super) fn check(&self, key: K) -> bool {
        self.shared.limiter.check_key(&Some(key)).is_ok()
    }
}

impl<S, X: Clone, K> Layer<S> for RateLimitLayer<X, K>
where
    K: std::hash::Hash + Eq + Clone,
{
    type Service = RateLimitService<S, X, K>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService {
            inner,
            shared: Arc::clone(&self.shared),
            extractor: self.extractor.clone(),
        }
    }
}

/// Middleware that rate-limits requests per key. See [`RateLimitLayer`].
pub struct RateLimitService<S, X = ClientIp, K = IpAddr>
where
    K: std::hash::Hash + Eq + Clone,
{
    inner: S,
    shared: Arc<Shared<K>>,
    extractor: X,
}

impl<S: Clone, X: Clone, K: std::hash::Hash + Eq + Clone> Clone for RateLimitService<S, X, K> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
            extractor: self.extractor.clone(),
        }
    }
}

impl<S: std::fmt::Debug, X: std::fmt::Debug, K: std::hash::Hash + Eq + Clone> std::fmt::Debug
    for RateLimitService<S, X, K>
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimitService")
            .field("inner", &self.inner)
            .field("limit", &self.shared.limit)
            .field("extractor", &self.extractor)
            .finish()
    }
}

impl<S, X, K: std::hash::Hash + Eq + Clone> RateLimitService<S, X, K> {
    define_inner_service_accessors!();
}

impl<S, X, K, B> Service<Request<B>> for RateLimitService<S, X, K>
where
    S: Service<Request<B>, Response = Response>,
    X: KeyExtractor<B, Key = K>,
    K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // No backpressure here: over-quota requests are answered 429 from `call`.
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        self.shared.ensure_reclaimer();
        let key = self.extractor.extract(&req);
        let limiter = &self.shared.limiter;
        match limiter.check_key(&key) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                // Every request spent from the burst comes back after one replenish interval.
                let spent = self.shared.limit.burst_size().saturating_sub(remaining);
                let reset = ceil_secs(self.shared.limit.replenish_interval() * spent);
                ResponseFuture {
                    kind: Kind::Inner {
                        future: self.inner.call(req),
                        headers: Some((Arc::clone(&self.shared.values), remaining, reset)),
                    },
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(limiter.clock().now());
                let wait_secs = ceil_secs(wait).max(1);
                // The whole burst is back one interval per cell after the next one is.
                let full = wait
                    + self.shared.limit.replenish_interval()
                        * self.shared.limit.burst_size().saturating_sub(1);
                let values = &self.shared.values;
                let mut res = ApiError::from(ErrorCode::RateLimit)
                    .with_header(RETRY_AFTER, retry_after(wait_secs))
                    .into_response();
                values.write(res.headers_mut(), 0, ceil_secs(full).max(1));
                ResponseFuture {
                    kind: Kind::Reject {
                        response: Some(res),
                    },
                }
            }
        }
    }
}

pin_project! {
    /// Response future for [`RateLimitService`]: adds the RateLimit headers to the inner response, or
    /// yields the 429.
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Inner {
            #[pin]
            future: F,
            headers: Option<(Arc<Values>, u32, u64)>,
        },
        Reject { response: Option<Response> },
    }
}

impl<F, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { future, headers } => {
                let mut res = std::task::ready!(future.poll(cx))?;
                if let Some((values, remaining, reset)) = headers.take() {
                    values.write(res.headers_mut(), remaining, reset);
                }
                Poll::Ready(Ok(res))
            }
            KindProj::Reject { response } => {
                Poll::Ready(Ok(response.take().expect("future polled after completion")))
            }
        }
    }
}
