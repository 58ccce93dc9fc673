//! Interval joins, streaming vs DataFusion batch on the same data: the payment
//! time-out alert (an authorization without a capture within 15 minutes).

mod common;

use std::sync::Arc;

use datafusion::arrow::array::{AsArray, Int64Array, RecordBatch, TimestampMillisecondArray};
use datafusion::arrow::compute::{concat_batches, sort_to_indices, take_record_batch};
use datafusion::arrow::datatypes::{
    DataType, Field, Int64Type, Schema, SchemaRef, TimeUnit, TimestampMillisecondType,
};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use watershed::StreamContext;

use common::*;

/// Captures of 70% of the payments, 0 to 20 minutes after the authorization,
/// in capture-time order.
fn captures(payments: &[RecordBatch]) -> (SchemaRef, Vec<RecordBatch>) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("txn_id", DataType::Int64, false),
        Field::new(
            "event_time",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        ),
    ]));
    let mut ids = Vec::new();
    let mut times = Vec::new();
    for batch in payments {
        let id = batch
            .column_by_name("txn_id")
            .unwrap()
            .as_primitive::<Int64Type>();
        let ts = batch
            .column_by_name("event_time")
            .unwrap()
            .as_primitive::<TimestampMillisecondType>();
        for (id, ts) in id.values().iter().zip(ts.values()) {
            if id % 10 < 7 {
                ids.push(*id);
                times.push(ts + (id * 7919) % 1_200_000);
            }
        }
    }
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(TimestampMillisecondArray::from(times)),
        ],
    )
    .unwrap();
    let order = sort_to_indices(batch.column(1), None, None).unwrap();
    let sorted = take_record_batch(&batch, &order).unwrap();
    let batches = (0..sorted.num_rows())
        .step_by(1000)
        .map(|i| sorted.slice(i, 1000.min(sorted.num_rows() - i)))
        .collect();
    (schema, batches)
}

const TIMEOUT_ALERT: &str = "SELECT a.txn_id, a.card_id, a.amount, c.event_time AS captured_at \
    FROM payments a LEFT JOIN captures c \
    ON a.txn_id = c.txn_id AND c.event_time BETWEEN a.event_time AND a.event_time + INTERVAL '15' MINUTE";

const INNER_WITH_RESIDUAL: &str = "SELECT a.txn_id, a.amount, c.event_time \
    FROM payments a JOIN captures c \
    ON a.txn_id = c.txn_id AND c.event_time >= a.event_time - INTERVAL '1' MINUTE \
    AND c.event_time < a.event_time + INTERVAL '10' MINUTE AND a.amount > 20";

async fn compare(label: &str, sql: &str, parallelism: usize) {
    let (schema, batches) = payments(6_000, 41, 0.0);
    let (capture_schema, capture_batches) = captures(&batches);
    let ctx = StreamContext::new();
    ctx.register_batches(
        "payments",
        schema.clone(),
        batches.clone(),
        Some(("event_time", BOUND_MS)),
    )
    .unwrap();
    ctx.register_batches(
        "captures",
        capture_schema.clone(),
        capture_batches.clone(),
        Some(("event_time", BOUND_MS)),
    )
    .unwrap();
    ctx.sql(&format!("SET 'parallelism.default' = '{parallelism}'"))
        .await
        .unwrap();
    let streaming = stream_rows(&ctx, sql).await;

    let batch_ctx = SessionContext::new();
    let all = concat_batches(&schema, &batches).unwrap();
    batch_ctx
        .register_table(
            "payments",
            Arc::new(MemTable::try_new(schema, vec![vec![all]]).unwrap()),
        )
        .unwrap();
    batch_ctx
        .register_table(
            "captures",
            Arc::new(MemTable::try_new(capture_schema, vec![capture_batches]).unwrap()),
        )
        .unwrap();
    let expected = rows_as_text(&batch_ctx.sql(sql).await.unwrap().collect().await.unwrap());
    assert!(expected.len() > 1000, "{label}: oracle too small");
    assert_same_rows(label, &streaming, &expected);
}

#[tokio::test]
async fn payment_timeout_left_interval_join_matches_batch() {
    compare("left interval join", TIMEOUT_ALERT, 1).await;
}

#[tokio::test]
async fn inner_interval_join_with_residual_matches_batch() {
    compare("inner interval join", INNER_WITH_RESIDUAL, 1).await;
}

#[tokio::test]
async fn interval_join_in_parallel_matches_batch() {
    compare("left interval join, parallelism 2", TIMEOUT_ALERT, 2).await;
}

#[tokio::test]
async fn regular_join_is_refused_with_advice() {
    let (schema, batches) = payments(10, 1, 0.0);
    let ctx = stream_context(&schema, &batches);
    let err = ctx
        .sql("SELECT a.txn_id FROM payments a JOIN payments b ON a.card_id = b.card_id")
        .await
        .err()
        .expect("unbounded join");
    assert!(err.to_string().contains("INTERVAL"), "{err}");
}

#[tokio::test]
async fn join_row_accounting_adds_up() {
    let (schema, batches) = payments(2_000, 5, 0.0);
    let (capture_schema, capture_batches) = captures(&batches);
    let ctx = StreamContext::new();
    ctx.register_batches("payments", schema, batches, Some(("event_time", BOUND_MS)))
        .unwrap();
    ctx.register_batches(
        "captures",
        capture_schema,
        capture_batches,
        Some(("event_time", BOUND_MS)),
    )
    .unwrap();
    ctx.sql("CREATE TABLE alerts (txn_id BIGINT, card_id BIGINT, amount DECIMAL(18, 2), captured_at TIMESTAMP(3)) WITH ('connector' = 'blackhole')")
        .await
        .unwrap();
    let result = ctx
        .sql(&format!("INSERT INTO alerts {TIMEOUT_ALERT}"))
        .await
        .unwrap()
        .run()
        .await
        .unwrap();
    let rows = result.rows;
    assert_eq!(rows.read, 2_000 + 1_400);
    assert!(rows.adds_up(), "{rows:?}");
    assert_eq!(
        rows.written, 2_000,
        "one row per payment in a 1:1 left join"
    );
}
