//! Joins, streaming vs DataFusion batch on the same data: interval joins (the
//! payment time-out alert, an authorization without a capture within 15
//! minutes), window joins of two windowed streams (the batch side computes
//! windows independently with `date_bin`), and streams joined with a bounded
//! table loaded from a CSV file.

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
        .expect("unbounded join")
        .to_string();
    for advice in ["INTERVAL", "window join", "window_start", "bounded table"] {
        assert!(err.contains(advice), "{advice}: {err}");
    }
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

// ---------------------------------------------------------------------------
// Window joins: two generated payment streams, windowed alike.

/// Window size of the window-join tests.
const WINDOW_MS: i64 = 10_000;

/// The streaming side of `{auths}` / `{captures}`: a TUMBLE TVF.
fn tumble_of(table: &str) -> String {
    format!(
        "TABLE(TUMBLE(TABLE {table}, DESCRIPTOR(event_time), INTERVAL '{}' SECOND))",
        WINDOW_MS / 1000
    )
}

/// Runs `template` streaming over `auths` and `captures` (6 000 payments each,
/// different seeds, the same event-time range) and as a batch query, and
/// compares the rows.
async fn compare_window_join(label: &str, template: &str, parallelism: usize) {
    let (schema, auths) = payments(6_000, 41, 0.0);
    let (_, captures) = payments(6_000, 42, 0.0);
    let ctx = StreamContext::new();
    for (name, batches) in [("auths", &auths), ("captures", &captures)] {
        ctx.register_batches(
            name,
            schema.clone(),
            batches.clone(),
            Some(("event_time", BOUND_MS)),
        )
        .unwrap();
    }
    ctx.sql(&format!("SET 'parallelism.default' = '{parallelism}'"))
        .await
        .unwrap();
    let streaming_sql = template
        .replace("{auths}", &tumble_of("auths"))
        .replace("{captures}", &tumble_of("captures"));
    let streaming = stream_rows(&ctx, &streaming_sql).await;

    let batch_ctx = SessionContext::new();
    for (name, batches) in [("auths", auths), ("captures", captures)] {
        batch_ctx
            .register_table(
                name,
                Arc::new(MemTable::try_new(schema.clone(), vec![batches]).unwrap()),
            )
            .unwrap();
    }
    let oracle_sql = template
        .replace("{auths}", &tumble_oracle_of("auths", WINDOW_MS))
        .replace("{captures}", &tumble_oracle_of("captures", WINDOW_MS));
    let expected = rows_as_text(
        &batch_ctx
            .sql(&oracle_sql)
            .await
            .unwrap_or_else(|e| panic!("oracle {oracle_sql}: {e}"))
            .collect()
            .await
            .unwrap(),
    );
    assert!(expected.len() >= 10, "{label}: oracle too small");
    assert_same_rows(label, &streaming, &expected);
}

/// Per card and window: the number of authorizations.
const AUTH_COUNTS: &str = "(SELECT window_start, window_end, card_id, COUNT(*) AS cnt \
    FROM {auths} AS a GROUP BY window_start, window_end, card_id)";

/// Per card and window: the captured amount.
const CAPTURE_TOTALS: &str = "(SELECT window_start, window_end, card_id, SUM(amount) AS total \
    FROM {captures} AS c GROUP BY window_start, window_end, card_id)";

const SAME_WINDOW_AND_CARD: &str = "L.window_start = R.window_start \
    AND L.window_end = R.window_end AND L.card_id = R.card_id";

fn aggregate_window_join(select: &str, join: &str, extra: &str) -> String {
    format!(
        "SELECT {select} FROM {AUTH_COUNTS} L {join} {CAPTURE_TOTALS} R ON {SAME_WINDOW_AND_CARD}{extra}"
    )
}

#[tokio::test]
async fn inner_window_join_of_aggregates_matches_batch() {
    let sql = aggregate_window_join(
        "L.card_id, L.window_start, L.window_end, L.cnt, R.total",
        "JOIN",
        "",
    );
    compare_window_join("inner window join of aggregates", &sql, 1).await;
}

#[tokio::test]
async fn left_window_join_of_aggregates_with_residual_matches_batch() {
    let sql = aggregate_window_join(
        "L.card_id, L.window_start, L.window_end, L.cnt, R.total",
        "LEFT JOIN",
        " AND R.total > L.cnt * 100",
    );
    compare_window_join("left window join with residual", &sql, 1).await;
}

