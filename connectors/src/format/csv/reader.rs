//! Streaming CSV decoding into Arrow batches (see [`CsvDecoder`]).

use std::io::BufRead;

use csv::{ByteRecord, Reader, ReaderBuilder};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use watershed_engine::EngineError;
use watershed_engine::metrics::NodeMetrics;

use super::CsvOptions;
use crate::format::BatchDecoder;
use crate::format::datetime::TimestampStandard;
use crate::format::malformed::MalformedPolicy;
use crate::format::row_builder::RowBatchBuilder;

/// Reads CSV records from a buffered input and yields batches of at most
/// `max_rows` accepted rows, applying the malformed-row policy.
pub struct CsvDecoder {
    reader: Reader<Box<dyn BufRead + Send>>,
    record: ByteRecord,
    builder: RowBatchBuilder,
    null_literal: Option<Vec<u8>>,
    policy: MalformedPolicy,
    at_start: bool,
    done: bool,
}

impl CsvDecoder {
    /// Names malformed rows by `names(line)` in messages (see
    /// [`MalformedPolicy::with_line_names`]).
    pub fn with_line_names(mut self, names: crate::format::malformed::LineNames) -> Self {
        self.policy = self.policy.with_line_names(names);
        self
    }

    /// A decoder of `input` (named `location` in messages) for `schema`.
    pub fn new(
        table: &str,
        schema: SchemaRef,
        options: &CsvOptions,
        location: impl Into<String>,
        input: Box<dyn BufRead + Send>,
    ) -> Result<Self, EngineError> {
        let mut builder = ReaderBuilder::new();
        builder
            .has_headers(false)
            .flexible(true)
            .delimiter(options.delimiter)
            .quoting(options.quote.is_some())
            .quote(options.quote.unwrap_or(b'"'))
            .escape(options.escape)
            .comment(options.allow_comments.then_some(b'#'));
        Ok(CsvDecoder {
            reader: builder.from_reader(input),
            record: ByteRecord::new(),
            builder: RowBatchBuilder::new(table, schema, TimestampStandard::Sql)?,
            null_literal: options.null_literal.as_ref().map(|s| s.as_bytes().to_vec()),
            policy: MalformedPolicy::new("csv", location, options.ignore_parse_errors),
            at_start: true,
            done: false,
        })
    }

    /// Stages the current record; `Err` carries the reason it is malformed.
    fn stage_record(&mut self) -> Result<(), String> {
        let expected = self.builder.types().len();
        if self.record.len() != expected {
            return Err(format!(
                "expected {expected} fields, found {}",
                self.record.len()
            ));
        }
        self.builder.begin_row();
        for (i, raw) in self.record.iter().enumerate() {
            let raw = if i == 0 && self.at_start {
                raw.strip_prefix("\u{feff}".as_bytes()).unwrap_or(raw)
            } else {
                raw
            };
            if self.null_literal.as_deref() == Some(raw) {
                self.builder.set_null(i);
                continue;
            }
            let text = std::str::from_utf8(raw)
                .map_err(|_| self.builder.field_error(i, "invalid UTF-8").message)?;
            self.builder.set_text(i, text).map_err(|e| e.message)?;
        }
        self.builder.commit_row().map_err(|e| e.message)
    }
}

