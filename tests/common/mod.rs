//! Shared test helpers: generated payments, the DataFusion batch oracle, and
//! order-insensitive comparison of result sets.

#![allow(dead_code)]

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use watershed::StreamContext;
use watershed::connectors::payments::{PaymentsConfig, generate_payments, payments_schema};

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
    let ctx = StreamContext::new();
    ctx.register_batches(
        "payments",
        schema.clone(),
        batches.to_vec(),
        Some(("event_time", BOUND_MS)),
    )
    .expect("register payments");
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
    let ctx = SessionContext::new();
    let table = MemTable::try_new(schema.clone(), vec![batches.to_vec()]).expect("memtable");
    ctx.register_table("payments", Arc::new(table))
        .expect("register");
    let df = ctx
        .sql(sql)
        .await
        .unwrap_or_else(|e| panic!("oracle {sql}: {e}"));
    let batches = df.collect().await.expect("oracle collect");
    rows_as_text(&batches)
}

/// Rows rendered as `a | b | c`, sorted, so result sets compare regardless of order.
pub fn rows_as_text(batches: &[RecordBatch]) -> Vec<String> {
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for batch in batches {
        let formatters: Vec<ArrayFormatter> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).expect("formatter"))
            .collect();
        for row in 0..batch.num_rows() {
            let cells: Vec<String> = formatters
                .iter()
                .map(|f| f.value(row).to_string())
                .collect();
            rows.push(cells.join(" | "));
        }
    }
    rows.sort();
    rows
}

/// Asserts two sorted row sets are equal, showing the first differences.
pub fn assert_same_rows(label: &str, streaming: &[String], batch: &[String]) {
    if streaming == batch {
        return;
    }
    let missing: Vec<&String> = batch
        .iter()
        .filter(|r| !streaming.contains(r))
        .take(5)
        .collect();
    let extra: Vec<&String> = streaming
        .iter()
        .filter(|r| !batch.contains(r))
        .take(5)
        .collect();
    panic!(
        "{label}: streaming gave {} rows, batch gave {}\n  missing (first 5): {missing:#?}\n  unexpected (first 5): {extra:#?}",
        streaming.len(),
        batch.len()
    );
}
