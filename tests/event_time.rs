//! Event-time semantics: late rows are dropped and counted exactly as a
//! row-at-a-time watermark would decide, and results do not depend on batch size.

mod common;

use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{AsArray, BooleanArray};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::{Int64Type, TimestampMillisecondType};
use datafusion::arrow::record_batch::RecordBatch;
use watershed::connectors::memory::CollectSinkFactory;

use common::*;

const WINDOW_MS: i64 = 10_000;

const QUERY: &str = "SELECT window_start, window_end, card_id, COUNT(*) AS n, SUM(amount) AS total \
    FROM TABLE(TUMBLE(TABLE payments, DESCRIPTOR(event_time), INTERVAL '10' SECOND)) \
    GROUP BY window_start, window_end, card_id";

const ORACLE: &str = "SELECT date_bin(INTERVAL '10 seconds', event_time, TIMESTAMP '1970-01-01 00:00:00') AS ws, \
    date_bin(INTERVAL '10 seconds', event_time, TIMESTAMP '1970-01-01 00:00:00') + INTERVAL '10 seconds' AS we, \
    card_id, COUNT(*), SUM(amount) FROM payments GROUP BY 1, 2, card_id";

/// An independent model of the promised semantics: the watermark before a row is
/// `max(event_time of earlier rows) - bound`; a row is late when its window's last
/// millisecond is at or before that watermark.
fn drop_late_rows(batches: &[RecordBatch]) -> (Vec<RecordBatch>, u64) {
    let mut watermark = i64::MIN;
    let mut late = 0;
    let mut kept = Vec::new();
    for batch in batches {
        let ts = batch
            .column_by_name("event_time")
            .expect("event_time")
            .as_primitive::<TimestampMillisecondType>();
        let mask: BooleanArray = ts
            .values()
            .iter()
            .map(|&t| {
                let window_end = t - t.rem_euclid(WINDOW_MS) + WINDOW_MS;
                let is_late = window_end - 1 <= watermark;
                watermark = watermark.max(t - BOUND_MS);
                if is_late {
                    late += 1;
                }
                Some(!is_late)
            })
            .collect();
        kept.push(filter_record_batch(batch, &mask).expect("filter"));
    }
    (kept, late)
}

#[tokio::test]
async fn late_rows_are_dropped_and_counted_exactly() {
    let (schema, batches) = payments(30_000, 21, 3.0);
    let (on_time, late) = drop_late_rows(&batches);
    assert!(
        late > 50,
        "the generator should produce late rows, got {late}"
    );

    let ctx = stream_context(&schema, &batches);
    let collected = Arc::new(Mutex::new(Vec::new()));
    let frame = ctx.sql(QUERY).await.expect("plan");
    let job = frame
        .start_with_sink(Some(Arc::new(CollectSinkFactory::with_target(
            collected.clone(),
        ))))
        .expect("start");
    let result = job.wait().await.expect("run");
    let streaming = rows_as_text(&collected.lock().expect("lock"));
    let expected = batch_rows(&schema, &on_time, ORACLE).await;
    assert_same_rows("late rows", &streaming, &expected);

    let rows = result.rows;
    assert_eq!(rows.late, late, "late count");
    assert_eq!(rows.read, 30_000);
    assert_eq!(rows.aggregated, 30_000 - late);
    assert!(rows.adds_up(), "{rows:?}");
    // The end of the bounded input advanced event time to the end of time.
    assert_eq!(rows.watermark, i64::MAX, "{rows:?}");
}

