//! `TUMBLE`: assigns each row to one fixed-size, non-overlapping window.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, TimestampMillisecondArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef, TimestampMillisecondType};
use datafusion::arrow::record_batch::RecordBatch;

use crate::error::{EngineError, Result};
use crate::operator::{Operator, OperatorFactory, Output};
use crate::time::event_time_type;
use crate::window::WINDOW_COLUMNS;

/// Appends `window_start`, `window_end` and `window_time` for tumbling windows of
/// `size_ms`, aligned to the epoch plus `offset_ms`.
#[derive(Debug, Clone)]
pub struct TumbleAssigner {
    input_schema: SchemaRef,
    schema: SchemaRef,
    time_column: usize,
    size_ms: i64,
    offset_ms: i64,
    slices_for: Option<String>,
}

impl TumbleAssigner {
    /// An assigner over `input_schema`, reading event time from `time_column`.
    pub fn new(
        input_schema: SchemaRef,
        time_column: usize,
        size_ms: i64,
        offset_ms: i64,
    ) -> Result<Self> {
        if size_ms <= 0 {
            return Err(EngineError::Config(format!(
                "TUMBLE window size must be positive, got {size_ms} ms"
            )));
        }
        Ok(TumbleAssigner {
            schema: Self::output_schema_for(&input_schema),
            input_schema,
            time_column,
            size_ms,
            offset_ms,
            slices_for: None,
        })
    }

    /// The input schema plus the three window columns.
    pub fn output_schema_for(input: &Schema) -> SchemaRef {
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        for name in WINDOW_COLUMNS {
            fields.push(Field::new(name, event_time_type(), false));
        }
        Arc::new(Schema::new(fields))
    }

    /// Assigns slices of an overlapping window (named for EXPLAIN) instead of
    /// windows: the window columns hold each row's slice until a sliced window
    /// aggregate turns slices into windows.
    pub fn for_slices(mut self, window: String) -> Self {
        self.slices_for = Some(window);
        self
    }

    /// The schema of the batches this assigner emits.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// The start of the window containing `ts`.
    pub fn window_start(&self, ts: i64) -> i64 {
        ts - (ts - self.offset_ms).rem_euclid(self.size_ms)
    }
}

impl Operator for TumbleAssigner {
    fn snapshot(&mut self) -> Result<Option<crate::checkpoint::OperatorState>> {
        // No state across batches.
        Ok(None)
    }

    fn restore(&mut self, _state: crate::checkpoint::OperatorState) -> Result<()> {
        Ok(())
    }

    fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn on_batch(&mut self, batch: RecordBatch, out: &mut Output<'_>) -> Result<()> {
        let time = cast(batch.column(self.time_column), &event_time_type())?;
        let time = time.as_primitive::<TimestampMillisecondType>();
        let size = self.size_ms;
        let starts: TimestampMillisecondArray = time.unary(|ts| self.window_start(ts));
        let ends: TimestampMillisecondArray = starts.unary(|s| s + size);
        let times: TimestampMillisecondArray = ends.unary(|e| e - 1);
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        columns.push(Arc::new(starts));
        columns.push(Arc::new(ends));
        columns.push(Arc::new(times));
        out.batch(RecordBatch::try_new(self.schema.clone(), columns)?);
        Ok(())
    }
}

impl OperatorFactory for TumbleAssigner {
    fn name(&self) -> String {
        match self.slices_for {
            Some(_) => "SliceAssigner".to_string(),
            None => "TumbleWindow".to_string(),
        }
    }

    fn explain(&self) -> Vec<String> {
        if let Some(window) = &self.slices_for {
            return vec![
                format!("time: {}", self.input_schema.field(self.time_column).name()),
                format!("slices: {} for {window}", format_duration_ms(self.size_ms)),
            ];
        }
        let mut lines = vec![
            format!("time: {}", self.input_schema.field(self.time_column).name()),
            format!("size: {}", format_duration_ms(self.size_ms)),
        ];
        if self.offset_ms != 0 {
            lines.push(format!("offset: {}", format_duration_ms(self.offset_ms)));
        }
        lines
    }

    fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn create(&self) -> Result<Box<dyn Operator>> {
        Ok(Box::new(self.clone()))
    }
}

/// Renders a duration in the largest whole unit: `1 min`, `5 s`, `250 ms`.
pub fn format_duration_ms(ms: i64) -> String {
    const UNITS: [(i64, &str); 4] = [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "min"),
        (1000, "s"),
    ];
    for (unit, name) in UNITS {
        if ms != 0 && ms % unit == 0 {
            return format!("{} {name}", ms / unit);
        }
    }
    format!("{ms} ms")
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::Schema;

    #[test]
    fn window_start_handles_negative_and_offset() {
        let schema = Arc::new(Schema::new(vec![Field::new(
            "ts",
            event_time_type(),
            false,
        )]));
        let t = TumbleAssigner::new(schema.clone(), 0, 60_000, 0).unwrap();
        assert_eq!(t.window_start(59_999), 0);
        assert_eq!(t.window_start(60_000), 60_000);
        assert_eq!(t.window_start(-1), -60_000);
        let t = TumbleAssigner::new(schema, 0, 60_000, 15_000).unwrap();
        assert_eq!(t.window_start(14_999), -45_000);
        assert_eq!(t.window_start(15_000), 15_000);
    }

    #[test]
    fn durations_render_in_whole_units() {
        assert_eq!(format_duration_ms(60_000), "1 min");
        assert_eq!(format_duration_ms(5_000), "5 s");
        assert_eq!(format_duration_ms(1_500), "1500 ms");
    }
}
