//! Writing a changelog as rows with an op column.
//!
//! An updating query's batches carry a trailing `__row_kind` column
//! (`watershed_engine::changelog`). A text sink cannot write that Int8 as data:
//! [`OpColumnEncoder`] removes it and puts the change's kind, as Flink's short
//! notation (`+I`, `-U`, `+U`, `-D`), in an op column **before** the table's
//! columns, then hands the rows to the table's format encoder. For CSV the op is
//! the first field of each line; for JSON it is the first key of each object.
//! Append-only batches (no `__row_kind`) are written with `+I`.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, StringArray};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use watershed_engine::EngineError;
use watershed_engine::changelog::{RowKind, row_kind_column, row_kinds};

use super::{BatchEncoder, FormatConfig};

/// Splits a batch into its data columns and one row kind per row: a
/// changelog's `__row_kind` column is removed and decoded; an append-only
/// batch is all `+I`.
pub fn split_row_kinds(batch: &RecordBatch) -> Result<(RecordBatch, Vec<RowKind>), EngineError> {
    match row_kind_column(batch.schema_ref()) {
        Some(index) => {
            let kinds = row_kinds(batch)?;
            let data: Vec<usize> = (0..index).collect();
            Ok((batch.project(&data)?, kinds))
        }
        None => Ok((batch.clone(), vec![RowKind::Insert; batch.num_rows()])),
    }
}

/// Encodes changelog rows as `op, column1, column2, ...` in the table's format.
pub struct OpColumnEncoder {
    inner: Box<dyn BatchEncoder>,
    op_field: FieldRef,
    drop_update_before: bool,
}

impl std::fmt::Debug for OpColumnEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpColumnEncoder")
            .field("op_column", self.op_field.name())
            .field("drop_update_before", &self.drop_update_before)
            .finish()
    }
}

impl OpColumnEncoder {
    /// An encoder for a table with columns `schema` (without the op column)
    /// writing `format`, whose op column is called `op_column`. With
    /// `drop_update_before`, `-U` rows are not written (upsert output).
    pub fn new(
        format: &FormatConfig,
        schema: &SchemaRef,
        op_column: &str,
        drop_update_before: bool,
    ) -> Result<Self, EngineError> {
        let op_field: FieldRef = Arc::new(Field::new(op_column, DataType::Utf8, false));
        let mut fields = vec![Arc::clone(&op_field)];
        fields.extend(schema.fields().iter().cloned());
        let inner = format.encoder(&Arc::new(Schema::new(fields)))?;
        Ok(OpColumnEncoder {
            inner,
            op_field,
            drop_update_before,
        })
    }
}

impl BatchEncoder for OpColumnEncoder {
    fn encode(&mut self, batch: &RecordBatch, out: &mut Vec<u8>) -> Result<(), EngineError> {
        let (mut data, mut kinds) = split_row_kinds(batch)?;
        if self.drop_update_before && kinds.contains(&RowKind::UpdateBefore) {
            let keep: BooleanArray = kinds
                .iter()
                .map(|k| Some(*k != RowKind::UpdateBefore))
                .collect();
            data = filter_record_batch(&data, &keep)?;
            kinds.retain(|k| *k != RowKind::UpdateBefore);
        }
        if data.num_rows() == 0 {
            return Ok(());
        }
        let op: ArrayRef = Arc::new(StringArray::from_iter_values(
            kinds.iter().map(|k| k.short_string()),
        ));
        let mut fields = Vec::with_capacity(data.num_columns() + 1);
        fields.push(Arc::clone(&self.op_field));
        fields.extend(data.schema_ref().fields().iter().cloned());
        let mut columns = Vec::with_capacity(data.num_columns() + 1);
        columns.push(op);
        columns.extend(data.columns().iter().cloned());
        let rows = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
        self.inner.encode(&rows, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::csv::CsvOptions;
    use crate::format::json::JsonOptions;
    use datafusion::arrow::array::{Decimal128Array, Int64Array};
    use watershed_engine::changelog::append_row_kind;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("account_id", DataType::Int64, true),
            Field::new("balance", DataType::Decimal128(38, 2), true),
        ]))
    }

    /// Account 1 inserted at 1.00, updated to 3.50, account 2 inserted then deleted.
    fn changelog() -> RecordBatch {
        let data = RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int64Array::from(vec![1, 1, 1, 2, 2])),
                Arc::new(
                    Decimal128Array::from(vec![100, 100, 350, 7, 7])
                        .with_precision_and_scale(38, 2)
                        .unwrap(),
                ),
            ],
        )
        .unwrap();
        append_row_kind(
            &data,
            &[
                RowKind::Insert,
                RowKind::UpdateBefore,
                RowKind::UpdateAfter,
                RowKind::Insert,
                RowKind::Delete,
            ],
        )
        .unwrap()
    }

    fn encode(format: FormatConfig, op: &str, drop: bool, batch: &RecordBatch) -> String {
        let mut encoder = OpColumnEncoder::new(&format, &schema(), op, drop).unwrap();
        let mut out = Vec::new();
        encoder.encode(batch, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn all_changes_are_written_with_the_op_first_in_csv() {
        let csv = FormatConfig::Csv(CsvOptions::default());
        assert_eq!(
            encode(csv, "op", false, &changelog()),
            "+I,1,1.00\n-U,1,1.00\n+U,1,3.50\n+I,2,0.07\n-D,2,0.07\n"
        );
    }

    #[test]
    fn upsert_drops_update_before_and_keeps_the_rest_in_json() {
        let json = FormatConfig::Json(JsonOptions::default());
        assert_eq!(
            encode(json, "change", true, &changelog()),
            "{\"change\":\"+I\",\"account_id\":1,\"balance\":1.00}\n\
             {\"change\":\"+U\",\"account_id\":1,\"balance\":3.50}\n\
             {\"change\":\"+I\",\"account_id\":2,\"balance\":0.07}\n\
             {\"change\":\"-D\",\"account_id\":2,\"balance\":0.07}\n"
        );
    }

    #[test]
    fn append_only_batches_are_inserts_and_row_kind_is_never_data() {
        let csv = FormatConfig::Csv(CsvOptions::default());
        let data = changelog().project(&[0, 1]).unwrap();
        assert_eq!(
            encode(csv.clone(), "op", true, &data.slice(0, 2)),
            "+I,1,1.00\n+I,1,1.00\n"
        );
        // A batch of only -U rows writes nothing in upsert mode.
        let only_before = changelog().slice(1, 1);
        assert_eq!(encode(csv, "op", true, &only_before), "");
        let (data, kinds) = split_row_kinds(&changelog()).unwrap();
        assert_eq!(data.schema(), schema());
        assert_eq!(kinds.len(), 5);
        assert_eq!(kinds[4], RowKind::Delete);
    }
}
