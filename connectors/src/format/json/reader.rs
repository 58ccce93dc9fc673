//! Streaming JSON-lines decoding into Arrow batches (see [`JsonDecoder`]).

use std::borrow::Cow;
use std::fmt;
use std::io::BufRead;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use watershed_engine::EngineError;
use watershed_engine::metrics::NodeMetrics;

use super::JsonOptions;
use crate::format::BatchDecoder;
use crate::format::malformed::MalformedPolicy;
use crate::format::row_builder::RowBatchBuilder;
use crate::format::types::ColumnType;

/// Reads one JSON object per line and yields batches of at most `max_rows`
/// accepted rows. Missing keys are NULL (or malformed with
/// `json.fail-on-missing-field`), extra keys are ignored, blank lines skipped.
/// Numbers are taken from their source text, so a DECIMAL never passes through
/// a float.
pub struct JsonDecoder {
    input: Box<dyn BufRead + Send>,
    line: Vec<u8>,
    line_number: u64,
    names: Vec<String>,
    /// Byte range of each column's raw JSON value in the current line.
    slots: Vec<Option<(usize, usize)>>,
    builder: RowBatchBuilder,
    fail_on_missing_field: bool,
    policy: MalformedPolicy,
    done: bool,
}

impl JsonDecoder {
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
        options: &JsonOptions,
        location: impl Into<String>,
        input: Box<dyn BufRead + Send>,
    ) -> Result<Self, EngineError> {
        let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        Ok(JsonDecoder {
            input,
            line: Vec::new(),
            line_number: 0,
            slots: vec![None; names.len()],
            names,
            builder: RowBatchBuilder::new(table, schema, options.timestamp_standard)?,
            fail_on_missing_field: options.fail_on_missing_field,
            policy: MalformedPolicy::new("json", location, options.ignore_parse_errors),
            done: false,
        })
    }

    /// Decodes and stages one non-blank line; `Err` is the reason it is malformed.
    fn stage_line(&mut self, line: &str) -> Result<(), String> {
        self.slots.fill(None);
        let mut de = serde_json::Deserializer::from_str(line);
        let visitor = ObjectVisitor {
            names: &self.names,
            slots: &mut self.slots,
            base: line.as_ptr() as usize,
        };
        de.deserialize_map(visitor)
            .and_then(|()| de.end())
            .map_err(|e| format!("invalid JSON object: {e}"))?;
        self.builder.begin_row();
        for i in 0..self.names.len() {
            match self.slots[i] {
                None if self.fail_on_missing_field => {
                    return Err(format!("missing field '{}'", self.names[i]));
                }
                None => self.builder.set_null(i),
                Some((start, end)) => {
                    let raw = line.get(start..end).unwrap_or("null");
                    self.stage_value(i, raw)?;
                }
            }
        }
        self.builder.commit_row().map_err(|e| e.message)
    }

    /// Stages one raw JSON value into column `i`.
    fn stage_value(&mut self, i: usize, raw: &str) -> Result<(), String> {
        let ty = self.builder.types().get(i).cloned();
        let found = |builder: &RowBatchBuilder, what: &str| {
            builder
                .field_error(i, format!("unexpected {what} {raw}"))
                .message
        };
        match raw.as_bytes().first() {
            None | Some(b'n') => {
                self.builder.set_null(i);
                Ok(())
            }
            Some(b't') => self.builder.set_bool(i, true).map_err(|e| e.message),
            Some(b'f') => self.builder.set_bool(i, false).map_err(|e| e.message),
            Some(b'"') => {
                let text: Cow<'_, str> = match serde_json::from_str::<&str>(raw) {
                    Ok(s) => Cow::Borrowed(s),
                    Err(_) => Cow::Owned(
                        serde_json::from_str::<String>(raw)
                            .map_err(|e| self.builder.field_error(i, e).message)?,
                    ),
                };
                self.builder.set_text(i, &text).map_err(|e| e.message)
            }
            Some(b'{') | Some(b'[') => match ty {
                Some(ColumnType::String) => self.builder.set_text(i, raw).map_err(|e| e.message),
                _ => Err(found(&self.builder, "JSON value")),
            },
            Some(_) => match ty {
                Some(t) if t.is_numeric() || t == ColumnType::String => {
                    self.builder.set_text(i, raw).map_err(|e| e.message)
                }
                _ => Err(found(&self.builder, "number")),
            },
        }
    }
}