#[tokio::test]
async fn full_window_join_of_aggregates_matches_batch() {
    let sql = aggregate_window_join(
        "L.card_id, R.card_id, L.window_start, R.window_start, L.window_end, R.window_end, L.cnt, R.total",
        "FULL JOIN",
        "",
    );
    compare_window_join("full window join", &sql, 1).await;
    compare_window_join("full window join, parallelism 2", &sql, 2).await;
}

#[tokio::test]
async fn window_join_of_raw_tumble_rows_matches_batch() {
    let on =
        "a.window_start = c.window_start AND a.window_end = c.window_end AND a.card_id = c.card_id";
    let inner = format!(
        "SELECT a.txn_id, c.txn_id, a.card_id, a.window_start, a.window_end, a.amount, c.amount \
         FROM {{auths}} AS a JOIN {{captures}} AS c ON {on}"
    );
    compare_window_join("window join of TUMBLE rows", &inner, 1).await;
    compare_window_join("window join of TUMBLE rows, parallelism 2", &inner, 2).await;
    let left = format!(
        "SELECT a.txn_id, c.txn_id, a.window_end, c.window_start \
         FROM {{auths}} AS a LEFT JOIN {{captures}} AS c ON {on} AND c.amount > a.amount"
    );
    compare_window_join("left window join of TUMBLE rows", &left, 1).await;
}

#[tokio::test]
async fn window_join_output_can_be_aggregated_by_window() {
    let joined = aggregate_window_join(
        "L.window_start, L.window_end, L.card_id, L.cnt, R.total",
        "JOIN",
        "",
    );
    let sql = format!(
        "SELECT window_start, window_end, COUNT(*) AS cards, SUM(cnt) AS auths, SUM(total) AS captured \
         FROM ({joined}) AS j GROUP BY window_start, window_end"
    );
    let (schema, batches) = payments(10, 1, 0.0);
    let ctx = stream_context(&schema, &batches);
    ctx.register_batches(
        "auths",
        schema.clone(),
        batches.clone(),
        Some(("event_time", BOUND_MS)),
    )
    .unwrap();
    ctx.register_batches("captures", schema, batches, Some(("event_time", BOUND_MS)))
        .unwrap();
    let streaming_sql = sql
        .replace("{auths}", &tumble_of("auths"))
        .replace("{captures}", &tumble_of("captures"));
    let plan = ctx
        .sql(&format!("EXPLAIN {streaming_sql}"))
        .await
        .unwrap()
        .plan_text()
        .unwrap();
    // Aggregated as windows (emitted once per window), not as an updating query.
    assert!(plan.contains("WindowJoin"), "{plan}");
    assert!(plan.contains("] WindowAggregate"), "{plan}");
    assert!(!plan.contains("UpdatingAggregate"), "{plan}");
    compare_window_join("window aggregate over a window join", &sql, 1).await;
}

#[tokio::test]
async fn window_join_row_accounting_adds_up() {
    let (schema, auths) = payments(3_000, 41, 0.0);
    let (_, captures) = payments(3_000, 42, 0.0);
    let ctx = StreamContext::new();
    for (name, batches) in [("auths", auths), ("captures", captures)] {
        ctx.register_batches(
            name,
            schema.clone(),
            batches,
            Some(("event_time", BOUND_MS)),
        )
        .unwrap();
    }
    ctx.sql("SET 'parallelism.default' = '2'").await.unwrap();
    ctx.sql("CREATE TABLE pairs (a BIGINT, c BIGINT) WITH ('connector' = 'blackhole')")
        .await
        .unwrap();
    let sql = format!(
        "INSERT INTO pairs SELECT a.txn_id, c.txn_id FROM {} AS a FULL JOIN {} AS c \
         ON a.window_start = c.window_start AND a.window_end = c.window_end AND a.card_id = c.card_id",
        tumble_of("auths"),
        tumble_of("captures")
    );
    let rows = ctx.sql(&sql).await.unwrap().run().await.unwrap().rows;
    assert_eq!(rows.read, 6_000);
    assert_eq!(rows.late, 0, "{rows:?}");
    assert!(rows.adds_up(), "{rows:?}");
    assert!(rows.written > 3_000, "{rows:?}");
}

#[tokio::test]
async fn window_join_of_raw_hop_rows_is_refused_with_advice() {
    let (schema, batches) = payments(10, 1, 0.0);
    let ctx = stream_context(&schema, &batches);
    let hop = "TABLE(HOP(TABLE payments, DESCRIPTOR(event_time), INTERVAL '1' MINUTE, INTERVAL '5' MINUTE))";
    let err = ctx
        .sql(&format!(
            "SELECT a.txn_id, b.txn_id FROM {hop} AS a JOIN {hop} AS b \
             ON a.window_start = b.window_start AND a.window_end = b.window_end AND a.card_id = b.card_id"
        ))
        .await
        .err()
        .expect("raw HOP rows cannot be window-joined")
        .to_string();
    assert!(err.contains("HOP(payments"), "{err}");
    assert!(err.contains("Aggregate each side first"), "{err}");
}

