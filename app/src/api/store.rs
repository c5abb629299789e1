//! The in-memory data behind the REST API.
//!
//! One `RwLock` per collection: reads (the common case, and the benchmarked one) share the lock,
//! and no lock is ever held across an `.await`.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{SystemTime, UNIX_EPOCH};

/// A user as stored; the API versions render it differently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// `user<N>`.
    pub user_id: String,
    /// Display name.
    pub name: String,
    /// Contact address.
    pub email: String,
    /// RFC 3339 creation time.
    pub created_at: String,
}

/// A post.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Post {
    /// `post<N>`.
    pub id: String,
    /// The author's `user_id`.
    pub author_id: String,
    /// Title.
    pub title: String,
    /// Text.
    pub body: String,
    /// RFC 3339 creation time.
    pub created_at: String,
}

/// A collection keyed by a numeric sequence, so listings come out in creation order.
#[derive(Debug)]
struct Table<T> {
    rows: BTreeMap<u64, T>,
    next: u64,
}

impl<T> Table<T> {
    fn new() -> Self {
        Self {
            rows: BTreeMap::new(),
            next: 1,
        }
    }
}

/// The shared store; clones share the data.
#[derive(Debug, Clone)]
pub struct Store {
    users: Arc<RwLock<Table<User>>>,
    posts: Arc<RwLock<Table<Post>>>,
}

impl Default for Store {
    fn default() -> Self {
        Self::seeded()
    }
}

/// Parses `<prefix><N>` into `N`; anything else cannot name a row.
fn seq(id: &str, prefix: &str) -> Option<u64> {
    id.strip_prefix(prefix)?.parse().ok()
}

// A poisoned lock only means a writer panicked mid-update; every update here is a single insert
// or remove, so the data is still consistent and serving it beats failing every later request.
fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

/// Now as RFC 3339 UTC, e.g. `2026-11-25T19:10:34Z`.
pub fn now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    rfc3339(secs)
}

/// Formats Unix seconds as RFC 3339 UTC.
pub fn rfc3339(secs: u64) -> String {
    let (year, month, day) = crate::log_format::civil_from_days(secs / 86_400);
    let rem = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

impl Store {
    /// A store holding the contract's seed data: `user1` (John) and `user2` (Jane).
    pub fn seeded() -> Self {
        let store = Self {
            users: Arc::new(RwLock::new(Table::new())),
            posts: Arc::new(RwLock::new(Table::new())),
        };
        store.create_user("John".into(), "john@example.com".into());
        store.create_user("Jane".into(), "jane@example.com".into());
        store
    }

    /// Every user, in creation order, through `f` so callers render without cloning.
    pub fn with_users<R>(&self, f: impl FnOnce(&mut dyn Iterator<Item = &User>, usize) -> R) -> R {
        let table = read(&self.users);
        let total = table.rows.len();
        f(&mut table.rows.values(), total)
    }

    /// One user.
    pub fn user(&self, id: &str) -> Option<User> {
        let n = seq(id, "user")?;
        read(&self.users).rows.get(&n).cloned()
    }

    /// Whether a user exists.
    pub fn user_exists(&self, id: &str) -> bool {
        seq(id, "user").is_some_and(|n| read(&self.users).rows.contains_key(&n))
    }

    /// Creates a user and returns it.
    pub fn create_user(&self, name: String, email: String) -> User {
        let mut table = write(&self.users);
        let n = table.next;
        table.next += 1;
        let user = User {
            user_id: format!("user{n}"),
            name,
            email,
            created_at: now_rfc3339(),
        };
        table.rows.insert(n, user.clone());
        user
    }

    /// Replaces a user's name and email; `None` if there is no such user.
    pub fn update_user(&self, id: &str, name: String, email: Option<String>) -> Option<User> {
        let n = seq(id, "user")?;
        let mut table = write(&self.users);
        let user = table.rows.get_mut(&n)?;
        user.name = name;
        if let Some(email) = email {
            user.email = email;
        }
        Some(user.clone())
    }

    /// Deletes a user; whether there was one.
    pub fn delete_user(&self, id: &str) -> bool {
        seq(id, "user").is_some_and(|n| write(&self.users).rows.remove(&n).is_some())
    }

    /// Every post, in creation order.
    pub fn with_posts<R>(&self, f: impl FnOnce(&mut dyn Iterator<Item = &Post>, usize) -> R) -> R {
        let table = read(&self.posts);
        let total = table.rows.len();
        f(&mut table.rows.values(), total)
    }

    /// One post.
    pub fn post(&self, id: &str) -> Option<Post> {
        let n = seq(id, "post")?;
        read(&self.posts).rows.get(&n).cloned()
    }

    /// Creates a post.
    pub fn create_post(&self, author_id: String, title: String, body: String) -> Post {
        let mut table = write(&self.posts);
        let n = table.next;
        table.next += 1;
        let post = Post {
            id: format!("post{n}"),
            author_id,
            title,
            body,
            created_at: now_rfc3339(),
        };
        table.rows.insert(n, post.clone());
        post
    }

    /// Replaces a post's title and body.
    pub fn update_post(&self, id: &str, title: String, body: String) -> Option<Post> {
        let n = seq(id, "post")?;
        let mut table = write(&self.posts);
        let post = table.rows.get_mut(&n)?;
        post.title = title;
        post.body = body;
        Some(post.clone())
    }

    /// Deletes a post; whether there was one.
    pub fn delete_post(&self, id: &str) -> bool {
        seq(id, "post").is_some_and(|n| write(&self.posts).rows.remove(&n).is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_with_john_and_jane() {
        let s = Store::seeded();
        assert_eq!(s.user("user1").unwrap().name, "John");
        assert_eq!(s.user("user2").unwrap().name, "Jane");
        assert!(s.user("user3").is_none());
        assert!(s.user("bogus").is_none());
        assert!(s.user("user99999999999999999999999").is_none());
    }

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_633_834), "2026-11-25T19:10:34Z");
    }

    #[test]
    fn created_rows_get_new_ids_and_can_be_deleted() {
        let s = Store::seeded();
        let u = s.create_user("Ann".into(), "ann@example.com".into());
        assert_eq!(u.user_id, "user3");
        assert!(s.delete_user("user3"));
        assert!(!s.delete_user("user3"));
        let p = s.create_post("user1".into(), "t".into(), "b".into());
        assert_eq!(s.post(&p.id).unwrap().title, "t");
    }
}
