//! The demo's `GET /api/v1/users` handler and its plaintext route, rebuilt without the demo's
//! crate so the bare and stock servers answer the same bytes the same way: users in a
//! `RwLock<BTreeMap>`, rendered straight from the locked table with `axum::Json`.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

/// A stored user, as the demo's store keeps it.
pub(crate) struct User {
    user_id: String,
    name: String,
}

/// Users by sequence number, seeded with the contract's John and Jane.
#[derive(Clone)]
pub(crate) struct Store(Arc<RwLock<BTreeMap<u64, User>>>);

impl Store {
    fn seeded() -> Self {
        let mut rows = BTreeMap::new();
        for (n, name) in [(1, "John"), (2, "Jane")] {
            let user_id = format!("user{n}");
            rows.insert(
                n,
                User {
                    user_id,
                    name: name.to_owned(),
                },
            );
        }
        Self(Arc::new(RwLock::new(rows)))
    }
}

#[derive(Serialize)]
struct UserV1<'a> {
    user_id: &'a str,
    name: &'a str,
    version: &'static str,
}

#[derive(Serialize)]
struct Users<'a> {
    users: Vec<UserV1<'a>>,
}

async fn list_users_v1(State(store): State<Store>) -> Response {
    let table = store.0.read().unwrap_or_else(|e| e.into_inner());
    let users = table
        .values()
        .map(|u| UserV1 {
            user_id: &u.user_id,
            name: &u.name,
            version: "v1",
        })
        .collect();
    Json(Users { users }).into_response()
}

/// `GET /api/v1/users` and `GET /__test/plaintext`, the two routes the load benchmark drives.
pub(crate) fn routes() -> Router {
    Router::new()
        .route("/api/v1/users", get(list_users_v1))
        .route("/__test/plaintext", get(|| async { "Hello, World!" }))
        .with_state(Store::seeded())
}

/// Reads the listen address from the first argument (default `127.0.0.1:9001`).
pub(crate) fn addr_from_args() -> std::net::SocketAddr {
    std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".to_owned())
        .parse()
        .expect("the first argument is a socket address such as 127.0.0.1:9001")
}

/// Binds `addr` and serves `app` with TCP_NODELAY on every connection, as the demo does.
pub(crate) async fn serve(addr: std::net::SocketAddr, app: Router) {
    use axum::serve::ListenerExt;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .expect("cannot bind the listen address")
        .tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
    println!("listening on http://{addr}");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .await
    .expect("server failed");
}
