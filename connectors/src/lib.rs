//! Watershed's connectors: the sources and sinks a table's `WITH (...)` options
//! select, and the formats they share.
//!
//! - [`registry::DefaultConnectors`]: the [`ConnectorRegistry`] that dispatches on
//!   `'connector'` and holds in-memory tables for the embedded API.
//! - [`filesystem`]: files and directories in CSV or JSON lines.
//! - [`memory`]: in-memory batches, channels and collecting sinks.
//! - [`payments`]: a deterministic generator of card payments.
//! - [`print`] and [`blackhole`]: sinks for debugging and benchmarking.
//! - [`format`]: decoding and encoding shared by connectors; [`options`]: typed
//!   access to `WITH` options.
//!
//! [`ConnectorRegistry`]: watershed_engine::connector::ConnectorRegistry

pub mod format;
pub mod options;
pub mod units;
