//! Plan snapshots: the EXPLAIN text of representative risk queries. The text is
//! deterministic (no addresses, no hash-map order), so a change in planning shows
//! up as a snapshot diff for review.

use watershed::StreamContext;

const DDL: &str = "
CREATE TABLE payments (
  txn_id BIGINT, event_time TIMESTAMP(3), card_id BIGINT, account_id BIGINT,
  merchant_id BIGINT, mcc STRING, country STRING, amount DECIMAL(18, 2),
  currency STRING, status STRING,
  WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND
) WITH ('connector' = 'filesystem', 'path' = 'data/payments.csv', 'format' = 'csv');

CREATE TABLE payments_json (
  txn_id BIGINT, event_time TIMESTAMP(3), card_id BIGINT, amount DECIMAL(18, 2), status STRING,
  WATERMARK FOR event_time AS event_time - INTERVAL '2' SECOND
) WITH ('connector' = 'filesystem', 'path' = 'data/payments.jsonl', 'format' = 'json',
        'json.ignore-parse-errors' = 'true');

CREATE TABLE generated (
  txn_id BIGINT, event_time TIMESTAMP(3), card_id BIGINT, amount DECIMAL(18, 2), status STRING,
  WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND
) WITH ('connector' = 'payments', 'number-of-rows' = '1000', 'seed' = '1');

CREATE TABLE card_minute (
  window_start TIMESTAMP(3), window_end TIMESTAMP(3), card_id BIGINT,
  txns BIGINT, total DECIMAL(38, 2), max_amount DECIMAL(18, 2)
) WITH ('connector' = 'filesystem', 'path' = 'out/card_minute', 'format' = 'csv');

CREATE TABLE alerts (txn_id BIGINT, card_id BIGINT, amount DECIMAL(18, 2), reason STRING)
  WITH ('connector' = 'print');

CREATE TABLE country_declines (
  window_start TIMESTAMP(3), window_end TIMESTAMP(3), country STRING,
  declines BIGINT, total BIGINT, decline_rate DOUBLE
) WITH ('connector' = 'blackhole');

CREATE TABLE card_limits (card_id BIGINT, max_amount DECIMAL(18, 2))
  WITH ('connector' = 'filesystem', 'path' = 'data/card_limits.csv', 'format' = 'csv');

CREATE TABLE bid (
  auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING,
  `dateTime` TIMESTAMP(3), extra STRING,
  WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND
) WITH ('connector' = 'nexmark', 'nexmark.table' = 'bid', 'events.num' = '1000');

CREATE TABLE bid_bidder_watermark (
  auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING,
  `dateTime` TIMESTAMP(3), extra STRING,
  WATERMARK FOR `dateTime` AS CASE WHEN bidder > 0 THEN `dateTime` - INTERVAL '4' SECOND ELSE `dateTime` END
) WITH ('connector' = 'nexmark', 'nexmark.table' = 'bid', 'events.num' = '1000');

CREATE VIEW declined AS SELECT txn_id, card_id, amount, country FROM payments WHERE status = 'DECLINED';

CREATE VIEW declines AS SELECT * FROM payments WHERE status = 'DECLINED';
";

async fn explain(sql: &str) -> String {
    let ctx = StreamContext::new();
    ctx.sql(DDL).await.expect("ddl");
    let frame = ctx
        .sql(&format!("EXPLAIN {sql}"))
        .await
        .unwrap_or_else(|e| panic!("explain {sql}: {e}"));
    let text = frame.plan_text().expect("plan text");
    // Planning twice gives the same text: nothing depends on addresses or hash order.
    let again = ctx
        .sql(&format!("EXPLAIN {sql}"))
        .await
        .expect("explain again")
        .plan_text()
        .expect("plan text");
    assert_eq!(text, again, "EXPLAIN is not deterministic");
    text
}

macro_rules! plan_snapshot {
    ($name:ident, $sql:expr) => {
        #[tokio::test]
        async fn $name() {
            insta::assert_snapshot!(stringify!($name), explain($sql).await);
        }
    };
}

plan_snapshot!(
    card_minute_velocity,
    "INSERT INTO card_minute
     SELECT window_start, window_end, card_id, COUNT(*), SUM(amount), MAX(amount)
     FROM TABLE(TUMBLE(TABLE payments, DESCRIPTOR(event_time), INTERVAL '1' MINUTES))
     GROUP BY window_start, window_end, card_id"
);

