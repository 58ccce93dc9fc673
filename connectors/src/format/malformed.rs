//! What happens to a malformed input row.
//!
//! By default the first malformed row fails the job with
//! [`EngineError::MalformedInput`], naming the input (file path), the 1-based line
//! and the reason. When the table sets `<format>.ignore-parse-errors`, the row is
//! skipped and counted in `rows_rejected`; the first few are logged.

use watershed_engine::EngineError;
use watershed_engine::metrics::NodeMetrics;

/// How many skipped rows are logged per input before going quiet.
const LOGGED_REJECTIONS: u64 = 5;

/// Names the record at a 1-based line of an input (a Kafka message's topic,
/// partition and offset), for inputs whose lines are records of their own.
pub type LineNames = std::sync::Arc<dyn Fn(u64) -> String + Send + Sync>;

/// The malformed-row policy of one input (one file).
#[derive(Clone)]
pub struct MalformedPolicy {
    format: &'static str,
    location: String,
    ignore: bool,
    rejected: u64,
    line_names: Option<LineNames>,
}

impl std::fmt::Debug for MalformedPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MalformedPolicy")
            .field("format", &self.format)
            .field("location", &self.location)
            .field("ignore", &self.ignore)
            .field("rejected", &self.rejected)
            .finish()
    }
}

impl MalformedPolicy {
    /// A policy for `format` rows (e.g. `"csv"`) read from `location`.
    pub fn new(format: &'static str, location: impl Into<String>, ignore: bool) -> Self {
        MalformedPolicy {
            format,
            location: location.into(),
            ignore,
            rejected: 0,
            line_names: None,
        }
    }

    /// Messages name a malformed row by `names(line)` instead of
    /// `<location> line <n>`.
    pub fn with_line_names(mut self, names: LineNames) -> Self {
        self.line_names = Some(names);
        self
    }

    /// Where the rows come from, as shown in messages.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Number of rows skipped so far.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    /// Handles a malformed row at `line`: an error, or a counted skip.
    pub fn reject(
        &mut self,
        line: u64,
        reason: &str,
        metrics: &NodeMetrics,
    ) -> Result<(), EngineError> {
        let place = match &self.line_names {
            Some(names) => names(line),
            None => format!("{} line {line}", self.location),
        };
        let message = format!("malformed {} row in {place}: {reason}", self.format);
        if !self.ignore {
            return Err(EngineError::MalformedInput(message));
        }
        self.rejected += 1;
        NodeMetrics::add(&metrics.rows_rejected, 1);
        if self.rejected <= LOGGED_REJECTIONS {
            tracing::warn!("skipping {message}");
            if self.rejected == LOGGED_REJECTIONS {
                tracing::warn!(
                    "further malformed rows in {} are skipped without logging",
                    self.location
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn fails_by_default_with_location_and_line() {
        let metrics = NodeMetrics::default();
        let mut p = MalformedPolicy::new("csv", "data/payments.csv", false);
        let err = p.reject(17, "bad", &metrics).unwrap_err();
        assert!(matches!(err, EngineError::MalformedInput(_)));
        assert_eq!(
            err.to_string(),
            "malformed csv row in data/payments.csv line 17: bad"
        );
        assert_eq!(metrics.rows_rejected.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn counts_when_ignoring() {
        let metrics = NodeMetrics::default();
        let mut p = MalformedPolicy::new("json", "x.json", true);
        for line in 0..10 {
            p.reject(line, "bad", &metrics).unwrap();
        }
        assert_eq!(p.rejected(), 10);
        assert_eq!(metrics.rows_rejected.load(Ordering::Relaxed), 10);
    }
}
