//! The dead-letter table for late rows.
//!
//! Operators that drop rows behind the watermark (window aggregates, window
//! Top-N, interval joins) count them in `rows_late`. When the job names a
//! dead-letter table, they also hand the dropped rows to a [`LateRowsSender`];
//! one task writes them, one output row per late row, with the operator, the
//! reason, the watermark at the time and the row itself as JSON (the rows of
//! different operators have different schemas). Row accounting is unchanged:
//! the rows still count as late, not as emitted.
//!
//! The channel is unbounded: late rows are the exception, and an operator must
//! not block on a slow dead-letter sink.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, StringArray, TimestampMillisecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::json::LineDelimitedWriter;
use datafusion::arrow::record_batch::RecordBatch;
use tokio::sync::mpsc;

use crate::error::{EngineError, Result};
use crate::sink::{Sink, SinkFactory};
use crate::time::Timestamp;

/// Rows one operator dropped as late, with why.
#[derive(Debug, Clone)]
pub struct LateRows {
    /// The operator's node name, e.g. `WindowAggregate`.
    pub operator: String,
    /// Why the rows are late, e.g. `window already fired`.
    pub reason: String,
    /// The operator's watermark when it dropped them.
    pub watermark: Timestamp,
    /// The rows, in the operator's input schema.
    pub rows: RecordBatch,
}

/// Where operators send the late rows they drop.
#[derive(Debug, Clone)]
pub struct LateRowsSender {
    tx: mpsc::UnboundedSender<LateRows>,
}

impl LateRowsSender {
    /// Sends late rows; dropped silently once the writer is gone (the job is
    /// failing or finished anyway).
    pub fn send(&self, late: LateRows) {
        let _ = self.tx.send(late);
    }
}

/// The dead-letter table of a job: its name and sink.
#[derive(Clone)]
pub struct DeadLetterTable {
    /// The table's name, for EXPLAIN and messages.
    pub table: String,
    /// Builds the writer.
    pub sink: Arc<dyn SinkFactory>,
    /// The table's schema: [`dead_letter_schema`]'s types, the table's names.
    pub sink_schema: SchemaRef,
}

impl std::fmt::Debug for DeadLetterTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetterTable")
            .field("table", &self.table)
            .finish()
    }
}

/// The columns a dead-letter table must have, in this order:
/// `operator STRING, reason STRING, watermark TIMESTAMP(3), row_json STRING`.
pub fn dead_letter_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("operator", DataType::Utf8, false),
        Field::new("reason", DataType::Utf8, false),
        Field::new(
            "watermark",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        ),
        Field::new("row_json", DataType::Utf8, false),
    ]))
}

/// A channel for late rows and its receiving end.
pub fn late_rows_channel() -> (LateRowsSender, mpsc::UnboundedReceiver<LateRows>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (LateRowsSender { tx }, rx)
}

/// Late rows as dead-letter rows (see [`dead_letter_schema`]), conformed to
/// `schema` (the table's own schema: same types, its names).
pub fn dead_letter_batch(late: &LateRows, schema: &SchemaRef) -> Result<RecordBatch> {
    let rows = late.rows.num_rows();
    let mut writer = LineDelimitedWriter::new(Vec::new());
    writer.write(&late.rows)?;
    writer.finish()?;
    let text = String::from_utf8(writer.into_inner())
        .map_err(|e| EngineError::Config(format!("late rows as JSON: {e}")))?;
    let json: Vec<&str> = text.lines().collect();
    if json.len() != rows {
        return Err(EngineError::Config(format!(
            "late rows as JSON: {} lines for {rows} rows",
            json.len()
        )));
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![late.operator.as_str(); rows])),
        Arc::new(StringArray::from(vec![late.reason.as_str(); rows])),
        Arc::new(TimestampMillisecondArray::from(vec![late.watermark; rows])),
        Arc::new(StringArray::from(json)),
    ];
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// Writes every late row that arrives until all senders are gone, then
/// finishes the sink.
pub async fn run_dead_letter_task(
    mut rx: mpsc::UnboundedReceiver<LateRows>,
    mut sink: Box<dyn Sink>,
    schema: SchemaRef,
) -> Result<()> {
    while let Some(late) = rx.recv().await {
        if late.rows.num_rows() > 0 {
            sink.write_batch(dead_letter_batch(&late, &schema)?).await?;
        }
    }
    sink.finish().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{AsArray, Int64Array};

    #[test]
    fn each_late_row_becomes_one_json_line_with_operator_reason_and_watermark() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("card", DataType::Int64, false),
            Field::new("note", DataType::Utf8, true),
        ]));
        let rows = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![7, 8])),
                Arc::new(StringArray::from(vec![Some("a\"b"), None])),
            ],
        )
        .unwrap();
        let late = LateRows {
            operator: "WindowAggregate".into(),
            reason: "window already fired".into(),
            watermark: 60_000,
            rows,
        };
        let out = dead_letter_batch(&late, &dead_letter_schema()).unwrap();
        assert_eq!(out.num_rows(), 2);
        let json = out.column(3).as_string::<i32>();
        let first: serde_json::Value = serde_json::from_str(json.value(0)).unwrap();
        assert_eq!(first["card"], 7);
        assert_eq!(first["note"], "a\"b");
        let second: serde_json::Value = serde_json::from_str(json.value(1)).unwrap();
        assert_eq!(second["card"], 8);
        assert!(second.get("note").is_none_or(|v| v.is_null()));
        assert_eq!(out.column(0).as_string::<i32>().value(1), "WindowAggregate");
        assert_eq!(
            out.column(2)
                .as_any()
                .downcast_ref::<TimestampMillisecondArray>()
                .unwrap()
                .value(0),
            60_000
        );
    }
}
