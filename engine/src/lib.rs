//! Watershed's streaming runtime.
//!
//! This crate knows nothing of SQL text. It owns the pieces every streaming job is
//! made of:
//!
//! - [`message::Message`]: what flows on every edge (batches, watermarks, barriers, end).
//! - [`operator::Operator`]: a synchronous, columnar transformation of messages.
//! - [`source::Source`] / [`sink::Sink`]: the traits connectors implement.
//! - [`graph::JobGraph`]: nodes and edges of a job, rendered deterministically by EXPLAIN.
//! - [`runtime`]: turns a graph into chained tokio tasks joined by bounded channels.
//! - event time: [`watermark::WatermarkAssigner`] and the window operators in [`window`].
//! - [`metrics`]: per-node row accounting, so every input row is visibly accounted for.

pub mod aggregate;
pub mod changelog;
pub mod checkpoint;
pub mod connector;
pub mod error;
pub mod filter;
pub mod graph;
pub mod join;
pub mod late_rows;
pub mod message;
pub mod metrics;
pub mod operator;
pub mod project;
pub mod runtime;
pub mod sink;
pub mod source;
pub mod time;
pub mod updating_aggregate;
pub mod watermark;
pub mod window;

pub use error::{EngineError, Result};
