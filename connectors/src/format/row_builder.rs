//! Building Arrow batches from decoded rows, one whole row at a time.
//!
//! Text formats decode row by row, and a row may fail in its last field. The
//! builder therefore stages a row's values in a small buffer ([`Cell`]s plus a
//! string arena) and only appends them to the column builders on
//! [`RowBatchBuilder::commit_row`]; a rejected row leaves no trace.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder, Float64Builder,
    Int8Builder, Int16Builder, Int32Builder, Int64Builder, StringBuilder,
    TimestampMillisecondBuilder,
};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use watershed_engine::EngineError;

use super::datetime::TimestampStandard;
use super::decode::{Cell, decode_text};
use super::types::ColumnType;

/// Why a field (and so its row) was rejected; the message names the column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Index of the column in the schema.
    pub column: usize,
    /// `column 'amount' (DECIMAL(18, 2)): invalid decimal 'abc'`.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// A typed Arrow builder for one column.
enum ColumnBuilder {
    Int8(Int8Builder),
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Boolean(BooleanBuilder),
    Utf8(StringBuilder),
    Decimal(Decimal128Builder, u8, i8),
    Timestamp(TimestampMillisecondBuilder, Option<Arc<str>>),
    Date(Date32Builder),
}

impl ColumnBuilder {
    fn new(ty: &ColumnType, capacity: usize) -> Self {
        match ty {
            ColumnType::TinyInt => ColumnBuilder::Int8(Int8Builder::with_capacity(capacity)),
            ColumnType::SmallInt => ColumnBuilder::Int16(Int16Builder::with_capacity(capacity)),
            ColumnType::Int => ColumnBuilder::Int32(Int32Builder::with_capacity(capacity)),
            ColumnType::BigInt => ColumnBuilder::Int64(Int64Builder::with_capacity(capacity)),
            ColumnType::Float => ColumnBuilder::Float32(Float32Builder::with_capacity(capacity)),
            ColumnType::Double => ColumnBuilder::Float64(Float64Builder::with_capacity(capacity)),
            ColumnType::Boolean => ColumnBuilder::Boolean(BooleanBuilder::with_capacity(capacity)),
            ColumnType::String => {
                ColumnBuilder::Utf8(StringBuilder::with_capacity(capacity, capacity * 16))
            }
            ColumnType::Decimal { precision, scale } => ColumnBuilder::Decimal(
                Decimal128Builder::with_capacity(capacity),
                *precision,
                *scale,
            ),
            ColumnType::Timestamp { tz } => ColumnBuilder::Timestamp(
                TimestampMillisecondBuilder::with_capacity(capacity),
                tz.clone(),
            ),
            ColumnType::Date => ColumnBuilder::Date(Date32Builder::with_capacity(capacity)),
        }
    }

    /// Appends a staged value; a cell of an unexpected kind becomes NULL (the
    /// decoder only produces matching cells, so this does not happen).
    fn append(&mut self, cell: Cell, arena: &str) {
        match (self, cell) {
            (ColumnBuilder::Int8(b), Cell::Int(v)) => b.append_option(i8::try_from(v).ok()),
            (ColumnBuilder::Int16(b), Cell::Int(v)) => b.append_option(i16::try_from(v).ok()),
            (ColumnBuilder::Int32(b), Cell::Int(v)) => b.append_option(i32::try_from(v).ok()),
            (ColumnBuilder::Int64(b), Cell::Int(v)) => b.append_value(v),
            (ColumnBuilder::Float32(b), Cell::F32(v)) => b.append_value(v),
            (ColumnBuilder::Float64(b), Cell::F64(v)) => b.append_value(v),
            (ColumnBuilder::Boolean(b), Cell::Bool(v)) => b.append_value(v),
            (ColumnBuilder::Utf8(b), Cell::Text { start, end }) => {
                b.append_option(arena.get(start..end))
            }
            (ColumnBuilder::Decimal(b, _, _), Cell::Decimal(v)) => b.append_value(v),
            (ColumnBuilder::Timestamp(b, _), Cell::Int(v)) => b.append_value(v),
            (ColumnBuilder::Date(b), Cell::Int(v)) => b.append_option(i32::try_from(v).ok()),
            (builder, _) => builder.append_null(),
        }
    }

