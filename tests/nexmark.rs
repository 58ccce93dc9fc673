//! Every runnable Nexmark query of `benches/nexmark/` against DataFusion's
//! batch answer over the same generated events: the streaming job runs the
//! query file (its blackhole or file sink swapped for an in-memory one); the
//! oracle runs the same SELECT in DataFusion where DataFusion can, and the
//! batch stand-ins of `tests/common` for window TVFs where it cannot.

mod common;
#[path = "../benches/nexmark/suite.rs"]
mod suite;

use std::sync::Arc;

use common::{assert_same_rows, batch_rows_of, final_rows};
use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use watershed::StreamContext;
use watershed::connectors::memory::CollectSinkFactory;
use watershed::connectors::nexmark::{EventKind, NexmarkConfig, NexmarkGenerator, nexmark_schema};
use watershed::engine::source::Split;

/// A minute of events at 1000 events per second: six 10-second windows.
const EVENTS: u64 = 60_000;
const RATE: u64 = 1_000;

/// The events of `kind` the query files' tables produce.
fn generated(kind: EventKind) -> Vec<RecordBatch> {
    let mut config = NexmarkConfig::new(kind);
    config.events = Some(EVENTS);
    config.rate = RATE;
    let mut generator =
        NexmarkGenerator::for_split("t", config, nexmark_schema(kind), Split::SINGLE).unwrap();
    let mut batches = Vec::new();
    while let Some((batch, _)) = generator.next_batch(4096, u64::MAX).unwrap() {
        batches.push(batch);
    }
    batches
}

