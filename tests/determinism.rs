//! Determinism as a property: for random payments within the watermark bound,
//! every query of a corpus gives the same rows at parallelism 1, 2 and 4 and at
//! batch sizes 1, 7 and 8192, equal to DataFusion's batch answer over the same
//! input.
//!
//! proptest generates the input: up to a few hundred payments over four cards,
//! six merchants and three countries (so groups collide), amounts whole, with
//! cents, negative or NULL, some NULL cards and countries, event times on a
//! 250 ms grid with a few off-grid ones (so rows land exactly on window, session
//! and join bounds) and occasional pauses, every row behind the latest earlier
//! one by less than the 5 s watermark bound (so no row is late, and the streaming
//! answer must be the batch answer). The rows are registered as batches of random
//! length, which decides how parallel source instances split them. Each payment
//! has zero to two captures (with its card), which arrive out of order within the
//! same bound. A bounded table `card_limits` (no WATERMARK) holds up to eight
//! random per-card limits for the stream-table joins.
//!
//! The corpus covers projections and filters, the four window TVFs, window
//! Top-N, the interval join, window joins of two window aggregates (INNER and
//! FULL), the stream joined with the bounded table (INNER and LEFT, with a
//! residual), and an updating GROUP BY, whose changelog depends on batching, so
//! the table it ends at when replayed is compared.
//!
//! Each query is its own property, so a failure names the query; its message
//! gives the settings and the first differing rows, and proptest then prints the
//! shrunk input as a table. `PROPTEST_CASES=n` runs more cases.

mod common;

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Decimal128Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use rust_decimal::{Decimal, RoundingStrategy};
use watershed::connectors::payments::payments_schema;

use common::*;

const PARALLELISM: [usize; 3] = [1, 2, 4];
const BATCH_SIZES: [usize; 3] = [1, 7, 8192];
/// Cases per query unless `PROPTEST_CASES` says otherwise: each case runs nine
/// full jobs in a debug build.
const DEFAULT_CASES: u32 = 8;
/// A multiple of every window size below, so windows start on the grid.
const START_MS: i64 = 1_700_000_000_000;
const GRID_MS: i64 = 250;

// ---------------------------------------------------------------- the corpus

const FILTER_PROJECT: &str = "SELECT txn_id, event_time, card_id, amount, amount * 2 AS doubled, \
    CASE WHEN amount > 50 THEN 'large' ELSE 'small' END AS size, merchant_id % 4 AS bucket, \
    UPPER(country) AS c FROM payments \
    WHERE status <> 'DECLINED' AND (amount IS NULL OR amount > 10)";

const TUMBLE_10S: &str =
    "TABLE(TUMBLE(TABLE payments, DESCRIPTOR(event_time), INTERVAL '10' SECOND))";

const TUMBLE_AGGREGATES: &str = "SELECT window_start, window_end, card_id, COUNT(*) AS n, \
    COUNT(amount) AS with_amount, SUM(amount) AS total, MIN(amount) AS lo, MAX(amount) AS hi, \
    SUM(merchant_id) AS merchants, AVG(merchant_id) AS avg_merchant, \
    AVG(CAST(card_id AS DOUBLE)) AS avg_card_d, COUNT(DISTINCT country) AS countries, \
    AVG(amount) AS avg_amount \
    FROM TABLE(TUMBLE(TABLE payments, DESCRIPTOR(event_time), INTERVAL '10' SECOND)) \
    GROUP BY window_start, window_end, card_id";

const HOP_5S_15S: &str =
    "TABLE(HOP(TABLE payments, DESCRIPTOR(event_time), INTERVAL '5' SECOND, INTERVAL '15' SECOND))";

const HOP_AGGREGATES: &str = "SELECT window_start, window_end, country, COUNT(*) AS n, \
    SUM(amount) AS total, MIN(amount) AS lo, MAX(amount) AS hi, COUNT(DISTINCT card_id) AS cards, \
    COUNT(*) FILTER (WHERE status = 'DECLINED') AS declines \
    FROM TABLE(HOP(TABLE payments, DESCRIPTOR(event_time), INTERVAL '5' SECOND, INTERVAL '15' SECOND)) \
    WHERE amount IS NULL OR amount > 5 GROUP BY window_start, window_end, country";

const CUMULATE_5S_20S: &str = "TABLE(CUMULATE(TABLE payments, DESCRIPTOR(event_time), INTERVAL '5' SECOND, INTERVAL '20' SECOND))";

