//! End-to-end latency at a fixed input rate, for `benches/nexmark.rs
//! --latency RATE`.
//!
//! The source is paced to `RATE` events per second of wall-clock time and
//! its event time advances at the same rate, so event time `t` is due at
//! wall-clock `start + (t - first event time)`. A sink that stamps each
//! arriving row then gives:
//! - for a windowed query, the window-emit latency: arrival minus the moment
//!   the watermark passed the window's end (due time of `window end + the
//!   WATERMARK delay`);
//! - for a pass-through query, the arrival-to-output latency: arrival minus
//!   the row's own due time.
//!
//! Sources emit batches of `RATE / 100` rows (10 ms of events) at their due
//! time, so a row may be up to 10 ms early: latencies are at most that much
//! too low (and can be slightly negative). Rows due after the last event
//! (windows the end of the input fires) are left out, and so are rows due in
//! the warm-up (`--warmup S`, 15 s by default): the first window of a join
//! grows its state from nothing, and faulting in that memory (transparent
//! huge pages, zeroed 2 MiB at a time) took 30-80 ms once.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::TimestampMillisecondType;
use watershed::engine::EngineError;
use watershed::engine::sink::{Sink, SinkFactory};
use watershed::engine::source::Split;

/// Which column of the output says when a row was due, and how.
#[derive(Debug, Clone)]
pub struct Due {
    /// The timestamp column.
    pub column: String,
    /// Milliseconds added to it: the window length for a window start, plus
    /// the WATERMARK delay for a windowed result; 0 for a pass-through row.
    pub offset_ms: i64,
    /// For a row that carries an event's own time rather than its window's:
    /// the tumbling window size the time is first rounded down to.
    pub align_ms: Option<i64>,
}

impl Due {
    /// When a row whose column holds `t` was due (event time, ms).
    pub fn at(&self, t: i64) -> i64 {
        let t = match self.align_ms {
            Some(size) if size > 0 => t - t.rem_euclid(size),
            _ => t,
        };
        t + self.offset_ms
    }
}

/// Latencies in milliseconds, collected by the sink.
#[derive(Debug, Clone, Default)]
pub struct Latencies(Arc<Mutex<Vec<f64>>>);

impl Latencies {
    /// p50, p99 and max, in milliseconds; `None` without samples.
    pub fn percentiles(&self) -> Option<(f64, f64, f64, usize)> {
        let mut all = self.0.lock().ok()?.clone();
        if all.is_empty() {
            return None;
        }
        all.sort_by(f64::total_cmp);
        let at = |q: f64| all[((all.len() - 1) as f64 * q).round() as usize];
        Some((at(0.5), at(0.99), at(1.0), all.len()))
    }
}

/// A sink that records each row's latency.
#[derive(Debug, Clone)]
pub struct LatencySinkFactory {
    /// Wall-clock time of event time `first_event_ms`.
    pub start: Arc<Mutex<Option<Instant>>>,
    /// The event time of the first event, in milliseconds.
    pub first_event_ms: i64,
    /// How a row's due time is read.
    pub due: Due,
    /// Rows due later than this (ms after the first event) are left out: the
    /// end of the input, not the watermark, fired them.
    pub horizon_ms: f64,
    /// Rows due earlier than this (ms after the first event) are left out:
    /// the warm-up.
    pub warmup_ms: f64,
    /// Where latencies go.
    pub latencies: Latencies,
}

impl SinkFactory for LatencySinkFactory {
    fn explain(&self) -> Vec<String> {
        vec!["latency sink".into()]
    }

    fn create(&self, _split: Split) -> Result<Box<dyn Sink>, EngineError> {
        Ok(Box::new(self.clone()))
    }
}

#[async_trait]
impl Sink for LatencySinkFactory {
    async fn write_batch(&mut self, batch: RecordBatch) -> Result<(), EngineError> {
        let now = Instant::now();
        let Some(start) = self.start.lock().ok().and_then(|s| *s) else {
            return Ok(());
        };
        let since_start_ms = now.duration_since(start).as_secs_f64() * 1000.0;
        let Ok(column) = batch.schema().index_of(&self.due.column) else {
            return Err(EngineError::Config(format!(
                "latency sink: no column '{}'",
                self.due.column
            )));
        };
        let times = batch
            .column(column)
            .as_primitive::<TimestampMillisecondType>();
        if let Ok(mut latencies) = self.latencies.0.lock() {
            for t in times.iter().flatten() {
                let due_ms = (self.due.at(t) - self.first_event_ms) as f64;
                if due_ms <= self.horizon_ms && due_ms >= self.warmup_ms {
                    latencies.push(since_start_ms - due_ms);
                }
            }
        }
        Ok(())
    }

    async fn finish(&mut self) -> Result<(), EngineError> {
        Ok(())
    }
}
