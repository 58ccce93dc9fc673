//! Shared test helpers: generated payments, the DataFusion batch oracle, and
//! order-insensitive comparison of result sets.

#![allow(dead_code)]

pub mod binary;

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use watershed::StreamContext;
use watershed::connectors::payments::{PaymentsConfig, generate_payments, payments_schema};
use watershed::engine::changelog::row_kinds;

/// The bounded out-of-orderness of the generated data and of the tables' WATERMARK.
pub const BOUND_MS: i64 = 5_000;

/// Generated payments, out of order by up to 4 s (within the 5 s watermark bound
/// unless `late_percent` > 0).
pub fn payments(rows: usize, seed: u64, late_percent: f64) -> (SchemaRef, Vec<RecordBatch>) {
    let config = PaymentsConfig {
        seed,
        cards: 500,
        merchants: 200,
        max_out_of_orderness: std::time::Duration::from_secs(4),
        late_rows_percent: late_percent,
        events_per_second: 50,
        ..PaymentsConfig::default()
    };
    let batches = generate_payments(config, rows as u64, 4096).expect("generate payments");
    (payments_schema(), batches)
}

/// A streaming context with `payments` registered in memory, with
/// `WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND`.
pub fn stream_context(schema: &SchemaRef, batches: &[RecordBatch]) -> StreamContext {
    stream_context_of(&[("payments", schema.clone(), batches.to_vec())])
}

/// A streaming context with each `(name, schema, batches)` registered in memory,
/// with `WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND`.
pub fn stream_context_of(tables: &[(&str, SchemaRef, Vec<RecordBatch>)]) -> StreamContext {
    let ctx = StreamContext::new();
    for (name, schema, batches) in tables {
        ctx.register_batches(
            name,
            schema.clone(),
            batches.clone(),
            Some(("event_time", BOUND_MS)),
        )
        .unwrap_or_else(|e| panic!("register {name}: {e}"));
    }
    ctx
}

/// Runs a query through the streaming engine and returns its rows as text.
pub async fn stream_rows(ctx: &StreamContext, sql: &str) -> Vec<String> {
    let frame = ctx
        .sql(sql)
        .await
        .unwrap_or_else(|e| panic!("planning {sql}: {e}"));
    let batches = frame
        .collect()
        .await
        .unwrap_or_else(|e| panic!("running {sql}: {e}"));
    rows_as_text(&batches)
}

/// Runs a query as a DataFusion batch query over the same batches.
pub async fn batch_rows(schema: &SchemaRef, batches: &[RecordBatch], sql: &str) -> Vec<String> {
    batch_rows_of(&[("payments", schema.clone(), batches.to_vec())], sql).await
}

/// Runs a query as a DataFusion batch query over in-memory tables
/// `(name, schema, batches)`.
pub async fn batch_rows_of(
    tables: &[(&str, SchemaRef, Vec<RecordBatch>)],
    sql: &str,
) -> Vec<String> {
    let ctx = SessionContext::new();
    for (name, schema, batches) in tables {
        let table = MemTable::try_new(schema.clone(), vec![batches.clone()]).expect("memtable");
        ctx.register_table(*name, Arc::new(table))
            .expect("register");
    }
    let df = ctx
        .sql(sql)
        .await
        .unwrap_or_else(|e| panic!("oracle {sql}: {e}"));
    let batches = df.collect().await.expect("oracle collect");
    rows_as_text(&batches)
}

/// The final table of a sink's batches as sorted text rows: a changelog is
/// replayed (a retraction of a row not in the table fails), other batches are
/// the rows themselves.
pub fn final_rows(batches: &[RecordBatch]) -> Vec<String> {
    match batches.first() {
        Some(b) if watershed::engine::changelog::is_changelog(b.schema_ref()) => {
            replay_changelog(batches)
                .unwrap_or_else(|e| panic!("{e}"))
                .rows
        }
        _ => rows_as_text(batches),
    }
}

/// Rows rendered as `a | b | c`, sorted, so result sets compare regardless of order.
pub fn rows_as_text(batches: &[RecordBatch]) -> Vec<String> {
    let mut rows = Vec::new();
    for batch in batches {
        rows.extend(row_texts(batch, batch.num_columns()));
    }
    rows.sort();
    rows
}