/// `batches` under a schema with lower-case column names (DataFusion's
/// default SQL folds unquoted identifiers to lower case).
fn lower_case(batches: Vec<RecordBatch>, schema: &SchemaRef) -> (SchemaRef, Vec<RecordBatch>) {
    let lower = Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| Field::new(f.name().to_lowercase(), f.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    let batches = batches
        .into_iter()
        .map(|b| RecordBatch::try_new(lower.clone(), b.columns().to_vec()).unwrap())
        .collect();
    (lower, batches)
}

/// The oracle's tables: person, auction, bid and q13's side input.
fn oracle_tables() -> Vec<(&'static str, SchemaRef, Vec<RecordBatch>)> {
    let mut tables: Vec<(&'static str, SchemaRef, Vec<RecordBatch>)> = [
        ("person", EventKind::Person),
        ("auction", EventKind::Auction),
        ("bid", EventKind::Bid),
    ]
    .into_iter()
    .map(|(name, kind)| {
        let (schema, batches) = lower_case(generated(kind), &nexmark_schema(kind));
        (name, schema, batches)
    })
    .collect();
    let side = Arc::new(Schema::new(vec![
        Field::new("key", DataType::Int64, true),
        Field::new("value", DataType::Utf8, true),
    ]));
    let keys: Vec<i64> = (0..10_000).collect();
    let values: Vec<String> = keys.iter().map(i64::to_string).collect();
    let batch = RecordBatch::try_new(
        side.clone(),
        vec![
            Arc::new(Int64Array::from(keys)),
            Arc::new(StringArray::from(values)),
        ],
    )
    .unwrap();
    tables.push(("side_input", side, vec![batch]));
    tables
}

/// The query's rows from the streaming engine (a changelog replayed to its
/// final table); fails when the job's row counts do not add up.
async fn stream_answer(query: &suite::Query) -> Vec<String> {
    let sink_table = format!("nexmark_{}", query.name);
    let sink = CollectSinkFactory::new();
    let ctx = StreamContext::new();
    ctx.connectors()
        .register_memory_sink(&sink_table, Arc::new(sink.clone()));
    let ddl = query
        .ddl
        .replace("'connector' = 'blackhole'", "'connector' = 'memory'");
    // q10's file sink.
    let ddl = match ddl.find("'path' = '") {
        Some(_) if query.name == "q10" => {
            let start = ddl
                .find("WITH ('connector' = 'filesystem', 'path'")
                .unwrap();
            let end = start + ddl[start..].find(')').unwrap() + 1;
            format!(
                "{}WITH ('connector' = 'memory'){}",
                &ddl[..start],
                &ddl[end..]
            )
        }
        _ => ddl,
    };
    ctx.sql(&ddl)
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", query.name));
    let result = ctx
        .sql(&query.insert)
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", query.name))
        .run()
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", query.name));
    // Every source row is accounted for once, also through cascaded
    // aggregates and joins of aggregates (q5, q7, q8).
    assert!(result.rows.adds_up(), "{}: {:?}", query.name, result.rows);
    final_rows(&sink.batches())
}

/// The SELECT of a query file, for DataFusion: back quotes dropped, typed as
/// in Flink (and Watershed) where DataFusion differs (a decimal literal is a
/// DECIMAL, not a DOUBLE; the AVG of a BIGINT is a truncated BIGINT), and
/// Flink's functions written with DataFusion's own, so that the oracle does
/// not share Watershed's implementation of them.
fn select_of(query: &suite::Query) -> String {
    let at = query.insert.find("SELECT").unwrap();
    let mut sql = query.insert[at..]
        .replace('`', "")
        .replace("0.908", "CAST(0.908 AS DECIMAL(4, 3))")
        .replace("avg(price)", "CAST(avg(price) AS BIGINT)")
        .replace("DATE_FORMAT(", "to_char(")
        .replace("'yyyy-MM-dd'", "'%Y-%m-%d'")
        .replace("'HH:mm'", "'%H:%M'")
        .replace("MOD(auction, 123)", "auction % 123")
        .replace("MOD(auction, 10000)", "auction % 10000")
        .replace(
            "REGEXP_EXTRACT(url, '(&|^)channel_id=([^&]*)', 2)",
            "CASE WHEN regexp_like(url, '(&|^)channel_id=') \
             THEN regexp_replace(url, '^.*(&|^)channel_id=([^&]*).*$', '${2}') END",
        );
    for part in 3..=5 {
        sql = sql.replace(
            &format!("SPLIT_INDEX(url, '/', {part})"),
            &format!("split_part(url, '/', {})", part + 1),
        );
    }
    sql.trim_end().trim_end_matches(';').to_string()
}

/// A row's 10-second tumbling window start, for the batch oracle.
const BIN: &str = "date_bin(INTERVAL '10 seconds', datetime, TIMESTAMP '1970-01-01 00:00:00')";

/// The batch answer: the file's own SELECT, or a stand-in for window TVFs.
fn oracle_sql(query: &suite::Query) -> String {
    let tumble = |input: &str| {
        format!(
            "(SELECT *, {BIN} AS window_start, {BIN} + INTERVAL '10 seconds' AS window_end \
             FROM {input}) AS t"
        )
    };
    match query.name.as_str() {
        "q5" => {
            let hop = common::hop_oracle_of("bid", "datetime", 2_000, 10_000);
            format!(
                "WITH auction_bids AS (SELECT auction, count(*) AS num, window_start, window_end \
                                       FROM {hop} GROUP BY auction, window_start, window_end), \
                      max_bids AS (SELECT max(num) AS maxn, window_start, window_end \
                                   FROM auction_bids GROUP BY window_start, window_end) \
                 SELECT a.auction, a.num FROM auction_bids a JOIN max_bids m \
                 ON a.window_start = m.window_start AND a.window_end = m.window_end \
                 AND a.num >= m.maxn"
            )
        }
        "q7" => format!(
            "SELECT b.auction, b.bidder, b.price, b.datetime, b.extra \
             FROM (SELECT *, {BIN} AS window_start FROM bid) b \
             JOIN (SELECT max(price) AS maxprice, {BIN} AS window_start FROM bid \
                   GROUP BY {BIN}) m \
             ON b.window_start = m.window_start AND b.price = m.maxprice"
        ),
        "q8" => format!(
            "SELECT p.id, p.name, p.window_start FROM \
             (SELECT id, name, window_start, window_end FROM {} \
              GROUP BY id, name, window_start, window_end) p \
             JOIN (SELECT seller, window_start, window_end FROM {} \
                   GROUP BY seller, window_start, window_end) a \
             ON p.id = a.seller AND p.window_start = a.window_start \
             AND p.window_end = a.window_end",
            tumble("person"),
            tumble("auction")
        ),
        "q11" => format!(
            "SELECT bidder, count(*), window_start, window_end FROM {} \
             GROUP BY bidder, window_start, window_end",
            common::session_oracle_of("bid", "datetime", "bidder", 10_000)
        ),
        _ => select_of(query),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_runnable_nexmark_query_gives_the_batch_answer() {
    let dir = tempfile::tempdir().unwrap();
    let side_input = dir.path().join("side_input.csv");
    suite::write_side_input(&side_input);
    let queries = suite::load(
        "nexmark",
        &suite::Settings {
            events: EVENTS,
            rate: RATE,
            output_dir: dir.path(),
            side_input: &side_input,
        },
    );
    let tables = oracle_tables();
    let mut checked = Vec::new();
    for query in queries.iter().filter(|q| q.runnable.is_ok()) {
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
    // The runnable set the README lists.
    assert_eq!(
        checked,
        [
            "q0", "q1", "q2", "q5", "q7", "q8", "q10", "q11", "q13", "q14", "q15", "q16", "q17",
            "q21", "q22"
        ]
    );
}
