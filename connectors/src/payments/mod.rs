//! The `payments` connector (`'connector' = 'payments'`): a datagen-like source
//! of card payments for examples, tests and benchmarks.
//!
//! Output is a pure function of the seed and options (see [`generator`]): the
//! same rows for any batch size, any column subset and on every platform. Event
//! times are out of order within `'max-out-of-orderness'`, optionally with a
//! share of late rows. The source is bounded when `'number-of-rows'` is set, and
//! paced when `'rows-per-second'` is set. It is a source only.
//!
//! With parallel instances, row `i` belongs to split `i % count`; each split
//! emits its rows in increasing row order with the values of a single-split run
//! (see [`generator`]), so the splits together produce exactly the single-split
//! rows. `'rows-per-second'` is the total rate: each split is paced to
//! `rate / count` (the first `rate % count` splits get one row more, every split
//! at least 1 row per second).

pub mod columns;
pub mod config;
pub mod generator;
pub mod rate;
pub mod tables;

pub use columns::{PaymentColumn, payments_schema};
pub use config::PaymentsConfig;
pub use generator::{PaymentsGenerator, generate_payments};

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use watershed_engine::EngineError;
use watershed_engine::checkpoint::OperatorState;
use watershed_engine::connector::TableSpec;
use watershed_engine::metrics::NodeMetrics;
use watershed_engine::source::{Source, SourceContext, SourceFactory, Split};

use self::columns::resolve_columns;
use self::rate::RateLimiter;
use crate::explain::{explain_options, narrowed};
use crate::options::TableOptions;

/// The connector's name in `'connector' = '...'`.
pub const IDENTIFIER: &str = "payments";

/// Builds payments generators for a table.
#[derive(Debug, Clone)]
pub struct PaymentsSourceFactory {
    table: String,
    schema: SchemaRef,
    config: PaymentsConfig,
    explain: Vec<String>,
}

impl PaymentsSourceFactory {
    /// Validates the table's options and columns.
    pub fn new(table: &TableSpec) -> Result<Self, EngineError> {
        let config = PaymentsConfig::from_options(&TableOptions::from_spec(table))?;
        resolve_columns(&table.name, &table.schema)?;
        Ok(PaymentsSourceFactory {
            table: table.name.clone(),
            schema: table.schema.clone(),
            config,
            explain: explain_options(IDENTIFIER, &table.options),
        })
    }

    /// The parsed options.
    pub fn config(&self) -> &PaymentsConfig {
        &self.config
    }
}

impl SourceFactory for PaymentsSourceFactory {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn explain(&self) -> Vec<String> {
        self.explain.clone()
    }

    fn is_bounded(&self) -> bool {
        self.config.number_of_rows.is_some()
    }

    /// Generates only the columns asked for. Each column comes from its own
    /// draws of a row, so the values do not depend on the other columns.
    fn with_columns(
        &self,
        columns: &[usize],
    ) -> Result<Option<Arc<dyn SourceFactory>>, EngineError> {
        let (schema, explain) = narrowed(&self.schema, &self.explain, columns)?;
        Ok(Some(Arc::new(PaymentsSourceFactory {
            schema,
            explain,
            ..self.clone()
        })))
    }

    /// A generator of the rows `split` owns, paced to its share of the rate.
    fn create(&self, split: Split) -> Result<Box<dyn Source>, EngineError> {
        Ok(Box::new(PaymentsSource {
            generator: PaymentsGenerator::for_split(
                &self.table,
                self.config.clone(),
                self.schema.clone(),
                split,
            )?,
            limiter: self
                .config
                .rows_per_second
                .map(|rate| RateLimiter::new(split_rate(rate, split))),
        }))
    }
}

/// Split `split`'s share of a total rate of `rows_per_second`: `rate / count`,
/// plus one for the first `rate % count` splits, so the shares add up to the rate.
pub fn split_rate(rows_per_second: u64, split: Split) -> u64 {
    let count = split.count.max(1) as u64;
    let extra = (split.index as u64) < rows_per_second % count;
    rows_per_second / count + u64::from(extra)
}

struct PaymentsSource {
    generator: PaymentsGenerator,
    limiter: Option<RateLimiter>,
}

#[async_trait]
impl Source for PaymentsSource {
    async fn next_batch(
        &mut self,
        ctx: &SourceContext,
    ) -> Result<Option<RecordBatch>, EngineError> {
        let mut rows = ctx.batch_size.max(1);
        if let Some(limiter) = self.limiter.as_mut() {
            rows = limiter.batch_size(rows);
            if let Some(remaining) = self.generator.remaining() {
                rows = rows.min(usize::try_from(remaining).unwrap_or(usize::MAX));
            }
            if rows > 0 {
                limiter.acquire(rows).await;
            }
        }
        let batch = self.generator.next_batch(rows)?;
        if let Some(b) = &batch {
            NodeMetrics::add(&ctx.metrics.rows_in, b.num_rows());
        }
        Ok(batch)
    }

