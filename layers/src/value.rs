//! Header values made per request (counters, request ids) without an allocation each.
//!
//! `HeaderValue::from(n)` formats into a fresh buffer and then shrinks it to fit: two
//! allocations for a number, and the connections layer sends two numbers on every response. Here
//! each thread keeps one chunk of [`CHUNK_BYTES`] and hands out slices of it: a value costs a copy
//! of its bytes and a reference-count increment, and the chunk is let go by its last value.
//!
//! The price is memory kept alive: a value kept after its response is gone (say, a request id
//! stored by a handler) keeps its whole chunk, at most [`CHUNK_BYTES`], from being freed.

use std::cell::RefCell;

use bytes::BytesMut;
use http::header::{HeaderValue, InvalidHeaderValue};

/// Bytes per chunk: room for about fifty 20-digit numbers or UUIDs.
const CHUNK_BYTES: usize = 2048;

/// Longer values get a buffer of their own rather than most of a chunk.
const MAX_SHARED: usize = 128;

thread_local! {
    /// The rest of this thread's current chunk.
    static CHUNK: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// `bytes` as a header value, in this thread's chunk when it is short.
pub(crate) fn text(bytes: &[u8]) -> Result<HeaderValue, InvalidHeaderValue> {
    if bytes.len() > MAX_SHARED {
        return HeaderValue::from_bytes(bytes);
    }
    let shared = CHUNK.try_with(|cell| {
        // Not reentrant, but a value is copied in and split off without calling out; a borrow
        // that fails anyway (or a thread being torn down) takes the path without the chunk.
        let mut chunk = cell.try_borrow_mut().ok()?;
        if chunk.capacity() < bytes.len() {
            *chunk = BytesMut::with_capacity(CHUNK_BYTES);
        }
        chunk.extend_from_slice(bytes);
        Some(chunk.split().freeze())
    });
    match shared {
        Ok(Some(shared)) => HeaderValue::from_maybe_shared(shared),
        _ => HeaderValue::from_bytes(bytes),
    }
}

/// `n` in decimal as a header value.
#[cfg(any(feature = "rate-limit", feature = "connections"))]
pub(crate) fn number(n: u64) -> HeaderValue {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = n;
    loop {
        at -= 1;
        // `rest % 10` is below 10, so the cast cannot truncate.
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    // Digits are always a valid header value; the fallback only avoids a panic path.
    text(&digits[at..]).unwrap_or_else(|_| HeaderValue::from(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(any(feature = "rate-limit", feature = "connections"))]
    fn numbers_read_back() {
        for n in [0, 7, 10, 99, 100, 4096, 999_999_999, u64::MAX] {
            assert_eq!(number(n), HeaderValue::from(n), "{n}");
        }
    }

    #[test]
    #[cfg(any(feature = "rate-limit", feature = "connections"))]
    fn values_do_not_share_bytes_they_should_not() {
        // More values than one chunk holds, each kept: none may see another's bytes.
        let values: Vec<(u64, HeaderValue)> = (0..2_000u64)
            .map(|i| (i * 7_919, number(i * 7_919)))
            .collect();
        for (n, v) in &values {
            assert_eq!(v.to_str().unwrap(), n.to_string());
        }
    }

    #[test]
    fn text_is_checked_like_any_header_value() {
        assert!(text(b"bad\nvalue").is_err());
        assert!(text(&[b'a'; 4 * MAX_SHARED]).is_ok());
        assert_eq!(text(b"abc").unwrap(), "abc");
        assert_eq!(text(b"").unwrap(), "");
    }

    #[test]
    #[cfg(any(feature = "rate-limit", feature = "connections"))]
    fn values_outlive_their_thread() {
        let v = std::thread::spawn(|| number(12_345)).join().unwrap();
        assert_eq!(v, "12345");
    }
}
