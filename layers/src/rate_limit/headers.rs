//! The RateLimit header fields (IETF draft `draft-ietf-httpapi-ratelimit-headers`) and `Retry-After`.

use std::sync::OnceLock;
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

/// Numbers up to this are formatted once per process; the hot path cuts them out of that text.
const TABLE_MAX: u64 = 4096;

/// The decimal text of 0 to [`TABLE_MAX`] one after another, and where each number starts.
///
/// The text lives in a `static`, so a value cut from it is a `'static` slice: cloning it into a
/// response and dropping it later touch no reference count, where a value formatted at start-up
/// and cloned per request costs an atomic increment and decrement each time.
static SMALL_NUMBERS: OnceLock<(String, Box<[u32]>)> = OnceLock::new();

fn small_numbers() -> &'static (String, Box<[u32]>) {
    SMALL_NUMBERS.get_or_init(|| {
        let mut text = String::new();
        let mut starts = Vec::with_capacity(TABLE_MAX as usize + 2);
        for n in 0..=TABLE_MAX {
            starts.push(u32::try_from(text.len()).expect("the table is a few kilobytes"));
            text.push_str(&n.to_string());
        }
        starts.push(u32::try_from(text.len()).expect("the table is a few kilobytes"));
        (text, starts.into_boxed_slice())
    })
}

/// `n` as a header value: a `'static` slice of the table when it is small, else made per call.
fn number(n: u64) -> HeaderValue {
    if n > TABLE_MAX {
        return crate::value::number(n);
    }
    let (text, starts) = small_numbers();
    // `n <= TABLE_MAX`, so both indices are in the table.
    let (start, end) = (starts[n as usize] as usize, starts[n as usize + 1] as usize);
    HeaderValue::from_static(&text[start..end])
}

/// Header values computed once per layer.
#[derive(Debug)]
pub(super) struct Values {
    limit: HeaderValue,
    policy: HeaderValue,
}

impl Values {
    pub(super) fn new(burst: u32, window_secs: u64) -> Self {
        Self {
            limit: number(u64::from(burst)),
            policy: HeaderValue::try_from(format!("{burst};w={window_secs}"))
                .expect("digits and ';w=' are a valid header value"),
        }
    }

    /// Writes the four RateLimit fields.
    pub(super) fn write(&self, headers: &mut HeaderMap, remaining: u32, reset_secs: u64) {
        crate::room::make_room(headers, 4);
        headers.insert(RATELIMIT_LIMIT.clone(), self.limit.clone());
        headers.insert(RATELIMIT_REMAINING.clone(), number(u64::from(remaining)));
        headers.insert(RATELIMIT_RESET.clone(), number(reset_secs));
        headers.insert(RATELIMIT_POLICY.clone(), self.policy.clone());
    }
}

/// `Retry-After` in whole seconds.
pub(super) fn retry_after(secs: u64) -> HeaderValue {
    number(secs)
}

/// Whole seconds, rounded up.
pub(super) fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_back_on_both_sides_of_the_table() {
        for n in [
            0,
            1,
            9,
            10,
            99,
            100,
            999,
            1_000,
            4_095,
            4_096,
            4_097,
            1_000_000_000,
        ] {
            assert_eq!(number(n), HeaderValue::from(n), "{n}");
        }
    }
}