impl BatchDecoder for CsvDecoder {
    fn next_batch(
        &mut self,
        max_rows: usize,
        metrics: &NodeMetrics,
    ) -> Result<Option<RecordBatch>, EngineError> {
        let max_rows = max_rows.max(1);
        let mut read = 0usize;
        let result = loop {
            if self.done || self.builder.len() >= max_rows {
                break Ok(());
            }
            match self.reader.read_byte_record(&mut self.record) {
                Ok(false) => self.done = true,
                Ok(true) => {
                    read += 1;
                    let line = self.record.position().map_or(0, |p| p.line());
                    let staged = self.stage_record();
                    self.at_start = false;
                    if let Err(reason) = staged
                        && let Err(e) = self.policy.reject(line, &reason, metrics)
                    {
                        break Err(e);
                    }
                }
                Err(e) => {
                    let line = e.position().map_or(0, |p| p.line());
                    if e.is_io_error() {
                        let context = format!("reading {}", self.policy.location());
                        break Err(match e.into_kind() {
                            csv::ErrorKind::Io(io) => EngineError::io(context, io),
                            other => EngineError::MalformedInput(format!("{context}: {other:?}")),
                        });
                    }
                    read += 1;
                    if let Err(err) = self.policy.reject(line, &e.to_string(), metrics) {
                        break Err(err);
                    }
                }
            }
        };
        NodeMetrics::add(&metrics.rows_in, read);
        result?;
        if self.builder.is_empty() {
            return Ok(None);
        }
        self.builder.finish().map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::{
        DataType, Date32Type, Decimal128Type, Field, Float64Type, Int64Type, Schema, TimeUnit,
        TimestampMillisecondType,
    };
    use std::io::Cursor;
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
            Field::new("amount", DataType::Decimal128(18, 2), true),
            Field::new("name", DataType::Utf8, true),
        ]))
    }

    fn decoder(text: &str, options: CsvOptions) -> CsvDecoder {
        let input: Box<dyn BufRead + Send> = Box::new(Cursor::new(text.as_bytes().to_vec()));
        CsvDecoder::new("t", schema(), &options, "data/payments.csv", input).unwrap()
    }

    fn read_all(
        d: &mut CsvDecoder,
        metrics: &NodeMetrics,
        max_rows: usize,
    ) -> Result<Vec<RecordBatch>, EngineError> {
        let mut out = Vec::new();
        while let Some(b) = d.next_batch(max_rows, metrics)? {
            out.push(b);
        }
        Ok(out)
    }

    #[test]
    fn decodes_rows_in_batches() {
        let text = "1,2024-01-01 00:00:00.123,12.5,\"a, b\"\n\
                    2,2024-01-01 00:00:01,1.555,\n\
                    3,,,\"say \"\"hi\"\"\"\n";
        let metrics = NodeMetrics::default();
        let mut d = decoder(text, CsvOptions::default());
        let batches = read_all(&mut d, &metrics, 2).unwrap();
        assert_eq!(
            batches
                .iter()
                .map(RecordBatch::num_rows)
                .collect::<Vec<_>>(),
            vec![2, 1]
        );
        let b = &batches[0];
        assert_eq!(b.column(0).as_primitive::<Int64Type>().values(), &[1, 2]);
        assert_eq!(
            b.column(1)
                .as_primitive::<TimestampMillisecondType>()
                .value(0),
            1_704_067_200_123
        );
        assert_eq!(
            b.column(2).as_primitive::<Decimal128Type>().values(),
            &[1250, 156]
        );
        assert_eq!(b.column(3).as_string::<i32>().value(0), "a, b");
        assert_eq!(b.column(3).as_string::<i32>().value(1), "");
        let last = &batches[1];
        assert!(last.column(1).is_null(0));
        assert!(last.column(2).is_null(0));
        assert_eq!(last.column(3).as_string::<i32>().value(0), "say \"hi\"");
        assert_eq!(metrics.rows_in.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn malformed_row_fails_with_file_and_line() {
        let text = "1,2024-01-01 00:00:00,1.00,a\n2,2024-01-01 00:00:00,abc,b\n";
        let metrics = NodeMetrics::default();
        let mut d = decoder(text, CsvOptions::default());
        let err = read_all(&mut d, &metrics, 100).unwrap_err();
        assert!(matches!(err, EngineError::MalformedInput(_)));
        assert_eq!(
            err.to_string(),
            "malformed csv row in data/payments.csv line 2: column 'amount' (DECIMAL(18, 2)): \
             invalid decimal 'abc'"
        );
    }

    #[test]
    fn iso_timestamp_and_wrong_field_count_are_malformed() {
        let metrics = NodeMetrics::default();
        let mut d = decoder("1,2024-01-01T00:00:00,1.00,a\n", CsvOptions::default());
        let err = read_all(&mut d, &metrics, 100).unwrap_err().to_string();
        assert!(err.contains("line 1: column 'ts' (TIMESTAMP(3))"), "{err}");
        assert!(err.contains("'T' separator"), "{err}");
        let mut d = decoder("1,2024-01-01 00:00:00,1.00\n", CsvOptions::default());
        let err = read_all(&mut d, &metrics, 100).unwrap_err().to_string();
        assert!(err.ends_with("line 1: expected 4 fields, found 3"), "{err}");
    }

    #[test]
    fn ignore_parse_errors_skips_and_counts() {
        let text = "1,2024-01-01 00:00:00,1.00,a\n\
                    x,2024-01-01 00:00:00,1.00,a\n\
                    3,2024-01-01 00:00:00,123456789012345678901,a\n\
                    4,2024-01-01 00:00:00\n\
                    5,2024-01-01 00:00:00,5,e\n";
        let options = CsvOptions {
            ignore_parse_errors: true,
            ..CsvOptions::default()
        };
        let metrics = NodeMetrics::default();
        let mut d = decoder(text, options);
        let batches = read_all(&mut d, &metrics, 100).unwrap();
        let ids: Vec<i64> = batches
            .iter()
            .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
            .collect();
        assert_eq!(ids, vec![1, 5]);
        assert_eq!(metrics.rows_in.load(Ordering::Relaxed), 5);
        assert_eq!(metrics.rows_rejected.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn options_change_the_dialect() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("d", DataType::Date32, true),
            Field::new("x", DataType::Float64, true),
            Field::new("s", DataType::Utf8, true),
        ]));
        let options = CsvOptions {
            delimiter: b';',
            quote: Some(b'\''),
            allow_comments: true,
            null_literal: Some("NULL".into()),
            ..CsvOptions::default()
        };
        let text = "# a comment\n1970-01-02;2.5;'a;b'\n1970-01-03;NULL;NULL\n";
        let input: Box<dyn BufRead + Send> = Box::new(Cursor::new(text.as_bytes().to_vec()));
        let mut d = CsvDecoder::new("t", schema, &options, "mem", input).unwrap();
        let metrics = NodeMetrics::default();
        let b = d.next_batch(10, &metrics).unwrap().unwrap();
        assert_eq!(b.column(0).as_primitive::<Date32Type>().values(), &[1, 2]);
        assert_eq!(b.column(1).as_primitive::<Float64Type>().value(0), 2.5);
        assert!(b.column(1).is_null(1));
        assert_eq!(b.column(2).as_string::<i32>().value(0), "a;b");
        assert!(b.column(2).is_null(1));
        assert!(d.next_batch(10, &metrics).unwrap().is_none());
    }
}
