//! Wall-clock pacing for `'rows-per-second'`.
//!
//! The limiter spaces batches so that, on average, no more than the configured
//! rate is emitted: a batch starting at row `r` is released no earlier than
//! `start + r / rate`. It only delays; it never changes which rows are generated.

use std::time::Duration;

use tokio::time::Instant;

/// Paces a stream of rows to a fixed rate.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    rows_per_second: u64,
    start: Option<Instant>,
    released: u64,
}

impl RateLimiter {
    /// A limiter to `rows_per_second` (at least 1).
    pub fn new(rows_per_second: u64) -> Self {
        RateLimiter {
            rows_per_second: rows_per_second.max(1),
            start: None,
            released: 0,
        }
    }

    /// A batch size that gives about ten batches per second, capped by `preferred`.
    pub fn batch_size(&self, preferred: usize) -> usize {
        let tenth = usize::try_from(self.rows_per_second / 10).unwrap_or(usize::MAX);
        preferred.min(tenth).max(1)
    }

    /// Waits until `rows` more rows may be released, then counts them.
    pub async fn acquire(&mut self, rows: usize) {
        let start = *self.start.get_or_insert_with(Instant::now);
        let due_nanos =
            u128::from(self.released) * 1_000_000_000 / u128::from(self.rows_per_second);
        let due = start + Duration::from_nanos(u64::try_from(due_nanos).unwrap_or(u64::MAX));
        tokio::time::sleep_until(due).await;
        self.released += rows as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn paces_batches() {
        let mut limiter = RateLimiter::new(100);
        assert_eq!(limiter.batch_size(8192), 10);
        let begin = Instant::now();
        for _ in 0..5 {
            limiter.acquire(10).await;
        }
        // Batches start at rows 0, 10, 20, 30, 40: the last one at 0.4 s.
        assert_eq!(begin.elapsed(), Duration::from_millis(400));
    }
}
