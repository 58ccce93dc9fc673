//! Differential tests: every query runs streaming in Watershed and as a batch
//! query in DataFusion over the same generated, out-of-order payments, and the
//! result sets must be equal row for row.
//!
//! The batch side computes windows independently with `date_bin`, so the test
//! checks window assignment, watermarks and firing, not just the aggregates.
//! Where Flink's semantics differ from DataFusion's (AVG on DECIMAL), the
//! expectation is derived from the batch SUM and COUNT with Flink's rounding.

mod common;

use common::*;
use rust_decimal::{Decimal, RoundingStrategy};

const ROWS: usize = 20_000;

fn tumble(size: &str) -> String {
    format!("TABLE(TUMBLE(TABLE payments, DESCRIPTOR(event_time), INTERVAL {size}))")
}

async fn check(label: &str, template: &str, size: &str, size_ms: i64) {
    check_against(label, template, template, size, size_ms).await;
}

/// Like `check`, with a differently written batch query where DataFusion's
/// semantics differ from Flink's.
async fn check_against(label: &str, template: &str, oracle: &str, size: &str, size_ms: i64) {
    let (schema, batches) = payments(ROWS, 11, 0.0);
    let ctx = stream_context(&schema, &batches);
    let streaming = stream_rows(&ctx, &template.replace("{from}", &tumble(size))).await;
    let batch = batch_rows(
        &schema,
        &batches,
        &oracle.replace("{from}", &tumble_oracle(size_ms)),
    )
    .await;
    assert!(
        !batch.is_empty(),
        "{label}: the oracle returned no rows; the test data is wrong"
    );
    assert_same_rows(label, &streaming, &batch);
}

#[tokio::test]
async fn filter_and_projection() {
    let sql = "SELECT txn_id, card_id, amount, amount * 2 AS doubled, UPPER(country) AS c, \
               CASE WHEN amount > 1000 THEN 'large' ELSE 'small' END AS size, \
               CAST(card_id AS DOUBLE) / 2 AS half_card, merchant_id % 7 AS bucket \
               FROM payments WHERE status <> 'APPROVED' AND amount > 10";
    let (schema, batches) = payments(ROWS, 3, 0.0);
    let ctx = stream_context(&schema, &batches);
    let streaming = stream_rows(&ctx, sql).await;
    let batch = batch_rows(&schema, &batches, sql).await;
    assert!(batch.len() > 100);
    assert_same_rows("filter_and_projection", &streaming, &batch);
}

#[tokio::test]
async fn tumble_count_sum_min_max_over_decimal() {
    check(
        "tumble_count_sum_min_max",
        "SELECT window_start, window_end, card_id, COUNT(*) AS txns, COUNT(status) AS with_status, SUM(amount) AS total, \
         MIN(amount) AS lo, MAX(amount) AS hi FROM {from} GROUP BY window_start, window_end, card_id",
        "'1' MINUTE",
        60_000,
    )
    .await;
}

#[tokio::test]
async fn tumble_count_distinct_with_where() {
    check(
        "tumble_count_distinct",
        "SELECT window_start, window_end, country, COUNT(DISTINCT card_id) AS cards, COUNT(*) AS n \
         FROM {from} WHERE status = 'DECLINED' GROUP BY window_start, window_end, country",
        "'5' MINUTES",
        300_000,
    )
    .await;
}

#[tokio::test]
async fn tumble_integer_and_double_aggregates() {
    check(
        "tumble_integer_and_double",
        "SELECT window_start, window_end, merchant_id, SUM(txn_id) AS s, MIN(card_id) AS lo, \
         MAX(txn_id) AS hi, SUM(CAST(card_id AS DOUBLE)) AS ds, MAX(CAST(amount AS DOUBLE)) AS dmax, \
         AVG(CAST(card_id AS DOUBLE)) AS davg \
         FROM {from} GROUP BY window_start, window_end, merchant_id",
        "'30' SECOND",
        30_000,
    )
    .await;
}

#[tokio::test]
async fn tumble_with_having_case_and_filter_clause() {
    check(
        "tumble_having",
        "SELECT window_start, window_end, card_id, COUNT(*) AS n, \
         SUM(CASE WHEN status = 'APPROVED' THEN amount ELSE 0 END) AS approved, \
         COUNT(*) FILTER (WHERE status = 'DECLINED') AS declines \
         FROM {from} GROUP BY window_start, window_end, card_id HAVING COUNT(*) >= 3",
        "'1' MINUTE",
        60_000,
    )
    .await;
}

