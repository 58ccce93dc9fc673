//! Row accounting per node.
//!
//! Every input row ends up in exactly one bucket: emitted (reached a sink without
//! being aggregated), aggregated (absorbed into an aggregate's state), filtered (a
//! `WHERE` dropped it), late (it arrived after its window fired) or rejected
//! (malformed). The counters are atomics so the CLI can show progress while the
//! job runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::time::{MIN_WATERMARK, Timestamp};

/// Live counters of one node. Shared between the running task and observers.
#[derive(Debug)]
pub struct NodeMetrics {
    /// Rows that entered the node (for a source: rows read, including rejected ones).
    pub rows_in: AtomicU64,
    /// Rows the node emitted downstream.
    pub rows_out: AtomicU64,
    /// Rows dropped by a predicate.
    pub rows_filtered: AtomicU64,
    /// Rows dropped because their window had already fired.
    pub rows_late: AtomicU64,
    /// Rows rejected as malformed.
    pub rows_rejected: AtomicU64,
    /// Rows absorbed into aggregate state.
    pub rows_aggregated: AtomicU64,
    /// Rows a join must not count as absorbed source rows: extra copies of a
    /// broadcast (every instance but the first receives a copy of each row;
    /// see `runtime::task`), and results of an aggregate or join upstream.
    /// Included in `rows_in`; the summary subtracts them so each source row
    /// is counted once.
    pub rows_replicated: AtomicU64,
    /// The last watermark the node saw.
    pub watermark: AtomicI64,
    /// Bytes of operator state at its largest so far (keys and accumulators).
    pub peak_state_bytes: AtomicU64,
    /// Groups (key-windows) held when the state was at its largest.
    pub peak_state_groups: AtomicU64,
}

impl Default for NodeMetrics {
    fn default() -> Self {
        NodeMetrics {
            rows_in: AtomicU64::new(0),
            rows_out: AtomicU64::new(0),
            rows_filtered: AtomicU64::new(0),
            rows_late: AtomicU64::new(0),
            rows_rejected: AtomicU64::new(0),
            rows_aggregated: AtomicU64::new(0),
            rows_replicated: AtomicU64::new(0),
            watermark: AtomicI64::new(MIN_WATERMARK),
            peak_state_bytes: AtomicU64::new(0),
            peak_state_groups: AtomicU64::new(0),
        }
    }
}

impl NodeMetrics {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Records the latest watermark.
    pub fn set_watermark(&self, wm: Timestamp) {
        self.watermark.fetch_max(wm, Ordering::Relaxed);
    }

    /// Records the size of an operator's state; keeps the largest.
    pub fn record_state(&self, bytes: usize, groups: usize) {
        if self
            .peak_state_bytes
            .fetch_max(bytes as u64, Ordering::Relaxed)
            < bytes as u64
        {
            self.peak_state_groups
                .store(groups as u64, Ordering::Relaxed);
        }
    }

    /// A consistent-enough copy of the counters.
    pub fn snapshot(&self) -> NodeCounts {
        NodeCounts {
            rows_in: self.rows_in.load(Ordering::Relaxed),
            rows_out: self.rows_out.load(Ordering::Relaxed),
            rows_filtered: self.rows_filtered.load(Ordering::Relaxed),
            rows_late: self.rows_late.load(Ordering::Relaxed),
            rows_rejected: self.rows_rejected.load(Ordering::Relaxed),
            rows_aggregated: self.rows_aggregated.load(Ordering::Relaxed),
            rows_replicated: self.rows_replicated.load(Ordering::Relaxed),
            watermark: self.watermark.load(Ordering::Relaxed),
        }
    }
}

/// A point-in-time copy of [`NodeMetrics`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NodeCounts {
    /// See [`NodeMetrics::rows_in`].
    pub rows_in: u64,
    /// See [`NodeMetrics::rows_out`].
    pub rows_out: u64,
    /// See [`NodeMetrics::rows_filtered`].
    pub rows_filtered: u64,
    /// See [`NodeMetrics::rows_late`].
    pub rows_late: u64,
    /// See [`NodeMetrics::rows_rejected`].
    pub rows_rejected: u64,
    /// See [`NodeMetrics::rows_aggregated`].
    pub rows_aggregated: u64,
    /// See [`NodeMetrics::rows_replicated`].
    pub rows_replicated: u64,
    /// See [`NodeMetrics::watermark`].
    pub watermark: Timestamp,
}