impl BatchDecoder for JsonDecoder {
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
            self.line.clear();
            match self.input.read_until(b'\n', &mut self.line) {
                Ok(0) => {
                    self.done = true;
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    break Err(EngineError::io(
                        format!("reading {}", self.policy.location()),
                        e,
                    ));
                }
            }
            self.line_number += 1;
            let line = std::mem::take(&mut self.line);
            let staged = match std::str::from_utf8(&line) {
                Err(_) => Some(Err("invalid UTF-8".to_string())),
                Ok(text) => {
                    let text = if self.line_number == 1 {
                        text.trim_start_matches('\u{feff}')
                    } else {
                        text
                    };
                    let text = text.trim();
                    (!text.is_empty()).then(|| self.stage_line(text))
                }
            };
            self.line = line;
            match staged {
                None => {}
                Some(Ok(())) => read += 1,
                Some(Err(reason)) => {
                    read += 1;
                    if let Err(e) = self.policy.reject(self.line_number, &reason, metrics) {
                        break Err(e);
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

/// Records where each known column's raw value lies in the line; skips the rest.
struct ObjectVisitor<'b> {
    names: &'b [String],
    slots: &'b mut [Option<(usize, usize)>],
    /// Address of the line's first byte: raw values borrow from the line, so
    /// their address minus this is their offset in it.
    base: usize,
}

impl<'de> Visitor<'de> for ObjectVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            match self.names.iter().position(|n| n.as_str() == key.as_ref()) {
                Some(i) => {
                    let raw: &'de RawValue = map.next_value()?;
                    let text = raw.get();
                    let start = (text.as_ptr() as usize).wrapping_sub(self.base);
                    self.slots[i] = Some((start, start + text.len()));
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// An object key, borrowed from the line unless it contains escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(v.to_string())))
    }

    fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::datetime::TimestampStandard;
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::{
        DataType, Decimal128Type, Field, Int32Type, Int64Type, Schema, TimeUnit,
        TimestampMillisecondType,
    };
    use std::io::Cursor;
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
            Field::new("amount", DataType::Decimal128(38, 2), true),
            Field::new("name", DataType::Utf8, true),
            Field::new("ok", DataType::Boolean, true),
        ]))
    }

    fn decode(
        text: &str,
        options: JsonOptions,
    ) -> (Result<Vec<RecordBatch>, EngineError>, NodeMetrics) {
        let input: Box<dyn BufRead + Send> = Box::new(Cursor::new(text.as_bytes().to_vec()));
        let mut d = JsonDecoder::new("t", schema(), &options, "in.json", input).unwrap();
        let metrics = NodeMetrics::default();
        let mut out = Vec::new();
        let result = loop {
            match d.next_batch(2, &metrics) {
                Ok(Some(b)) => out.push(b),
                Ok(None) => break Ok(out),
                Err(e) => break Err(e),
            }
        };
        (result, metrics)
    }

    #[test]
    fn decodes_objects_with_missing_and_extra_keys() {
        let text = r#"{"id": 1, "ts": "2024-01-01 00:00:00.5", "amount": 12.50, "name": "a\"b", "ok": true, "extra": [1,2]}

{"amount": "0.30", "id": "2", "ok": "FALSE", "name": 7}
{"id": null, "amount": 12345678901234567890123456789012.34, "name": {"x": 1}}
"#;
        let (result, metrics) = decode(text, JsonOptions::default());
        let batches = result.unwrap();
        assert_eq!(batches.len(), 2);
        let b = &batches[0];
        assert_eq!(b.column(0).as_primitive::<Int64Type>().values(), &[1, 2]);
        assert_eq!(
            b.column(1)
                .as_primitive::<TimestampMillisecondType>()
                .value(0),
            1_704_067_200_500
        );
        assert!(b.column(1).is_null(1));
        assert_eq!(
            b.column(2).as_primitive::<Decimal128Type>().values(),
            &[1250, 30]
        );
        assert_eq!(b.column(3).as_string::<i32>().value(0), "a\"b");
        assert_eq!(b.column(3).as_string::<i32>().value(1), "7");
        assert!(b.column(4).as_boolean().value(0));
        assert!(!b.column(4).as_boolean().value(1));
        let c = &batches[1];
        assert!(c.column(0).is_null(0));
        assert_eq!(
            c.column(2).as_primitive::<Decimal128Type>().value(0),
            1_234_567_890_123_456_789_012_345_678_901_234
        );
        assert_eq!(c.column(3).as_string::<i32>().value(0), r#"{"x": 1}"#);
        assert_eq!(metrics.rows_in.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn decimals_stay_exact() {
        let schema = Arc::new(Schema::new(vec![Field::new(
            "a",
            DataType::Decimal128(10, 1),
            true,
        )]));
        let text = "{\"a\": 0.1}\n{\"a\": 0.2}\n{\"a\": 1e1}\n";
        let input: Box<dyn BufRead + Send> = Box::new(Cursor::new(text.as_bytes().to_vec()));
        let mut d = JsonDecoder::new("t", schema, &JsonOptions::default(), "x", input).unwrap();
        let b = d.next_batch(10, &NodeMetrics::default()).unwrap().unwrap();
        let values = b.column(0).as_primitive::<Decimal128Type>();
        assert_eq!(values.values(), &[1, 2, 100]);
        assert_eq!(values.value(0) + values.value(1), 3);
    }

    #[test]
    fn malformed_lines_fail_with_line_number() {
        let text = "{\"id\": 1}\n\n{\"id\": 2, \"ts\": \"2024-01-01T00:00:00\"}\n";
        let (result, _) = decode(text, JsonOptions::default());
        let err = result.unwrap_err().to_string();
        assert!(
            err.starts_with("malformed json row in in.json line 3: column 'ts' (TIMESTAMP(3))"),
            "{err}"
        );
        let (result, _) = decode("[1, 2]\n", JsonOptions::default());
        let err = result.unwrap_err().to_string();
        assert!(err.contains("line 1: invalid JSON object"), "{err}");
        let (result, _) = decode("{\"id\": 1} x\n", JsonOptions::default());
        assert!(result.is_err());
        let (result, _) = decode("{\"id\": 1.5}\n", JsonOptions::default());
        assert!(result.unwrap_err().to_string().contains("invalid integer"));
        let (result, _) = decode("{\"ts\": 5}\n", JsonOptions::default());
        assert!(
            result
                .unwrap_err()
                .to_string()
                .contains("unexpected number 5")
        );
    }

    #[test]
    fn iso_standard_and_missing_field_options() {
        let options = JsonOptions {
            timestamp_standard: TimestampStandard::Iso8601,
            fail_on_missing_field: true,
            ..JsonOptions::default()
        };
        let text = "{\"id\":1,\"ts\":\"2024-01-01T00:00:00Z\",\"amount\":1,\"name\":\"x\",\"ok\":null}\n\
                    {\"id\":2}\n";
        let (result, _) = decode(text, options.clone());
        let err = result.unwrap_err().to_string();
        assert!(err.ends_with("line 2: missing field 'ts'"), "{err}");
        let (result, metrics) = decode(
            text,
            JsonOptions {
                ignore_parse_errors: true,
                ..options
            },
        );
        let batches = result.unwrap();
        assert_eq!(batches[0].num_rows(), 1);
        assert_eq!(metrics.rows_in.load(Ordering::Relaxed), 2);
        assert_eq!(metrics.rows_rejected.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn int_columns_range_checked() {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int32, true)]));
        let text = "{\"a\": 7}\n";
        let input: Box<dyn BufRead + Send> = Box::new(Cursor::new(text.as_bytes().to_vec()));
        let mut d = JsonDecoder::new("t", schema, &JsonOptions::default(), "x", input).unwrap();
        let b = d.next_batch(10, &NodeMetrics::default()).unwrap().unwrap();
        assert_eq!(b.column(0).as_primitive::<Int32Type>().value(0), 7);
    }
}