const CUMULATE_AGGREGATES: &str = "SELECT window_start, window_end, card_id, COUNT(*) AS n, \
    SUM(amount) AS total, MAX(amount) AS hi, MIN(txn_id) AS first_txn \
    FROM TABLE(CUMULATE(TABLE payments, DESCRIPTOR(event_time), INTERVAL '5' SECOND, INTERVAL '20' SECOND)) \
    GROUP BY window_start, window_end, card_id";

const SESSION_3S: &str = "TABLE(SESSION(TABLE payments PARTITION BY card_id, DESCRIPTOR(event_time), INTERVAL '3' SECOND))";

const SESSION_AGGREGATES: &str = "SELECT window_start, window_end, card_id, COUNT(*) AS n, \
    SUM(amount) AS total, MIN(amount) AS lo, MAX(txn_id) AS last_txn \
    FROM TABLE(SESSION(TABLE payments PARTITION BY card_id, DESCRIPTOR(event_time), INTERVAL '3' SECOND)) \
    GROUP BY window_start, window_end, card_id";

/// Window Top-N over the TVF's rows: the two largest amounts per card and
/// window, `txn_id` (unique) breaking ties.
const TOP_N_ROWS: &str = "SELECT * FROM ( \
    SELECT window_start, window_end, card_id, txn_id, amount, \
           ROW_NUMBER() OVER (PARTITION BY window_start, window_end, card_id \
                              ORDER BY amount DESC, txn_id) AS rownum \
    FROM TABLE(TUMBLE(TABLE payments, DESCRIPTOR(event_time), INTERVAL '10' SECOND))) AS ranked \
    WHERE rownum <= 2";

const TUMBLE_20S: &str =
    "TABLE(TUMBLE(TABLE payments, DESCRIPTOR(event_time), INTERVAL '20' SECOND))";

/// Window Top-N over a window aggregate: the three busiest merchants per window,
/// `merchant_id` breaking ties.
const TOP_N_AGGREGATE: &str = "SELECT * FROM ( \
    SELECT window_start, window_end, merchant_id, n, total, \
           ROW_NUMBER() OVER (PARTITION BY window_start, window_end \
                              ORDER BY n DESC, merchant_id) AS rownum \
    FROM (SELECT window_start, window_end, merchant_id, COUNT(*) AS n, SUM(amount) AS total \
          FROM TABLE(TUMBLE(TABLE payments, DESCRIPTOR(event_time), INTERVAL '20' SECOND)) \
          WHERE status <> 'TIMEOUT' GROUP BY window_start, window_end, merchant_id) AS agg) AS ranked \
    WHERE rownum <= 3";

/// The payment time-out alert: every payment, with its capture if one came
/// within 10 seconds (NULL when none did).
const TIMEOUT_JOIN: &str = "SELECT a.txn_id, a.card_id, a.amount, c.event_time AS captured_at \
    FROM payments a LEFT JOIN captures c \
    ON a.txn_id = c.txn_id AND c.event_time BETWEEN a.event_time AND a.event_time + INTERVAL '10' SECOND";

const PAYMENTS_TUMBLE_1S: &str =
    "TABLE(TUMBLE(TABLE payments, DESCRIPTOR(event_time), INTERVAL '1' SECOND))";

const CAPTURES_TUMBLE_1S: &str =
    "TABLE(TUMBLE(TABLE captures, DESCRIPTOR(event_time), INTERVAL '1' SECOND))";

/// Window joins: per card and second, the payments' count and total joined
/// with the captures' count and first captured `txn_id`. Windows hold a few
/// rows each, so many have a partner and many do not; NULL cards never match.
const WINDOW_JOIN_INNER: &str = "SELECT p.window_start, p.window_end, p.card_id, p.n, p.total, \
    c.captured, c.first_txn \
    FROM (SELECT window_start, window_end, card_id, COUNT(*) AS n, SUM(amount) AS total \
          FROM TABLE(TUMBLE(TABLE payments, DESCRIPTOR(event_time), INTERVAL '1' SECOND)) \
          GROUP BY window_start, window_end, card_id) AS p \
    JOIN (SELECT window_start, window_end, card_id, COUNT(*) AS captured, MIN(txn_id) AS first_txn \
          FROM TABLE(TUMBLE(TABLE captures, DESCRIPTOR(event_time), INTERVAL '1' SECOND)) \
          GROUP BY window_start, window_end, card_id) AS c \
    ON p.window_start = c.window_start AND p.window_end = c.window_end AND p.card_id = c.card_id";

