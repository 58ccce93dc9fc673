//! Memory when the sink is slower than the source, for `benches/nexmark.rs
//! --slow-sink ROWS_PER_SECOND`.
//!
//! The query's sink is replaced by one that takes at most `ROWS_PER_SECOND`
//! rows per second (it sleeps until the rows it has taken are due), while the
//! source runs unpaced. A sampler reads the process's resident set size every
//! 100 ms. With backpressure working, the source waits on full channels and
//! the RSS levels off after the first batches; without it, rows would pile up
//! between the operators and the RSS would grow for the whole run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use watershed::engine::EngineError;
use watershed::engine::sink::{Sink, SinkFactory};
use watershed::engine::source::Split;

/// A sink that takes at most `rows_per_second` rows per second.
#[derive(Debug, Clone)]
pub struct ThrottledSinkFactory {
    /// The sink's rate.
    pub rows_per_second: u64,
    /// Rows taken so far (all instances).
    pub taken: Arc<Mutex<(Option<Instant>, u64)>>,
}

impl ThrottledSinkFactory {
    /// A sink taking `rows_per_second` rows per second.
    pub fn new(rows_per_second: u64) -> Self {
        ThrottledSinkFactory {
            rows_per_second: rows_per_second.max(1),
            taken: Arc::default(),
        }
    }

    /// Rows the sink took.
    pub fn rows(&self) -> u64 {
        self.taken.lock().map_or(0, |t| t.1)
    }
}

impl SinkFactory for ThrottledSinkFactory {
    fn explain(&self) -> Vec<String> {
        vec![format!("throttled sink: {} rows/s", self.rows_per_second)]
    }

    /// It takes the changelog of updating queries too (it only counts rows).
    fn accepts_changelog(&self) -> bool {
        true
    }

    fn create(&self, _split: Split) -> Result<Box<dyn Sink>, EngineError> {
        Ok(Box::new(self.clone()))
    }
}

#[async_trait]
impl Sink for ThrottledSinkFactory {
    async fn write_batch(&mut self, batch: RecordBatch) -> Result<(), EngineError> {
        let due = match self.taken.lock() {
            Ok(mut taken) => {
                let start = *taken.0.get_or_insert_with(Instant::now);
                taken.1 += batch.num_rows() as u64;
                start + Duration::from_secs_f64(taken.1 as f64 / self.rows_per_second as f64)
            }
            Err(_) => return Ok(()),
        };
        tokio::time::sleep_until(due.into()).await;
        Ok(())
    }

    async fn finish(&mut self) -> Result<(), EngineError> {
        Ok(())
    }
}

/// The process's resident set size in MiB (`VmRSS`).
fn rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Samples the RSS every 100 ms on a thread of its own until stopped.
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<(f64, f64)>>,
}

impl RssSampler {
    /// Starts sampling.
    pub fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let mut samples = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                if let Some(rss) = rss_mib() {
                    samples.push((started.elapsed().as_secs_f64(), rss));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            samples
        });
        RssSampler { stop, thread }
    }

    /// Stops sampling; returns `(seconds since start, RSS in MiB)` samples.
    pub fn stop(self) -> Vec<(f64, f64)> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

/// The RSS at fractions `at` of the run (the nearest sample), in MiB.
pub fn rss_at(samples: &[(f64, f64)], at: &[f64]) -> Vec<f64> {
    let Some(&(end, _)) = samples.last() else {
        return vec![f64::NAN; at.len()];
    };
    at.iter()
        .map(|f| {
            let t = end * f;
            samples
                .iter()
                .min_by(|a, b| (a.0 - t).abs().total_cmp(&(b.0 - t).abs()))
                .map_or(f64::NAN, |s| s.1)
        })
        .collect()
}