#[tokio::test]
async fn tumble_window_time_column() {
    check(
        "tumble_window_time",
        "SELECT window_start, window_end, window_time, COUNT(*) AS n FROM {from} \
         GROUP BY window_start, window_end, window_time",
        "'10' SECOND",
        10_000,
    )
    .await;
}

#[tokio::test]
async fn tumble_integer_avg_truncates_like_flink() {
    // Flink: AVG of BIGINT is a BIGINT, the quotient truncated.
    check_against(
        "tumble_integer_avg",
        "SELECT window_start, window_end, country, AVG(card_id) AS a FROM {from} \
         GROUP BY window_start, window_end, country",
        "SELECT window_start, window_end, country, SUM(card_id) / COUNT(card_id) AS a FROM {from} \
         GROUP BY window_start, window_end, country",
        "'1' MINUTE",
        60_000,
    )
    .await
}

#[tokio::test]
async fn tumble_decimal_avg_rounds_half_up_like_flink() {
    let (schema, batches) = payments(ROWS, 5, 0.0);
    let ctx = stream_context(&schema, &batches);
    let streaming = stream_rows(
        &ctx,
        &format!(
            "SELECT window_start, card_id, AVG(amount) AS a FROM {} \
             GROUP BY window_start, window_end, card_id",
            tumble("'1' MINUTE")
        ),
    )
    .await;
    // Expected: Flink's DECIMAL(38, 6) average, HALF_UP, from the batch SUM and COUNT.
    let parts = batch_rows(
        &schema,
        &batches,
        &format!(
            "SELECT window_start, card_id, SUM(amount), COUNT(amount) FROM {} \
             GROUP BY window_start, window_end, card_id",
            tumble_oracle(60_000)
        ),
    )
    .await;
    let mut expected: Vec<String> = parts
        .iter()
        .map(|row| {
            let cells: Vec<&str> = row.split(" | ").collect();
            let sum: Decimal = cells[2].parse().expect("sum");
            let count: Decimal = cells[3].parse().expect("count");
            let avg =
                (sum / count).round_dp_with_strategy(6, RoundingStrategy::MidpointAwayFromZero);
            format!("{} | {} | {:.6}", cells[0], cells[1], avg)
        })
        .collect();
    expected.sort();
    assert_same_rows("decimal_avg", &streaming, &expected);
}

async fn check_window(label: &str, template: &str, tvf: &str, oracle_from: &str) {
    let (schema, batches) = payments(ROWS, 17, 0.0);
    let ctx = stream_context(&schema, &batches);
    let streaming = stream_rows(&ctx, &template.replace("{from}", tvf)).await;
    let batch = batch_rows(&schema, &batches, &template.replace("{from}", oracle_from)).await;
    assert!(!batch.is_empty(), "{label}: the oracle returned no rows");
    assert_same_rows(label, &streaming, &batch);
}

const WINDOW_AGGREGATES: &str = "SELECT window_start, window_end, country, COUNT(*) AS n, \
    SUM(amount) AS total, MIN(amount) AS lo, MAX(amount) AS hi, COUNT(DISTINCT card_id) AS cards, \
    COUNT(*) FILTER (WHERE status = 'DECLINED') AS declines \
    FROM {from} WHERE amount > 5 GROUP BY window_start, window_end, country";

#[tokio::test]
async fn hop_windows_share_slices_and_match_batch() {
    check_window(
        "hop 1 min / 5 min",
        WINDOW_AGGREGATES,
        "TABLE(HOP(TABLE payments, DESCRIPTOR(event_time), INTERVAL '1' MINUTE, INTERVAL '5' MINUTES))",
        &hop_oracle(60_000, 300_000),
    )
    .await;
    check_window(
        "hop 10 s / 30 s",
        WINDOW_AGGREGATES,
        "TABLE(HOP(TABLE payments, DESCRIPTOR(event_time), INTERVAL '10' SECOND, INTERVAL '30' SECOND))",
        &hop_oracle(10_000, 30_000),
    )
    .await;
}

