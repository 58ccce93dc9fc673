//! Bad input never panics: malformed rows, missing files and bad SQL give clear
//! errors that say what and where, and skipped rows are counted.

use std::io::Write;

use watershed::StreamContext;

fn payments_ddl(path: &str, extra: &str) -> String {
    format!(
        "CREATE TABLE payments (
           txn_id BIGINT, event_time TIMESTAMP(3), card_id BIGINT, amount DECIMAL(18, 2), status STRING,
           WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND
         ) WITH ('connector' = 'filesystem', 'path' = '{path}', 'format' = 'csv'{extra});
         CREATE TABLE sink (card_id BIGINT, n BIGINT, total DECIMAL(38, 2))
           WITH ('connector' = 'blackhole');"
    )
}

const AGGREGATE: &str = "INSERT INTO sink SELECT card_id, COUNT(*), SUM(amount)
    FROM TABLE(TUMBLE(TABLE payments, DESCRIPTOR(event_time), INTERVAL '1' MINUTE))
    GROUP BY window_start, window_end, card_id";

fn csv_file(lines: &[&str]) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new()
        .suffix(".csv")
        .tempfile()
        .expect("tempfile");
    for line in lines {
        writeln!(file, "{line}").expect("write");
    }
    file
}

const GOOD: &str = "1,2024-01-01 00:00:01.000,7,10.50,APPROVED";
const BAD_AMOUNT: &str = "2,2024-01-01 00:00:02.000,7,ten,APPROVED";

async fn run(sql: &str) -> watershed::Result<watershed::engine::runtime::JobResult> {
    let ctx = StreamContext::new();
    ctx.sql(sql).await?.run().await
}

#[tokio::test]
async fn malformed_csv_row_fails_the_job_with_file_line_and_reason() {
    let file = csv_file(&[GOOD, GOOD, BAD_AMOUNT, GOOD]);
    let path = file.path().display().to_string();
    let err = run(&format!("{}{AGGREGATE}", payments_ddl(&path, "")))
        .await
        .expect_err("a malformed row must fail the job");
    let message = err.to_string();
    assert!(message.contains(&path), "{message}");
    assert!(message.contains("line 3"), "{message}");
    assert!(message.contains("amount"), "{message}");
}

#[tokio::test]
async fn ignore_parse_errors_skips_and_counts_rejected_rows() {
    let file = csv_file(&[
        GOOD,
        BAD_AMOUNT,
        GOOD,
        "3,2024-01-01T00:00:03,7,1.00,APPROVED",
        "4,too,few",
    ]);
    let path = file.path().display().to_string();
    let result = run(&format!(
        "{}{AGGREGATE}",
        payments_ddl(&path, ", 'csv.ignore-parse-errors' = 'true'")
    ))
    .await
    .expect("the job skips malformed rows");
    let rows = result.rows;
    assert_eq!(rows.read, 5);
    assert_eq!(rows.rejected, 3, "{rows:?}");
    assert_eq!(rows.aggregated, 2);
    assert_eq!(rows.written, 1);
    assert!(rows.adds_up(), "{rows:?}");
}

#[tokio::test]
async fn missing_file_names_the_path() {
    let err = run(&format!(
        "{}{AGGREGATE}",
        payments_ddl("/nonexistent/watershed/payments.csv", "")
    ))
    .await
    .expect_err("missing input");
    assert!(
        err.to_string()
            .contains("/nonexistent/watershed/payments.csv"),
        "{err}"
    );
}

