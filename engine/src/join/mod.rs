//! Joins of two streams.
//!
//! A join node has two inputs: input 0 is the left side, input 1 the right side.
//! The runtime hands it the minimum of both inputs' watermarks and calls
//! `on_end` once both inputs have ended. Output rows carry the left columns
//! followed by the right columns; the columns of the side an outer join pads
//! are nullable.
//!
//! - [`IntervalJoin`]: the event-time interval join of Flink SQL
//!   (`b.ts BETWEEN a.ts - INTERVAL .. AND a.ts + INTERVAL ..`), whose state the
//!   watermark releases. [`IntervalJoin::window_join`] configures Flink's
//!   window join (equal `window_start`, `window_end` and keys), which runs as a
//!   [`WindowJoinOperator`]: a batch hash join of each window when it fires.
//! - [`BoundedTableJoin`]: a stream joined with a bounded table that is read
//!   completely first (a CSV of card limits); the stream is probed against it.

mod interval;
mod key_index;
mod lookup;
mod side;
mod window;

#[cfg(test)]
mod interval_tests;
#[cfg(test)]
mod lookup_tests;
#[cfg(test)]
mod window_tests;

use std::fmt;

use datafusion::arrow::datatypes::SchemaRef;

use crate::error::{EngineError, Result};

pub use interval::{IntervalJoin, IntervalJoinOperator};
pub use lookup::{BoundedTableJoin, BoundedTableJoinOperator, TableSide};
pub use window::WindowJoinOperator;

/// Which unmatched rows a join emits, padded with NULLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JoinKind {
    /// Matched pairs only.
    Inner,
    /// Matched pairs, and left rows that matched nothing.
    Left,
    /// Matched pairs, and right rows that matched nothing.
    Right,
    /// Matched pairs, and rows of either side that matched nothing.
    Full,
}

impl JoinKind {
    /// True when left rows that matched nothing are emitted.
    pub fn keeps_unmatched_left(self) -> bool {
        matches!(self, JoinKind::Left | JoinKind::Full)
    }

    /// True when right rows that matched nothing are emitted.
    pub fn keeps_unmatched_right(self) -> bool {
        matches!(self, JoinKind::Right | JoinKind::Full)
    }
}

impl fmt::Display for JoinKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JoinKind::Inner => "INNER",
            JoinKind::Left => "LEFT OUTER",
            JoinKind::Right => "RIGHT OUTER",
            JoinKind::Full => "FULL OUTER",
        })
    }
}

/// One input of a join: its schema, its equi-join key columns and its
/// event-time column.
#[derive(Debug, Clone)]
pub struct JoinInput {
    /// Schema of the input's batches.
    pub schema: SchemaRef,
    /// Equi-join key columns, paired by position with the other input's.
    pub keys: Vec<usize>,
    /// The event-time column (`TIMESTAMP(3)` or `BIGINT` milliseconds).
    pub time: usize,
    /// Added to the time column to give a row's event time: a window join reads
    /// `window_end` and uses `window_end - 1 ms` (the window's last instant), so
    /// that, as in Flink, a row is late once its window has fired.
    pub time_offset_ms: i64,
}

impl JoinInput {
    /// An input with the given key and time columns.
    pub fn new(schema: SchemaRef, keys: Vec<usize>, time: usize) -> Self {
        JoinInput {
            schema,
            keys,
            time,
            time_offset_ms: 0,
        }
    }

    /// The same input with event time = time column + `offset_ms`.
    pub fn with_time_offset(mut self, offset_ms: i64) -> Self {
        self.time_offset_ms = offset_ms;
        self
    }
}

/// One input of a join without event time: its schema and equi-join key columns.
#[derive(Debug, Clone)]
pub struct KeyedInput {
    /// Schema of the input's batches.
    pub schema: SchemaRef,
    /// Equi-join key columns, paired by position with the other input's.
    pub keys: Vec<usize>,
}

impl KeyedInput {
    /// An input with the given key columns.
    pub fn new(schema: SchemaRef, keys: Vec<usize>) -> Self {
        KeyedInput { schema, keys }
    }
}

/// Input `input` of a two-input join named `join` (`"an interval join"`):
/// 0 (left) or 1 (right); any other is an invalid graph.
pub(super) fn join_side(input: usize, join: &str) -> Result<usize> {
    match input {
        0 | 1 => Ok(input),
        _ => Err(EngineError::InvalidGraph(format!(
            "{join} has inputs 0 and 1, not {input}"
        ))),
    }
}