// Projection pushdown: each scan of `bid` generates only the columns it
// reads (the window join's side no `channel` or `url`, the maximum's side
// only `price` and `dateTime`).
plan_snapshot!(
    nexmark_q7_highest_bid,
    "SELECT B.auction, B.price, B.`dateTime`
     FROM (SELECT * FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND))) B
     JOIN (
       SELECT MAX(price) AS maxprice, window_start, window_end
       FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND))
       GROUP BY window_start, window_end
     ) B1
     ON B.window_start = B1.window_start AND B.window_end = B1.window_end AND B.price = B1.maxprice"
);

// The columns a watermark expression reads are generated too.
plan_snapshot!(
    pushdown_keeps_watermark_columns,
    "SELECT auction FROM bid_bidder_watermark"
);

plan_snapshot!(
    large_amount_alert,
    "INSERT INTO alerts
     SELECT txn_id, card_id, amount, 'large amount' FROM payments WHERE amount >= 10000"
);

plan_snapshot!(
    decline_spike_per_country,
    "INSERT INTO country_declines
     SELECT window_start, window_end, country,
            COUNT(*) FILTER (WHERE status = 'DECLINED') AS declines,
            COUNT(*) AS total,
            CAST(COUNT(*) FILTER (WHERE status = 'DECLINED') AS DOUBLE) / COUNT(*) AS decline_rate
     FROM TABLE(TUMBLE(TABLE payments, DESCRIPTOR(event_time), INTERVAL '5' MINUTES))
     GROUP BY window_start, window_end, country
     HAVING COUNT(*) >= 20"
);

plan_snapshot!(
    distinct_merchants_per_card,
    "SELECT window_start, window_end, card_id, COUNT(DISTINCT merchant_id) AS merchants
     FROM TABLE(TUMBLE(TABLE payments, DESCRIPTOR(event_time), INTERVAL '10' MINUTES))
     GROUP BY window_start, window_end, card_id"
);

plan_snapshot!(
    updating_distinct_merchants_per_card,
    "SELECT card_id, COUNT(DISTINCT merchant_id) AS merchants, SUM(amount) AS total
     FROM payments GROUP BY card_id"
);

plan_snapshot!(
    average_amount_per_mcc,
    "SELECT window_start, window_end, mcc, AVG(amount) AS avg_amount, MIN(amount), MAX(amount)
     FROM TABLE(TUMBLE(TABLE payments, DESCRIPTOR(event_time), INTERVAL '1' HOUR))
     WHERE currency = 'EUR'
     GROUP BY window_start, window_end, mcc"
);

plan_snapshot!(
    window_assignment_only,
    "SELECT txn_id, window_start, window_end, window_time
     FROM TABLE(TUMBLE(TABLE payments, DESCRIPTOR(event_time), INTERVAL '30' SECOND))"
);

plan_snapshot!(
    query_over_view,
    "SELECT card_id, amount * 100 AS cents FROM declined WHERE country IN ('DE', 'FR')"
);

plan_snapshot!(
    case_and_cast_projection,
    "INSERT INTO alerts
     SELECT txn_id, card_id, CAST(amount AS DECIMAL(18, 2)),
            CASE WHEN amount > 5000 THEN 'very large' WHEN amount > 1000 THEN 'large' ELSE 'normal' END
     FROM payments WHERE status <> 'APPROVED'"
);

plan_snapshot!(
    json_source_with_ignore_errors,
    "SELECT window_start, card_id, SUM(amount)
     FROM TABLE(TUMBLE(TABLE payments_json, DESCRIPTOR(event_time), INTERVAL '1' MINUTE))
     GROUP BY window_start, window_end, card_id"
);

plan_snapshot!(
    generated_source,
    "SELECT window_start, window_end, status, COUNT(*)
     FROM TABLE(TUMBLE(TABLE generated, DESCRIPTOR(event_time), INTERVAL '1' MINUTE))
     GROUP BY window_start, window_end, status"
);

plan_snapshot!(
    tumble_with_offset_and_scalar_functions,
    "SELECT window_start, UPPER(country) AS c, COUNT(*) AS n, SUM(amount) AS total
     FROM TABLE(TUMBLE(TABLE payments, DESCRIPTOR(event_time), INTERVAL '1' HOUR, INTERVAL '15' MINUTE))
     WHERE char_length(mcc) = 4
     GROUP BY window_start, window_end, UPPER(country)"
);

