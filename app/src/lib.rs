//! The crosscut demo server: the crosscut layers composed in the recommended order around a
//! versioned REST API, WebSocket chat, Server-Sent Events of live metrics, health and Prometheus
//! metrics, and a small web page. `../shared/CONTRACT.md` is its public contract.
//!
//! [`app`] builds the router without binding a port (the tests drive it in memory too); [`spawn`]
//! binds and serves it; `main.rs` only parses the command line.

pub mod api;
mod assets;
pub mod auth;
pub mod chat;
pub mod config;
pub mod health;
pub mod log_format;
pub mod log_writer;
pub mod sampler;
pub mod server;
pub mod sse;
#[cfg(feature = "test-hooks")]
pub mod test_hooks;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::MethodRouter;
use axum::Router;
use crosscut::error::{ApiError, ErrorCode};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceBuilder;

pub use config::Config;
use sampler::Sampler;

/// Everything the handlers share, behind one `Arc`.
///
/// axum clones the state for every request that extracts it; one reference count to bump is
/// measurably cheaper than the ten handles inside. Fields are reached through `Deref`.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The fields of [`AppState`].
pub struct Shared {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// The REST API's data.
    pub store: api::store::Store,
    /// Latest system figures.
    pub sampler: Sampler,
    /// Flips to `true` when the server starts shutting down.
    pub shutdown: Shutdown,
    /// The keys bearer tokens are checked with: HS256 with `jwt_secret`, or a random secret.
    pub jwt: crosscut::auth::JwtKeys,
    /// Open/total connections and in-flight/total requests, for `/health`, `/metrics` and headers.
    pub tracker: crosscut::connections::Tracker,
    /// This server's Prometheus registry (not process-global: two servers keep separate counts).
    pub metrics: crosscut::metrics::Metrics,
    /// The WebSocket chat room: hub, token keys, open-connection count.
    pub chat: chat::Chat,
    /// Open `/sse/metrics` streams.
    pub sse: sse::SseGauge,
}

/// The shutdown signal as long-lived routes see it: WebSocket and SSE tasks wait on it to close
/// their streams, since hyper's graceful shutdown cannot reach an upgraded connection.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// A signal and the sender that fires it.
    pub fn new() -> (watch::Sender<bool>, Self) {
        let (tx, rx) = watch::channel(false);
        (tx, Self(rx))
    }

    /// Whether shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        *self.0.borrow()
    }

    /// Completes when shutdown begins (at once if it already has).
    pub async fn wait(&self) {
        let mut rx = self.0.clone();
        // An error means the sender is gone, which only happens when the server is gone.
        let _ = rx.wait_for(|v| *v).await;
    }
}

impl AppState {
    /// State for `config`; starts the sampler, so it must run inside a tokio runtime.
    pub fn new(config: Config, shutdown: Shutdown) -> Self {
        let jwt = auth::server_keys(&config);
        let chat_rules = chat::ConnectionRules {
            ping_interval: Duration::from_secs(config.ws_ping_interval_secs.max(1)),
            pong_timeout: Duration::from_secs(config.ws_pong_timeout_secs.max(2)),
            ..chat::ConnectionRules::default()
        };
        Self(Arc::new(Shared {
            config: Arc::new(config),
            store: api::store::Store::seeded(),
            sampler: Sampler::start(Duration::from_secs(1)),
            shutdown,
            jwt: jwt.clone(),
            tracker: crosscut::connections::Tracker::new(),
            metrics: crosscut::metrics::Metrics::new(),
            // The same keys as the API, so the logged demo token works in the chat too.
            chat: chat::Chat::new(Some(jwt)).with_rules(chat_rules),
            sse: sse::SseGauge::new(),
        }))
    }
}

