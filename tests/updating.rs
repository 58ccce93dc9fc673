//! Updating (non-windowed) aggregates: the changelog, applied in order, ends at
//! DataFusion's batch answer; append-only sinks refuse updating queries.

mod common;

use common::*;

const BALANCES: &str = "SELECT account_id, SUM(amount) AS balance, COUNT(*) AS payments, \
    MAX(amount) AS largest FROM payments WHERE status = 'APPROVED' GROUP BY account_id";

#[tokio::test]
async fn running_balances_changelog_ends_at_the_batch_answer() {
    let (schema, batches) = payments(8_000, 13, 0.0);
    let ctx = stream_context(&schema, &batches);
    let changelog = ctx
        .sql(BALANCES)
        .await
        .expect("plan")
        .collect()
        .await
        .expect("run");

    let replayed = replay_changelog(&changelog).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        replayed.retractions > 100,
        "the stream should update balances, got {} retractions",
        replayed.retractions
    );
    let expected = batch_rows(&schema, &batches, BALANCES).await;
    assert_same_rows("running balances", &replayed.rows, &expected);
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
