//! The `payments` connector (`'connector' = 'payments'`): a datagen-like source
//! of card payments for examples, tests and benchmarks.
//!
//! Output is a pure function of the seed and options (see [`generator`]): the
//! same rows for any batch size, any column subset and on every platform. Event
//! times are out of order within `'max-out-of-orderness'`, optionally with a
//! share of late rows. The source is bounded when `'number-of-rows'` is set, and
//! paced when `'rows-per-second'` is set. It is a source only.

pub mod columns;
pub mod config;
pub mod generator;
pub mod rate;
pub mod tables;

pub use columns::{PaymentColumn, payments_schema};
pub use config::PaymentsConfig;
pub use generator::{PaymentsGenerator, generate_payments};

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use watershed_engine::EngineError;
use watershed_engine::connector::TableSpec;
use watershed_engine::metrics::NodeMetrics;
use watershed_engine::source::{Source, SourceContext, SourceFactory};

use self::columns::resolve_columns;
use self::rate::RateLimiter;
use crate::explain::explain_options;
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

    fn create(&self) -> Result<Box<dyn Source>, EngineError> {
        Ok(Box::new(PaymentsSource {
            generator: PaymentsGenerator::for_table(
                &self.table,
                self.config.clone(),
                self.schema.clone(),
            )?,
            limiter: self.config.rows_per_second.map(RateLimiter::new),
        }))
    }
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::Arc;
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
        };
        let mut source = factory.create().unwrap();
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
        };
        let mut source = factory.create().unwrap();
        let begin = tokio::time::Instant::now();
        let mut rows = 0;
        while rows < 2000 {
            rows += source.next_batch(&ctx).await.unwrap().unwrap().num_rows();
        }
        assert_eq!(rows, 2000);
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