/// The API's write methods need a valid bearer token with permission `write`: 401 without a
/// (valid) token, 403 without the permission. `route_layer` leaves the method router's 405
/// fallback alone, so a wrong method still gets 405 rather than 401.
fn write_guard(state: &AppState) -> impl Fn(MethodRouter<AppState>) -> MethodRouter<AppState> {
    let auth = crosscut::auth::JwtAuthLayer::new(state.jwt.clone());
    // `require` is added first so that it runs inside (after) the auth layer that provides the claims.
    move |route| {
        route
            .route_layer(crosscut::auth::require("write"))
            .route_layer(auth.clone())
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found("no route for this path")
}

async fn method_not_allowed() -> ApiError {
    ApiError::from(ErrorCode::MethodNotAllowed)
}

/// Per-client-IP GCRA limit from the configuration (`X-Forwarded-For` only from
/// `trusted_proxies`); the metrics layer counts the 429s it answers into `rate_limited_total`.
fn rate_limit(config: &Config) -> crosscut::rate_limit::RateLimitLayer {
    // Validation rejects 0 for both; a `Config` built in code may not have been validated.
    let limit = crosscut::rate_limit::RateLimit::per_second(config.rate_limit_per_second.max(1))
        .burst(config.rate_limit_burst.max(1));
    crosscut::rate_limit::RateLimitLayer::new(limit).trusted_proxies(config.trusted_proxy_nets())
}

/// The preset's configuration from the demo's.
fn stack_config(config: &Config) -> crosscut::preset::StackConfig {
    crosscut::preset::StackConfig {
        cors_origins: config.cors_origins.clone(),
        timeout: Duration::from_secs(config.request_timeout_secs),
        max_body_bytes: config.max_body_bytes,
        compression: config.enable_compression,
        access_log: true,
    }
}

/// The demo's router with every layer in place, in the order `DESIGN.md` gives.
///
/// # Panics
///
/// If `state.config` has CORS origins [`Config::validate`] would refuse; a loaded configuration
/// has been validated.
pub fn app(state: AppState) -> Router {
    let stack = crosscut::preset::Stack::new(stack_config(&state.config))
        .unwrap_or_else(|e| panic!("configuration not validated: {e}"))
        .with_access_log(log_format::access_log_layer());
    let tracking = state
        .tracker
        .layer()
        .headers(state.config.expose_connection_headers);
    let metrics = state.metrics.layer();
    // Outermost first: request id, access log and security headers (outside everything that can
    // answer on its own), then tracking and metrics, then catch-panic (inside metrics, so a panic
    // counts as the 500 it becomes) and CORS (outside the rate limit and auth, so preflights are
    // never refused). Each group gets these with its own layers in one `Router::layer` call:
    // each call boxes every route once more and costs a clone of the boxed route and a boxed
    // future per request, so a route sits under one call only. `Router::layer` runs the layers
    // after routing, where `MatchedPath` is known, so metrics label by route template.
    let edge = || {
        ServiceBuilder::new()
            .layer(stack.outer())
            .layer(tracking.clone())
            .layer(metrics.clone())
            .layer(stack.inner())
    };
    // Both rate-limited groups share one limiter (clones share its state): a client has one quota.
    let limiter = rate_limit(&state.config);
    // Plain HTTP routes: the request timeout, body limit and compression apply here only.
    let http = api::routes(write_guard(&state));
    let http = http.merge(assets::routes());
    #[cfg(feature = "test-hooks")]
    let http = http.merge(test_hooks::routes());
    let http = http
        .method_not_allowed_fallback(method_not_allowed)
        .layer(edge().layer(limiter.clone()).layer(stack.http()));

    // Long-lived routes (WebSocket, SSE): no timeout, no compression.
    let live: Router<AppState> = Router::new().merge(chat::routes()).merge(sse::routes());
    let live = live
        .method_not_allowed_fallback(method_not_allowed)
        .layer(edge().layer(limiter));

    // Not rate limited: monitoring must keep working when a client is over its quota. The
    // fallback for unknown paths lives here, so it gets the edge layers too.
    let open: Router<AppState> = Router::new().merge(health::routes());
    let open = open
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(edge());

    let trusted = state.config.trusted_proxy_nets();
    let router = Router::new()
        .merge(http)
        .merge(live)
        .merge(open)
        .with_state(state);
    if trusted.is_empty() {
        return router;
    }
    // Behind a trusted proxy the peer is the proxy: resolve the real client once, outside the
    // access log, so its line shows the same client the rate limiter keys on.
    let resolver = crosscut::rate_limit::ClientIp::trusting(trusted);
    router.layer(axum::middleware::map_request(
        move |mut req: axum::extract::Request| {
            let resolver = resolver.clone();
            async move {
                let peer = req
                    .extensions()
                    .get::<axum::extract::ConnectInfo<SocketAddr>>()
                    .map(|c| c.0.ip());
                if let Some(peer) = peer {
                    let client = resolver.client(peer, req.headers());
                    req.extensions_mut()
                        .insert(crosscut::access_log::ClientIp(client));
                }
                req
            }
        },
    ))
}

/// A server running in the background: its address, its state and how to stop it.
pub struct Running {
    /// The address it is listening on.
    pub addr: SocketAddr,
    /// The state its handlers share.
    pub state: AppState,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<bool>,
}

impl Running {
    /// Waits until the server has stopped by itself (on a signal); `true` if it drained in time.
    pub async fn wait(self) -> bool {
        self.task.await.unwrap_or(false)
    }

    /// Starts graceful shutdown and waits for it; `true` if every request finished in the grace period.
    pub async fn stop(self) -> bool {
        let _ = self.shutdown.send(true);
        self.task.await.unwrap_or(false)
    }
}

/// The listener the demo serves on: TCP_NODELAY on every accepted socket, open and total
/// connections counted into `state.tracker`, and connections past `max_connections` answered 503
/// `OVERLOADED` and closed.
pub fn serving_listener(
    listener: TcpListener,
    state: &AppState,
) -> impl axum::serve::Listener<
    Addr = SocketAddr,
    Io = crosscut::connections::TrackedIo<tokio::net::TcpStream>,
> {
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        // Responses are written whole; Nagle's delay only adds latency to small ones.
        let _ = tcp.set_nodelay(true);
    });
    // The 503 is written before any HTTP layer runs, so it is given the same security headers
    // and a request id here.
    crosscut::connections::TrackedListener::new(
        listener,
        state.tracker.clone(),
        state.config.max_connections,
    )
    .response_headers(
        crosscut::security_headers::SecurityHeadersLayer::new()
            .headers()
            .iter()
            .cloned(),
    )
    .with_request_ids()
}

