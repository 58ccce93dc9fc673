//! Event time: timestamps are milliseconds since the Unix epoch, as Flink's
//! `TIMESTAMP(3)` and Arrow's `Timestamp(Millisecond, None)`.

use datafusion::arrow::datatypes::{DataType, TimeUnit};

/// Milliseconds since the Unix epoch.
pub type Timestamp = i64;

/// The watermark before any row has been seen.
pub const MIN_WATERMARK: Timestamp = i64::MIN;

/// The watermark a bounded source sends at its end: it fires every open window.
pub const MAX_WATERMARK: Timestamp = i64::MAX;

/// The Arrow type of an event-time column.
pub fn event_time_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, None)
}

/// Renders a timestamp as `yyyy-MM-dd HH:mm:ss.SSS` (UTC), or a marker for the
/// minimum and maximum watermarks.
pub fn format_timestamp(ts: Timestamp) -> String {
    match ts {
        MIN_WATERMARK => "-inf".to_string(),
        MAX_WATERMARK => "+inf".to_string(),
        ts => match datafusion::arrow::temporal_conversions::timestamp_ms_to_datetime(ts) {
            Some(dt) => dt.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
            None => ts.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_millisecond_timestamps() {
        assert_eq!(
            format_timestamp(1_700_000_000_123),
            "2023-11-14 22:13:20.123"
        );
        assert_eq!(format_timestamp(MIN_WATERMARK), "-inf");
    }
}