// ---------------------------------------------------------------------------
// Streams joined with a bounded table loaded from a CSV file.

/// Card limits: cards 0..450 (the generator draws 0..500, so some cards have
/// none), a second limit for every 50th card, and a row without a card.
fn card_limits() -> (SchemaRef, RecordBatch, String) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("card_id", DataType::Int64, true),
        Field::new("max_amount", DataType::Decimal128(18, 2), true),
    ]));
    let mut cards: Vec<Option<i64>> = Vec::new();
    let mut limits: Vec<i128> = Vec::new();
    for card in 0..450i64 {
        cards.push(Some(card));
        limits.push(i128::from((card * 3_737) % 80_000 + 50));
        if card % 50 == 0 {
            cards.push(Some(card));
            limits.push(i128::from((card * 911) % 40_000 + 7));
        }
    }
    cards.push(None);
    limits.push(100);
    let mut csv = String::new();
    for (card, limit) in cards.iter().zip(&limits) {
        let card = card.map_or("NULL".to_string(), |c| c.to_string());
        csv.push_str(&format!("{card},{}.{:02}\n", limit / 100, limit % 100));
    }
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(cards)),
            Arc::new(
                datafusion::arrow::array::Decimal128Array::from(limits)
                    .with_precision_and_scale(18, 2)
                    .unwrap(),
            ),
        ],
    )
    .unwrap();
    (schema, batch, csv)
}

/// A streaming context with `payments` (a stream) and `card_limits` (a CSV
/// file without WATERMARK), the batch context with the same data, and the
/// directory holding the file.
async fn lookup_contexts(parallelism: usize) -> (StreamContext, SessionContext, tempfile::TempDir) {
    let (schema, batches) = payments(6_000, 7, 0.0);
    let (limit_schema, limits, csv) = card_limits();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("card_limits.csv");
    std::fs::write(&path, csv).unwrap();
    let ctx = stream_context(&schema, &batches);
    ctx.sql(&format!(
        "CREATE TABLE card_limits (card_id BIGINT, max_amount DECIMAL(18, 2)) WITH (\
         'connector' = 'filesystem', 'path' = '{}', 'format' = 'csv', 'csv.null-literal' = 'NULL')",
        path.display()
    ))
    .await
    .unwrap();
    ctx.sql(&format!("SET 'parallelism.default' = '{parallelism}'"))
        .await
        .unwrap();
    let batch_ctx = SessionContext::new();
    batch_ctx
        .register_table(
            "payments",
            Arc::new(MemTable::try_new(schema, vec![batches]).unwrap()),
        )
        .unwrap();
    batch_ctx
        .register_table(
            "card_limits",
            Arc::new(MemTable::try_new(limit_schema, vec![vec![limits]]).unwrap()),
        )
        .unwrap();
    (ctx, batch_ctx, dir)
}

async fn oracle_rows(batch_ctx: &SessionContext, sql: &str) -> Vec<String> {
    rows_as_text(
        &batch_ctx
            .sql(sql)
            .await
            .unwrap_or_else(|e| panic!("oracle {sql}: {e}"))
            .collect()
            .await
            .unwrap(),
    )
}

/// Runs `sql` streaming and `oracle` (the same query unless DataFusion cannot
/// parse it) in batch, at parallelism 1 and 2.
async fn compare_lookup(label: &str, sql: &str, oracle: &str) {
    for parallelism in [1, 2] {
        let (ctx, batch_ctx, _dir) = lookup_contexts(parallelism).await;
        let streaming = stream_rows(&ctx, sql).await;
        let expected = oracle_rows(&batch_ctx, oracle).await;
        assert!(expected.len() > 100, "{label}: oracle too small");
        assert_same_rows(
            &format!("{label}, parallelism {parallelism}"),
            &streaming,
            &expected,
        );
    }
}

const OVER_LIMIT: &str = "SELECT p.txn_id, p.card_id, p.amount, l.max_amount \
    FROM payments p JOIN card_limits l ON p.card_id = l.card_id WHERE p.amount > l.max_amount";

const LIMIT_OR_NULL: &str = "SELECT p.txn_id, p.card_id, p.amount, l.card_id, l.max_amount \
    FROM payments p LEFT JOIN card_limits l ON p.card_id = l.card_id AND p.amount > l.max_amount";