plan_snapshot!(
    hop_sliding_velocity,
    "SELECT window_start, window_end, card_id, COUNT(*) AS txns, SUM(amount) AS total
     FROM TABLE(HOP(TABLE payments, DESCRIPTOR(event_time), INTERVAL '1' MINUTE, INTERVAL '5' MINUTES))
     GROUP BY window_start, window_end, card_id"
);

plan_snapshot!(
    cumulate_daily_spend,
    "SELECT window_start, window_end, account_id, SUM(amount) AS spent
     FROM TABLE(CUMULATE(TABLE payments, DESCRIPTOR(event_time), INTERVAL '1' HOUR, INTERVAL '1' DAY))
     GROUP BY window_start, window_end, account_id"
);

plan_snapshot!(
    hop_over_filtering_view,
    "SELECT window_start, window_end, card_id, COUNT(*) AS declines, SUM(amount) AS total
     FROM TABLE(HOP(TABLE declines, DESCRIPTOR(event_time), INTERVAL '1' MINUTE, INTERVAL '5' MINUTES))
     GROUP BY window_start, window_end, card_id"
);

#[tokio::test]
async fn parallel_keyed_aggregate() {
    let ctx = StreamContext::new();
    ctx.sql(DDL).await.expect("ddl");
    ctx.sql("SET 'parallelism.default' = '2'")
        .await
        .expect("set");
    let text = ctx
        .sql(
            "EXPLAIN INSERT INTO card_minute
             SELECT window_start, window_end, card_id, COUNT(*), SUM(amount), MAX(amount)
             FROM TABLE(TUMBLE(TABLE payments, DESCRIPTOR(event_time), INTERVAL '1' MINUTES))
             GROUP BY window_start, window_end, card_id",
        )
        .await
        .expect("explain")
        .plan_text()
        .expect("plan text");
    insta::assert_snapshot!("parallel_keyed_aggregate", text);
}

plan_snapshot!(
    top_merchants_per_window,
    "SELECT * FROM (
       SELECT window_start, window_end, merchant_id, declines,
              ROW_NUMBER() OVER (PARTITION BY window_start, window_end ORDER BY declines DESC) AS rownum
       FROM (SELECT window_start, window_end, merchant_id, COUNT(*) AS declines
             FROM TABLE(TUMBLE(TABLE payments, DESCRIPTOR(event_time), INTERVAL '5' MINUTES))
             WHERE status = 'DECLINED'
             GROUP BY window_start, window_end, merchant_id)
     ) WHERE rownum <= 10"
);

plan_snapshot!(
    window_join_of_aggregates,
    "SELECT L.card_id, L.window_start, L.window_end, L.txns, R.total
     FROM (SELECT window_start, window_end, card_id, COUNT(*) AS txns
           FROM TABLE(TUMBLE(TABLE payments, DESCRIPTOR(event_time), INTERVAL '1' MINUTE))
           GROUP BY window_start, window_end, card_id) L
     LEFT JOIN (SELECT window_start, window_end, card_id, SUM(amount) AS total
           FROM TABLE(TUMBLE(TABLE payments_json, DESCRIPTOR(event_time), INTERVAL '1' MINUTE))
           GROUP BY window_start, window_end, card_id) R
     ON L.window_start = R.window_start AND L.window_end = R.window_end AND L.card_id = R.card_id"
);

plan_snapshot!(
    payment_over_card_limit,
    "INSERT INTO alerts
     SELECT p.txn_id, p.card_id, p.amount, 'over card limit'
     FROM payments p JOIN card_limits l ON p.card_id = l.card_id
     WHERE p.amount > l.max_amount"
);

#[tokio::test]
async fn parallel_bounded_table_join() {
    let ctx = StreamContext::new();
    ctx.sql(DDL).await.expect("ddl");
    ctx.sql("SET 'parallelism.default' = '2'")
        .await
        .expect("set");
    let text = ctx
        .sql(
            "EXPLAIN SELECT p.txn_id, p.amount, l.max_amount
             FROM payments p LEFT JOIN card_limits l ON p.card_id = l.card_id AND p.amount > l.max_amount",
        )
        .await
        .expect("explain")
        .plan_text()
        .expect("plan text");
    insta::assert_snapshot!("parallel_bounded_table_join", text);
}
