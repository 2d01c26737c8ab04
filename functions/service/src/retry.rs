//! Exponential backoff with full jitter, bounded by a deadline.
//!
//! Full jitter (sleep a uniform random time in `[0, min(cap, base * 2^n)]`)
//! spreads retries of many concurrent writers instead of having them hammer a
//! throttled table in lock-step (see the AWS Architecture Blog's "Exponential
//! Backoff And Jitter").

use rand::Rng;
use std::time::{Duration, Instant};

/// Backoff parameters for retries of throttled or partially processed calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Upper bound of the first sleep.
    pub base: Duration,
    /// Upper bound of any sleep.
    pub cap: Duration,
}

impl Default for RetryPolicy {
    /// 50 ms doubling up to 5 s: DynamoDB adapts partition capacity within seconds.
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_millis(50),
            cap: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// A random sleep for retry number `attempt` (0 for the first retry).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << attempt.min(20))
            .min(self.cap);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rand::thread_rng().gen_range(0..=nanos))
    }

    /// Sleeps for the backoff of `attempt`, but never past `deadline`.
    /// Returns `false` (without sleeping) when the deadline has already passed.
    pub async fn wait(&self, attempt: u32, deadline: Instant) -> bool {
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        tokio::time::sleep(self.backoff(attempt).min(deadline - now)).await;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_stays_within_the_exponential_ceiling_and_cap() {
        let p = RetryPolicy {
            base: Duration::from_millis(10),
            cap: Duration::from_millis(100),
        };
        for attempt in 0..40 {
            let ceiling = Duration::from_millis(10 * (1u64 << attempt.min(20))).min(p.cap);
            for _ in 0..20 {
                assert!(p.backoff(attempt) <= ceiling);
            }
        }
        // Jitter: not every draw is the same.
        let draws: std::collections::HashSet<_> = (0..20).map(|_| p.backoff(5)).collect();
        assert!(draws.len() > 1);
    }
}