    fn append_null(&mut self) {
        match self {
            ColumnBuilder::Int8(b) => b.append_null(),
            ColumnBuilder::Int16(b) => b.append_null(),
            ColumnBuilder::Int32(b) => b.append_null(),
            ColumnBuilder::Int64(b) => b.append_null(),
            ColumnBuilder::Float32(b) => b.append_null(),
            ColumnBuilder::Float64(b) => b.append_null(),
            ColumnBuilder::Boolean(b) => b.append_null(),
            ColumnBuilder::Utf8(b) => b.append_null(),
            ColumnBuilder::Decimal(b, _, _) => b.append_null(),
            ColumnBuilder::Timestamp(b, _) => b.append_null(),
            ColumnBuilder::Date(b) => b.append_null(),
        }
    }

    fn finish(&mut self) -> Result<ArrayRef, EngineError> {
        Ok(match self {
            ColumnBuilder::Int8(b) => Arc::new(b.finish()),
            ColumnBuilder::Int16(b) => Arc::new(b.finish()),
            ColumnBuilder::Int32(b) => Arc::new(b.finish()),
            ColumnBuilder::Int64(b) => Arc::new(b.finish()),
            ColumnBuilder::Float32(b) => Arc::new(b.finish()),
            ColumnBuilder::Float64(b) => Arc::new(b.finish()),
            ColumnBuilder::Boolean(b) => Arc::new(b.finish()),
            ColumnBuilder::Utf8(b) => Arc::new(b.finish()),
            ColumnBuilder::Decimal(b, precision, scale) => {
                Arc::new(b.finish().with_precision_and_scale(*precision, *scale)?)
            }
            ColumnBuilder::Timestamp(b, tz) => Arc::new(b.finish().with_timezone_opt(tz.clone())),
            ColumnBuilder::Date(b) => Arc::new(b.finish()),
        })
    }
}

/// Accumulates decoded rows into a [`RecordBatch`] of a fixed schema.
///
/// Use: [`begin_row`](Self::begin_row), then `set_*` per column (unset columns
/// are NULL), then [`commit_row`](Self::commit_row); or
/// [`append_text_row`](Self::append_text_row) for a row of text fields.
pub struct RowBatchBuilder {
    schema: SchemaRef,
    types: Vec<ColumnType>,
    builders: Vec<ColumnBuilder>,
    staged: Vec<Cell>,
    arena: String,
    standard: TimestampStandard,
    rows: usize,
    capacity: usize,
}

impl RowBatchBuilder {
    /// A builder for `schema`; fails on a column type the text formats do not
    /// support. `table` names the table in that error.
    pub fn new(
        table: &str,
        schema: SchemaRef,
        standard: TimestampStandard,
    ) -> Result<Self, EngineError> {
        let types = ColumnType::for_schema(table, &schema)?;
        let capacity = 1024;
        let builders = types
            .iter()
            .map(|t| ColumnBuilder::new(t, capacity))
            .collect();
        Ok(RowBatchBuilder {
            staged: vec![Cell::Null; types.len()],
            schema,
            types,
            builders,
            arena: String::new(),
            standard,
            rows: 0,
            capacity,
        })
    }

    /// The schema of the batches this builder produces.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The type of each column.
    pub fn types(&self) -> &[ColumnType] {
        &self.types
    }

    /// Number of committed rows not yet returned by [`finish`](Self::finish).
    pub fn len(&self) -> usize {
        self.rows
    }

    /// True when no row is pending.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// A field error for `column` with the column's name and type.
    pub fn field_error(&self, column: usize, reason: impl fmt::Display) -> FieldError {
        let name = self
            .schema
            .fields()
            .get(column)
            .map(|f| f.name().as_str())
            .unwrap_or("?");
        let ty = self
            .types
            .get(column)
            .map(ToString::to_string)
            .unwrap_or_default();
        FieldError {
            column,
            message: format!("column '{name}' ({ty}): {reason}"),
        }
    }

    /// Starts a new row: every column is NULL until set.
    pub fn begin_row(&mut self) {
        self.staged.fill(Cell::Null);
        self.arena.clear();
    }

    /// Decodes `text` into `column` of the current row.
    pub fn set_text(&mut self, column: usize, text: &str) -> Result<(), FieldError> {
        let Some(ty) = self.types.get(column) else {
            return Err(self.field_error(column, "no such column"));
        };
        match decode_text(ty, text, self.standard, &mut self.arena) {
            Ok(cell) => {
                self.staged[column] = cell;
                Ok(())
            }
            Err(reason) => Err(self.field_error(column, reason)),
        }
    }

