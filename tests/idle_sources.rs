//! `scan.watermark.idle-timeout`: a source split without data does not hold
//! event time back. A live stream read with parallelism 2 has one split with
//! all the data and one without any; with the idle timeout, windows fire while
//! the stream is still open.

mod common;

use std::time::Duration;

use common::*;
use futures::StreamExt;
use watershed::StreamContext;

const QUERY: &str = "SELECT window_start, window_end, card_id, COUNT(*) AS n, SUM(amount) AS total \
     FROM TABLE(TUMBLE(TABLE payments, DESCRIPTOR(event_time), INTERVAL '1' MINUTE)) \
     GROUP BY window_start, window_end, card_id";

/// The batch answer for the windows that end at or before `end_limit_sql`
/// (a SQL expression over the whole input).
fn oracle(end_limit_sql: &str) -> String {
    format!(
        "SELECT ws, we, card_id, n, total FROM ( \
           SELECT date_bin(INTERVAL '1 minute', event_time, TIMESTAMP '1970-01-01 00:00:00') AS ws, \
                  date_bin(INTERVAL '1 minute', event_time, TIMESTAMP '1970-01-01 00:00:00') + INTERVAL '1 minute' AS we, \
                  card_id, COUNT(*) AS n, SUM(amount) AS total \
           FROM payments GROUP BY 1, 2, card_id) w \
         WHERE w.we <= ({end_limit_sql})"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_fire_while_an_idle_split_stays_open() {
    let (schema, batches) = payments(3_000, 41, 0.0);
    // Windows whose last millisecond is at or below the final watermark
    // (max event time - bound) fire while the stream is open.
    let fired_while_open = batch_rows(
        &schema,
        &batches,
        &oracle(&format!(
            "SELECT MAX(event_time) - INTERVAL '{BOUND_MS} milliseconds' + INTERVAL '1 millisecond' FROM payments"
        )),
    )
    .await;
    let everything = batch_rows(
        &schema,
        &batches,
        &oracle("SELECT MAX(event_time) + INTERVAL '1 minute' FROM payments"),
    )
    .await;
    assert!(!fired_while_open.is_empty() && fired_while_open.len() < everything.len());

    let ctx = StreamContext::new();
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    ctx.register_stream(
        "payments",
        schema.clone(),
        rx,
        Some(("event_time", BOUND_MS)),
        &[("scan.watermark.idle-timeout", "50 ms")],
    )
    .expect("register stream");
    ctx.sql("SET 'parallelism.default' = '2'")
        .await
        .expect("set");
    let frame = ctx.sql(QUERY).await.expect("plan");
    let plan = frame.plan_text().expect("plan text");
    assert!(plan.contains("idle-timeout: 50 ms"), "{plan}");
    let mut results = frame.execute_stream().expect("start");
    for batch in &batches {
        tx.send(batch.clone()).await.expect("send");
    }

    // The stream stays open: the fired windows must arrive anyway.
    let mut rows = Vec::new();
    let wait = tokio::time::timeout(Duration::from_secs(60), async {
        while rows.len() < fired_while_open.len() {
            match results.next().await {
                Some(batch) => rows.extend(rows_as_text(&[batch.expect("job")])),
                None => panic!("the job ended while its stream was open"),
            }
        }
    })
    .await;
    assert!(
        wait.is_ok(),
        "only {} of {} windowed rows fired while the stream was open: the idle split held the watermark back",
        rows.len(),
        fired_while_open.len()
    );
    rows.sort();
    assert_same_rows("fired while open", &rows, &fired_while_open);

    // Closing the stream ends the job and fires the rest.
    drop(tx);
    while let Some(batch) = results.next().await {
        rows.extend(rows_as_text(&[batch.expect("job")]));
    }
    rows.sort();
    assert_same_rows("all windows", &rows, &everything);
}

#[tokio::test]
async fn a_bad_idle_timeout_is_refused_naming_the_table_and_option() {
    let (schema, batches) = payments(10, 1, 0.0);
    let ctx = stream_context(&schema, &batches);
    let err = ctx
        .sql(
            "CREATE TABLE t (x INT) WITH ('connector' = 'memory', 'scan.watermark.idle-timeout' = 'soon'); \
             SELECT * FROM t",
        )
        .await
        .err()
        .expect("refused");
    let message = err.to_string();
    assert!(
        message.contains("table 't'")
            && message.contains("scan.watermark.idle-timeout")
            && message.contains("soon"),
        "{message}"
    );
}
