//! The changelog encoding of Arrow batches.
//!
//! An updating operator (e.g. a non-windowed `GROUP BY`) emits a changelog rather
//! than append-only rows. Watershed encodes it as Flink does with `RowKind`: every
//! batch carries an extra **last** column named [`ROW_KIND_COLUMN`] (`__row_kind`)
//! of type `Int8`, whose values are Flink's `RowKind` bytes:
//!
//! | value | kind | meaning |
//! |---|---|---|
//! | 0 | `+I` | insert |
//! | 1 | `-U` | update before (retracts the previously emitted row) |
//! | 2 | `+U` | update after (the new row) |
//! | 3 | `-D` | delete |

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int8Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;

use crate::error::{EngineError, Result};

/// Name of the changelog column appended to updating batches.
pub const ROW_KIND_COLUMN: &str = "__row_kind";

/// The kind of change a changelog row describes (Flink's `RowKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RowKind {
    /// `+I`: a new row.
    Insert,
    /// `-U`: the previous version of an updated row (a retraction).
    UpdateBefore,
    /// `+U`: the new version of an updated row.
    UpdateAfter,
    /// `-D`: a removed row.
    Delete,
}

impl RowKind {
    /// Flink's byte value: 0 = +I, 1 = -U, 2 = +U, 3 = -D.
    pub fn as_i8(self) -> i8 {
        match self {
            RowKind::Insert => 0,
            RowKind::UpdateBefore => 1,
            RowKind::UpdateAfter => 2,
            RowKind::Delete => 3,
        }
    }

    /// The kind for a byte value, `None` for values outside 0..=3.
    pub fn from_i8(value: i8) -> Option<RowKind> {
        match value {
            0 => Some(RowKind::Insert),
            1 => Some(RowKind::UpdateBefore),
            2 => Some(RowKind::UpdateAfter),
            3 => Some(RowKind::Delete),
            _ => None,
        }
    }

    /// Flink's short notation: `+I`, `-U`, `+U` or `-D`.
    pub fn short_string(self) -> &'static str {
        match self {
            RowKind::Insert => "+I",
            RowKind::UpdateBefore => "-U",
            RowKind::UpdateAfter => "+U",
            RowKind::Delete => "-D",
        }
    }

    /// Whether the row adds to the result (`+I`, `+U`) rather than retracting.
    pub fn is_addition(self) -> bool {
        matches!(self, RowKind::Insert | RowKind::UpdateAfter)
    }
}

impl std::fmt::Display for RowKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.short_string())
    }
}

/// The field of the changelog column.
pub fn row_kind_field() -> Field {
    Field::new(ROW_KIND_COLUMN, DataType::Int8, false)
}

/// The position of the changelog column: the last column, when it is named
/// [`ROW_KIND_COLUMN`] and typed `Int8`.
pub fn row_kind_column(schema: &Schema) -> Option<usize> {
    let last = schema.fields().len().checked_sub(1)?;
    let field = schema.field(last);
    (field.name() == ROW_KIND_COLUMN && field.data_type() == &DataType::Int8).then_some(last)
}

/// Whether batches of `schema` are a changelog (carry the `__row_kind` column).
pub fn is_changelog(schema: &Schema) -> bool {
    row_kind_column(schema).is_some()
}

/// `schema` with the changelog column appended (unchanged if already present).
pub fn schema_with_row_kind(schema: &SchemaRef) -> SchemaRef {
    if is_changelog(schema) {
        return Arc::clone(schema);
    }
    let mut fields: Vec<_> = schema.fields().iter().cloned().collect();
    fields.push(Arc::new(row_kind_field()));
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// The array of a row-kind column holding `kinds`.
pub fn row_kind_array(kinds: &[RowKind]) -> ArrayRef {
    Arc::new(Int8Array::from_iter_values(kinds.iter().map(|k| k.as_i8())))
}

/// Appends the changelog column holding `kinds` (one per row) to `batch`.
pub fn append_row_kind(batch: &RecordBatch, kinds: &[RowKind]) -> Result<RecordBatch> {
    if kinds.len() != batch.num_rows() {
        return Err(EngineError::InvalidGraph(format!(
            "changelog: {} row kinds for a batch of {} rows",
            kinds.len(),
            batch.num_rows()
        )));
    }
    if is_changelog(batch.schema_ref()) {
        return Err(EngineError::InvalidGraph(format!(
            "changelog: batch already has a {ROW_KIND_COLUMN} column"
        )));
    }
    let schema = schema_with_row_kind(batch.schema_ref());
    let mut columns = batch.columns().to_vec();
    columns.push(row_kind_array(kinds));
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// The row kinds of a changelog batch; an error if the batch is not a changelog
/// or holds a value outside 0..=3.
pub fn row_kinds(batch: &RecordBatch) -> Result<Vec<RowKind>> {
    let Some(index) = row_kind_column(batch.schema_ref()) else {
        return Err(EngineError::InvalidGraph(format!(
            "changelog: batch has no {ROW_KIND_COLUMN} column"
        )));
    };
    let column = batch.column(index);
    let Some(values) = column.as_any().downcast_ref::<Int8Array>() else {
        return Err(EngineError::InvalidGraph(format!(
            "changelog: {ROW_KIND_COLUMN} is not Int8"
        )));
    };
    values
        .iter()
        .map(|v| {
            v.and_then(RowKind::from_i8).ok_or_else(|| {
                EngineError::MalformedInput(format!("changelog: invalid row kind {v:?}"))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::Int64Array;

    use super::*;

    #[test]
    fn changelog_row_kind_round_trip() {
        for kind in [
            RowKind::Insert,
            RowKind::UpdateBefore,
            RowKind::UpdateAfter,
            RowKind::Delete,
        ] {
            assert_eq!(RowKind::from_i8(kind.as_i8()), Some(kind));
        }
        assert_eq!(RowKind::from_i8(4), None);
        assert_eq!(RowKind::UpdateBefore.short_string(), "-U");
        assert_eq!(RowKind::Delete.to_string(), "-D");
    }

    #[test]
    fn changelog_append_and_read_back() {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, true)]));
        assert!(!is_changelog(&schema));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from(vec![1, 2, 3]))],
        )
        .unwrap();
        let kinds = [RowKind::Insert, RowKind::UpdateBefore, RowKind::UpdateAfter];
        let out = append_row_kind(&batch, &kinds).unwrap();
        assert_eq!(row_kind_column(out.schema_ref()), Some(1));
        assert!(is_changelog(out.schema_ref()));
        assert_eq!(row_kinds(&out).unwrap(), kinds);
        assert_eq!(
            schema_with_row_kind(&schema).as_ref(),
            out.schema_ref().as_ref()
        );
        assert!(append_row_kind(&out, &kinds).is_err());
        assert!(append_row_kind(&batch, &kinds[..2]).is_err());
    }
}