/// The first `columns` columns of each row of `batch` as `a | b | c`, in order.
fn row_texts(batch: &RecordBatch, columns: usize) -> Vec<String> {
    let options = FormatOptions::default().with_null("NULL");
    let formatters: Vec<ArrayFormatter> = batch.columns()[..columns]
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).expect("formatter"))
        .collect();
    (0..batch.num_rows())
        .map(|row| {
            let cells: Vec<String> = formatters
                .iter()
                .map(|f| f.value(row).to_string())
                .collect();
            cells.join(" | ")
        })
        .collect()
}

/// The table a changelog ends at, and how many retractions it took.
pub struct Replayed {
    /// The rows left after every change, as `a | b | c` (without the row
    /// kind), sorted.
    pub rows: Vec<String>,
    /// The number of `-U` and `-D` rows.
    pub retractions: usize,
}

/// Applies a changelog (batches whose last column is `__row_kind`) in order to
/// an empty table: `+I` and `+U` add their row, `-U` and `-D` remove one equal
/// row. An error names the first batch without row kinds or retraction of a row
/// that is not there.
pub fn replay_changelog(batches: &[RecordBatch]) -> Result<Replayed, String> {
    let mut state: BTreeMap<String, usize> = BTreeMap::new();
    let mut retractions = 0;
    for (b, batch) in batches.iter().enumerate() {
        let kinds = row_kinds(batch).map_err(|e| format!("batch {b}: {e}"))?;
        let rows = row_texts(batch, batch.num_columns() - 1);
        for (i, (kind, row)) in kinds.iter().zip(rows).enumerate() {
            if kind.is_addition() {
                *state.entry(row).or_default() += 1;
                continue;
            }
            retractions += 1;
            match state.get_mut(&row) {
                Some(count) if *count > 1 => *count -= 1,
                Some(_) => {
                    state.remove(&row);
                }
                None => {
                    return Err(format!(
                        "batch {b} row {i}: {kind} {row} retracts a row that is not in the table"
                    ));
                }
            }
        }
    }
    let rows = state
        .into_iter()
        .flat_map(|(row, count)| std::iter::repeat_n(row, count))
        .collect();
    Ok(Replayed { rows, retractions })
}

/// Asserts two sorted row sets are equal, showing the first differences.
pub fn assert_same_rows(label: &str, streaming: &[String], batch: &[String]) {
    if let Some(difference) = row_difference(label, streaming, batch) {
        panic!("{difference}");
    }
}

/// `None` when two sorted row sets are equal as multisets, else a description
/// of the first differences.
pub fn row_difference(label: &str, streaming: &[String], batch: &[String]) -> Option<String> {
    if streaming == batch {
        return None;
    }
    let (missing, extra) = multiset_difference(batch, streaming);
    Some(format!(
        "{label}: streaming gave {} rows, batch gave {}\n  missing (first 5): {:#?}\n  unexpected (first 5): {:#?}",
        streaming.len(),
        batch.len(),
        &missing[..missing.len().min(5)],
        &extra[..extra.len().min(5)],
    ))
}

/// Rows of sorted `a` not matched in sorted `b`, and rows of `b` not matched in
/// `a`, counting duplicates.
fn multiset_difference<'a>(a: &'a [String], b: &'a [String]) -> (Vec<&'a String>, Vec<&'a String>) {
    let (mut i, mut j) = (0, 0);
    let (mut only_a, mut only_b) = (Vec::new(), Vec::new());
    while i < a.len() || j < b.len() {
        match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) if x == y => {
                i += 1;
                j += 1;
            }
            (Some(x), Some(y)) if x < y => {
                only_a.push(x);
                i += 1;
            }
            (Some(x), None) => {
                only_a.push(x);
                i += 1;
            }
            (_, Some(y)) => {
                only_b.push(y);
                j += 1;
            }
            (None, None) => break,
        }
    }
    (only_a, only_b)
}

/// The batch oracle's stand-in for TUMBLE over `payments`: window columns from
/// `date_bin`.
pub fn tumble_oracle(size_ms: i64) -> String {
    format!("{} AS w", tumble_oracle_of("payments", size_ms))
}

