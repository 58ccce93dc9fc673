//! JSON-lines encoding of Arrow batches (see [`JsonEncoder`]).

use datafusion::arrow::record_batch::RecordBatch;
use watershed_engine::EngineError;

use super::JsonOptions;
use crate::format::BatchEncoder;
use crate::format::text::{ColumnText, TextKind};

/// Writes one JSON object per row, keys in column order. Decimals are JSON
/// numbers written from their exact text (`12.50`), timestamps strings such as
/// `"2024-01-01 00:00:00.000"`, NaN and infinite floats `null`.
#[derive(Debug, Clone)]
pub struct JsonEncoder {
    /// `"name":` per column, already escaped.
    keys: Vec<String>,
    options: JsonOptions,
}

impl JsonEncoder {
    /// An encoder writing the given column names (the sink table's columns;
    /// batches are matched to them by position).
    pub fn new(names: &[String], options: JsonOptions) -> Result<Self, EngineError> {
        let keys = names
            .iter()
            .map(|n| {
                serde_json::to_string(n)
                    .map(|k| format!("{k}:"))
                    .map_err(|e| EngineError::Config(format!("column name {n:?}: {e}")))
            })
            .collect::<Result<_, _>>()?;
        Ok(JsonEncoder { keys, options })
    }
}

impl BatchEncoder for JsonEncoder {
    fn encode(&mut self, batch: &RecordBatch, out: &mut Vec<u8>) -> Result<(), EngineError> {
        if batch.num_columns() != self.keys.len() {
            return Err(EngineError::Config(format!(
                "json sink expects {} columns, got a batch with {}",
                self.keys.len(),
                batch.num_columns()
            )));
        }
        let columns = batch
            .columns()
            .iter()
            .map(|c| ColumnText::new(c.as_ref(), self.options.timestamp_standard))
            .collect::<Result<Vec<_>, _>>()?;
        let mut scratch = String::new();
        for row in 0..batch.num_rows() {
            out.push(b'{');
            let mut first = true;
            for (key, column) in self.keys.iter().zip(&columns) {
                let null = column.is_null(row);
                if null && self.options.ignore_null_fields {
                    continue;
                }
                if !first {
                    out.push(b',');
                }
                first = false;
                out.extend_from_slice(key.as_bytes());
                if null || column.is_non_finite(row) {
                    out.extend_from_slice(b"null");
                    continue;
                }
                let text = column.text(row, &mut scratch);
                match column.kind() {
                    TextKind::Number | TextKind::Float | TextKind::Boolean => {
                        out.extend_from_slice(text.as_bytes())
                    }
                    TextKind::Text => serde_json::to_writer(&mut *out, text)
                        .map_err(|e| EngineError::Config(format!("encoding json: {e}")))?,
                }
            }
            out.extend_from_slice(b"}\n");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::datetime::TimestampStandard;
    use datafusion::arrow::array::{
        ArrayRef, BooleanArray, Decimal128Array, Float64Array, StringArray,
        TimestampMillisecondArray,
    };
    use std::sync::Arc;

    fn batch() -> RecordBatch {
        let amounts: ArrayRef = Arc::new(
            Decimal128Array::from(vec![Some(1250), None])
                .with_precision_and_scale(18, 2)
                .unwrap(),
        );
        let ts: ArrayRef = Arc::new(TimestampMillisecondArray::from(vec![
            Some(1_704_067_200_000),
            None,
        ]));
        let names: ArrayRef = Arc::new(StringArray::from(vec![Some("a\"b\n"), None]));
        let x: ArrayRef = Arc::new(Float64Array::from(vec![0.5, f64::INFINITY]));
        let ok: ArrayRef = Arc::new(BooleanArray::from(vec![true, false]));
        RecordBatch::try_from_iter([
            ("amount", amounts),
            ("ts", ts),
            ("name", names),
            ("x", x),
            ("ok", ok),
        ])
        .unwrap()
    }

    fn names() -> Vec<String> {
        ["amount", "ts", "name", "x", "ok"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn writes_json_lines_with_exact_decimals() {
        let mut out = Vec::new();
        JsonEncoder::new(&names(), JsonOptions::default())
            .unwrap()
            .encode(&batch(), &mut out)
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"amount\":12.50,\"ts\":\"2024-01-01 00:00:00.000\",\"name\":\"a\\\"b\\n\",\"x\":0.5,\"ok\":true}\n\
             {\"amount\":null,\"ts\":null,\"name\":null,\"x\":null,\"ok\":false}\n"
        );
    }

    #[test]
    fn iso_timestamps_and_ignored_nulls() {
        let options = JsonOptions {
            timestamp_standard: TimestampStandard::Iso8601,
            ignore_null_fields: true,
            ..JsonOptions::default()
        };
        let mut out = Vec::new();
        let mut encoder = JsonEncoder::new(&names(), options).unwrap();
        encoder.encode(&batch(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("\"ts\":\"2024-01-01T00:00:00.000\""),
            "{text}"
        );
        assert!(text.ends_with("{\"x\":null,\"ok\":false}\n"), "{text}");
        let err = encoder
            .encode(&batch().project(&[0]).unwrap(), &mut Vec::new())
            .unwrap_err();
        assert!(err.to_string().contains("expects 5 columns"));
    }
}
