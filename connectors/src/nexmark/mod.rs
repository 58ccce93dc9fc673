//! The `nexmark` connector (`'connector' = 'nexmark'`): the Nexmark
//! benchmark's online-auction events (people, auctions, bids in the standard
//! 1:3:46 proportions), deterministic for a seed.
//!
//! Watershed has no ROW columns, so where the Nexmark repository declares one
//! `datagen` table of ROW-typed events and three views, a Watershed script
//! declares three tables over the same event sequence, picking the kind with
//! `'nexmark.table'`:
//!
//! ```sql
//! CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, channel STRING,
//!   url STRING, dateTime TIMESTAMP(3), extra STRING,
//!   WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND
//! ) WITH ('connector' = 'nexmark', 'nexmark.table' = 'bid', 'events.num' = '10000000');
//! ```
//!
//! Tables with the same options see the same events: a bid's auction and
//! bidder are ids the auction and person tables produce. With parallel
//! instances, event `n` belongs to split `n % count`, with the values it has
//! in a single-split run. `'events.num'` bounds the events of all kinds (a
//! bid table of 1M events has about 920k rows); `'rate.limited'` paces the
//! source to `'first-event.rate'` events per second of wall-clock time.

pub mod columns;
pub mod config;
pub mod generator;
pub mod model;

pub use columns::nexmark_schema;
pub use config::{EventKind, NexmarkConfig};
pub use generator::NexmarkGenerator;

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use watershed_engine::EngineError;
use watershed_engine::checkpoint::OperatorState;
use watershed_engine::connector::TableSpec;
use watershed_engine::metrics::NodeMetrics;
use watershed_engine::source::{Source, SourceContext, SourceFactory, Split};

use crate::explain::{explain_options, narrowed};
use crate::options::TableOptions;
use crate::payments::rate::RateLimiter;
use crate::payments::split_rate;

/// The connector's name in `'connector' = '...'`.
pub const IDENTIFIER: &str = "nexmark";

/// Builds Nexmark generators for a table.
#[derive(Debug, Clone)]
pub struct NexmarkSourceFactory {
    table: String,
    schema: SchemaRef,
    config: NexmarkConfig,
    explain: Vec<String>,
}

impl NexmarkSourceFactory {
    /// Validates the table's options and columns.
    pub fn new(table: &TableSpec) -> Result<Self, EngineError> {
        let config = NexmarkConfig::from_options(&TableOptions::from_spec(table))?;
        columns::resolve_columns(&table.name, config.kind, &table.schema)?;
        Ok(NexmarkSourceFactory {
            table: table.name.clone(),
            schema: table.schema.clone(),
            config,
            explain: explain_options(IDENTIFIER, &table.options),
        })
    }
}

impl SourceFactory for NexmarkSourceFactory {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn explain(&self) -> Vec<String> {
        self.explain.clone()
    }

    fn is_bounded(&self) -> bool {
        self.config.events.is_some()
    }

    /// Generates only the columns asked for: Nexmark q0-q2 read neither
    /// `channel` nor `url`, a third of a bid's bytes.
    fn with_columns(
        &self,
        columns: &[usize],
    ) -> Result<Option<Arc<dyn SourceFactory>>, EngineError> {
        let (schema, explain) = narrowed(&self.schema, &self.explain, columns)?;
        Ok(Some(Arc::new(NexmarkSourceFactory {
            schema,
            explain,
            ..self.clone()
        })))
    }

    fn create(&self, split: Split) -> Result<Box<dyn Source>, EngineError> {
        Ok(Box::new(NexmarkSource {
            generator: NexmarkGenerator::for_split(
                &self.table,
                self.config.clone(),
                self.schema.clone(),
                split,
            )?,
            limiter: self
                .config
                .rate_limited
                .then(|| RateLimiter::new(split_rate(self.config.rate, split))),
        }))
    }
}

struct NexmarkSource {
    generator: NexmarkGenerator,
    /// Paces the events this split looks at (of every kind).
    limiter: Option<RateLimiter>,
}

#[async_trait]
impl Source for NexmarkSource {
    async fn next_batch(
        &mut self,
        ctx: &SourceContext,
    ) -> Result<Option<RecordBatch>, EngineError> {
        let rows = ctx.batch_size.max(1);
        let mut events = u64::MAX;
        if let Some(limiter) = self.limiter.as_mut() {
            events = limiter.batch_size(rows) as u64;
            if let Some(remaining) = self.generator.remaining_events() {
                events = events.min(remaining);
            }
            if events > 0 {
                limiter
                    .acquire(usize::try_from(events).unwrap_or(usize::MAX))
                    .await;
            }
        }
        let batch = self.generator.next_batch(rows, events)?.map(|(b, _)| b);
        if let Some(b) = &batch {
            NodeMetrics::add(&ctx.metrics.rows_in, b.num_rows());
        }
        Ok(batch)
    }

    fn snapshot(&self) -> Result<OperatorState, EngineError> {
        OperatorState::counters(&[(
            "next_event",
            i64::try_from(self.generator.next_event()).unwrap_or(i64::MAX),
        )])
    }

    fn restore(&mut self, state: OperatorState) -> Result<(), EngineError> {
        let next = state.counter("next_event")?;
        self.generator.seek(u64::try_from(next).unwrap_or(0));
        Ok(())
    }
}
