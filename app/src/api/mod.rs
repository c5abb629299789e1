//! The versioned REST API: `/api/{v1,v2}/{users,posts}[/{id}]` and `/api/perf`.
//!
//! Handlers return data or [`ApiError`]; none formats an error body itself. Both versions share
//! the store and the write logic and differ only in how a user is rendered and in v2's pagination.

pub mod store;

use std::time::{Duration, Instant};

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post, MethodRouter};
use axum::{Json, Router};
use crosscut::auth::Claims;
use crosscut::error::{ApiError, ErrorCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::AppState;
use store::{Post, User};

/// The API's routes, with write methods passed through `guard` (the permission check).
pub fn routes(
    guard: impl Fn(MethodRouter<AppState>) -> MethodRouter<AppState>,
) -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/users",
            get(list_users_v1).merge(guard(post(create_user::<1>))),
        )
        .route(
            "/api/v2/users",
            get(list_users_v2).merge(guard(post(create_user::<2>))),
        )
        .route(
            "/api/v1/users/{id}",
            get(get_user::<1>).merge(guard(
                axum::routing::put(update_user::<1>).delete(delete_user),
            )),
        )
        .route(
            "/api/v2/users/{id}",
            get(get_user::<2>).merge(guard(
                axum::routing::put(update_user::<2>).delete(delete_user),
            )),
        )
        .route(
            "/api/v1/posts",
            get(list_posts::<1>).merge(guard(post(create_post))),
        )
        .route(
            "/api/v2/posts",
            get(list_posts::<2>).merge(guard(post(create_post))),
        )
        .route(
            "/api/v1/posts/{id}",
            get(get_post).merge(guard(axum::routing::put(update_post).delete(delete_post))),
        )
        .route(
            "/api/v2/posts/{id}",
            get(get_post).merge(guard(axum::routing::put(update_post).delete(delete_post))),
        )
        .route("/api/perf", get(perf))
        .route("/api/{version}", any(other_version))
        .route("/api/{version}/{*rest}", any(other_version))
}

/// Anything under `/api/` that no route above took: an unknown version is 400, an unknown
/// resource of a known version is 404.
async fn other_version(Path(params): Path<Vec<(String, String)>>) -> ApiError {
    let version = params
        .iter()
        .find(|(k, _)| k == "version")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    if version == "v1" || version == "v2" {
        ApiError::not_found("no such resource")
    } else {
        let shown: String = version.chars().take(32).collect();
        ApiError::new(
            ErrorCode::UnsupportedVersion,
            format!("API version `{shown}` is not supported; use v1 or v2"),
        )
    }
}

/// `Json<T>` whose rejections are our JSON errors: a syntax error or a bad field is 400
/// `VALIDATION_ERROR` naming the problem, a body over the limit is 413.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Self(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::JsonDataError(e) => ApiError::validation(format!(
            "invalid field: {}",
            std::error::Error::source(&e)
                .map(|s| s.to_string())
                .unwrap_or_else(|| e.body_text())
        )),
        JsonRejection::JsonSyntaxError(e) => ApiError::validation(format!(
            "malformed JSON: {}",
            std::error::Error::source(&e)
                .map(|s| s.to_string())
                .unwrap_or_else(|| e.body_text())
        )),
        JsonRejection::MissingJsonContentType(_) => {
            ApiError::validation("expected `Content-Type: application/json`")
        }
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::from(ErrorCode::PayloadTooLarge)
        }
        other => ApiError::validation(other.body_text()),
    }
}

/// Query-string extractor with our JSON rejection.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Self(q.0))
            .map_err(|e: QueryRejection| {
                let detail = std::error::Error::source(&e)
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| e.body_text());
                ApiError::validation(format!("invalid query string: {detail}"))
            })
    }
}

#[derive(Serialize)]
struct UserV1<'a> {
    user_id: &'a str,
    name: &'a str,
    version: &'static str,
}

#[derive(Serialize)]
struct Profile<'a> {
    name: &'a str,
    email: &'a str,
    created_at: &'a str,
}

#[derive(Serialize)]
struct UserV2<'a> {
    user_id: &'a str,
    version: &'static str,
    profile: Profile<'a>,
}