const WINDOW_JOIN_FULL: &str = "SELECT p.window_start, p.window_end, p.card_id, p.n, p.total, \
    c.window_start, c.window_end, c.card_id, c.captured, c.first_txn \
    FROM (SELECT window_start, window_end, card_id, COUNT(*) AS n, SUM(amount) AS total \
          FROM TABLE(TUMBLE(TABLE payments, DESCRIPTOR(event_time), INTERVAL '1' SECOND)) \
          GROUP BY window_start, window_end, card_id) AS p \
    FULL JOIN (SELECT window_start, window_end, card_id, COUNT(*) AS captured, MIN(txn_id) AS first_txn \
          FROM TABLE(TUMBLE(TABLE captures, DESCRIPTOR(event_time), INTERVAL '1' SECOND)) \
          GROUP BY window_start, window_end, card_id) AS c \
    ON p.window_start = c.window_start AND p.window_end = c.window_end AND p.card_id = c.card_id";

/// The stream of payments joined with the bounded table of card limits: the
/// payments over one of their card's limits.
const OVER_LIMIT_INNER: &str = "SELECT p.txn_id, p.card_id, p.amount, l.max_amount \
    FROM payments p JOIN card_limits l ON p.card_id = l.card_id WHERE p.amount > l.max_amount";

/// Every payment, with each limit of its card it exceeds (NULLs when none).
const OVER_LIMIT_LEFT: &str = "SELECT p.txn_id, p.card_id, p.amount, l.card_id, l.max_amount \
    FROM payments p LEFT JOIN card_limits l ON p.card_id = l.card_id AND p.amount > l.max_amount";

/// An updating aggregate: its changelog depends on how rows are batched, the
/// table it ends at does not.
const PER_CARD_TOTALS: &str = "SELECT card_id, COUNT(*) AS n, SUM(amount) AS total, \
    MAX(amount) AS hi FROM payments GROUP BY card_id";

/// `query` with each `(from, to)` replaced; `from` must occur, so a typo in the
/// corpus cannot leave the oracle running the streaming text by accident.
fn rewrite(query: &str, replacements: &[(&str, &str)]) -> String {
    replacements
        .iter()
        .fold(query.to_string(), |sql, (from, to)| {
            assert!(sql.contains(from), "{from} not found in {sql}");
            sql.replace(from, to)
        })
}

/// A window join's batch query: both TUMBLE TVFs replaced by `date_bin`.
fn window_join_oracle(query: &str) -> String {
    rewrite(
        query,
        &[
            (PAYMENTS_TUMBLE_1S, &tumble_oracle_of("payments", 1_000)),
            (CAPTURES_TUMBLE_1S, &tumble_oracle_of("captures", 1_000)),
        ],
    )
}

/// The batch answer for a query: DataFusion SQL over the same tables, and a
/// step turning its rows into the streaming query's (for Flink semantics
/// DataFusion does not share).
struct Oracle {
    sql: String,
    finish: fn(Vec<String>) -> Vec<String>,
}

impl Oracle {
    fn sql(sql: impl Into<String>) -> Self {
        Oracle {
            sql: sql.into(),
            finish: |rows| rows,
        }
    }
}

/// Flink's AVG over DECIMAL(18, 2): DECIMAL(38, 6), rounded half away from zero,
/// computed from the batch query's last two columns, SUM and COUNT.
fn flink_decimal_avg_from_sum_and_count(rows: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = rows
        .iter()
        .map(|row| {
            let mut cells: Vec<&str> = row.split(" | ").collect();
            let count = cells.pop().expect("count");
            let sum = cells.pop().expect("sum");
            let avg = if sum == "NULL" {
                "NULL".to_string()
            } else {
                let sum: Decimal = sum.parse().expect("sum");
                let count: Decimal = count.parse().expect("count");
                let avg =
                    (sum / count).round_dp_with_strategy(6, RoundingStrategy::MidpointAwayFromZero);
                format!("{avg:.6}")
            };
            format!("{} | {avg}", cells.join(" | "))
        })
        .collect();
    out.sort();
    out
}

// ------------------------------------------------------------- the property