    fn snapshot(&self) -> Result<OperatorState, EngineError> {
        let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        OperatorState::counters(&[
            ("next_row", as_i64(self.generator.next_row())),
            ("rows_generated", as_i64(self.generator.rows_generated())),
        ])
    }

    fn restore(&mut self, state: OperatorState) -> Result<(), EngineError> {
        let as_u64 = |v: i64| u64::try_from(v).unwrap_or(0);
        self.generator.seek(
            as_u64(state.counter("next_row")?),
            as_u64(state.counter("rows_generated")?),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::compute::{concat_batches, sort_to_indices, take_record_batch};
    use datafusion::arrow::datatypes::Int64Type;
    use std::collections::BTreeMap;
    use std::sync::atomic::Ordering;

    fn spec(pairs: &[(&str, &str)], schema: SchemaRef) -> TableSpec {
        TableSpec {
            name: "payments".into(),
            schema,
            options: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            time_column: Some("event_time".into()),
            primary_key: Vec::new(),
        }
    }

    #[tokio::test]
    async fn bounded_source_counts_rows() {
        let factory = PaymentsSourceFactory::new(&spec(
            &[
                ("connector", "payments"),
                ("number-of-rows", "1000"),
                ("seed", "1"),
            ],
            payments_schema(),
        ))
        .unwrap();
        assert!(factory.is_bounded());
        assert_eq!(
            factory.explain(),
            vec!["connector=payments", "number-of-rows=1000", "seed=1"]
        );
        let ctx = SourceContext {
            metrics: Arc::new(NodeMetrics::default()),
            batch_size: 300,
            idle_timeout: None,
        };
        let mut source = factory.create(Split::SINGLE).unwrap();
        let mut sizes = Vec::new();
        while let Some(b) = source.next_batch(&ctx).await.unwrap() {
            sizes.push(b.num_rows());
        }
        assert_eq!(sizes, vec![300, 300, 300, 100]);
        assert_eq!(ctx.metrics.rows_in.load(Ordering::Relaxed), 1000);
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limited_source_is_paced() {
        let factory = PaymentsSourceFactory::new(&spec(
            &[("connector", "payments"), ("rows-per-second", "1000")],
            payments_schema(),
        ))
        .unwrap();
        assert!(!factory.is_bounded());
        let ctx = SourceContext {
            metrics: Arc::new(NodeMetrics::default()),
            batch_size: 8192,
            idle_timeout: None,
        };
        let mut source = factory.create(Split::SINGLE).unwrap();
        let begin = tokio::time::Instant::now();
        let mut rows = 0;
        while rows < 2000 {
            rows += source.next_batch(&ctx).await.unwrap().unwrap().num_rows();
        }
        assert_eq!(rows, 2000);
        assert_eq!(begin.elapsed(), std::time::Duration::from_millis(1900));
    }

    #[tokio::test]
    async fn a_split_restored_from_its_snapshot_continues_with_the_same_rows() {
        let factory = PaymentsSourceFactory::new(&spec(
            &[
                ("connector", "payments"),
                ("number-of-rows", "5000"),
                ("seed", "7"),
            ],
            payments_schema(),
        ))
        .unwrap();
        for split in [Split::SINGLE, Split { index: 1, count: 3 }] {
            let mut whole = factory.create(split).unwrap();
            let expected =
                concat_batches(&payments_schema(), &read_all(&mut whole, 700).await).unwrap();

            let ctx = SourceContext {
                metrics: Arc::new(NodeMetrics::default()),
                batch_size: 700,
                idle_timeout: None,
            };
            let mut first = factory.create(split).unwrap();
            let mut head = Vec::new();
            for _ in 0..2 {
                head.push(first.next_batch(&ctx).await.unwrap().unwrap());
            }
            let position = first.snapshot().unwrap();
            drop(first);
            let mut resumed = factory.create(split).unwrap();
            resumed.restore(position).unwrap();
            head.extend(read_all(&mut resumed, 700).await);
            let got = concat_batches(&payments_schema(), &head).unwrap();
            assert_eq!(got, expected, "split {split:?}");
        }
    }

    /// A source of some of the columns (projection pushdown) gives each of
    /// them exactly as the whole table has it, at any parallelism.
    #[tokio::test]
    async fn some_columns_are_the_whole_tables_columns() {
        let factory = PaymentsSourceFactory::new(&spec(
            &[
                ("connector", "payments"),
                ("number-of-rows", "3000"),
                ("seed", "3"),
            ],
            payments_schema(),
        ))
        .unwrap();
        let width = payments_schema().fields().len();
        for columns in [vec![0, 1], vec![2, 6, 9], vec![5, 7], (0..width).collect()] {
            let some = factory.with_columns(&columns).unwrap().unwrap();
            for split in [Split::SINGLE, Split { index: 1, count: 2 }] {
                let mut whole = factory.create(split).unwrap();
                let whole =
                    concat_batches(&payments_schema(), &read_all(&mut whole, 500).await).unwrap();
                let mut part = some.create(split).unwrap();
                let part = concat_batches(&some.schema(), &read_all(&mut part, 333).await).unwrap();
                assert_eq!(
                    part,
                    whole.project(&columns).unwrap(),
                    "{columns:?} {split:?}"
                );
            }
        }
    }

    async fn read_all(source: &mut Box<dyn Source>, batch_size: usize) -> Vec<RecordBatch> {
        let ctx = SourceContext {
            metrics: Arc::new(NodeMetrics::default()),
            batch_size,
            idle_timeout: None,
        };
        let mut batches = Vec::new();
        while let Some(b) = source.next_batch(&ctx).await.unwrap() {
            batches.push(b);
        }
        assert_eq!(
            ctx.metrics.rows_in.load(Ordering::Relaxed),
            batches.iter().map(|b| b.num_rows() as u64).sum::<u64>()
        );
        batches
    }

    #[tokio::test]
    async fn three_splits_union_to_the_single_split_rows() {
        let factory = PaymentsSourceFactory::new(&spec(
            &[
                ("connector", "payments"),
                ("number-of-rows", "1000"),
                ("late-rows-percent", "2"),
            ],
            payments_schema(),
        ))
        .unwrap();
        let schema = factory.schema();
        let mut single = factory.create(Split::SINGLE).unwrap();
        let single = concat_batches(&schema, &read_all(&mut single, 128).await).unwrap();
        let mut parts = Vec::new();
        for index in 0..3 {
            let mut source = factory.create(Split { index, count: 3 }).unwrap();
            let part = concat_batches(&schema, &read_all(&mut source, 128).await).unwrap();
            let txn = part.column(0).as_primitive::<Int64Type>();
            assert!(txn.values().iter().all(|t| *t as usize % 3 == index));
            assert!(txn.values().windows(2).all(|w| w[0] < w[1]));
            parts.push(part);
        }
        let union = concat_batches(&schema, &parts).unwrap();
        let order = sort_to_indices(union.column(0), None, None).unwrap();
        let sorted = take_record_batch(&union, &order).unwrap();
        assert_eq!(sorted.num_rows(), 1000);
        assert_eq!(sorted, single);
    }

    #[tokio::test(start_paused = true)]
    async fn the_rate_is_shared_by_the_splits() {
        assert_eq!(split_rate(10, Split::SINGLE), 10);
        let rates: Vec<u64> = (0..3)
            .map(|index| split_rate(10, Split { index, count: 3 }))
            .collect();
        assert_eq!(rates, vec![4, 3, 3]);
        let factory = PaymentsSourceFactory::new(&spec(
            &[("connector", "payments"), ("rows-per-second", "1000")],
            payments_schema(),
        ))
        .unwrap();
        let ctx = SourceContext {
            metrics: Arc::new(NodeMetrics::default()),
            batch_size: 8192,
            idle_timeout: None,
        };
        let mut source = factory.create(Split { index: 1, count: 2 }).unwrap();
        let begin = tokio::time::Instant::now();
        let mut rows = 0;
        while rows < 1000 {
            rows += source.next_batch(&ctx).await.unwrap().unwrap().num_rows();
        }
        // 500 rows per second in batches of 50: the last batch starts at row 950.
        assert_eq!(rows, 1000);
        assert_eq!(begin.elapsed(), std::time::Duration::from_millis(1900));
    }

    #[test]
    fn unknown_column_is_a_config_error() {
        let schema = Arc::new(datafusion::arrow::datatypes::Schema::new(vec![
            datafusion::arrow::datatypes::Field::new(
                "iban",
                datafusion::arrow::datatypes::DataType::Utf8,
                true,
            ),
        ]));
        let err =
            PaymentsSourceFactory::new(&spec(&[("connector", "payments")], schema)).unwrap_err();
        assert!(matches!(err, EngineError::Config(_)));
        assert!(err.to_string().contains("supported columns"), "{err}");
    }
}
