//! HOP, CUMULATE and SESSION over views, at parallelism 1 and 2: over a view
//! that filters the payments (its rows keep the table's time attribute), and
//! over a view of TUMBLE results (cascading windows on `window_time`). Every
//! query's rows must equal DataFusion's batch answer, whose windows are computed
//! independently (`common::*_oracle_of`) over the same filter or first-level
//! aggregate written as a subquery.

mod common;

use common::*;

const ROWS: usize = 20_000;

/// The filtering view of the example, and the same rows for the oracle.
const DECLINES_VIEW: &str =
    "CREATE VIEW declines AS SELECT * FROM payments WHERE status = 'DECLINED'";
const DECLINES_ORACLE: &str = "(SELECT * FROM payments WHERE status = 'DECLINED')";

/// A first-level TUMBLE aggregate per card and minute, its `window_time` renamed
/// `rowtime` (the time attribute of the second level), and the same rows for the
/// oracle (`window_time` = minute start + 59.999 s).
const CARD_MINUTE_VIEW: &str = "CREATE VIEW card_minute AS \
    SELECT window_start AS minute_start, window_end AS minute_end, window_time AS rowtime, \
           card_id, COUNT(*) AS n, SUM(amount) AS total \
    FROM TABLE(TUMBLE(TABLE payments, DESCRIPTOR(event_time), INTERVAL '1' MINUTE)) \
    GROUP BY window_start, window_end, window_time, card_id";
const CARD_MINUTE_ORACLE: &str = "(SELECT date_bin(INTERVAL '1 minute', event_time, \
        TIMESTAMP '1970-01-01 00:00:00') + INTERVAL '59999 milliseconds' AS rowtime, \
        card_id, COUNT(*) AS n, SUM(amount) AS total \
    FROM payments GROUP BY 1, card_id)";

/// Runs `query` (with `{from}` replaced by `tvf`) after `view` at parallelism 1
/// and 2, and compares each answer with the batch query (with `{from}` replaced
/// by `oracle_from`).
async fn check(label: &str, seed: u64, view: &str, query: &str, tvf: &str, oracle_from: &str) {
    let (schema, batches) = payments(ROWS, seed, 0.0);
    let expected = batch_rows(&schema, &batches, &query.replace("{from}", oracle_from)).await;
    // Every check spans more than ten windows of the generated six and a half
    // minutes of payments.
    assert!(
        expected.len() > 10,
        "{label}: the oracle returned {} rows; the test data is too thin",
        expected.len()
    );
    for parallelism in [1, 2] {
        let ctx = stream_context(&schema, &batches);
        ctx.sql(&format!("SET 'parallelism.default' = '{parallelism}'"))
            .await
            .expect("set parallelism");
        ctx.sql(view).await.expect("view");
        let rows = stream_rows(&ctx, &query.replace("{from}", tvf)).await;
        assert_same_rows(&format!("{label} (p={parallelism})"), &rows, &expected);
    }
}

const PER_COUNTRY: &str = "SELECT window_start, window_end, country, COUNT(*) AS n, \
    SUM(amount) AS total, MAX(amount) AS hi, COUNT(DISTINCT card_id) AS cards \
    FROM {from} WHERE amount > 5 GROUP BY window_start, window_end, country";

#[tokio::test]
async fn hop_over_a_filtering_view_matches_batch() {
    check(
        "hop 1 min / 5 min over declines",
        41,
        DECLINES_VIEW,
        PER_COUNTRY,
        "TABLE(HOP(TABLE declines, DESCRIPTOR(event_time), INTERVAL '1' MINUTE, INTERVAL '5' MINUTES))",
        &hop_oracle_of(DECLINES_ORACLE, "event_time", 60_000, 300_000),
    )
    .await;
}

#[tokio::test]
async fn cumulate_over_a_filtering_view_matches_batch() {
    check(
        "cumulate 1 min / 5 min over declines",
        43,
        DECLINES_VIEW,
        PER_COUNTRY,
        "TABLE(CUMULATE(TABLE declines, DESCRIPTOR(event_time), INTERVAL '1' MINUTE, INTERVAL '5' MINUTES))",
        &cumulate_oracle_of(DECLINES_ORACLE, "event_time", 60_000, 300_000),
    )
    .await;
}

#[tokio::test]
async fn session_with_partition_by_over_a_view_matches_batch() {
    check(
        "session 30 s per card over declines",
        47,
        DECLINES_VIEW,
        "SELECT window_start, window_end, card_id, COUNT(*) AS n, SUM(amount) AS total, \
         MAX(amount) AS hi FROM {from} GROUP BY window_start, window_end, card_id",
        "TABLE(SESSION(TABLE declines PARTITION BY card_id, DESCRIPTOR(event_time), \
         INTERVAL '30' SECOND))",
        &session_oracle_of(DECLINES_ORACLE, "event_time", "card_id", 30_000),
    )
    .await;
}

#[tokio::test]
async fn hop_over_tumble_results_cascades_on_window_time() {
    let tvf = "TABLE(HOP(TABLE card_minute, DESCRIPTOR(rowtime), INTERVAL '1' MINUTE, \
               INTERVAL '5' MINUTES))";
    let oracle = hop_oracle_of(CARD_MINUTE_ORACLE, "rowtime", 60_000, 300_000);
    check(
        "hop over card minutes, all cards",
        53,
        CARD_MINUTE_VIEW,
        "SELECT window_start, window_end, COUNT(*) AS busy_card_minutes, SUM(n) AS payments, \
         SUM(total) AS total, MAX(total) AS largest FROM {from} GROUP BY window_start, window_end",
        tvf,
        &oracle,
    )
    .await;
    // Keyed by card: the second level's rows are hashed by card_id at parallelism 2.
    check(
        "hop over card minutes, per card",
        59,
        CARD_MINUTE_VIEW,
        "SELECT window_start, window_end, card_id, COUNT(*) AS active_minutes, SUM(n) AS payments, \
         MAX(total) AS largest FROM {from} WHERE n >= 1 GROUP BY window_start, window_end, card_id",
        tvf,
        &oracle,
    )
    .await;
}