/// The role a node plays, which decides how its counts enter the job summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeRole {
    /// Reads external data.
    Source,
    /// Transforms rows one by one (watermarks, filters, projections, window assignment).
    Stateless,
    /// Absorbs rows into state and emits results later (window aggregates).
    Aggregate,
    /// Matches rows of two inputs into new rows (joins); its input rows count as
    /// absorbed, like an aggregate's.
    Join,
    /// Writes to an external system.
    Sink,
}

/// Counters of every node of a running job, in node order.
#[derive(Debug, Clone)]
pub struct JobMetrics {
    /// `(node name, role, counters)` per node.
    pub nodes: Vec<(String, NodeRole, Arc<NodeMetrics>)>,
    /// Per node: every row it receives is a result of an aggregate or join
    /// (`JobGraph::fed_by_results`), not a source row.
    pub fed_by_results: Vec<bool>,
}

/// The row accounting of a job: `read = emitted + aggregated + filtered + late + rejected`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RowSummary {
    /// Rows read by sources (including rejected ones).
    pub read: u64,
    /// Rows rejected as malformed by sources or the watermark assigner.
    pub rejected: u64,
    /// Rows dropped by filters upstream of any aggregate.
    pub filtered: u64,
    /// Rows dropped as late.
    pub late: u64,
    /// Rows absorbed by aggregates and joins.
    pub aggregated: u64,
    /// Rows that reached a sink without passing through an aggregate.
    pub emitted: u64,
    /// Rows written by sinks (results of aggregates included).
    pub written: u64,
    /// Result rows dropped by filters after an aggregate (`HAVING`).
    pub results_filtered: u64,
    /// The lowest watermark among the operators and sinks (the job's event-time
    /// progress).
    pub watermark: Timestamp,
}

impl RowSummary {
    /// True when every read row is accounted for.
    pub fn adds_up(&self) -> bool {
        self.read == self.emitted + self.aggregated + self.filtered + self.late + self.rejected
    }
}

impl JobMetrics {
    /// Folds the per-node counters into the job's row accounting.
    ///
    /// Nodes fed by results (after an aggregate or join) count result rows,
    /// not source rows: their filters are reported separately, an aggregate
    /// of results (a cascaded window) absorbs no source row, and a join
    /// counts only its inputs of source rows (the others are in
    /// `rows_replicated`).
    pub fn summary(&self) -> RowSummary {
        let mut s = RowSummary {
            watermark: i64::MAX,
            ..RowSummary::default()
        };
        for (i, (_, role, m)) in self.nodes.iter().enumerate() {
            let c = m.snapshot();
            let fed_by_results = self.fed_by_results.get(i).copied().unwrap_or(false);
            match role {
                NodeRole::Source => {
                    s.read += c.rows_in;
                    s.rejected += c.rows_rejected;
                }
                NodeRole::Stateless if fed_by_results => s.results_filtered += c.rows_filtered,
                NodeRole::Stateless => {
                    s.rejected += c.rows_rejected;
                    s.filtered += c.rows_filtered;
                    s.late += c.rows_late;
                }
                NodeRole::Aggregate if fed_by_results => {}
                NodeRole::Aggregate => {
                    s.late += c.rows_late;
                    s.aggregated += c.rows_aggregated;
                }
                NodeRole::Join if fed_by_results => {}
                NodeRole::Join => {
                    s.late += c.rows_late;
                    s.aggregated += c
                        .rows_in
                        .saturating_sub(c.rows_late)
                        .saturating_sub(c.rows_replicated);
                }
                NodeRole::Sink => {
                    if !fed_by_results {
                        s.emitted += c.rows_in;
                    }
                    s.written += c.rows_in;
                }
            }
            // Sources see no watermarks; every other node does.
            if *role != NodeRole::Source {
                s.watermark = s.watermark.min(c.watermark);
            }
        }
        s
    }
}