proptest! {
    #![proptest_config(config())]

    #[test]
    fn filter_and_projection(input in inputs()) {
        check(&input, FILTER_PROJECT, &Oracle::sql(FILTER_PROJECT))?;
    }

    #[test]
    fn tumble_count_sum_min_max_avg_count_distinct(input in inputs()) {
        // Flink: AVG of BIGINT truncates; AVG of DECIMAL is DECIMAL(38, 6).
        let oracle = Oracle {
            sql: rewrite(TUMBLE_AGGREGATES, &[
                (TUMBLE_10S, &tumble_oracle(10_000)),
                ("AVG(merchant_id)", "SUM(merchant_id) / COUNT(merchant_id)"),
                ("AVG(amount) AS avg_amount", "SUM(amount), COUNT(amount)"),
            ]),
            finish: flink_decimal_avg_from_sum_and_count,
        };
        check(&input, TUMBLE_AGGREGATES, &oracle)?;
    }

    #[test]
    fn hop(input in inputs()) {
        let oracle = rewrite(HOP_AGGREGATES, &[(HOP_5S_15S, &hop_oracle(5_000, 15_000))]);
        check(&input, HOP_AGGREGATES, &Oracle::sql(oracle))?;
    }

    #[test]
    fn cumulate(input in inputs()) {
        let oracle = rewrite(CUMULATE_AGGREGATES, &[(CUMULATE_5S_20S, &cumulate_oracle(5_000, 20_000))]);
        check(&input, CUMULATE_AGGREGATES, &Oracle::sql(oracle))?;
    }

    #[test]
    fn session_partitioned_by_card(input in inputs()) {
        let oracle = rewrite(SESSION_AGGREGATES, &[(SESSION_3S, &session_oracle("card_id", 3_000))]);
        check(&input, SESSION_AGGREGATES, &Oracle::sql(oracle))?;
    }

    #[test]
    fn window_top_n_over_rows(input in inputs()) {
        let oracle = rewrite(TOP_N_ROWS, &[(TUMBLE_10S, &tumble_oracle(10_000))]);
        check(&input, TOP_N_ROWS, &Oracle::sql(oracle))?;
    }

    #[test]
    fn window_top_n_over_aggregate(input in inputs()) {
        let oracle = rewrite(TOP_N_AGGREGATE, &[(TUMBLE_20S, &tumble_oracle(20_000))]);
        check(&input, TOP_N_AGGREGATE, &Oracle::sql(oracle))?;
    }

    #[test]
    fn left_interval_join_timeout(input in inputs()) {
        check(&input, TIMEOUT_JOIN, &Oracle::sql(TIMEOUT_JOIN))?;
    }

    #[test]
    fn inner_window_join_of_aggregates(input in inputs()) {
        check(&input, WINDOW_JOIN_INNER, &Oracle::sql(window_join_oracle(WINDOW_JOIN_INNER)))?;
    }

    #[test]
    fn full_window_join_of_aggregates(input in inputs()) {
        check(&input, WINDOW_JOIN_FULL, &Oracle::sql(window_join_oracle(WINDOW_JOIN_FULL)))?;
    }

    #[test]
    fn inner_join_with_bounded_table(input in inputs()) {
        check(&input, OVER_LIMIT_INNER, &Oracle::sql(OVER_LIMIT_INNER))?;
    }

    #[test]
    fn left_join_with_bounded_table(input in inputs()) {
        check(&input, OVER_LIMIT_LEFT, &Oracle::sql(OVER_LIMIT_LEFT))?;
    }

    /// The changelog replayed (`+I`/`+U` add a row, `-U`/`-D` remove it) ends
    /// at the batch GROUP BY, whatever the batching.
    #[test]
    fn updating_aggregate_ends_at_the_batch_answer(input in inputs()) {
        check_as(&input, PER_CARD_TOTALS, &Oracle::sql(PER_CARD_TOTALS), Answer::FinalTable)?;
    }

    /// The generator keeps its promise: no payment or capture is at or behind
    /// the watermark in force before it (the maximum of earlier event times
    /// minus the bound), so every difference above is the engine's.
    #[test]
    fn generated_input_is_within_the_watermark_bound(input in inputs()) {
        let tables = input.tables();
        prop_assert_eq!(tables.payments.len(), input.payments.len());
        for (name, times) in [("payments", tables.payment_times()), ("captures", tables.capture_times())] {
            let mut max_before = i64::MIN;
            for (i, t) in times.iter().enumerate() {
                prop_assert!(
                    *t > max_before.saturating_sub(BOUND_MS),
                    "{} row {} at {} is behind the watermark {}", name, i, t, max_before - BOUND_MS
                );
                max_before = max_before.max(*t);
            }
        }
    }
}

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    ProptestConfig {
        cases,
        // Shrinking reruns the nine jobs per step; bound it so a failure
        // reports within minutes.
        max_shrink_iters: 256,
        max_shrink_time: 120_000,
        ..ProptestConfig::default()
    }
}

