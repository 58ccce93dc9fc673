//! Watershed's SQL front end, in Flink's dialect.
//!
//! - [`parser`]: statements (`CREATE TABLE ... WATERMARK ... WITH`, `CREATE VIEW`,
//!   `INSERT INTO`, queries, `EXPLAIN`, `SET`) with positions for errors.
//! - [`catalog`]: the tables, views and settings of a session.
//! - [`window_tvf`]: window table functions (`TUMBLE`) in `FROM`.
//! - [`system_time`]: Flink's lookup-join syntax `FOR SYSTEM_TIME AS OF`.
//! - [`planner`]: DataFusion logical plans turned into streaming job graphs.
//! - [`functions`]: aggregates typed as Flink types them (`SUM`, `AVG` on DECIMAL).

pub mod catalog;
pub mod dialect;
pub mod error;
pub mod functions;
pub mod interval_join;
pub mod parser;
pub mod planner;
pub mod stream_table;
pub mod system_time;
pub mod types;
pub mod window_tvf;
pub mod window_udf;
