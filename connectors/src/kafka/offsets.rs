//! Where a Kafka source starts and ends reading: Flink's `scan.startup.*` and
//! `scan.bounded.*` options.

use std::collections::BTreeMap;

use watershed_engine::EngineError;

use super::{
    BOUNDED_MODE, BOUNDED_SPECIFIC_OFFSETS, BOUNDED_TIMESTAMP, STARTUP_MODE,
    STARTUP_SPECIFIC_OFFSETS, STARTUP_TIMESTAMP,
};
use crate::options::TableOptions;

/// Where each partition's reading starts when there is no checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupMode {
    /// The oldest retained message (the default here, as a table is read whole).
    Earliest,
    /// Only messages written after the job starts.
    Latest,
    /// The consumer group's committed offsets; where it has none, the
    /// earliest offset (else `properties.auto.offset.reset`).
    GroupOffsets,
    /// The first message at or after this time (milliseconds since the epoch).
    Timestamp(i64),
    /// These offsets per partition; partitions not listed start at the earliest.
    Specific(BTreeMap<i32, i64>),
}

/// Where each partition's reading ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BoundedMode {
    /// Never: the table is a stream.
    Unbounded,
    /// At the end offsets the partitions had when the job started.
    Latest,
    /// Before the first message at or after this time.
    Timestamp(i64),
    /// Before these offsets (exclusive); partitions not listed are not read.
    Specific(BTreeMap<i32, i64>),
}

impl StartupMode {
    /// Reads `scan.startup.mode` and the option its mode needs.
    pub fn from_options(options: &TableOptions<'_>) -> Result<Self, EngineError> {
        Ok(
            match options.string_or(STARTUP_MODE, "earliest-offset").trim() {
                "earliest-offset" => StartupMode::Earliest,
                "latest-offset" => StartupMode::Latest,
                "group-offsets" => StartupMode::GroupOffsets,
                "timestamp" => StartupMode::Timestamp(timestamp(options, STARTUP_TIMESTAMP)?),
                "specific-offsets" => {
                    StartupMode::Specific(specific_offsets(options, STARTUP_SPECIFIC_OFFSETS)?)
                }
                _ => {
                    return Err(options.error(
                        STARTUP_MODE,
                        "expected 'earliest-offset', 'latest-offset', 'group-offsets', \
                         'timestamp' or 'specific-offsets'",
                    ));
                }
            },
        )
    }
}

impl BoundedMode {
    /// Reads `scan.bounded.mode` and the option its mode needs.
    pub fn from_options(options: &TableOptions<'_>) -> Result<Self, EngineError> {
        Ok(match options.string_or(BOUNDED_MODE, "unbounded").trim() {
            "unbounded" => BoundedMode::Unbounded,
            "latest-offset" => BoundedMode::Latest,
            "timestamp" => BoundedMode::Timestamp(timestamp(options, BOUNDED_TIMESTAMP)?),
            "specific-offsets" => {
                BoundedMode::Specific(specific_offsets(options, BOUNDED_SPECIFIC_OFFSETS)?)
            }
            _ => {
                return Err(options.error(
                    BOUNDED_MODE,
                    "expected 'unbounded', 'latest-offset', 'timestamp' or 'specific-offsets'",
                ));
            }
        })
    }
}

fn timestamp(options: &TableOptions<'_>, key: &str) -> Result<i64, EngineError> {
    let millis = options.u64_opt(key)?.ok_or_else(|| {
        options.table_error(format!(
            "this mode needs '{key}' (milliseconds since the epoch)"
        ))
    })?;
    i64::try_from(millis).map_err(|_| options.error(key, "too large"))
}

/// Parses `partition:0,offset:42;partition:1,offset:300`.
fn specific_offsets(
    options: &TableOptions<'_>,
    key: &str,
) -> Result<BTreeMap<i32, i64>, EngineError> {
    let text = options
        .get(key)
        .ok_or_else(|| options.table_error(format!("this mode needs '{key}'")))?;
    let bad = || {
        options.error(
            key,
            "expected 'partition:<n>,offset:<n>' entries separated by ';'",
        )
    };
    let mut offsets = BTreeMap::new();
    for entry in text.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let (partition, offset) = entry.split_once(',').ok_or_else(bad)?;
        let number = |part: &str, name: &str| -> Option<i64> {
            part.trim().strip_prefix(name)?.trim().parse().ok()
        };
        let partition = number(partition, "partition:")
            .and_then(|p| i32::try_from(p).ok())
            .filter(|p| *p >= 0)
            .ok_or_else(bad)?;
        let offset = number(offset, "offset:")
            .filter(|o| *o >= 0)
            .ok_or_else(bad)?;
        offsets.insert(partition, offset);
    }
    if offsets.is_empty() {
        return Err(bad());
    }
    Ok(offsets)
}