/// How a streaming query's output is compared with the oracle's rows.
#[derive(Clone, Copy)]
enum Answer {
    /// Append-only: the rows themselves.
    Rows,
    /// A changelog: the table it ends at when replayed in order.
    FinalTable,
}

impl Answer {
    fn rows(self, batches: &[RecordBatch]) -> Result<Vec<String>, String> {
        match self {
            Answer::Rows => Ok(rows_as_text(batches)),
            Answer::FinalTable => replay_changelog(batches).map(|replayed| replayed.rows),
        }
    }
}

/// Runs `query` streaming at every parallelism and batch size and compares
/// each answer with the oracle's.
fn check(input: &Input, query: &str, oracle: &Oracle) -> Result<(), TestCaseError> {
    check_as(input, query, oracle, Answer::Rows)
}

/// [`check`], reading the streaming output as `answer` says.
fn check_as(
    input: &Input,
    query: &str,
    oracle: &Oracle,
    answer: Answer,
) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let tables = input.tables();
        let streams = tables.streams(input.chunk);
        let bounded = tables.bounded(input.chunk);
        let all: Vec<_> = streams.iter().chain(&bounded).cloned().collect();
        let expected = (oracle.finish)(batch_rows_of(&all, &oracle.sql).await);
        for parallelism in PARALLELISM {
            for batch_size in BATCH_SIZES {
                let ctx = stream_context_of(&streams);
                for (name, schema, batches) in &bounded {
                    ctx.register_batches(name, schema.clone(), batches.clone(), None)
                        .expect("register bounded table");
                }
                ctx.sql(&format!("SET 'parallelism.default' = '{parallelism}'"))
                    .await
                    .expect("set parallelism");
                ctx.sql(&format!("SET 'execution.batch-size' = '{batch_size}'"))
                    .await
                    .expect("set batch size");
                let label = format!(
                    "{query}\n  with 'parallelism.default' = '{parallelism}', \
                     'execution.batch-size' = '{batch_size}', input registered in batches of {}",
                    input.chunk
                );
                let rows = match ctx.sql(query).await {
                    Ok(frame) => frame.collect().await.map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                }
                .and_then(|batches| answer.rows(&batches))
                .map_err(|e| TestCaseError::fail(format!("{label}\n  failed: {e}")))?;
                if let Some(difference) = row_difference(&label, &rows, &expected) {
                    return Err(TestCaseError::fail(difference));
                }
            }
        }
        Ok(())
    })
}

// ------------------------------------------------------------- the input

/// One generated payment, before event times are laid out.
#[derive(Clone, Debug)]
struct Payment {
    /// How far the input's clock moves before this row.
    advance_ms: i64,
    /// How far this row's event time lies behind the clock (less than the bound).
    behind_ms: i64,
    card: Option<i64>,
    merchant: i64,
    country: Option<&'static str>,
    amount_cents: Option<i128>,
    status: &'static str,
    /// `(delay after the payment, arrival shift)`: captures arrive in order of
    /// `event_time + shift`, and a shift below the bound keeps them within it.
    captures: Vec<(i64, i64)>,
}

/// A generated input: payments in arrival order and the bounded table of card
/// limits, registered in batches of `chunk` rows.
#[derive(Clone)]
struct Input {
    start_ms: i64,
    chunk: usize,
    payments: Vec<Payment>,
    /// `(card_id, max_amount in cents)` rows of `card_limits`.
    limits: Vec<(Option<i64>, Option<i128>)>,
}

/// Amounts in cents: NULL, whole amounts (so comparisons tie) or any.
fn amount_cents() -> impl Strategy<Value = Option<i128>> {
    prop_oneof![
        1 => Just(None),
        3 => (0i128..200).prop_map(|u| Some(u * 100)),
        4 => (-2_000i128..20_000).prop_map(Some),
    ]
}

