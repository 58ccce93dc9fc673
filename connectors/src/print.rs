//! The `print` sink (`'connector' = 'print'`): writes every row to stdout (or
//! stderr) in Flink's print format, `+I[1, 2024-01-01 00:00:00.000, 12.50]`,
//! prefixed by `'print-identifier'> ` when set. NULL prints as `null`.
//!
//! With several parallel instances, each line also names its instance as Flink
//! does, numbered from 1: `<identifier>:<n>> `, or `<n>> ` without an identifier.

use std::fmt::Write as _;
use std::io::Write as _;

use async_trait::async_trait;
use datafusion::arrow::record_batch::RecordBatch;
use watershed_engine::EngineError;
use watershed_engine::connector::TableSpec;
use watershed_engine::sink::{Sink, SinkFactory};
use watershed_engine::source::Split;

use crate::explain::explain_options;
use crate::format::datetime::TimestampStandard;
use crate::format::text::ColumnText;
use crate::options::{CONNECTOR, TableOptions};

/// The connector's name in `'connector' = '...'`.
pub const IDENTIFIER: &str = "print";
/// `'print-identifier'`: a prefix for every printed line.
pub const PRINT_IDENTIFIER: &str = "print-identifier";
/// `'standard-error'`: `true` prints to stderr instead of stdout.
pub const STANDARD_ERROR: &str = "standard-error";

/// Where printed rows go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrintTarget {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// Builds print sinks.
#[derive(Debug, Clone)]
pub struct PrintSinkFactory {
    identifier: Option<String>,
    target: PrintTarget,
    explain: Vec<String>,
}

impl PrintSinkFactory {
    /// From a table's options.
    pub fn new(table: &TableSpec) -> Result<Self, EngineError> {
        let options = TableOptions::from_spec(table);
        options.check_known(IDENTIFIER, &[CONNECTOR, PRINT_IDENTIFIER, STANDARD_ERROR])?;
        let target = if options.bool_or(STANDARD_ERROR, false)? {
            PrintTarget::Stderr
        } else {
            PrintTarget::Stdout
        };
        Ok(PrintSinkFactory {
            identifier: options.get(PRINT_IDENTIFIER).map(str::to_string),
            target,
            explain: explain_options(IDENTIFIER, &table.options),
        })
    }

    /// A print sink without a table, for the embedded API.
    pub fn with_target(identifier: Option<String>, target: PrintTarget) -> Self {
        let mut explain = vec![format!("{CONNECTOR}={IDENTIFIER}")];
        if let Some(id) = &identifier {
            explain.push(format!("{PRINT_IDENTIFIER}={id}"));
        }
        if target == PrintTarget::Stderr {
            explain.push(format!("{STANDARD_ERROR}=true"));
        }
        PrintSinkFactory {
            identifier,
            target,
            explain,
        }
    }
}

impl SinkFactory for PrintSinkFactory {
    fn accepts_changelog(&self) -> bool {
        true
    }

    fn explain(&self) -> Vec<String> {
        self.explain.clone()
    }

    /// A printer whose lines carry the instance number when `split.count > 1`.
    fn create(&self, split: Split) -> Result<Box<dyn Sink>, EngineError> {
        Ok(Box::new(PrintSink {
            prefix: line_prefix(self.identifier.as_deref(), split),
            target: self.target,
            text: String::new(),
        }))
    }
}

/// The prefix (without the trailing `> `) of instance `split`'s lines, as in
/// Flink's `PrintSinkOutputWriter`: the identifier, followed with parallelism
/// above 1 by `:` and the 1-based instance number (just the number without an
/// identifier). `None` when lines have no prefix.
pub fn line_prefix(identifier: Option<&str>, split: Split) -> Option<String> {
    let identifier = identifier.filter(|id| !id.is_empty());
    if split.count <= 1 {
        return identifier.map(str::to_string);
    }
    let instance = split.index + 1;
    Some(match identifier {
        Some(id) => format!("{id}:{instance}"),
        None => instance.to_string(),
    })
}

/// Appends one `+I[...]` line per row of `batch` to `out`.
pub fn format_rows(
    batch: &RecordBatch,
    identifier: Option<&str>,
    out: &mut String,
) -> Result<(), EngineError> {
    // A changelog's row kinds become the `+I`/`-U`/`+U`/`-D` prefix, as in Flink.
    let kinds = match watershed_engine::changelog::row_kind_column(batch.schema_ref()) {
        Some(_) => Some(watershed_engine::changelog::row_kinds(batch)?),
        None => None,
    };
    let data_columns = match kinds {
        Some(_) => &batch.columns()[..batch.num_columns() - 1],
        None => batch.columns(),
    };
    let columns = data_columns
        .iter()
        .map(|c| ColumnText::new(c.as_ref(), TimestampStandard::Sql))
        .collect::<Result<Vec<_>, _>>()?;
    let mut scratch = String::new();
    for row in 0..batch.num_rows() {
        if let Some(id) = identifier {
            let _ = write!(out, "{id}> ");
        }
        let kind = kinds.as_ref().map_or("+I", |k| k[row].short_string());
        out.push_str(kind);
        out.push('[');
        for (i, column) in columns.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            if column.is_null(row) {
                out.push_str("null");
            } else {
                out.push_str(column.text(row, &mut scratch));
            }
        }
        out.push_str("]\n");
    }
    Ok(())
}

