//! Event-time semantics: late rows are dropped and counted exactly as a
//! row-at-a-time watermark would decide, and results do not depend on batch size.

mod common;

use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{AsArray, BooleanArray};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::TimestampMillisecondType;
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
