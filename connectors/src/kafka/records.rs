//! Kafka messages into Arrow batches: one row per message value.
//!
//! CSV and JSON values are decoded together: the values of a batch of messages
//! are joined into lines and run through the shared decoder, which names a
//! malformed value by its topic, partition and offset. A `raw` value is the
//! table's single STRING or BYTES column as it is.

use std::io::Cursor;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BinaryArray, StringArray};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use watershed_engine::EngineError;
use watershed_engine::metrics::NodeMetrics;

use super::MessageFormat;
use crate::format::malformed::MalformedPolicy;

/// The values of a batch of messages, in the order they were read.
#[derive(Debug, Default)]
pub struct Records {
    /// Values joined by `\n` (text formats).
    text: Vec<u8>,
    /// Per line of `text`: the message's partition and offset.
    lines: Vec<(i32, i64)>,
    /// The values themselves (raw format).
    raw: Vec<Option<Vec<u8>>>,
    /// Where each raw value came from.
    origins: Vec<(i32, i64)>,
}

impl Records {
    /// Adds one message's value (`None`: a message without a value, which
    /// holds no row and is skipped).
    pub fn push(
        &mut self,
        format: &MessageFormat,
        partition: i32,
        offset: i64,
        value: Option<&[u8]>,
    ) {
        let Some(value) = value else {
            return;
        };
        self.origins.push((partition, offset));
        match format {
            MessageFormat::Raw => self.raw.push(Some(value.to_vec())),
            MessageFormat::Text(_) => {
                // A value spanning lines (a quoted CSV field, pretty JSON)
                // keeps its name on each of them.
                let lines = 1 + value.iter().filter(|b| **b == b'\n').count();
                self.lines
                    .extend(std::iter::repeat_n((partition, offset), lines));
                self.text.extend_from_slice(value);
                self.text.push(b'\n');
            }
        }
    }

    /// Decodes the held values into one batch of `schema` (malformed values
    /// fail the job or are skipped and counted, per the format's options).
    pub fn decode(
        self,
        format: &MessageFormat,
        table: &str,
        topic: &str,
        schema: &SchemaRef,
        metrics: &NodeMetrics,
    ) -> Result<RecordBatch, EngineError> {
        match format {
            MessageFormat::Raw => raw_batch(table, topic, schema, self.raw, &self.origins, metrics),
            MessageFormat::Text(text) => {
                let lines = Arc::new(self.lines);
                let topic = topic.to_string();
                let names = Arc::new(move |line: u64| {
                    match usize::try_from(line)
                        .ok()
                        .and_then(|l| l.checked_sub(1))
                        .and_then(|l| lines.get(l))
                    {
                        Some((partition, offset)) => {
                            format!("topic '{topic}' partition {partition} offset {offset}")
                        }
                        None => format!("topic '{topic}'"),
                    }
                });
                let mut decoder = text.record_decoder(
                    table,
                    schema.clone(),
                    names,
                    Box::new(Cursor::new(self.text)),
                )?;
                let mut batches = Vec::new();
                while let Some(batch) = decoder.next_batch(usize::MAX, metrics)? {
                    batches.push(batch);
                }
                Ok(datafusion::arrow::compute::concat_batches(
                    schema, &batches,
                )?)
            }
        }
    }
}