struct PrintSink {
    /// The line prefix without `> `, see [`line_prefix`].
    prefix: Option<String>,
    target: PrintTarget,
    text: String,
}

#[async_trait]
impl Sink for PrintSink {
    async fn write_batch(&mut self, batch: RecordBatch) -> Result<(), EngineError> {
        self.text.clear();
        format_rows(&batch, self.prefix.as_deref(), &mut self.text)?;
        let written = match self.target {
            PrintTarget::Stdout => std::io::stdout().lock().write_all(self.text.as_bytes()),
            PrintTarget::Stderr => std::io::stderr().lock().write_all(self.text.as_bytes()),
        };
        written.map_err(|e| EngineError::io("print sink", e))
    }

    async fn finish(&mut self) -> Result<(), EngineError> {
        let flushed = match self.target {
            PrintTarget::Stdout => std::io::stdout().lock().flush(),
            PrintTarget::Stderr => std::io::stderr().lock().flush(),
        };
        flushed.map_err(|e| EngineError::io("print sink", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{
        ArrayRef, Decimal128Array, Int64Array, StringArray, TimestampMillisecondArray,
    };
    use std::sync::Arc;

    #[test]
    fn formats_like_flink() {
        let id: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), None]));
        let ts: ArrayRef = Arc::new(TimestampMillisecondArray::from(vec![
            1_704_067_200_000,
            1_704_067_200_001,
        ]));
        let amount: ArrayRef = Arc::new(
            Decimal128Array::from(vec![1250, 5])
                .with_precision_and_scale(18, 2)
                .unwrap(),
        );
        let s: ArrayRef = Arc::new(StringArray::from(vec![Some("a b"), None]));
        let batch =
            RecordBatch::try_from_iter([("id", id), ("ts", ts), ("amount", amount), ("s", s)])
                .unwrap();
        let mut out = String::new();
        format_rows(&batch, None, &mut out).unwrap();
        assert_eq!(
            out,
            "+I[1, 2024-01-01 00:00:00.000, 12.50, a b]\n\
             +I[null, 2024-01-01 00:00:00.001, 0.05, null]\n"
        );
        let mut out = String::new();
        format_rows(&batch.slice(0, 1), Some("alerts"), &mut out).unwrap();
        assert_eq!(out, "alerts> +I[1, 2024-01-01 00:00:00.000, 12.50, a b]\n");
    }

    #[test]
    fn parallel_instances_are_numbered_like_flink() {
        let split = |index| Split { index, count: 3 };
        assert_eq!(line_prefix(None, Split::SINGLE), None);
        assert_eq!(line_prefix(Some("x"), Split::SINGLE).as_deref(), Some("x"));
        assert_eq!(line_prefix(Some(""), Split::SINGLE), None);
        assert_eq!(line_prefix(Some("x"), split(0)).as_deref(), Some("x:1"));
        assert_eq!(line_prefix(Some("x"), split(2)).as_deref(), Some("x:3"));
        assert_eq!(line_prefix(None, split(1)).as_deref(), Some("2"));
        let id: ArrayRef = Arc::new(Int64Array::from(vec![7]));
        let batch = RecordBatch::try_from_iter([("id", id)]).unwrap();
        let mut out = String::new();
        format_rows(
            &batch,
            line_prefix(Some("x"), split(1)).as_deref(),
            &mut out,
        )
        .unwrap();
        assert_eq!(out, "x:2> +I[7]\n");
    }

    #[test]
    fn options() {
        let table = TableSpec {
            name: "p".into(),
            schema: Arc::new(datafusion::arrow::datatypes::Schema::empty()),
            options: [
                ("connector".to_string(), "print".to_string()),
                ("print-identifier".to_string(), "x".to_string()),
            ]
            .into(),
            time_column: None,
            primary_key: Vec::new(),
        };
        let f = PrintSinkFactory::new(&table).unwrap();
        assert_eq!(f.explain(), vec!["connector=print", "print-identifier=x"]);
        assert_eq!(
            PrintSinkFactory::with_target(Some("x".into()), PrintTarget::Stdout).explain(),
            f.explain()
        );
    }
}