/// With `SET 'watershed.late-rows.table'`, exactly the rows the model finds late
/// land in the dead-letter table, each with the operator, the reason, the
/// watermark that made it late and the row itself.
#[tokio::test]
async fn late_rows_go_to_the_dead_letter_table() {
    let (schema, batches) = payments(20_000, 22, 3.0);
    let (on_time, late) = drop_late_rows(&batches);
    let txn_ids = |batch: &RecordBatch| -> Vec<i64> {
        batch
            .column_by_name("txn_id")
            .expect("txn_id")
            .as_primitive::<Int64Type>()
            .iter()
            .flatten()
            .collect()
    };
    let mut expected_late: Vec<i64> = Vec::new();
    for (batch, kept) in batches.iter().zip(&on_time) {
        let kept: std::collections::HashSet<i64> = txn_ids(kept).into_iter().collect();
        expected_late.extend(txn_ids(batch).into_iter().filter(|id| !kept.contains(id)));
    }
    expected_late.sort();
    assert_eq!(expected_late.len() as u64, late);

    let dir = tempfile::tempdir().expect("tempdir");
    let ctx = stream_context(&schema, &batches);
    ctx.sql(&format!(
        "CREATE TABLE late_payments (operator STRING, reason STRING, watermark TIMESTAMP(3), row_json STRING) \
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json'); \
         SET 'watershed.late-rows.table' = 'late_payments'",
        dir.path().display()
    ))
    .await
    .expect("declare the dead-letter table");
    // MAX(txn_id) makes the window operator's input carry txn_id: dead-letter
    // rows hold the columns the operator sees.
    let query = QUERY.replace("COUNT(*) AS n", "COUNT(*) AS n, MAX(txn_id) AS last_txn");
    let oracle = ORACLE.replace("COUNT(*)", "COUNT(*), MAX(txn_id)");
    let frame = ctx.sql(&query).await.expect("plan");
    let plan = frame.plan_text().expect("plan");
    assert!(plan.contains("Late rows -> late_payments"), "{plan}");
    let collected = Arc::new(Mutex::new(Vec::new()));
    let job = frame
        .start_with_sink(Some(Arc::new(CollectSinkFactory::with_target(
            collected.clone(),
        ))))
        .expect("start");
    let result = job.wait().await.expect("run");
    let streaming = rows_as_text(&collected.lock().expect("lock"));
    assert_same_rows(
        "on-time rows",
        &streaming,
        &batch_rows(&schema, &on_time, &oracle).await,
    );
    assert_eq!(result.rows.late, late);
    assert!(result.rows.adds_up(), "{:?}", result.rows);

    let mut dead_letters = Vec::new();
    for entry in std::fs::read_dir(dir.path()).expect("read dir") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        assert!(
            !name.starts_with('.'),
            "an in-progress file was left: {name}"
        );
        for line in std::fs::read_to_string(&path).expect("read").lines() {
            let record: serde_json::Value = serde_json::from_str(line).expect("json line");
            assert!(
                record["operator"]
                    .as_str()
                    .expect("operator")
                    .contains("Window"),
                "{record}"
            );
            assert_eq!(record["reason"], "window already fired", "{record}");
            let row: serde_json::Value =
                serde_json::from_str(record["row_json"].as_str().expect("row_json")).expect("row");
            assert!(record["watermark"].as_str().is_some(), "{record}");
            assert!(row["window_end"].as_str().is_some(), "{row}");
            dead_letters.push(row["txn_id"].as_i64().expect("txn_id"));
        }
    }
    dead_letters.sort();
    assert_eq!(dead_letters, expected_late);
}

#[tokio::test]
async fn a_dead_letter_table_with_the_wrong_columns_is_refused() {
    let (schema, batches) = payments(10, 1, 0.0);
    let ctx = stream_context(&schema, &batches);
    ctx.sql(
        "CREATE TABLE bad_late (operator STRING, row_json STRING) WITH ('connector' = 'blackhole'); \
         SET 'watershed.late-rows.table' = 'bad_late'",
    )
    .await
    .expect("declare");
    let err = ctx.sql(QUERY).await.err().expect("refused").to_string();
    assert!(
        err.contains("bad_late") && err.contains("watermark TIMESTAMP(3)"),
        "{err}"
    );
}

#[tokio::test]
async fn results_do_not_depend_on_batch_size() {
    let (schema, batches) = payments(5_000, 8, 3.0);
    let mut results = Vec::new();
    for size in [1, 7, 8192] {
        let ctx = stream_context(&schema, &batches);
        ctx.sql(&format!("SET 'execution.batch-size' = '{size}'"))
            .await
            .expect("set");
        results.push((size, stream_rows(&ctx, QUERY).await));
    }
    let (on_time, _) = drop_late_rows(&batches);
    let expected = batch_rows(&schema, &on_time, ORACLE).await;
    for (size, rows) in &results {
        assert_same_rows(&format!("batch size {size}"), rows, &expected);
    }
}
