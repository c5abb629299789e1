//! What the numbers mean.

use std::num::NonZeroU32;
use std::time::Duration;

/// A quota: `per_second` requests a second on average, with bursts of up to `burst` requests.
///
/// `RateLimit::per_second(100).burst(200)` lets a client send 200 requests at once, then 100 a
/// second (one every 10 ms); after 2 s of silence it can burst 200 again. Without
/// [`burst`](Self::burst) the burst equals the rate.
///
/// # Differences from `tower_governor`
///
/// `tower_governor`'s `GovernorConfigBuilder::per_second(n)` sets the *period*: one request every
/// `n` seconds, so its `per_second(100)` allows one request per 100 s. Here `per_second(100)` is what
/// it says: 100 requests a second.
///
/// ```
/// use std::time::Duration;
/// use crosscut::rate_limit::RateLimit;
///
/// let limit = RateLimit::per_second(100).burst(200);
/// assert_eq!(limit.burst_size(), 200);
/// assert_eq!(limit.replenish_interval(), Duration::from_millis(10));
/// assert_eq!(limit.window(), Duration::from_secs(2));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct RateLimit {
    per_second: NonZeroU32,
    burst: NonZeroU32,
}

impl RateLimit {
    /// `n` requests a second on average; the burst is `n` too until [`burst`](Self::burst) changes it.
    ///
    /// # Panics
    ///
    /// If `n` is 0: a limit that lets nothing through is a programming error.
    pub fn per_second(n: u32) -> Self {
        let n =
            NonZeroU32::new(n).expect("RateLimit::per_second needs at least 1 request a second");
        Self {
            per_second: n,
            burst: n,
        }
    }

    /// Allows bursts of up to `n` requests.
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    pub fn burst(mut self, n: u32) -> Self {
        self.burst = NonZeroU32::new(n).expect("RateLimit::burst needs at least 1 request");
        self
    }

    /// The average rate, in requests a second.
    pub fn rate(&self) -> u32 {
        self.per_second.get()
    }

    /// The largest burst, in requests (the `RateLimit-Limit` header).
    pub fn burst_size(&self) -> u32 {
        self.burst.get()
    }

    /// The time one request's worth of quota takes to come back: one second divided by the rate.
    pub fn replenish_interval(&self) -> Duration {
        // At least 1 ns so that absurd rates stay a valid governor quota.
        (Duration::from_secs(1) / self.per_second.get()).max(Duration::from_nanos(1))
    }

    /// The time an idle client takes to get its whole burst back: `burst / rate` seconds, rounded up
    /// to whole seconds and at least 1 (the `w` of `RateLimit-Policy`).
    pub fn window(&self) -> Duration {
        let (burst, rate) = (
            u64::from(self.burst.get()),
            u64::from(self.per_second.get()),
        );
        Duration::from_secs(burst.div_ceil(rate).max(1))
    }

    pub(super) fn quota(&self) -> governor::Quota {
        governor::Quota::with_period(self.replenish_interval())
            .expect("the replenish interval is at least 1 ns")
            .allow_burst(self.burst)
    }
}
