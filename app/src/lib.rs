//! The crosscut demo server: the crosscut layers composed in the recommended order around a
//! versioned REST API, WebSocket chat, Server-Sent Events of live metrics, health and Prometheus
//! metrics, and a small web page. `../shared/CONTRACT.md` is its public contract.
//!
//! [`app`] builds the router without binding a port (the tests drive it in memory too); [`spawn`]
//! binds and serves it; `main.rs` only parses the command line.

pub mod api;
pub mod config;
pub mod sampler;
pub mod server;
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

pub use config::Config;
use sampler::Sampler;

/// Everything the handlers share. Cheap to clone: every field is a handle.
#[derive(Clone)]
pub struct AppState {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// The REST API's data.
    pub store: api::store::Store,
    /// Latest system figures.
    pub sampler: Sampler,
    /// Flips to `true` when the server starts shutting down.
    pub shutdown: Shutdown,
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
        Self {
            config: Arc::new(config),
            store: api::store::Store::seeded(),
            sampler: Sampler::start(Duration::from_secs(1)),
            shutdown,
        }
    }
}

/// Seam: the permission check on the API's write methods goes here.
fn write_guard(_state: &AppState) -> impl Fn(MethodRouter<AppState>) -> MethodRouter<AppState> {
    |route| route
}

async fn not_found() -> ApiError {
    ApiError::not_found("no route for this path")
}

async fn method_not_allowed() -> ApiError {
    ApiError::from(ErrorCode::MethodNotAllowed)
}

/// The demo's router with every layer in place, in the order `DESIGN.md` gives.
pub fn app(state: AppState) -> Router {
    // Plain HTTP routes: the request timeout, body limit and compression apply here only.
    let http = api::routes(write_guard(&state));
    #[cfg(feature = "test-hooks")]
    let http = http.merge(test_hooks::routes());
    let http = http.method_not_allowed_fallback(method_not_allowed);
    // seam(edge): http-only layers go on `http` here.

    // Long-lived routes (WebSocket, SSE): no timeout, no compression.
    let live: Router<AppState> = Router::new();
    // seam(live): chat and SSE routes merge into `live` here.
    let live = live.method_not_allowed_fallback(method_not_allowed);

    let limited = http.merge(live);
    // seam(rate-limit): the rate limiter goes on `limited` here.

    // Not rate limited: monitoring must keep working when a client is over its quota.
    let open: Router<AppState> = Router::new();
    // seam(observability): /health and /metrics merge into `open` here.
    let open = open.method_not_allowed_fallback(method_not_allowed);

    let router = Router::new()
        .merge(limited)
        .merge(open)
        .fallback(not_found)
        .with_state(state);
    // seam(edge): outer layers (request id, access log, security headers, tracking, metrics,
    // catch-panic, CORS) wrap `router` here.
    router
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
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        // Responses are written whole; Nagle's delay only adds latency to small ones.
        let _ = tcp.set_nodelay(true);
    });

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