/// Rows of `card_limits`: cards 1 to 5 (payments use 1 to 4, so some limits
/// match nothing and some cards have none, one or several), a few NULLs.
fn limits() -> impl Strategy<Value = Vec<(Option<i64>, Option<i128>)>> {
    prop::collection::vec(
        (prop::option::weighted(0.9, 1i64..=5), amount_cents()),
        0..=8,
    )
}

fn payment() -> impl Strategy<Value = Payment> {
    let advance = prop_oneof![
        12 => (0i64..4).prop_map(|u| u * GRID_MS),
        4 => 0i64..1_000,
        1 => (8i64..40).prop_map(|u| u * GRID_MS),
    ];
    let behind = prop_oneof![
        3 => Just(0i64),
        4 => (0i64..BOUND_MS / GRID_MS).prop_map(|u| u * GRID_MS),
        2 => 0i64..BOUND_MS,
        1 => Just(BOUND_MS - 1),
    ];
    let capture_delay = prop_oneof![(0i64..=48).prop_map(|u| u * GRID_MS), 0i64..15_000,];
    (
        advance,
        behind,
        prop::option::weighted(0.95, 1i64..=4),
        1i64..=6,
        prop::option::weighted(0.9, prop::sample::select(vec!["DE", "FR", "NL"])),
        amount_cents(),
        prop::sample::select(vec!["APPROVED", "DECLINED", "TIMEOUT"]),
        prop::collection::vec((capture_delay, 0i64..BOUND_MS), 0..=2),
    )
        .prop_map(
            |(advance_ms, behind_ms, card, merchant, country, amount_cents, status, captures)| {
                Payment {
                    advance_ms,
                    behind_ms,
                    card,
                    merchant,
                    country,
                    amount_cents,
                    status,
                    captures,
                }
            },
        )
}

fn inputs() -> impl Strategy<Value = Input> {
    (
        (0i64..40).prop_map(|u| START_MS + u * 500),
        prop_oneof![1 => 1usize..8, 3 => 8usize..=128],
        prop::collection::vec(payment(), 20..=320),
        // Last, so the earlier parts of a stored seed's input stay as they were.
        limits(),
    )
        .prop_map(|(start_ms, chunk, payments, limits)| Input {
            start_ms,
            chunk,
            payments,
            limits,
        })
}

/// A payment row as registered: `txn_id` is its arrival position.
struct PaymentRow {
    txn_id: i64,
    event_time: i64,
    payment: Payment,
}

/// A capture as registered: its payment's `txn_id` and card.
struct CaptureRow {
    txn_id: i64,
    event_time: i64,
    card_id: Option<i64>,
}

/// The generated input laid out: payments and captures in arrival order, and
/// the card limits.
struct Tables {
    payments: Vec<PaymentRow>,
    captures: Vec<CaptureRow>,
    limits: Vec<(Option<i64>, Option<i128>)>,
}

impl Input {
    fn tables(&self) -> Tables {
        let mut clock = self.start_ms;
        let mut payments = Vec::new();
        let mut captures = Vec::new();
        for (i, payment) in self.payments.iter().enumerate() {
            clock += payment.advance_ms;
            let event_time = clock - payment.behind_ms;
            let txn_id = i as i64;
            for (delay, shift) in &payment.captures {
                let capture = CaptureRow {
                    txn_id,
                    event_time: event_time + delay,
                    card_id: payment.card,
                };
                captures.push((event_time + delay + shift, capture));
            }
            payments.push(PaymentRow {
                txn_id,
                event_time,
                payment: payment.clone(),
            });
        }
        captures.sort_by_key(|(arrival, _)| *arrival);
        Tables {
            payments,
            captures: captures.into_iter().map(|(_, capture)| capture).collect(),
            limits: self.limits.clone(),
        }
    }
}

impl Tables {
    fn payment_times(&self) -> Vec<i64> {
        self.payments.iter().map(|p| p.event_time).collect()
    }

    fn capture_times(&self) -> Vec<i64> {
        self.captures.iter().map(|c| c.event_time).collect()
    }

