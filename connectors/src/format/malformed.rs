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

/// The malformed-row policy of one input (one file).
#[derive(Debug, Clone)]
pub struct MalformedPolicy {
    format: &'static str,
    location: String,
    ignore: bool,
    rejected: u64,
}

impl MalformedPolicy {
    /// A policy for `format` rows (e.g. `"csv"`) read from `location`.
    pub fn new(format: &'static str, location: impl Into<String>, ignore: bool) -> Self {
        MalformedPolicy {
            format,
            location: location.into(),
            ignore,
            rejected: 0,
        }
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
        let message = format!(
            "malformed {} row in {} line {line}: {reason}",
            self.format, self.location
        );
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