async fn plan_error(sql: &str) -> String {
    let ctx = StreamContext::new();
    ctx.sql(&payments_ddl("data.csv", "")).await.expect("ddl");
    match ctx.sql(sql).await {
        Ok(_) => panic!("expected a planning error for {sql}"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn syntax_error_names_line_and_column() {
    let message = plan_error("SELECT card_id\nFROM payments\nWHERE amount >> 3").await;
    assert!(message.contains("line 3"), "{message}");
}

#[tokio::test]
async fn unknown_column_names_the_column_and_position() {
    let message = plan_error("SELECT card_id,\n  amountt FROM payments").await;
    assert!(message.contains("amountt"), "{message}");
    assert!(message.contains("line 2"), "{message}");
}

#[tokio::test]
async fn unsupported_features_are_named() {
    let join =
        plan_error("SELECT a.card_id FROM payments a JOIN payments b ON a.card_id = b.card_id")
            .await;
    assert!(join.contains("join"), "{join}");
    let top_n = plan_error(
        "SELECT card_id, ROW_NUMBER() OVER (PARTITION BY card_id ORDER BY amount DESC) AS rn FROM payments",
    )
    .await;
    assert!(top_n.contains("OVER"), "{top_n}");
    let uneven = plan_error(
        "SELECT window_start, COUNT(*) FROM TABLE(HOP(TABLE payments, DESCRIPTOR(event_time), \
         INTERVAL '2' MINUTE, INTERVAL '5' MINUTE)) GROUP BY window_start, window_end",
    )
    .await;
    assert!(uneven.contains("multiple of the slide"), "{uneven}");
    let unaggregated = plan_error(
        "SELECT txn_id, window_start FROM TABLE(HOP(TABLE payments, DESCRIPTOR(event_time), \
         INTERVAL '1' MINUTE, INTERVAL '5' MINUTE))",
    )
    .await;
    assert!(
        unaggregated.contains("without aggregating"),
        "{unaggregated}"
    );
    let order = plan_error("SELECT card_id FROM payments ORDER BY amount").await;
    assert!(order.contains("ORDER BY"), "{order}");
}

#[tokio::test]
async fn window_over_a_table_without_watermark_explains_the_fix() {
    let ctx = StreamContext::new();
    let err = ctx
        .sql(
            "CREATE TABLE t (ts TIMESTAMP(3), x BIGINT) WITH ('connector' = 'filesystem', 'path' = 'x', 'format' = 'csv');
             SELECT window_start, COUNT(*) FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
             GROUP BY window_start, window_end",
        )
        .await
        .err()
        .expect("no watermark");
    assert!(err.to_string().contains("WATERMARK"), "{err}");
}

#[tokio::test]
async fn unknown_connector_lists_the_supported_ones() {
    let ctx = StreamContext::new();
    ctx.sql("CREATE TABLE t (x BIGINT) WITH ('connector' = 'kafkaa')")
        .await
        .expect("ddl is accepted; the connector is checked when used");
    let err = ctx
        .sql("SELECT x FROM t")
        .await
        .err()
        .expect("unknown connector");
    let message = err.to_string();
    assert!(
        message.contains("kafkaa") && message.contains("filesystem"),
        "{message}"
    );
}

#[tokio::test]
async fn insert_with_wrong_column_count_is_refused() {
    let message = plan_error("INSERT INTO sink SELECT card_id FROM payments").await;
    assert!(
        message.contains("sink") && message.contains("columns"),
        "{message}"
    );
}

/// A view of per-card minutes: `rowtime` (the first level's window_time) is a
/// time attribute, `minute_start` (its window_start) is not.
const CARD_MINUTE_VIEW: &str = "CREATE VIEW card_minute AS
    SELECT window_start AS minute_start, window_time AS rowtime, card_id, COUNT(*) AS n
    FROM TABLE(TUMBLE(TABLE payments, DESCRIPTOR(event_time), INTERVAL '1' MINUTE))
    GROUP BY window_start, window_end, window_time, card_id;";

#[tokio::test]
async fn windows_over_views_need_a_time_attribute() {
    for (window, tvf) in [
        (
            "HOP",
            "HOP(TABLE card_minute, DESCRIPTOR(minute_start), INTERVAL '1' MINUTE, INTERVAL '5' MINUTES)",
        ),
        (
            "CUMULATE",
            "CUMULATE(TABLE card_minute, DESCRIPTOR(minute_start), INTERVAL '1' MINUTE, INTERVAL '5' MINUTES)",
        ),
        (
            "SESSION",
            "SESSION(TABLE card_minute PARTITION BY card_id, DESCRIPTOR(minute_start), INTERVAL '1' MINUTE)",
        ),
        (
            "TUMBLE",
            "TUMBLE(TABLE card_minute, DESCRIPTOR(minute_start), INTERVAL '5' MINUTES)",
        ),
    ] {
        let message = plan_error(&format!(
            "{CARD_MINUTE_VIEW}
             SELECT window_start, window_end, card_id, SUM(n) FROM TABLE({tvf})
             GROUP BY window_start, window_end, card_id"
        ))
        .await;
        assert!(
            message.contains(&format!("{window}(card_minute, minute_start"))
                && message.contains("line 5")
                && message.contains("over a view")
                && message.contains("not a time attribute"),
            "{message}"
        );
    }
    let not_a_timestamp = plan_error(&format!(
        "{CARD_MINUTE_VIEW}
         SELECT window_start, window_end, SUM(n) FROM TABLE(HOP(TABLE card_minute,
         DESCRIPTOR(card_id), INTERVAL '1' MINUTE, INTERVAL '5' MINUTES))
         GROUP BY window_start, window_end"
    ))
    .await;
    assert!(
        not_a_timestamp.contains("DESCRIPTOR(card_id)")
            && not_a_timestamp.contains("not a TIMESTAMP(3)"),
        "{not_a_timestamp}"
    );
}

#[tokio::test]
async fn aggregating_window_columns_of_a_hop_is_refused() {
    // Before the aggregate, HOP's window columns hold slice bounds: MAX over
    // them would silently give slice bounds instead of window bounds.
    let message = plan_error(
        "SELECT window_start, window_end, card_id, MAX(window_start) AS last_slice \
         FROM TABLE(HOP(TABLE payments, DESCRIPTOR(event_time), INTERVAL '1' MINUTE, INTERVAL '5' MINUTES)) \
         GROUP BY window_start, window_end, card_id",
    )
    .await;
    assert!(
        message.contains("window_start of HOP(payments") && message.contains("before GROUP BY"),
        "{message}"
    );
}

#[tokio::test]
async fn slices_of_a_hop_over_a_view_are_not_windows_before_the_aggregate() {
    let message = plan_error(
        "CREATE VIEW declines AS SELECT * FROM payments WHERE status = 'DECLINED';
         SELECT window_start, window_end, COUNT(*) FROM TABLE(HOP(TABLE declines,
         DESCRIPTOR(event_time), INTERVAL '1' MINUTE, INTERVAL '5' MINUTES))
         WHERE window_start >= TIMESTAMP '2024-01-01 00:03:00'
         GROUP BY window_start, window_end",
    )
    .await;
    assert!(
        message.contains("window_start of HOP(declines") && message.contains("before GROUP BY"),
        "{message}"
    );
    let unaggregated = plan_error(
        "CREATE VIEW declines AS SELECT * FROM payments WHERE status = 'DECLINED';
         SELECT txn_id, window_start FROM TABLE(CUMULATE(TABLE declines,
         DESCRIPTOR(event_time), INTERVAL '1' MINUTE, INTERVAL '5' MINUTES))",
    )
    .await;
    assert!(
        unaggregated.contains("without aggregating"),
        "{unaggregated}"
    );
}