#[tokio::test]
async fn cumulate_windows_match_batch() {
    check_window(
        "cumulate 1 min / 5 min",
        WINDOW_AGGREGATES,
        "TABLE(CUMULATE(TABLE payments, DESCRIPTOR(event_time), INTERVAL '1' MINUTE, INTERVAL '5' MINUTES))",
        &cumulate_oracle(60_000, 300_000),
    )
    .await;
}

#[tokio::test]
async fn session_windows_match_batch() {
    // Oracle: sessionize with LAG over each card's rows in time order; a gap
    // larger than 30 s starts a new session (rows exactly 30 s apart touch).
    let oracle = format!(
        "SELECT window_start, window_end, card_id, COUNT(*), SUM(amount), MAX(amount) \
         FROM {} GROUP BY window_start, window_end, card_id",
        session_oracle("card_id", 30_000)
    );
    let query = "SELECT window_start, window_end, card_id, COUNT(*) AS n, SUM(amount) AS total, \
        MAX(amount) AS hi FROM TABLE(SESSION(TABLE payments PARTITION BY card_id, \
        DESCRIPTOR(event_time), INTERVAL '30' SECOND)) GROUP BY window_start, window_end, card_id";
    let (schema, batches) = payments(ROWS, 23, 0.0);
    let ctx = stream_context(&schema, &batches);
    let streaming = stream_rows(&ctx, query).await;
    let batch = batch_rows(&schema, &batches, &oracle).await;
    assert!(
        batch.len() > 100,
        "expected many sessions, got {}",
        batch.len()
    );
    assert_same_rows("session 30 s", &streaming, &batch);
}

#[tokio::test]
async fn window_top_n_matches_batch() {
    // The 10 merchants with the most payments per 5 minutes (ties broken by id,
    // so the ranking is a total order in both engines).
    check(
        "window top-n",
        "SELECT * FROM ( \
           SELECT window_start, window_end, merchant_id, n, \
                  ROW_NUMBER() OVER (PARTITION BY window_start, window_end \
                                     ORDER BY n DESC, merchant_id ASC) AS rownum \
           FROM (SELECT window_start, window_end, merchant_id, COUNT(*) AS n FROM {from} \
                 WHERE status <> 'TIMEOUT' GROUP BY window_start, window_end, merchant_id) AS agg \
         ) AS ranked WHERE rownum <= 10",
        "'5' MINUTES",
        300_000,
    )
    .await;
}

#[tokio::test]
async fn cascading_windows_match_batch() {
    // Per card and minute first, then per five minutes over the first level's
    // window_time (Flink's cascading window aggregation).
    let (schema, batches) = payments(ROWS, 29, 0.0);
    let ctx = stream_context(&schema, &batches);
    ctx.sql(
        "CREATE VIEW card_minute AS \
         SELECT window_start AS minute_start, window_end AS minute_end, window_time AS rowtime, card_id, \
                COUNT(*) AS n, SUM(amount) AS total \
         FROM TABLE(TUMBLE(TABLE payments, DESCRIPTOR(event_time), INTERVAL '1' MINUTE)) \
         GROUP BY window_start, window_end, window_time, card_id",
    )
    .await
    .expect("view");
    let streaming = stream_rows(
        &ctx,
        "SELECT window_start, window_end, COUNT(*) AS busy_cards, SUM(n) AS payments, \
                SUM(total) AS total, MAX(total) AS largest \
         FROM TABLE(TUMBLE(TABLE card_minute, DESCRIPTOR(rowtime), INTERVAL '5' MINUTES)) \
         GROUP BY window_start, window_end",
    )
    .await;
    let batch = batch_rows(
        &schema,
        &batches,
        "WITH first AS (SELECT date_bin(INTERVAL '1 minute', event_time, TIMESTAMP '1970-01-01 00:00:00') \
                              + INTERVAL '59999 milliseconds' AS rowtime, card_id, \
                              COUNT(*) AS n, SUM(amount) AS total \
                       FROM payments GROUP BY 1, card_id) \
         SELECT date_bin(INTERVAL '5 minutes', rowtime, TIMESTAMP '1970-01-01 00:00:00') AS ws, \
                date_bin(INTERVAL '5 minutes', rowtime, TIMESTAMP '1970-01-01 00:00:00') + INTERVAL '5 minutes' AS we, \
                COUNT(*), SUM(n), SUM(total), MAX(total) FROM first GROUP BY 1, 2",
    )
    .await;
    assert!(!batch.is_empty());
    assert_same_rows("cascading windows", &streaming, &batch);
}
