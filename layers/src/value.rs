//! Numeric header values made per request (connection counters, RateLimit fields) without an
//! allocation each.
//!
//! `HeaderValue::from(n)` formats into a fresh buffer and then shrinks it to fit: two
//! allocations for a number, and the connections layer sends two numbers on every response. Here
//! each thread keeps one chunk of [`CHUNK_BYTES`] and hands out slices of it: a value costs a copy
//! of its digits and a reference-count increment, and the chunk is let go by its last value.
//!
//! The price is memory kept alive: a value kept after its response is gone keeps its whole chunk
//! from being freed. A counter in a response header is not kept; a request id might well be (a
//! handler may store it), which is why ids are not made here.

use std::cell::RefCell;

use bytes::BytesMut;
use http::header::HeaderValue;

/// Bytes per chunk: room for about a hundred 20-digit numbers, more of the usual sizes.
const CHUNK_BYTES: usize = 2048;

thread_local! {
    /// The rest of this thread's current chunk.
    static CHUNK: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// `n` in decimal as a header value.
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
    let digits = &digits[at..];
    let shared = CHUNK.try_with(|cell| {
        // Nothing is called while the chunk is borrowed, so the borrow cannot fail; if it did (or
        // the thread is being torn down) the value gets a buffer of its own.
        let mut chunk = cell.try_borrow_mut().ok()?;
        if chunk.capacity() < digits.len() {
            *chunk = BytesMut::with_capacity(CHUNK_BYTES);
        }
        chunk.extend_from_slice(digits);
        Some(chunk.split().freeze())
    });
    match shared {
        // Digits are always a valid header value.
        Ok(Some(shared)) => {
            HeaderValue::from_maybe_shared(shared).unwrap_or_else(|_| HeaderValue::from(n))
        }
        _ => HeaderValue::from(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_back() {
        for n in [0, 7, 10, 99, 100, 4096, 999_999_999, u64::MAX] {
            assert_eq!(number(n), HeaderValue::from(n), "{n}");
        }
    }

    #[test]
    fn values_do_not_share_bytes_they_should_not() {
        // More values than one chunk holds, each kept: none may see another's digits.
        let values: Vec<(u64, HeaderValue)> = (0..2_000u64)
            .map(|i| (i * 7_919, number(i * 7_919)))
            .collect();
        for (n, v) in &values {
            assert_eq!(v.to_str().unwrap(), n.to_string());
        }
    }

    #[test]
    fn consecutive_values_share_a_chunk() {
        // The point of the module: on a fresh thread the first value starts a chunk and the
        // second one's digits follow it in the same buffer, where `HeaderValue::from` would have
        // allocated a buffer for each.
        std::thread::spawn(|| {
            let a = number(123);
            let b = number(4_567);
            assert_eq!(
                b.as_bytes().as_ptr(),
                a.as_bytes().as_ptr().wrapping_add(a.len())
            );
        })
        .join()
        .unwrap();
    }

    #[test]
    fn values_outlive_their_thread() {
        let v = std::thread::spawn(|| number(12_345)).join().unwrap();
        assert_eq!(v, "12345");
    }
}