fn v1(u: &User) -> UserV1<'_> {
    UserV1 {
        user_id: &u.user_id,
        name: &u.name,
        version: "v1",
    }
}

fn v2(u: &User) -> UserV2<'_> {
    UserV2 {
        user_id: &u.user_id,
        version: "v2",
        profile: Profile {
            name: &u.name,
            email: &u.email,
            created_at: &u.created_at,
        },
    }
}

fn render_user<const V: u8>(u: &User) -> Response {
    if V == 1 {
        Json(v1(u)).into_response()
    } else {
        Json(v2(u)).into_response()
    }
}

#[derive(Serialize)]
struct Pagination {
    page: usize,
    per_page: usize,
    total: usize,
}

/// `?page=&per_page=` of v2 lists.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    page: Option<usize>,
    per_page: Option<usize>,
}

impl PageQuery {
    fn bounds(&self) -> Result<(usize, usize), ApiError> {
        let page = self.page.unwrap_or(1);
        let per_page = self.per_page.unwrap_or(20);
        if page == 0 {
            return Err(ApiError::validation("page: must be at least 1"));
        }
        if !(1..=100).contains(&per_page) {
            return Err(ApiError::validation(format!(
                "per_page: must be between 1 and 100, got {per_page}"
            )));
        }
        Ok((page, per_page))
    }
}

async fn list_users_v1(State(state): State<AppState>) -> Response {
    #[derive(Serialize)]
    struct Body<'a> {
        users: Vec<UserV1<'a>>,
    }
    state.store.with_users(|users, _| {
        Json(Body {
            users: users.map(v1).collect(),
        })
        .into_response()
    })
}

async fn list_users_v2(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Response, ApiError> {
    #[derive(Serialize)]
    struct Body<'a> {
        users: Vec<UserV2<'a>>,
        pagination: Pagination,
    }
    let (page, per_page) = q.bounds()?;
    Ok(state.store.with_users(|users, total| {
        let skip = (page - 1).saturating_mul(per_page);
        Json(Body {
            users: users.skip(skip).take(per_page).map(v2).collect(),
            pagination: Pagination {
                page,
                per_page,
                total,
            },
        })
        .into_response()
    }))
}

async fn get_user<const V: u8>(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let user = state.store.user(&id).ok_or_else(|| no_such("user", &id))?;
    Ok(render_user::<V>(&user))
}

fn no_such(kind: &str, id: &str) -> ApiError {
    let shown: String = id.chars().take(64).collect();
    ApiError::not_found(format!("no {kind} with id `{shown}`"))
}

/// Body of user create and update.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserInput {
    name: String,
    email: Option<String>,
}

impl UserInput {
    fn validate(self) -> Result<(String, Option<String>), ApiError> {
        let name = self.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(ApiError::validation("name: must be 1-100 characters"));
        }
        if let Some(email) = &self.email {
            let ok = email.len() <= 254
                && email
                    .split_once('@')
                    .is_some_and(|(a, b)| !a.is_empty() && b.contains('.') && !b.contains('@'));
            if !ok {
                return Err(ApiError::validation("email: not an email address"));
            }
        }
        Ok((name, self.email))
    }
}

