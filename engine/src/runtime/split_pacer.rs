//! Keeps the parallel splits of one bounded source reading in step.
//!
//! Downstream of a hash exchange every instance merges the watermarks of all
//! splits by their minimum, so a split that races ahead (tokio gives no
//! fairness between tasks) only makes windows stay open longer: measured on the
//! keyed TUMBLE benchmark at parallelism 2, the peak state per instance was 120k
//! key-windows instead of 18k and each row cost 1.5x. Flink bounds the same drift with
//! watermark alignment. For bounded sources, whose reads never wait for data,
//! the runtime paces splits by batches read instead: a split may be at most
//! [`MAX_LEAD_BATCHES`] batches ahead of the slowest split still reading.
//! Unbounded sources are not paced (a split with no data would stall the others).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Notify;

/// How many batches a split may read ahead of the slowest open split.
pub const MAX_LEAD_BATCHES: u64 = 1;

/// Batches read per split of one source node, shared by its split tasks.
#[derive(Debug)]
pub struct SplitPacer {
    /// Batches read so far, per split; `u64::MAX` once a split has stopped.
    read: Vec<AtomicU64>,
    /// Signalled whenever a split reads a batch or stops.
    changed: Notify,
}

impl SplitPacer {
    /// A pacer for `splits` splits, none of which has read anything.
    pub fn new(splits: usize) -> Arc<Self> {
        Arc::new(SplitPacer {
            read: (0..splits).map(|_| AtomicU64::new(0)).collect(),
            changed: Notify::new(),
        })
    }

    /// The place of split `split` in this pacer; it counts as stopped when the
    /// returned turn is dropped, so a failed or cancelled split never holds the
    /// others back.
    pub fn turn(self: &Arc<Self>, split: usize) -> SplitTurn {
        SplitTurn {
            pacer: self.clone(),
            split,
        }
    }

    fn may_read(&self, split: usize) -> bool {
        let Some(mine) = self.read.get(split).map(|r| r.load(Ordering::Acquire)) else {
            return true;
        };
        let slowest = self
            .read
            .iter()
            .map(|r| r.load(Ordering::Acquire))
            .min()
            .unwrap_or(mine);
        mine < slowest.saturating_add(MAX_LEAD_BATCHES)
    }

    fn set(&self, split: usize, update: impl FnOnce(&AtomicU64)) {
        if let Some(read) = self.read.get(split) {
            update(read);
            self.changed.notify_waiters();
        }
    }
}

/// One split's handle on its [`SplitPacer`].
#[derive(Debug)]
pub struct SplitTurn {
    pacer: Arc<SplitPacer>,
    split: usize,
}

impl SplitTurn {
    /// Waits until this split may read its next batch.
    pub async fn wait(&self) {
        loop {
            // Registered before the check, so a change between the check and
            // the await is not missed.
            let changed = self.pacer.changed.notified();
            if self.pacer.may_read(self.split) {
                return;
            }
            changed.await;
        }
    }

    /// Records that this split has read one more batch.
    pub fn read_one(&self) {
        self.pacer.set(self.split, |r| {
            r.fetch_add(1, Ordering::AcqRel);
        });
    }
}

impl Drop for SplitTurn {
    fn drop(&mut self) {
        self.pacer
            .set(self.split, |r| r.store(u64::MAX, Ordering::Release));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_split_waits_for_the_slowest_and_is_released_when_it_reads_or_stops() {
        let pacer = SplitPacer::new(2);
        let (fast, slow) = (pacer.turn(0), pacer.turn(1));
        for _ in 0..MAX_LEAD_BATCHES {
            fast.wait().await;
            fast.read_one();
        }
        // Two batches ahead: the fast split must wait.
        let blocked = tokio::time::timeout(Duration::from_millis(20), fast.wait()).await;
        assert!(blocked.is_err(), "a split ran further ahead than allowed");

        let waiter = tokio::spawn(async move {
            fast.wait().await;
            fast
        });
        slow.read_one();
        let fast = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the slow split's read released the fast one")
            .unwrap();
        fast.read_one();
        let blocked = tokio::time::timeout(Duration::from_millis(20), fast.wait()).await;
        assert!(blocked.is_err());

        // A split that stops (ended, failed or cancelled) holds nobody back.
        drop(slow);
        tokio::time::timeout(Duration::from_secs(5), fast.wait())
            .await
            .expect("a stopped split released the others");
    }
}
