//! # Watershed
//!
//! A streaming SQL engine over Apache Arrow. Analysts write Flink SQL; Watershed
//! compiles it into an operator graph (source → filter → window aggregate → sink)
//! that runs on event time with watermarks.
//!
//! Embed it with [`StreamContext`], shaped like DataFusion's `SessionContext`:
//!
//! ```
//! use watershed::StreamContext;
//! use futures::StreamExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> watershed::Result<()> {
//! let ctx = StreamContext::new();
//! ctx.sql(
//!     "CREATE TABLE payments (
//!        txn_id BIGINT, event_time TIMESTAMP(3), card_id BIGINT, amount DECIMAL(18, 2),
//!        WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND
//!      ) WITH ('connector' = 'payments', 'number-of-rows' = '10000', 'cards' = '100')",
//! )
//! .await?;
//! let frame = ctx
//!     .sql(
//!         "SELECT window_start, card_id, COUNT(*) AS txns, SUM(amount) AS total
//!          FROM TABLE(TUMBLE(TABLE payments, DESCRIPTOR(event_time), INTERVAL '1' MINUTE))
//!          GROUP BY window_start, window_end, card_id",
//!     )
//!     .await?;
//! let mut results = frame.execute_stream()?;
//! let mut txns = 0;
//! while let Some(batch) = results.next().await {
//!     for row in watershed::rows::rows(&batch?) {
//!         let total: Option<rust_decimal::Decimal> = row.get("total")?;
//!         assert!(total.is_some());
//!         txns += row.get::<i64>("txns")?.unwrap_or(0);
//!     }
//! }
//! assert_eq!(txns, 10_000);
//! # Ok(())
//! # }
//! ```

pub mod context;
pub mod error;
pub mod frame;
pub mod memory;
pub mod rows;
pub mod script;
pub mod summary;

pub use context::StreamContext;
pub use error::{Result, WatershedError};
pub use frame::StreamFrame;

/// The connectors crate: sources and sinks.
pub use watershed_connectors as connectors;
/// The engine crate: operators, graphs, runtime.
pub use watershed_engine as engine;
/// The SQL crate: parser, catalog, planner.
pub use watershed_sql as sql;