/// The `raw` format's batch: the values as the single column.
fn raw_batch(
    table: &str,
    topic: &str,
    schema: &SchemaRef,
    values: Vec<Option<Vec<u8>>>,
    origins: &[(i32, i64)],
    metrics: &NodeMetrics,
) -> Result<RecordBatch, EngineError> {
    let field = match schema.fields().as_ref() {
        [field] => field,
        _ => {
            return Err(EngineError::Config(format!(
                "table '{table}': 'format' = 'raw' needs exactly one STRING or BYTES column"
            )));
        }
    };
    let rows = values.len();
    let column: ArrayRef = match field.data_type() {
        DataType::Binary => Arc::new(BinaryArray::from_iter(values)),
        DataType::Utf8 => {
            let mut strings = Vec::with_capacity(rows);
            let origins = Arc::new(origins.to_vec());
            let topic = topic.to_string();
            let names = Arc::new(move |line: u64| {
                let at = usize::try_from(line).ok().and_then(|l| l.checked_sub(1));
                match at.and_then(|l| origins.get(l)) {
                    Some((partition, offset)) => {
                        format!("topic '{topic}' partition {partition} offset {offset}")
                    }
                    None => format!("topic '{topic}'"),
                }
            });
            let mut policy = MalformedPolicy::new("raw", format!("table '{table}'"), false)
                .with_line_names(names);
            for (i, value) in values.into_iter().enumerate() {
                match value.map(String::from_utf8).transpose() {
                    Ok(text) => strings.push(text),
                    Err(_) => {
                        policy.reject(i as u64 + 1, "value is not UTF-8 text", metrics)?;
                    }
                }
            }
            Arc::new(StringArray::from(strings))
        }
        other => {
            return Err(EngineError::Config(format!(
                "table '{table}': 'format' = 'raw' needs a STRING or BYTES column, not {other}"
            )));
        }
    };
    NodeMetrics::add(&metrics.rows_in, rows);
    Ok(RecordBatch::try_new(schema.clone(), vec![column])?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::FormatConfig;
    use crate::format::csv::CsvOptions;
    use crate::format::json::JsonOptions;
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::{Field, Int64Type, Schema};

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]))
    }

    #[test]
    fn csv_and_json_values_become_rows_and_a_bad_one_is_named_by_its_offset() {
        let metrics = NodeMetrics::default();
        for (format, good, bad) in [
            (
                MessageFormat::Text(FormatConfig::Csv(CsvOptions::default())),
                ["1,a", "2,b"],
                "x,c",
            ),
            (
                MessageFormat::Text(FormatConfig::Json(JsonOptions::default())),
                [r#"{"id":1,"name":"a"}"#, r#"{"id":2,"name":"b"}"#],
                r#"{"id":"x"}"#,
            ),
        ] {
            let mut records = Records::default();
            records.push(&format, 0, 10, Some(good[0].as_bytes()));
            records.push(&format, 0, 11, None);
            records.push(&format, 1, 5, Some(good[1].as_bytes()));
            let batch = records
                .decode(&format, "t", "payments", &schema(), &metrics)
                .unwrap();
            let ids: Vec<i64> = batch
                .column(0)
                .as_primitive::<Int64Type>()
                .values()
                .to_vec();
            assert_eq!(ids, vec![1, 2]);

            let mut records = Records::default();
            records.push(&format, 0, 12, Some(good[0].as_bytes()));
            records.push(&format, 2, 77, Some(bad.as_bytes()));
            let err = records
                .decode(&format, "t", "payments", &schema(), &metrics)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("topic 'payments' partition 2 offset 77"),
                "{err}"
            );
        }
    }

    #[test]
    fn raw_values_are_the_single_column() {
        let metrics = NodeMetrics::default();
        let lines = Arc::new(Schema::new(vec![Field::new("line", DataType::Utf8, true)]));
        let mut records = Records::default();
        records.push(&MessageFormat::Raw, 0, 0, Some(b"hello"));
        records.push(&MessageFormat::Raw, 0, 1, Some(b"world"));
        let batch = records
            .decode(&MessageFormat::Raw, "t", "x", &lines, &metrics)
            .unwrap();
        let lines: Vec<&str> = batch
            .column(0)
            .as_string::<i32>()
            .iter()
            .flatten()
            .collect();
        assert_eq!(lines, ["hello", "world"]);
        let err = raw_batch("t", "x", &schema(), vec![], &[], &metrics)
            .unwrap_err()
            .to_string();
        assert!(err.contains("exactly one STRING or BYTES column"), "{err}");
    }
}
