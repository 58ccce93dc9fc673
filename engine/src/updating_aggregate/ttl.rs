//! State TTL (Flink's `table.exec.state.ttl`, processing time): when each group
//! was last touched, whether it has expired, and the periodic sweep that drops
//! expired groups from memory.

use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{ArrayRef, BooleanArray};
use datafusion::arrow::compute::filter;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::logical_expr::EmitTo;
use datafusion::physical_plan::aggregates::group_values::{GroupValues, new_group_values};
use datafusion::physical_plan::aggregates::order::GroupOrdering;

use crate::error::{EngineError, Result};

/// A processing-time clock in milliseconds; injectable so tests control time.
pub type ProcessingClock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The default clock: milliseconds elapsed since the clock was made
/// (`std::time::Instant`, monotonic).
pub fn monotonic_clock() -> ProcessingClock {
    let start = Instant::now();
    Arc::new(move || i64::try_from(start.elapsed().as_millis()).unwrap_or(i64::MAX))
}

/// Last access time per group id and the schedule of sweeps.
pub(super) struct GroupExpiry {
    ttl_ms: Option<i64>,
    clock: ProcessingClock,
    /// Processing time of each group's last row.
    last_access: Vec<i64>,
    /// No sweep before this time (at most one per `ttl_ms`).
    next_cleanup: i64,
}

impl GroupExpiry {
    /// Starts the sweep schedule now (one TTL from the clock's current time).
    pub(super) fn new(ttl_ms: Option<i64>, clock: ProcessingClock) -> Self {
        let next_cleanup = match ttl_ms {
            Some(ttl) => clock().saturating_add(ttl),
            None => i64::MAX,
        };
        GroupExpiry {
            ttl_ms,
            clock,
            last_access: Vec::new(),
            next_cleanup,
        }
    }

    /// The current processing time, or 0 without a TTL (the clock is not read).
    pub(super) fn now(&self) -> i64 {
        if self.ttl_ms.is_some() {
            (self.clock)()
        } else {
            0
        }
    }

    /// Number of groups tracked.
    pub(super) fn len(&self) -> usize {
        self.last_access.len()
    }

    /// Approximate bytes held.
    pub(super) fn size(&self) -> usize {
        self.last_access.capacity() * 8
    }

    /// Whether `group` has been idle for the TTL or longer at `now`.
    pub(super) fn expired(&self, group: usize, now: i64) -> bool {
        match self.ttl_ms {
            Some(ttl) => self
                .last_access
                .get(group)
                .is_some_and(|&t| now.saturating_sub(t) >= ttl),
            None => false,
        }
    }

    /// Tracks `groups` groups; new ones are accessed at `now`.
    pub(super) fn resize(&mut self, groups: usize, now: i64) {
        self.last_access.resize(groups, now);
    }

    /// Per group, the processing time since its last row (0 without a TTL),
    /// for a checkpoint: a restored instance's clock starts afresh.
    pub(super) fn idle_times(&self) -> Vec<i64> {
        let now = self.now();
        self.last_access
            .iter()
            .map(|&t| {
                if self.ttl_ms.is_some() {
                    now.saturating_sub(t).max(0)
                } else {
                    0
                }
            })
            .collect()
    }

    /// Tracks the groups of a checkpoint, given how long each had been idle.
    pub(super) fn restore(&mut self, idle_times: &[i64]) {
        let now = self.now();
        self.last_access = idle_times
            .iter()
            .map(|&idle| now.saturating_sub(idle.max(0)))
            .collect();
    }

    /// Records that `groups` were accessed at `now`.
    pub(super) fn touch(&mut self, groups: &[usize], now: i64) {
        for &g in groups {
            if let Some(t) = self.last_access.get_mut(g) {
                *t = now;
            }
        }
    }

    /// When a sweep is due at `now` and some group has expired: forgets the
    /// expired groups and returns, per group id, whether it is kept. The
    /// caller must drop the other groups from the rest of its state.
    pub(super) fn sweep(&mut self, now: i64) -> Option<Vec<bool>> {
        let ttl = self.ttl_ms?;
        if now < self.next_cleanup {
            return None;
        }
        self.next_cleanup = now.saturating_add(ttl);
        let keep: Vec<bool> = (0..self.len()).map(|g| !self.expired(g, now)).collect();
        if keep.iter().all(|&k| k) {
            return None;
        }
        retain_kept(&mut self.last_access, &keep);
        Some(keep)
    }
}

/// Keeps the elements of `values` whose `keep` entry is true, in order.
pub(super) fn retain_kept<T>(values: &mut Vec<T>, keep: &[bool]) {
    let mut i = 0;
    values.retain(|_| {
        let k = keep.get(i).copied().unwrap_or(false);
        i += 1;
        k
    });
}

/// Rebuilds the key table with the kept groups only; they keep their order, so
/// the kept group `g` gets the id `keep[..g].count(true)`.
pub(super) fn retain_keys(
    values: &mut Box<dyn GroupValues>,
    group_schema: &SchemaRef,
    keep: &[bool],
) -> Result<()> {
    let keys = values.emit(EmitTo::All)?;
    let mask = BooleanArray::from(keep.to_vec());
    let keys = keys
        .iter()
        .map(|k| filter(k.as_ref(), &mask))
        .collect::<Result<Vec<_>, _>>()?;
    *values = key_table(group_schema, &keys)?;
    Ok(())
}

/// A key table holding the rows of `keys`, which must be distinct, with the ids
/// 0, 1, 2, ... in row order.
pub(super) fn key_table(
    group_schema: &SchemaRef,
    keys: &[ArrayRef],
) -> Result<Box<dyn GroupValues>> {
    let mut table = new_group_values(group_schema.clone(), &GroupOrdering::None)?;
    let rows = keys.first().map_or(0, |k| k.len());
    if rows > 0 {
        let mut ids = Vec::with_capacity(rows);
        table.intern(keys, &mut ids)?;
        // Distinct keys interned in order get ids 0, 1, 2, ...
        if ids.iter().enumerate().any(|(i, &g)| i != g) {
            return Err(EngineError::InvalidGraph(
                "updating aggregate: rebuilding the key table did not number the groups in \
                 order (duplicate keys?)"
                    .into(),
            ));
        }
    }
    Ok(table)
}
