//! Watershed's connectors: the sources and sinks a table's `WITH (...)` options
//! select, and the formats they share.
//!
//! - [`registry::DefaultConnectors`]: the [`ConnectorRegistry`] that dispatches on
//!   `'connector'` and holds in-memory tables for the embedded API.
//! - [`filesystem`]: files and directories in CSV or JSON lines.
//! - [`memory`]: in-memory batches, channels and collecting sinks.
//! - [`payments`]: a deterministic generator of card payments.
//! - [`print`] and [`blackhole`]: sinks for debugging and benchmarking.
//! - [`format`]: decoding and encoding shared by connectors; [`options`] and
//!   [`units`]: typed access to `WITH` options; [`explain`]: EXPLAIN lines.
//!
//! Column types (Flink SQL → Arrow): BIGINT→Int64, INT→Int32, SMALLINT→Int16,
//! TINYINT→Int8, DOUBLE→Float64, FLOAT→Float32, BOOLEAN→Boolean,
//! STRING/VARCHAR→Utf8, DECIMAL(p,s)→Decimal128(p,s),
//! TIMESTAMP(3)→Timestamp(Millisecond, None), DATE→Date32.
//!
//! [`ConnectorRegistry`]: watershed_engine::connector::ConnectorRegistry

#![warn(missing_docs)]

pub mod blackhole;
pub mod explain;
pub mod filesystem;
pub mod format;
pub mod kafka;
pub mod memory;
pub mod nexmark;
pub mod options;
pub mod payments;
pub mod print;
pub mod registry;
pub mod units;

pub use blackhole::BlackholeSinkFactory;
pub use filesystem::{FileSinkFactory, FileSourceFactory};
pub use format::FormatConfig;
pub use memory::{ChannelSinkFactory, CollectSinkFactory, MemorySourceFactory};
pub use payments::{
    PaymentsConfig, PaymentsGenerator, PaymentsSourceFactory, generate_payments, payments_schema,
};
pub use print::{PrintSinkFactory, PrintTarget};
pub use registry::{DefaultConnectors, SUPPORTED_CONNECTORS};
