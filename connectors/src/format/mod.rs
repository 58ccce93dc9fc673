//! Data formats shared by connectors: decoding text rows into Arrow batches and
//! encoding batches back to text.
//!
//! A connector picks a format with the `'format'` option; [`FormatConfig`] holds
//! the parsed format options and builds [`BatchDecoder`]s (one per input file or
//! stream) and [`BatchEncoder`]s. The building blocks: [`types`] (supported
//! column types), [`decode`] / [`decimal`] / [`datetime`] (one field),
//! [`row_builder`] (atomic rows into batches), [`malformed`] (fail or skip),
//! [`text`] (value rendering for encoders), [`changelog`] (changelog rows with
//! an op column).

pub mod changelog;
pub mod csv;
pub mod datetime;
pub mod decimal;
pub mod decode;
pub mod json;
pub mod malformed;
pub mod row_builder;
pub mod text;
pub mod types;

use std::io::BufRead;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use watershed_engine::EngineError;
use watershed_engine::metrics::NodeMetrics;

use self::csv::{CsvDecoder, CsvEncoder, CsvOptions};
use self::json::{JsonDecoder, JsonEncoder, JsonOptions};
use crate::options::TableOptions;

/// The option naming a table's format.
pub const FORMAT: &str = "format";

/// Turns one input stream into Arrow batches.
pub trait BatchDecoder: Send {
    /// Decodes up to `max_rows` accepted rows; `None` once the input is
    /// exhausted. Adds every row read to `metrics.rows_in` and every skipped
    /// malformed row to `metrics.rows_rejected`.
    fn next_batch(
        &mut self,
        max_rows: usize,
        metrics: &NodeMetrics,
    ) -> Result<Option<RecordBatch>, EngineError>;
}

/// Turns Arrow batches into bytes.
pub trait BatchEncoder: Send {
    /// Appends the encoding of `batch` to `out`.
    fn encode(&mut self, batch: &RecordBatch, out: &mut Vec<u8>) -> Result<(), EngineError>;
}

/// A table's format with its parsed options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatConfig {
    /// `'format' = 'csv'`.
    Csv(CsvOptions),
    /// `'format' = 'json'` (JSON lines).
    Json(JsonOptions),
}

impl FormatConfig {
    /// Reads the required `'format'` option and that format's options.
    pub fn from_options(options: &TableOptions<'_>) -> Result<Self, EngineError> {
        let name = options.required(FORMAT)?;
        match name.trim().to_ascii_lowercase().as_str() {
            "csv" => Ok(FormatConfig::Csv(CsvOptions::from_options(options)?)),
            "json" => Ok(FormatConfig::Json(JsonOptions::from_options(options)?)),
            _ => Err(options.error(FORMAT, "unsupported format; supported: csv, json")),
        }
    }

    /// The format's name as in `'format' = '...'`.
    pub fn name(&self) -> &'static str {
        match self {
            FormatConfig::Csv(_) => "csv",
            FormatConfig::Json(_) => "json",
        }
    }

    /// The option keys this format understands.
    pub fn option_keys(&self) -> &'static [&'static str] {
        match self {
            FormatConfig::Csv(_) => csv::OPTION_KEYS,
            FormatConfig::Json(_) => json::OPTION_KEYS,
        }
    }

    /// A decoder of `input`, named `location` (a file path) in error messages.
    pub fn decoder(
        &self,
        table: &str,
        schema: SchemaRef,
        location: String,
        input: Box<dyn BufRead + Send>,
    ) -> Result<Box<dyn BatchDecoder>, EngineError> {
        Ok(match self {
            FormatConfig::Csv(o) => Box::new(CsvDecoder::new(table, schema, o, location, input)?),
            FormatConfig::Json(o) => Box::new(JsonDecoder::new(table, schema, o, location, input)?),
        })
    }

    /// A decoder of `input` whose lines are records of their own (Kafka
    /// messages), named by `names(line)` in messages about malformed rows.
    pub fn record_decoder(
        &self,
        table: &str,
        schema: SchemaRef,
        names: malformed::LineNames,
        input: Box<dyn BufRead + Send>,
    ) -> Result<Box<dyn BatchDecoder>, EngineError> {
        Ok(match self {
            FormatConfig::Csv(o) => Box::new(
                CsvDecoder::new(table, schema, o, String::new(), input)?.with_line_names(names),
            ),
            FormatConfig::Json(o) => Box::new(
                JsonDecoder::new(table, schema, o, String::new(), input)?.with_line_names(names),
            ),
        })
    }

    /// An encoder for batches written to a table with `schema`.
    pub fn encoder(&self, schema: &SchemaRef) -> Result<Box<dyn BatchEncoder>, EngineError> {
        Ok(match self {
            FormatConfig::Csv(o) => Box::new(CsvEncoder::new(o.clone())),
            FormatConfig::Json(o) => {
                let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
                Box::new(JsonEncoder::new(&names, o.clone())?)
            }
        })
    }
}
