//! The `watershed` binary end to end: a script over a CSV file writes the same
//! windows as DataFusion computes in batch, and the summary adds up.

mod common;

use std::path::Path;
use std::process::Command;

use datafusion::arrow::csv::WriterBuilder;

use common::*;

fn watershed() -> Command {
    Command::new(env!("CARGO_BIN_EXE_watershed"))
}

fn write_csv(path: &Path, batches: &[datafusion::arrow::record_batch::RecordBatch]) {
    let file = std::fs::File::create(path).expect("create csv");
    let mut writer = WriterBuilder::new()
        .with_header(false)
        .with_timestamp_format("%Y-%m-%d %H:%M:%S%.3f".to_string())
        .build(file);
    for batch in batches {
        writer.write(batch).expect("write csv");
    }
}

const SCRIPT: &str = "
CREATE TABLE payments (
  txn_id BIGINT, event_time TIMESTAMP(3), card_id BIGINT, account_id BIGINT,
  merchant_id BIGINT, mcc STRING, country STRING, amount DECIMAL(18, 2),
  currency STRING, status STRING,
  WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND
) WITH ('connector' = 'filesystem', 'path' = 'data/payments.csv', 'format' = 'csv');

CREATE TABLE card_minute (
  window_start TIMESTAMP(3), window_end TIMESTAMP(3), card_id BIGINT,
  txns BIGINT, total DECIMAL(38, 2), max_amount DECIMAL(18, 2)
) WITH ('connector' = 'filesystem', 'path' = 'out/card_minute', 'format' = 'csv');

INSERT INTO card_minute
SELECT window_start, window_end, card_id, COUNT(*), SUM(amount), MAX(amount)
FROM TABLE(TUMBLE(TABLE payments, DESCRIPTOR(event_time), INTERVAL '1' MINUTES))
GROUP BY window_start, window_end, card_id;
";

const ORACLE: &str = "
SELECT to_char(ws, '%Y-%m-%d %H:%M:%S%.3f') || ',' || to_char(ws + INTERVAL '1 minute', '%Y-%m-%d %H:%M:%S%.3f')
       || ',' || CAST(card_id AS VARCHAR) || ',' || CAST(n AS VARCHAR) || ',' || CAST(total AS VARCHAR)
       || ',' || CAST(mx AS VARCHAR)
FROM (SELECT date_bin(INTERVAL '1 minute', event_time, TIMESTAMP '1970-01-01 00:00:00') AS ws, card_id,
             COUNT(*) AS n, SUM(amount) AS total, MAX(amount) AS mx
      FROM payments GROUP BY 1, card_id)";

fn read_part_files(dir: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(dir).expect("output directory exists") {
        let entry = entry.expect("entry");
        let name = entry.file_name().to_string_lossy().to_string();
        assert!(
            !name.starts_with('.'),
            "an in-progress file is left behind: {name}"
        );
        let text = std::fs::read_to_string(entry.path()).expect("read part");
        lines.extend(text.lines().map(str::to_string));
    }
    lines.sort();
    lines
}

#[tokio::test]
async fn run_writes_the_same_windows_as_a_batch_query() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("data")).expect("mkdir");
    let (schema, batches) = payments(20_000, 99, 0.0);
    write_csv(&dir.path().join("data/payments.csv"), &batches);
    std::fs::write(dir.path().join("job.sql"), SCRIPT).expect("script");

    let output = watershed()
        .args(["run", "job.sql", "--progress", "0"])
        .current_dir(dir.path())
        .output()
        .expect("run watershed");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "watershed run failed:\n{stderr}");
    assert!(stderr.contains("rows read"), "no summary:\n{stderr}");
    assert!(!stderr.contains("do not add up"), "{stderr}");
    assert!(
        stderr.contains("20,000"),
        "the summary should count 20,000 rows read:\n{stderr}"
    );

    let written = read_part_files(&dir.path().join("out/card_minute"));
    let mut expected = batch_rows(&schema, &batches, ORACLE).await;
    expected.sort();
    assert_eq!(written.len(), expected.len());
    assert_same_rows("cli output", &written, &expected);
}

#[test]
fn explain_prints_the_operator_graph() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("job.sql"), SCRIPT).expect("script");
    let output = watershed()
        .args(["explain", "job.sql"])
        .current_dir(dir.path())
        .output()
        .expect("run watershed");
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    for node in [
        "Source: payments",
        "WatermarkAssigner",
        "TumbleWindow",
        "WindowAggregate",
        "Sink: card_minute",
    ] {
        assert!(stdout.contains(node), "missing {node} in:\n{stdout}");
    }
}

#[test]
fn a_bad_file_fails_with_exit_code_and_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("data")).expect("mkdir");
    std::fs::write(
        dir.path().join("data/payments.csv"),
        "1,2024-01-01 00:00:00.000,1,1,1,5411,DE,1.00,EUR,APPROVED\n2,not a time,1,1,1,5411,DE,1.00,EUR,APPROVED\n",
    )
    .expect("csv");
    std::fs::write(dir.path().join("job.sql"), SCRIPT).expect("script");
    let output = watershed()
        .args(["run", "job.sql", "--progress", "0"])
        .current_dir(dir.path())
        .output()
        .expect("run watershed");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("payments.csv") && stderr.contains("line 2"),
        "{stderr}"
    );
}

#[test]
fn bare_select_prints_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("q.sql"),
        "CREATE TABLE p (txn_id BIGINT, event_time TIMESTAMP(3), amount DECIMAL(18, 2),
           WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND)
         WITH ('connector' = 'payments', 'number-of-rows' = '100', 'seed' = '3');
         SELECT txn_id, amount FROM p WHERE txn_id < 3;",
    )
    .expect("script");
    let output = watershed()
        .args(["run", "q.sql", "--progress", "0"])
        .current_dir(dir.path())
        .output()
        .expect("run watershed");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("+I[")).count(),
        3,
        "{stdout}"
    );
}

#[test]
fn every_command_has_help() {
    for args in [
        vec!["--help"],
        vec!["run", "--help"],
        vec!["explain", "--help"],
    ] {
        let output = watershed().args(&args).output().expect("run watershed");
        assert!(output.status.success(), "{args:?}");
        assert!(!output.stdout.is_empty());
    }
}
