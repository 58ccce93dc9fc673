//! Updating (non-windowed) aggregates: the changelog, applied in order, ends at
//! DataFusion's batch answer; append-only sinks refuse updating queries.

mod common;

use std::collections::BTreeMap;

use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use watershed::engine::changelog::{RowKind, row_kinds};

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

    // Apply the changelog: +I/+U set a key's row, -U/-D remove it.
    let options = FormatOptions::default().with_null("NULL");
    let mut state: BTreeMap<String, String> = BTreeMap::new();
    let mut updates = 0;
    for batch in &changelog {
        let kinds = row_kinds(batch).expect("a changelog");
        let data = batch.num_columns() - 1;
        let formatters: Vec<ArrayFormatter> = batch.columns()[..data]
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).expect("formatter"))
            .collect();
        for (row, kind) in kinds.iter().enumerate() {
            let cells: Vec<String> = formatters
                .iter()
                .map(|f| f.value(row).to_string())
                .collect();
            let key = cells[0].clone();
            match kind {
                RowKind::Insert | RowKind::UpdateAfter => {
                    state.insert(key, cells.join(" | "));
                }
                RowKind::UpdateBefore | RowKind::Delete => {
                    updates += 1;
                    let previous = state.remove(&key);
                    assert_eq!(
                        previous,
                        Some(cells.join(" | ")),
                        "-U must retract the last row"
                    );
                }
            }
        }
    }
    assert!(
        updates > 100,
        "the stream should update balances, got {updates} retractions"
    );
    let streaming: Vec<String> = state.into_values().collect::<Vec<_>>();
    let mut streaming = streaming;
    streaming.sort();
    let expected = batch_rows(&schema, &batches, BALANCES).await;
    assert_same_rows("running balances", &streaming, &expected);
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