    /// The streams `payments` and `captures` as Arrow batches of `chunk` rows.
    fn streams(&self, chunk: usize) -> Vec<(&'static str, SchemaRef, Vec<RecordBatch>)> {
        let schema = payments_schema();
        let rows = &self.payments;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.txn_id))),
            Arc::new(TimestampMillisecondArray::from_iter_values(
                rows.iter().map(|r| r.event_time),
            )),
            Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.payment.card))),
            Arc::new(Int64Array::from_iter(
                rows.iter().map(|r| r.payment.card.map(|c| 100 + c)),
            )),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| r.payment.merchant),
            )),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| {
                ["5411", "5812", "5999"][r.payment.merchant as usize % 3]
            }))),
            Arc::new(StringArray::from_iter(
                rows.iter().map(|r| r.payment.country),
            )),
            Arc::new(
                Decimal128Array::from_iter(rows.iter().map(|r| r.payment.amount_cents))
                    .with_precision_and_scale(18, 2)
                    .expect("decimal"),
            ),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|_| "EUR"))),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.payment.status),
            )),
        ];
        let payments = RecordBatch::try_new(schema.clone(), columns).expect("payments batch");

        let capture_schema = Arc::new(Schema::new(vec![
            Field::new("txn_id", DataType::Int64, true),
            Field::new(
                "event_time",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                true,
            ),
            Field::new("card_id", DataType::Int64, true),
        ]));
        let captures = RecordBatch::try_new(
            capture_schema.clone(),
            vec![
                Arc::new(Int64Array::from_iter_values(
                    self.captures.iter().map(|c| c.txn_id),
                )),
                Arc::new(TimestampMillisecondArray::from_iter_values(
                    self.captures.iter().map(|c| c.event_time),
                )),
                Arc::new(Int64Array::from_iter(
                    self.captures.iter().map(|c| c.card_id),
                )),
            ],
        )
        .expect("captures batch");
        vec![
            ("payments", schema, chunks(&payments, chunk)),
            ("captures", capture_schema, chunks(&captures, chunk)),
        ]
    }

    /// The bounded table `card_limits (card_id, max_amount)` as Arrow batches
    /// of `chunk` rows, for registering without a WATERMARK.
    fn bounded(&self, chunk: usize) -> Vec<(&'static str, SchemaRef, Vec<RecordBatch>)> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("card_id", DataType::Int64, true),
            Field::new("max_amount", DataType::Decimal128(18, 2), true),
        ]));
        let limits = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from_iter(self.limits.iter().map(|(c, _)| *c))),
                Arc::new(
                    Decimal128Array::from_iter(self.limits.iter().map(|(_, m)| *m))
                        .with_precision_and_scale(18, 2)
                        .expect("decimal"),
                ),
            ],
        )
        .expect("limits batch");
        vec![("card_limits", schema, chunks(&limits, chunk))]
    }
}

fn chunks(batch: &RecordBatch, chunk: usize) -> Vec<RecordBatch> {
    (0..batch.num_rows())
        .step_by(chunk)
        .map(|offset| batch.slice(offset, chunk.min(batch.num_rows() - offset)))
        .collect()
}

/// The input as the tables the queries read, so a shrunk failure can be
/// reproduced by hand.
impl fmt::Debug for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tables = self.tables();
        writeln!(
            f,
            "registered in batches of {} rows; event_time in ms since the epoch",
            self.chunk
        )?;
        writeln!(
            f,
            "payments (arrival order): txn_id, event_time, card_id, merchant_id, country, amount, status"
        )?;
        let text = |v: Option<String>| v.unwrap_or_else(|| "NULL".into());
        for row in &tables.payments {
            let p = &row.payment;
            writeln!(
                f,
                "  {}, {}, {}, {}, {}, {}, {}",
                row.txn_id,
                row.event_time,
                text(p.card.map(|c| c.to_string())),
                p.merchant,
                text(p.country.map(String::from)),
                text(
                    p.amount_cents
                        .map(|c| Decimal::from_i128_with_scale(c, 2).to_string())
                ),
                p.status
            )?;
        }
        writeln!(f, "captures (arrival order): txn_id, event_time, card_id")?;
        for c in &tables.captures {
            writeln!(
                f,
                "  {}, {}, {}",
                c.txn_id,
                c.event_time,
                text(c.card_id.map(|c| c.to_string()))
            )?;
        }
        writeln!(f, "card_limits: card_id, max_amount")?;
        for (card, cents) in &tables.limits {
            writeln!(
                f,
                "  {}, {}",
                text(card.map(|c| c.to_string())),
                text(cents.map(|c| Decimal::from_i128_with_scale(c, 2).to_string()))
            )?;
        }
        Ok(())
    }
}
