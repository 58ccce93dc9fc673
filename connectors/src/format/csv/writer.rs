//! CSV encoding of Arrow batches (see [`CsvEncoder`]).

use csv::{QuoteStyle, WriterBuilder};
use datafusion::arrow::record_batch::RecordBatch;
use watershed_engine::EngineError;

use super::CsvOptions;
use crate::format::BatchEncoder;
use crate::format::datetime::TimestampStandard;
use crate::format::text::ColumnText;

/// Writes batches as CSV: no header, quoting only where needed, timestamps as
/// `yyyy-MM-dd HH:mm:ss.SSS` and decimals in plain notation at the column scale.
/// NULL is an empty field, or `csv.null-literal` when set.
#[derive(Debug, Clone)]
pub struct CsvEncoder {
    options: CsvOptions,
}

impl CsvEncoder {
    /// An encoder with the table's CSV options.
    pub fn new(options: CsvOptions) -> Self {
        CsvEncoder { options }
    }

    fn writer_builder(&self) -> WriterBuilder {
        let mut builder = WriterBuilder::new();
        builder
            .has_headers(false)
            .flexible(true)
            .delimiter(self.options.delimiter)
            .quote(self.options.quote.unwrap_or(b'"'))
            .quote_style(if self.options.quote.is_some() {
                QuoteStyle::Necessary
            } else {
                QuoteStyle::Never
            });
        if let Some(escape) = self.options.escape {
            builder.double_quote(false).escape(escape);
        }
        builder
    }
}

fn csv_error(e: csv::Error) -> EngineError {
    match e.into_kind() {
        csv::ErrorKind::Io(io) => EngineError::io("encoding csv", io),
        other => EngineError::Config(format!("encoding csv: {other:?}")),
    }
}

impl BatchEncoder for CsvEncoder {
    fn encode(&mut self, batch: &RecordBatch, out: &mut Vec<u8>) -> Result<(), EngineError> {
        let columns = batch
            .columns()
            .iter()
            .map(|c| ColumnText::new(c.as_ref(), TimestampStandard::Sql))
            .collect::<Result<Vec<_>, _>>()?;
        let null = self.options.null_literal.clone().unwrap_or_default();
        let mut writer = self.writer_builder().from_writer(out);
        let mut scratch = String::new();
        for row in 0..batch.num_rows() {
            for column in &columns {
                if column.is_null(row) {
                    writer.write_field(&null).map_err(csv_error)?;
                } else {
                    writer
                        .write_field(column.text(row, &mut scratch))
                        .map_err(csv_error)?;
                }
            }
            writer
                .write_record(std::iter::empty::<&[u8]>())
                .map_err(csv_error)?;
        }
        writer
            .flush()
            .map_err(|e| EngineError::io("encoding csv", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{
        ArrayRef, Decimal128Array, Int64Array, StringArray, TimestampMillisecondArray,
    };
    use std::sync::Arc;

    fn batch() -> RecordBatch {
        let ids: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), None, Some(3)]));
        let ts: ArrayRef = Arc::new(TimestampMillisecondArray::from(vec![
            Some(1_704_067_200_000),
            Some(1_704_067_200_123),
            None,
        ]));
        let amounts: ArrayRef = Arc::new(
            Decimal128Array::from(vec![Some(1250), Some(-1), None])
                .with_precision_and_scale(18, 2)
                .unwrap(),
        );
        let names: ArrayRef = Arc::new(StringArray::from(vec![
            Some("plain"),
            Some("a,b"),
            Some("say \"hi\"\nbye"),
        ]));
        RecordBatch::try_from_iter([
            ("id", ids),
            ("ts", ts),
            ("amount", amounts),
            ("name", names),
        ])
        .unwrap()
    }

    #[test]
    fn writes_flink_like_csv() {
        let mut out = Vec::new();
        CsvEncoder::new(CsvOptions::default())
            .encode(&batch(), &mut out)
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "1,2024-01-01 00:00:00.000,12.50,plain\n\
             ,2024-01-01 00:00:00.123,-0.01,\"a,b\"\n\
             3,,,\"say \"\"hi\"\"\nbye\"\n"
        );
    }

    #[test]
    fn null_literal_and_delimiter_options() {
        let options = CsvOptions {
            delimiter: b'|',
            null_literal: Some("\\N".into()),
            ..CsvOptions::default()
        };
        let mut out = Vec::new();
        CsvEncoder::new(options)
            .encode(&batch().slice(1, 1), &mut out)
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\\N|2024-01-01 00:00:00.123|-0.01|a,b\n"
        );
    }
}