    /// Sets `column` of the current row to a boolean; only `BOOLEAN` and `STRING`
    /// columns accept one.
    pub fn set_bool(&mut self, column: usize, value: bool) -> Result<(), FieldError> {
        match self.types.get(column) {
            Some(ColumnType::Boolean) => {
                self.staged[column] = Cell::Bool(value);
                Ok(())
            }
            Some(ColumnType::String) => self.set_text(column, if value { "true" } else { "false" }),
            _ => Err(self.field_error(column, format!("unexpected boolean {value}"))),
        }
    }

    /// Sets `column` of the current row to NULL.
    pub fn set_null(&mut self, column: usize) {
        if let Some(cell) = self.staged.get_mut(column) {
            *cell = Cell::Null;
        }
    }

    /// Appends the staged row, unless it has a NULL in a `NOT NULL` column.
    pub fn commit_row(&mut self) -> Result<(), FieldError> {
        for (i, cell) in self.staged.iter().enumerate() {
            if *cell == Cell::Null && !self.schema.field(i).is_nullable() {
                return Err(self.field_error(i, "NULL in a NOT NULL column"));
            }
        }
        for (builder, cell) in self.builders.iter_mut().zip(&self.staged) {
            builder.append(*cell, &self.arena);
        }
        self.rows += 1;
        Ok(())
    }

    /// Decodes and appends one row of text fields (`None` = NULL), atomically:
    /// on error nothing is appended. The field count must match the schema.
    pub fn append_text_row(&mut self, fields: &[Option<&str>]) -> Result<(), FieldError> {
        if fields.len() != self.types.len() {
            return Err(FieldError {
                column: fields.len().min(self.types.len()),
                message: format!(
                    "expected {} fields, found {}",
                    self.types.len(),
                    fields.len()
                ),
            });
        }
        self.begin_row();
        for (i, field) in fields.iter().enumerate() {
            match field {
                Some(text) => self.set_text(i, text)?,
                None => self.set_null(i),
            }
        }
        self.commit_row()
    }

    /// Returns the committed rows as a batch and starts over.
    pub fn finish(&mut self) -> Result<RecordBatch, EngineError> {
        let columns = self
            .builders
            .iter_mut()
            .map(ColumnBuilder::finish)
            .collect::<Result<Vec<_>, _>>()?;
        self.rows = 0;
        let capacity = self.capacity;
        for (builder, ty) in self.builders.iter_mut().zip(&self.types) {
            *builder = ColumnBuilder::new(ty, capacity);
        }
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::{
        DataType, Decimal128Type, Field, Int64Type, Schema, TimeUnit,
    };

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
            Field::new("amount", DataType::Decimal128(18, 2), true),
            Field::new("note", DataType::Utf8, true),
        ]))
    }

    #[test]
    fn a_failing_row_leaves_no_partial_values() {
        let mut b = RowBatchBuilder::new("t", schema(), TimestampStandard::Sql).unwrap();
        b.append_text_row(&[
            Some("1"),
            Some("2024-01-01 00:00:00"),
            Some("1.5"),
            Some("a"),
        ])
        .unwrap();
        let err = b
            .append_text_row(&[
                Some("2"),
                Some("2024-01-01 00:00:01"),
                Some("abc"),
                Some("b"),
            ])
            .unwrap_err();
        assert_eq!(
            err.message,
            "column 'amount' (DECIMAL(18, 2)): invalid decimal 'abc'"
        );
        let err = b
            .append_text_row(&[None, Some(""), Some(""), Some("")])
            .unwrap_err();
        assert!(err.message.contains("NOT NULL"), "{err}");
        b.append_text_row(&[Some("3"), Some(""), Some(""), None])
            .unwrap();
        assert_eq!(b.len(), 2);
        let batch = b.finish().unwrap();
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(
            batch.column(0).as_primitive::<Int64Type>().values(),
            &[1, 3]
        );
        let amounts = batch.column(2).as_primitive::<Decimal128Type>();
        assert_eq!(amounts.value(0), 150);
        assert!(amounts.is_null(1));
        assert_eq!(batch.column(2).data_type(), &DataType::Decimal128(18, 2));
        let notes = batch.column(3).as_string::<i32>();
        assert_eq!(notes.value(0), "a");
        assert!(notes.is_null(1));
        assert!(b.is_empty());
        assert_eq!(b.finish().unwrap().num_rows(), 0);
    }

    #[test]
    fn wrong_field_count_is_an_error() {
        let mut b = RowBatchBuilder::new("t", schema(), TimestampStandard::Sql).unwrap();
        let err = b.append_text_row(&[Some("1")]).unwrap_err();
        assert_eq!(err.message, "expected 4 fields, found 1");
    }
}