/// Binds `config.host:config.port` and serves the demo until [`Running::stop`] or, with
/// `on_signal`, SIGINT/SIGTERM.
pub async fn spawn(config: Config, on_signal: bool) -> std::io::Result<Running> {
    let addr = SocketAddr::new(
        config
            .host
            .parse()
            .map_err(|_| std::io::Error::other("host is not an IP address"))?,
        config.port,
    );
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let options = server::ServeOptions {
        shutdown_grace: Duration::from_secs(config.shutdown_grace_secs),
        ..server::ServeOptions::default()
    };
    let (tx, shutdown) = Shutdown::new();
    let state = AppState::new(config, shutdown);
    let router = app(state.clone());
    let listener = serving_listener(listener, &state);

    let stop = tx.clone();
    let mut stop_rx = tx.subscribe();
    let task = tokio::spawn(async move {
        let trigger = async move {
            if on_signal {
                tokio::select! {
                    () = server::shutdown_signal() => {},
                    _ = stop_rx.wait_for(|v| *v) => {},
                }
            } else {
                let _ = stop_rx.wait_for(|v| *v).await;
            }
            tracing::info!("shutting down: no new connections, draining in-flight requests");
            let _ = stop.send(true);
        };
        server::serve(listener, router, options, trigger).await
    });
    Ok(Running {
        addr,
        state,
        shutdown: tx,
        task,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::serve::Listener;

    #[tokio::test]
    async fn accepted_sockets_have_nodelay_and_are_counted() {
        let (_tx, shutdown) = Shutdown::new();
        let state = AppState::new(
            Config {
                jwt_secret: Some("x".repeat(32)),
                ..Config::default()
            },
            shutdown,
        );
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let mut listener = serving_listener(tcp, &state);
        let client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (io, peer) = listener.accept().await;
        assert_eq!(peer, client.local_addr().unwrap());
        assert!(
            io.get_ref().nodelay().unwrap(),
            "TCP_NODELAY on the accepted socket"
        );
        assert_eq!(state.tracker.open_connections(), 1);
        drop(io);
        assert_eq!(state.tracker.open_connections(), 0);
    }
}
