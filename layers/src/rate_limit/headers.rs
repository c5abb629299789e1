//! The RateLimit header fields (IETF draft `draft-ietf-httpapi-ratelimit-headers`) and `Retry-After`.

use std::time::Duration;

use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;

/// `RateLimit-Limit`: the burst size.
pub static RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
/// `RateLimit-Remaining`: requests the client may still send right now.
pub static RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
/// `RateLimit-Reset`: seconds until the client has its whole burst back.
pub static RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");
/// `RateLimit-Policy`: `<burst>;w=<window seconds>`.
pub static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// Numbers up to this are formatted once at start-up; the hot path clones them (a reference-count
/// increment) instead of formatting and allocating.
const TABLE_MAX: u64 = 4096;

/// Header values computed once per layer.
#[derive(Debug)]
pub(super) struct Values {
    limit: HeaderValue,
    policy: HeaderValue,
    numbers: Box<[HeaderValue]>,
}

impl Values {
    pub(super) fn new(burst: u32, window_secs: u64) -> Self {
        let top = u64::from(burst).max(window_secs).min(TABLE_MAX);
        Self {
            limit: HeaderValue::from(burst),
            policy: HeaderValue::try_from(format!("{burst};w={window_secs}"))
                .expect("digits and ';w=' are a valid header value"),
            numbers: (0..=top).map(HeaderValue::from).collect(),
        }
    }

    fn number(&self, n: u64) -> HeaderValue {
        usize::try_from(n)
            .ok()
            .and_then(|i| self.numbers.get(i))
            .cloned()
            .unwrap_or_else(|| crate::value::number(n))
    }

    /// Writes the four RateLimit fields.
    pub(super) fn write(&self, headers: &mut HeaderMap, remaining: u32, reset_secs: u64) {
        crate::room::make_room(headers, 4);
        headers.insert(RATELIMIT_LIMIT.clone(), self.limit.clone());
        headers.insert(
            RATELIMIT_REMAINING.clone(),
            self.number(u64::from(remaining)),
        );
        headers.insert(RATELIMIT_RESET.clone(), self.number(reset_secs));
        headers.insert(RATELIMIT_POLICY.clone(), self.policy.clone());
    }

    /// `Retry-After` in whole seconds.
    pub(super) fn seconds(&self, secs: u64) -> HeaderValue {
        self.number(secs)
    }
}

/// Whole seconds, rounded up.
pub(super) fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}