#[tokio::test]
async fn inner_join_with_bounded_table_matches_batch() {
    compare_lookup("inner bounded table join", OVER_LIMIT, OVER_LIMIT).await;
}

#[tokio::test]
async fn left_join_with_bounded_table_matches_batch() {
    compare_lookup("left bounded table join", LIMIT_OR_NULL, LIMIT_OR_NULL).await;
}

#[tokio::test]
async fn bounded_table_on_the_left_matches_batch() {
    let right = "SELECT l.card_id, l.max_amount, p.txn_id, p.amount \
        FROM card_limits l RIGHT JOIN payments p ON l.card_id = p.card_id";
    compare_lookup("right join, table on the left", right, right).await;
    let inner = "SELECT l.max_amount, p.txn_id FROM card_limits l JOIN payments p \
        ON l.card_id = p.card_id AND p.amount < l.max_amount";
    compare_lookup("inner join, table on the left", inner, inner).await;
}

#[tokio::test]
async fn for_system_time_as_of_is_a_lookup_join() {
    let lookup = "SELECT p.txn_id, p.card_id, p.amount, l.max_amount \
        FROM payments AS p JOIN card_limits FOR SYSTEM_TIME AS OF p.event_time AS l \
        ON p.card_id = l.card_id WHERE p.amount > l.max_amount";
    compare_lookup("FOR SYSTEM_TIME AS OF", lookup, OVER_LIMIT).await;
}

#[tokio::test]
async fn window_aggregate_joined_with_bounded_table_matches_batch() {
    let template = "SELECT w.card_id, w.window_start, w.n, l.max_amount \
        FROM (SELECT window_start, window_end, card_id, COUNT(*) AS n, MAX(amount) AS top \
              FROM {w} GROUP BY window_start, window_end, card_id) AS w \
        JOIN card_limits l ON w.card_id = l.card_id WHERE w.top > l.max_amount";
    let streaming = template.replace(
        "{w}",
        "TABLE(TUMBLE(TABLE payments, DESCRIPTOR(event_time), INTERVAL '10' SECOND))",
    );
    let oracle = template.replace("{w}", &tumble_oracle_of("payments", WINDOW_MS));
    compare_lookup("window aggregate joined with a table", &streaming, &oracle).await;
}

#[tokio::test]
async fn bounded_table_join_row_accounting_adds_up() {
    for parallelism in [1, 2] {
        let (ctx, batch_ctx, _dir) = lookup_contexts(parallelism).await;
        ctx.sql(
            "CREATE TABLE flagged (txn_id BIGINT, card_id BIGINT, amount DECIMAL(18, 2), \
             limit_card BIGINT, max_amount DECIMAL(18, 2)) WITH ('connector' = 'blackhole')",
        )
        .await
        .unwrap();
        let result = ctx
            .sql(&format!("INSERT INTO flagged {LIMIT_OR_NULL}"))
            .await
            .unwrap()
            .run()
            .await
            .unwrap();
        let rows = result.rows;
        let table_rows = card_limits().1.num_rows() as u64;
        assert_eq!(rows.read, 6_000 + table_rows, "parallelism {parallelism}");
        assert!(rows.adds_up(), "parallelism {parallelism}: {rows:?}");
        let expected = oracle_rows(&batch_ctx, LIMIT_OR_NULL).await;
        assert_eq!(
            rows.written,
            expected.len() as u64,
            "parallelism {parallelism}"
        );
    }
}

#[tokio::test]
async fn bounded_table_joins_that_keep_table_rows_are_refused() {
    let (ctx, _batch, _dir) = lookup_contexts(1).await;
    for sql in [
        "SELECT p.txn_id FROM payments p FULL JOIN card_limits l ON p.card_id = l.card_id",
        "SELECT p.txn_id FROM payments p RIGHT JOIN card_limits l ON p.card_id = l.card_id",
        "SELECT p.txn_id FROM card_limits l LEFT JOIN payments p ON p.card_id = l.card_id",
    ] {
        let err = ctx.sql(sql).await.err().expect(sql).to_string();
        assert!(err.contains("card_limits"), "{sql}: {err}");
        assert!(err.contains("LEFT JOIN"), "{sql}: {err}");
    }
    let err = ctx
        .sql(
            "SELECT a.txn_id FROM payments a JOIN payments FOR SYSTEM_TIME AS OF a.event_time AS b \
             ON a.card_id = b.card_id",
        )
        .await
        .err()
        .expect("FOR SYSTEM_TIME AS OF a stream")
        .to_string();
    assert!(err.contains("bounded table"), "{err}");
}
