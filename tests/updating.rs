//! Updating (non-windowed) aggregates: the changelog, applied in order, ends at
//! DataFusion's batch answer; append-only sinks refuse updating queries.

mod common;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;

use common::*;

const BALANCES: &str = "SELECT account_id, SUM(amount) AS balance, COUNT(*) AS payments, \
    MAX(amount) AS largest FROM payments WHERE status = 'APPROVED' GROUP BY account_id";

/// Runs `query` at `parallelism` over `batches` and returns its changelog.
async fn changelog_of(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    parallelism: usize,
    query: &str,
) -> Vec<RecordBatch> {
    let ctx = stream_context(schema, batches);
    ctx.sql(&format!("SET 'parallelism.default' = '{parallelism}'"))
        .await
        .expect("set parallelism");
    ctx.sql(query)
        .await
        .unwrap_or_else(|e| panic!("planning {query}: {e}"))
        .collect()
        .await
        .unwrap_or_else(|e| panic!("running {query}: {e}"))
}

#[tokio::test]
async fn running_balances_changelog_ends_at_the_batch_answer() {
    let (schema, batches) = payments(8_000, 13, 0.0);
    let changelog = changelog_of(&schema, &batches, 1, BALANCES).await;
    let replayed = replay_changelog(&changelog).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        replayed.retractions > 100,
        "the stream should update balances, got {} retractions",
        replayed.retractions
    );
    let expected = batch_rows(&schema, &batches, BALANCES).await;
    assert_same_rows("running balances", &replayed.rows, &expected);
}

/// The risk rule "distinct merchants per card", with a plain SUM beside it.
const DISTINCT_MERCHANTS: &str = "SELECT card_id, COUNT(DISTINCT merchant_id) AS merchants, \
    SUM(amount) AS total FROM payments GROUP BY card_id";

/// DISTINCT over strings, integers, decimals and doubles, with FILTER,
/// SUM/AVG(DISTINCT) and plain aggregates in one query (AVG over a DOUBLE: an
/// integer AVG is truncated, as in Flink, where DataFusion's is not).
const DISTINCT_PER_MERCHANT: &str = "SELECT merchant_id, COUNT(DISTINCT country) AS countries, \
    COUNT(DISTINCT card_id) FILTER (WHERE status = 'DECLINED') AS declined_cards, \
    COUNT(DISTINCT amount) AS amounts, SUM(DISTINCT amount) AS distinct_total, \
    AVG(DISTINCT CAST(card_id AS DOUBLE)) AS avg_card, COUNT(*) AS n \
    FROM payments GROUP BY merchant_id";

#[tokio::test]
async fn count_distinct_changelog_ends_at_the_batch_answer() {
    let (schema, batches) = payments(8_000, 17, 0.0);
    for query in [DISTINCT_MERCHANTS, DISTINCT_PER_MERCHANT] {
        let expected = batch_rows(&schema, &batches, query).await;
        for parallelism in [1, 2] {
            let changelog = changelog_of(&schema, &batches, parallelism, query).await;
            let replayed = replay_changelog(&changelog).unwrap_or_else(|e| panic!("{e}"));
            assert!(
                replayed.retractions > 100,
                "p={parallelism}: the stream should update counts, got {} retractions",
                replayed.retractions
            );
            assert_same_rows(
                &format!("p={parallelism}: {query}"),
                &replayed.rows,
                &expected,
            );
        }
    }
}

#[tokio::test]
async fn append_only_sink_refuses_an_updating_query() {
    let (schema, batches) = payments(10, 1, 0.0);
    let ctx = stream_context(&schema, &batches);
    ctx.sql(
        "CREATE TABLE balances (account_id BIGINT, balance DECIMAL(38, 2)) \
         WITH ('connector' = 'filesystem', 'path' = 'out/balances', 'format' = 'csv')",
    )
    .await
    .expect("ddl");
    let err = ctx
        .sql(
            "INSERT INTO balances SELECT account_id, SUM(amount) FROM payments GROUP BY account_id",
        )
        .await
        .err()
        .expect("append-only sink");
    let message = err.to_string();
    assert!(
        message.contains("append-only") && message.contains("balances"),
        "{message}"
    );
}