/// The batch oracle's stand-in for TUMBLE over `table`, without an alias: the
/// table's columns and window columns from `date_bin`.
pub fn tumble_oracle_of(table: &str, size_ms: i64) -> String {
    let bin = format!(
        "date_bin(INTERVAL '{size_ms} milliseconds', event_time, TIMESTAMP '1970-01-01 00:00:00')"
    );
    format!(
        "(SELECT *, {bin} AS window_start, {bin} + INTERVAL '{size_ms} milliseconds' AS window_end, \
            {bin} + INTERVAL '{} milliseconds' AS window_time FROM {table})",
        size_ms - 1
    )
}

/// The batch oracle's stand-in for HOP over `payments`: each row joined with the
/// `size / slide` windows that contain it, computed in milliseconds.
pub fn hop_oracle(slide_ms: i64, size_ms: i64) -> String {
    hop_oracle_of("payments", "event_time", slide_ms, size_ms)
}

/// The batch oracle's stand-in for HOP over any relation `input` (a table name
/// or a parenthesized query) whose time column is `time`.
pub fn hop_oracle_of(input: &str, time: &str, slide_ms: i64, size_ms: i64) -> String {
    let ks: Vec<String> = (0..size_ms / slide_ms).map(|k| format!("({k})")).collect();
    let start = format!(
        "CAST(p.{time} AS BIGINT) - CAST(p.{time} AS BIGINT) % {slide_ms} - o.k * {slide_ms}"
    );
    format!(
        "(SELECT p.*, to_timestamp_millis({start}) AS window_start, \
                to_timestamp_millis({start} + {size_ms}) AS window_end \
          FROM {input} p CROSS JOIN (VALUES {}) AS o(k)) AS w",
        ks.join(", ")
    )
}

/// The batch oracle's stand-in for CUMULATE over `payments`: each row joined with
/// every window `[s, s + j * step)` of its max-size window that contains it.
pub fn cumulate_oracle(step_ms: i64, max_ms: i64) -> String {
    cumulate_oracle_of("payments", "event_time", step_ms, max_ms)
}

/// The batch oracle's stand-in for CUMULATE over any relation `input` (a table
/// name or a parenthesized query) whose time column is `time`.
pub fn cumulate_oracle_of(input: &str, time: &str, step_ms: i64, max_ms: i64) -> String {
    let js: Vec<String> = (1..=max_ms / step_ms).map(|j| format!("({j})")).collect();
    let s = format!("(CAST(p.{time} AS BIGINT) - CAST(p.{time} AS BIGINT) % {max_ms})");
    format!(
        "(SELECT p.*, to_timestamp_millis({s}) AS window_start, \
                to_timestamp_millis({s} + o.j * {step_ms}) AS window_end \
          FROM {input} p CROSS JOIN (VALUES {}) AS o(j) \
          WHERE {s} + o.j * {step_ms} > CAST(p.{time} AS BIGINT)) AS w",
        js.join(", ")
    )
}

/// The batch oracle's stand-in for `SESSION(TABLE payments PARTITION BY key, ...,
/// gap)`: each `key`'s rows in time order, a new session wherever the gap to the
/// previous row exceeds `gap_ms` (rows exactly `gap_ms` apart touch), and every
/// row gets its session's `[first, last + gap)` as window columns.
pub fn session_oracle(key: &str, gap_ms: i64) -> String {
    session_oracle_of("payments", "event_time", key, gap_ms)
}

/// The batch oracle's stand-in for SESSION over any relation `input` (a table
/// name or a parenthesized query) whose time column is `time`.
pub fn session_oracle_of(input: &str, time: &str, key: &str, gap_ms: i64) -> String {
    format!(
        "(SELECT *, \
                to_timestamp_millis(MIN(t) OVER (PARTITION BY {key}, sid)) AS window_start, \
                to_timestamp_millis(MAX(t) OVER (PARTITION BY {key}, sid) + {gap_ms}) AS window_end \
          FROM (SELECT *, SUM(new_session) OVER (PARTITION BY {key} ORDER BY t \
                          ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS sid \
                FROM (SELECT *, CASE WHEN t - LAG(t) OVER (PARTITION BY {key} ORDER BY t) <= {gap_ms} \
                                THEN 0 ELSE 1 END AS new_session \
                      FROM (SELECT *, CAST({time} AS BIGINT) AS t FROM {input} AS src) AS ms) AS flagged \
               ) AS numbered) AS w"
    )
}
