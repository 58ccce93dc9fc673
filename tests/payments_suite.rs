//! Every rule of the payments bench suite (`benches/payments/`) against
//! DataFusion's batch answer over the same generated payments: the streaming
//! job runs the rule's file as written (its blackhole sink swapped for an
//! in-memory one); the oracle runs the file's SELECT in DataFusion, with the
//! batch stand-ins of `tests/common` for the window TVFs. The running balance
//! is an updating aggregate: its changelog, replayed, must equal the batch
//! GROUP BY.

mod common;
#[path = "../benches/nexmark/suite.rs"]
mod suite;

use std::sync::Arc;

use common::{assert_same_rows, batch_rows_of, final_rows};
use watershed::StreamContext;
use watershed::connectors::memory::CollectSinkFactory;
use watershed::connectors::payments::config::PaymentsConfig;
use watershed::connectors::payments::{generate_payments, payments_schema};

/// Payments per run: about 100 s of event time at the suite's 1000 per second.
const EVENTS: u64 = 100_000;

/// The rule's rows from the streaming engine (a changelog replayed to its
/// final table); fails when the job's row counts do not add up.
async fn stream_answer(query: &suite::Query) -> Vec<String> {
    let sink = CollectSinkFactory::new();
    let ctx = StreamContext::new();
    ctx.connectors()
        .register_memory_sink(query.sink_table(), Arc::new(sink.clone()));
    ctx.sql(&query.ddl_with_memory_sink())
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", query.name));
    let result = ctx
        .sql(&query.insert)
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", query.name))
        .run()
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", query.name));
    assert!(result.rows.adds_up(), "{}: {:?}", query.name, result.rows);
    assert_eq!(
        result.rows.read,
        EVENTS * source_count(query),
        "{}",
        query.name
    );
    final_rows(&sink.batches())
}

/// How many times the rule reads the payments table (the time-out join reads
/// it once per side).
fn source_count(query: &suite::Query) -> u64 {
    (query.insert.matches("FROM payments").count() + query.insert.matches("TABLE payments").count())
        as u64
}

/// The batch answer for each rule.
fn oracle_sql(query: &suite::Query) -> String {
    let at = query.insert.find("SELECT").unwrap();
    let select = query.insert[at..].trim_end().trim_end_matches(';');
    match query.name.as_str() {
        "card_velocity" => format!(
            "SELECT window_start, window_end, card_id, COUNT(*), SUM(amount) FROM {} \
             GROUP BY window_start, window_end, card_id HAVING COUNT(*) > 3",
            common::tumble_oracle(60_000)
        ),
        "decline_spike" => format!(
            "SELECT window_start, window_end, country, COUNT(*), \
                    COUNT(*) FILTER (WHERE status = 'DECLINED') FROM {} \
             GROUP BY window_start, window_end, country \
             HAVING CAST(COUNT(*) FILTER (WHERE status = 'DECLINED') AS DOUBLE) / COUNT(*) > 0.08",
            common::hop_oracle(60_000, 300_000)
        ),
        // Plain SELECTs DataFusion runs as they are: the filter, the LEFT
        // join with a time range (the batch form of the interval join) and
        // the GROUP BY.
        _ => select.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_payments_rule_gives_the_batch_answer() {
    let dir = tempfile::tempdir().unwrap();
    let side_input = dir.path().join("side_input.csv");
    let queries = suite::load(
        "payments",
        &suite::Settings {
            events: EVENTS,
            rate: 1_000,
            output_dir: dir.path(),
            side_input: &side_input,
        },
    );
    // The payments the suite's DDL generates: seed 7, 100k cards, 1000
    // payments per second of event time; the connector's other defaults
    // (accounts: half the cards).
    assert!(queries[0].ddl.contains("'cards' = '100000'"));
    assert!(queries[0].ddl.contains("'seed' = '7'"));
    let config = PaymentsConfig {
        seed: 7,
        cards: 100_000,
        accounts: 50_000,
        events_per_second: 1_000,
        ..PaymentsConfig::default()
    };
    let batches = generate_payments(config, EVENTS, 4096).unwrap();
    let tables = [("payments", payments_schema(), batches)];
    let mut checked = Vec::new();
    for query in &queries {
        let streamed = stream_answer(query).await;
        let expected = batch_rows_of(&tables, &oracle_sql(query)).await;
        assert!(
            !expected.is_empty(),
            "{}: the oracle has no rows",
            query.name
        );
        assert_same_rows(&query.name, &streamed, &expected);
        checked.push(query.name.clone());
    }
    assert_eq!(
        checked,
        [
            "card_velocity",
            "decline_spike",
            "large_amounts",
            "payment_timeout",
            "running_balance"
        ]
    );
}