fn created(location: String, body: Response) -> Response {
    let mut res = body;
    *res.status_mut() = StatusCode::CREATED;
    if let Ok(v) = HeaderValue::from_str(&location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

async fn create_user<const V: u8>(
    State(state): State<AppState>,
    ApiJson(input): ApiJson<UserInput>,
) -> Result<Response, ApiError> {
    let (name, email) = input.validate()?;
    let email = email.unwrap_or_default();
    let user = state.store.create_user(name, email);
    Ok(created(
        format!("/api/v{V}/users/{}", user.user_id),
        render_user::<V>(&user),
    ))
}

async fn update_user<const V: u8>(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<UserInput>,
) -> Result<Response, ApiError> {
    let (name, email) = input.validate()?;
    let user = state
        .store
        .update_user(&id, name, email)
        .ok_or_else(|| no_such("user", &id))?;
    Ok(render_user::<V>(&user))
}

async fn delete_user(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state.store.delete_user(&id) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(no_such("user", &id))
    }
}

async fn list_posts<const V: u8>(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Response, ApiError> {
    #[derive(Serialize)]
    struct Body<'a> {
        posts: Vec<&'a Post>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pagination: Option<Pagination>,
    }
    let (page, per_page) = if V == 1 { (1, usize::MAX) } else { q.bounds()? };
    Ok(state.store.with_posts(|posts, total| {
        let skip = (page - 1).saturating_mul(per_page);
        Json(Body {
            posts: posts.skip(skip).take(per_page).collect(),
            pagination: (V == 2).then_some(Pagination {
                page,
                per_page,
                total,
            }),
        })
        .into_response()
    }))
}

async fn get_post(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Post>, ApiError> {
    state
        .store
        .post(&id)
        .map(Json)
        .ok_or_else(|| no_such("post", &id))
}

/// Body of post create and update.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostInput {
    author_id: Option<String>,
    title: String,
    body: String,
}

impl PostInput {
    fn validate(self) -> Result<Self, ApiError> {
        if self.title.trim().is_empty() || self.title.chars().count() > 200 {
            return Err(ApiError::validation("title: must be 1-200 characters"));
        }
        if self.body.chars().count() > 10_000 {
            return Err(ApiError::validation(
                "body: must be at most 10000 characters",
            ));
        }
        Ok(self)
    }
}

async fn create_post(
    State(state): State<AppState>,
    claims: Option<Claims>,
    ApiJson(input): ApiJson<PostInput>,
) -> Result<Response, ApiError> {
    let input = input.validate()?;
    // Without `author_id`, the post is by the token's subject (it must still be a user).
    let author = input
        .author_id
        .or_else(|| claims.map(|c| c.sub))
        .ok_or_else(|| ApiError::validation("author_id: missing field"))?;
    if !state.store.user_exists(&author) {
        return Err(ApiError::validation(format!(
            "author_id: no user with id `{}`",
            author.chars().take(64).collect::<String>()
        )));
    }
    let post = state.store.create_post(author, input.title, input.body);
    let location = format!("/api/v1/posts/{}", post.id);
    Ok(created(location, Json(post).into_response()))
}

async fn update_post(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<PostInput>,
) -> Result<Json<Post>, ApiError> {
    let input = input.validate()?;
    state
        .store
        .update_post(&id, input.title, input.body)
        .map(Json)
        .ok_or_else(|| no_such("post", &id))
}

async fn delete_post(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state.store.delete_post(&id) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(no_such("post", &id))
    }
}

/// The seed workload: 1000 iterative Fibonacci numbers plus a 5 ms simulated database wait.
async fn perf() -> Response {
    #[derive(Serialize)]
    struct Body {
        processing_time_ms: f64,
        fibonacci_checksum: u64,
        iterations: u32,
    }
    let start = Instant::now();
    let mut checksum = 0u64;
    for i in 0..1000u64 {
        checksum = checksum.wrapping_add(fibonacci(std::hint::black_box(i % 30)));
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    let mut res = Json(Body {
        processing_time_ms: ms,
        fibonacci_checksum: checksum,
        iterations: 1000,
    })
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("{ms:.3}")) {
        res.headers_mut().insert("x-processing-time", v);
    }
    res
}

fn fibonacci(n: u64) -> u64 {
    let (mut a, mut b) = (0u64, 1u64);
    for _ in 0..n {
        (a, b) = (b, a.wrapping_add(b));
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fibonacci_is_right() {
        assert_eq!(fibonacci(0), 0);
        assert_eq!(fibonacci(1), 1);
        assert_eq!(fibonacci(29), 514_229);
    }

    #[test]
    fn page_bounds() {
        let q = |page, per_page| PageQuery { page, per_page }.bounds();
        assert_eq!(q(None, None).unwrap(), (1, 20));
        assert!(q(Some(0), None).is_err());
        assert!(q(None, Some(0)).is_err());
        assert!(q(None, Some(101)).is_err());
        assert_eq!(q(Some(3), Some(100)).unwrap(), (3, 100));
    }
}
