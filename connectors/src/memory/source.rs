//! A bounded source over record batches held in memory.
//!
//! With parallel instances, batches are the unit of work: split `index` of
//! `count` serves the batches at positions `p` with `p % count == index`
//! ([`Split::owns`]), each re-sliced to the batch size as usual.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use watershed_engine::EngineError;
use watershed_engine::checkpoint::OperatorState;
use watershed_engine::metrics::NodeMetrics;
use watershed_engine::source::{Source, SourceContext, SourceFactory, Split};

use super::IDENTIFIER;
use crate::options::CONNECTOR;

/// Serves the same batches to every reader it creates, re-sliced (without
/// copying) to at most the runtime's batch size.
#[derive(Debug, Clone)]
pub struct MemorySourceFactory {
    schema: SchemaRef,
    batches: Arc<Vec<RecordBatch>>,
}

impl MemorySourceFactory {
    /// A source of `batches`, which must all have `schema`'s column names and
    /// types (nullability is checked against the data). Each batch is re-labelled
    /// with `schema`, so field metadata of the batches does not leak through.
    pub fn new(schema: SchemaRef, batches: Vec<RecordBatch>) -> Result<Self, EngineError> {
        let batches = batches
            .into_iter()
            .enumerate()
            .map(|(i, batch)| conform(&schema, batch).map_err(|e| with_batch_index(i, e)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(MemorySourceFactory {
            schema,
            batches: Arc::new(batches),
        })
    }

    /// The batches served, already conformed to the schema.
    pub fn batches(&self) -> &[RecordBatch] {
        &self.batches
    }

    /// Total number of rows.
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

fn with_batch_index(i: usize, e: EngineError) -> EngineError {
    EngineError::Config(format!("in-memory batch {i}: {e}"))
}

/// Checks that `batch` matches `schema` by column names and types and returns
/// it with `schema` attached.
pub(super) fn conform(schema: &SchemaRef, batch: RecordBatch) -> Result<RecordBatch, EngineError> {
    let expected = schema.fields();
    let actual = batch.schema();
    let same_shape = expected.len() == actual.fields().len()
        && expected
            .iter()
            .zip(actual.fields().iter())
            .all(|(e, a)| e.name() == a.name() && e.data_type() == a.data_type());
    if !same_shape {
        let describe = |fields: &datafusion::arrow::datatypes::Fields| {
            fields
                .iter()
                .map(|f| format!("{} {}", f.name(), f.data_type()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(EngineError::Config(format!(
            "schema ({}) does not match the table's ({})",
            describe(actual.fields()),
            describe(expected)
        )));
    }
    Ok(RecordBatch::try_new(
        schema.clone(),
        batch.columns().to_vec(),
    )?)
}

impl SourceFactory for MemorySourceFactory {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn explain(&self) -> Vec<String> {
        vec![
            format!("{CONNECTOR}={IDENTIFIER}"),
            format!("batches={}", self.batches.len()),
            format!("rows={}", self.num_rows()),
        ]
    }

    fn is_bounded(&self) -> bool {
        true
    }

    /// A cursor over the batches `split` owns (round-robin by position).
    fn create(&self, split: Split) -> Result<Box<dyn Source>, EngineError> {
        Ok(Box::new(MemorySource {
            batches: self.batches.clone(),
            split,
            batch: 0,
            offset: 0,
        }))
    }
}

/// A cursor over the shared batches this split owns.
struct MemorySource {
    batches: Arc<Vec<RecordBatch>>,
    split: Split,
    /// Position of the current batch (owned by `split` unless past the end).
    batch: usize,
    offset: usize,
}

#[async_trait]
impl Source for MemorySource {
    async fn next_batch(
        &mut self,
        ctx: &SourceContext,
    ) -> Result<Option<RecordBatch>, EngineError> {
        let max_rows = ctx.batch_size.max(1);
        while let Some(batch) = self.batches.get(self.batch) {
            let remaining = batch.num_rows().saturating_sub(self.offset);
            if remaining == 0 || !self.split.owns(self.batch) {
                self.batch += 1;
                self.offset = 0;
                continue;
            }
            let len = remaining.min(max_rows);
            let slice = batch.slice(self.offset, len);
            self.offset += len;
            NodeMetrics::add(&ctx.metrics.rows_in, len);
            return Ok(Some(slice));
        }
        Ok(None)
    }

    fn snapshot(&self) -> Result<OperatorState, EngineError> {
        OperatorState::counters(&[
            ("batch", i64::try_from(self.batch).unwrap_or(i64::MAX)),
            ("offset", i64::try_from(self.offset).unwrap_or(i64::MAX)),
        ])
    }

    fn restore(&mut self, state: OperatorState) -> Result<(), EngineError> {
        self.batch = usize::try_from(state.counter("batch")?).unwrap_or(usize::MAX);
        self.offset = usize::try_from(state.counter("offset")?).unwrap_or(usize::MAX);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{ArrayRef, AsArray, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use std::sync::atomic::Ordering;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]))
    }

    fn batch(values: Vec<i64>) -> RecordBatch {
        let a: ArrayRef = Arc::new(Int64Array::from(values));
        RecordBatch::try_from_iter([("id", a)]).unwrap()
    }

    #[tokio::test]
    async fn reslices_to_the_batch_size() {
        let factory = MemorySourceFactory::new(
            schema(),
            vec![batch(vec![1, 2, 3, 4, 5]), batch(vec![]), batch(vec![6])],
        )
        .unwrap();
        assert_eq!(
            factory.explain(),
            vec!["connector=memory", "batches=3", "rows=6"]
        );
        let ctx = SourceContext {
            metrics: Arc::new(NodeMetrics::default()),
            batch_size: 2,
            idle_timeout: None,
        };
        for _ in 0..2 {
            let mut source = factory.create(Split::SINGLE).unwrap();
            let mut sizes = Vec::new();
            let mut ids: Vec<i64> = Vec::new();
            while let Some(b) = source.next_batch(&ctx).await.unwrap() {
                sizes.push(b.num_rows());
                ids.extend(b.column(0).as_primitive::<Int64Type>().values().iter());
            }
            assert_eq!(sizes, vec![2, 2, 1, 1]);
            assert_eq!(ids, vec![1, 2, 3, 4, 5, 6]);
        }
        assert_eq!(ctx.metrics.rows_in.load(Ordering::Relaxed), 12);
    }

    #[tokio::test]
    async fn a_split_restored_from_its_snapshot_continues_where_it_was() {
        let factory = MemorySourceFactory::new(
            schema(),
            vec![
                batch(vec![1, 2, 3, 4, 5]),
                batch(vec![6, 7]),
                batch(vec![8, 9, 10]),
            ],
        )
        .unwrap();
        let ctx = SourceContext {
            metrics: Arc::new(NodeMetrics::default()),
            batch_size: 2,
            idle_timeout: None,
        };
        let ids = |b: RecordBatch| -> Vec<i64> {
            b.column(0).as_primitive::<Int64Type>().values().to_vec()
        };
        let split = Split { index: 0, count: 2 };
        let mut first = factory.create(split).unwrap();
        assert_eq!(
            ids(first.next_batch(&ctx).await.unwrap().unwrap()),
            vec![1, 2]
        );
        let position = first.snapshot().unwrap();
        let mut resumed = factory.create(split).unwrap();
        resumed.restore(position).unwrap();
        let mut rest = Vec::new();
        while let Some(b) = resumed.next_batch(&ctx).await.unwrap() {
            rest.extend(ids(b));
        }
        assert_eq!(rest, vec![3, 4, 5, 8, 9, 10]);

        let bad = OperatorState::counters(&[("other", 1)]).unwrap();
        let err = factory.create(split).unwrap().restore(bad).unwrap_err();
        assert!(err.to_string().contains("no counter 'batch'"), "{err}");
    }

    #[tokio::test]
    async fn splits_serve_batches_round_robin() {
        let factory = MemorySourceFactory::new(
            schema(),
            vec![
                batch(vec![1, 2, 3]),
                batch(vec![4]),
                batch(vec![]),
                batch(vec![5, 6]),
                batch(vec![7]),
            ],
        )
        .unwrap();
        let ctx = SourceContext {
            metrics: Arc::new(NodeMetrics::default()),
            batch_size: 2,
            idle_timeout: None,
        };
        let mut per_split = Vec::new();
        for index in 0..3 {
            let mut source = factory.create(Split { index, count: 3 }).unwrap();
            let mut sizes = Vec::new();
            let mut ids: Vec<i64> = Vec::new();
            while let Some(b) = source.next_batch(&ctx).await.unwrap() {
                sizes.push(b.num_rows());
                ids.extend(b.column(0).as_primitive::<Int64Type>().values().iter());
            }
            per_split.push((sizes, ids));
        }
        // Positions 0 and 3, then 1 and 4, then the empty batch at 2.
        assert_eq!(per_split[0], (vec![2, 1, 2], vec![1, 2, 3, 5, 6]));
        assert_eq!(per_split[1], (vec![1, 1], vec![4, 7]));
        assert_eq!(per_split[2], (vec![], vec![]));
        assert_eq!(ctx.metrics.rows_in.load(Ordering::Relaxed), 7);
    }

    #[test]
    fn rejects_batches_of_another_schema() {
        let other: ArrayRef = Arc::new(StringArray::from(vec!["x"]));
        let bad = RecordBatch::try_from_iter([("id", other)]).unwrap();
        let err = MemorySourceFactory::new(schema(), vec![batch(vec![1]), bad])
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "in-memory batch 1: schema (id Utf8) does not match the table's (id Int64)"
        );
    }
}
