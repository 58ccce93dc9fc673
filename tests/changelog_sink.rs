//! The filesystem sink writing an updating query's changelog
//! (`'sink.changelog-mode'`): replaying the written part files ('all': apply
//! `+I`/`+U`, remove on `-U`/`-D`; 'upsert': last row per key, `-D` removes)
//! gives exactly DataFusion's batch `GROUP BY` answer over the same payments,
//! at parallelism 1 and 2, in CSV and JSON. Append-only filesystem tables
//! refuse updating queries with a message naming the option.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::value::RawValue;

use common::*;

const BY_ACCOUNT: &str = "SELECT account_id, COUNT(*) AS payments, SUM(amount) AS total \
    FROM payments GROUP BY account_id";
const BY_CARD: &str = "SELECT card_id, COUNT(*) AS payments, SUM(amount) AS total \
    FROM payments GROUP BY card_id";

/// One run of an updating query into a filesystem table.
struct Run<'a> {
    query: &'a str,
    /// The query's key column, also the sink table's first column.
    key: &'a str,
    format: &'a str,
    mode: &'a str,
    /// `'sink.changelog.op-column'`, when set.
    op_column: Option<&'a str>,
    primary_key: bool,
    parallelism: usize,
    seed: u64,
}

impl Run<'_> {
    fn op(&self) -> &str {
        self.op_column.unwrap_or("op")
    }

    fn ddl(&self, path: &Path) -> String {
        let key = if self.primary_key {
            format!(", PRIMARY KEY ({}) NOT ENFORCED", self.key)
        } else {
            String::new()
        };
        let op = self
            .op_column
            .map(|c| format!(", 'sink.changelog.op-column' = '{c}'"))
            .unwrap_or_default();
        format!(
            "CREATE TABLE out ({} BIGINT, payments BIGINT, total DECIMAL(38, 2){key}) \
             WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = '{}', \
             'sink.changelog-mode' = '{}'{op})",
            self.key,
            path.display(),
            self.format,
            self.mode
        )
    }

    /// Runs the query into a fresh directory and returns the written changes
    /// `(op, row)` in replay order, and DataFusion's batch answer.
    async fn execute(&self) -> (Vec<(String, String)>, Vec<String>) {
        let (schema, batches) = payments(12_000, self.seed, 0.0);
        let ctx = stream_context(&schema, &batches);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out");
        ctx.sql(&self.ddl(&path)).await.expect("create table");
        ctx.sql(&format!(
            "SET 'parallelism.default' = '{}'",
            self.parallelism
        ))
        .await
        .expect("set parallelism");
        ctx.sql(&format!("INSERT INTO out {}", self.query))
            .await
            .expect("plan insert")
            .run()
            .await
            .expect("run insert");
        let instances: std::collections::BTreeSet<String> = part_files(&path)
            .iter()
            .map(|name| name.rsplit('-').nth(1).expect("instance").to_string())
            .collect();
        assert_eq!(
            instances.len(),
            self.parallelism,
            "every sink instance writes its own part files: {instances:?}"
        );
        let changes = read_changes(&path, self.format, self.op(), self.key);
        let expected = batch_rows(&schema, &batches, self.query).await;
        (changes, expected)
    }
}

/// The committed part files of `dir` in replay order: by run id and sink
/// instance, then by part counter (`part-<run id>-<instance>-<counter>`).
fn part_files(dir: &Path) -> Vec<String> {
    let mut parts = Vec::new();
    for entry in std::fs::read_dir(dir).expect("list output") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        assert!(name.starts_with("part-"), "unexpected file {name}");
        let mut fields = name.rsplitn(3, '-');
        let counter: u64 = fields.next().and_then(|c| c.parse().ok()).expect("counter");
        let instance: u64 = fields
            .next()
            .and_then(|i| i.parse().ok())
            .expect("instance");
        let run = fields.next().expect("run id").to_string();
        parts.push(((run, instance, counter), name));
    }
    parts.sort();
    parts.into_iter().map(|(_, name)| name).collect()
}

/// Reads every written change as `(op, "key | payments | total")`, from CSV
/// lines (op first) or JSON objects (op field).
fn read_changes(dir: &Path, format: &str, op_column: &str, key: &str) -> Vec<(String, String)> {
    let mut changes = Vec::new();
    for name in part_files(dir) {
        let text = std::fs::read_to_string(dir.join(&name)).expect("read part");
        for line in text.lines() {
            let (op, cells) = match format {
                "csv" => {
                    let mut cells: Vec<String> = line.split(',').map(str::to_string).collect();
                    assert_eq!(cells.len(), 4, "{name}: {line}");
                    let op = cells.remove(0);
                    (op, cells)
                }
                _ => {
                    let object: BTreeMap<String, Box<RawValue>> =
                        serde_json::from_str(line).expect("json line");
                    assert_eq!(object.len(), 4, "{name}: {line}");
                    assert!(
                        line.starts_with(&format!("{{\"{op_column}\":")),
                        "the op is not the first field: {line}"
                    );
                    let field = |k: &str| object.get(k).map(|v| v.get().to_string());
                    let op: String =
                        serde_json::from_str(&field(op_column).expect("op")).expect("op string");
                    let cells = [key, "payments", "total"]
                        .iter()
                        .map(|k| field(k).unwrap_or_else(|| panic!("no {k} in {line}")))
                        .collect();
                    (op, cells)
                }
            };
            changes.push((op, cells.join(" | ")));
        }
    }
    changes
}

fn key_of(row: &str) -> String {
    row.split(" | ").next().expect("key").to_string()
}

/// Applies an 'all' changelog: `+I` adds a new key, `-U` retracts exactly the
/// key's current row, `+U` sets it again, `-D` removes it.
fn replay_all(changes: &[(String, String)]) -> Vec<String> {
    let mut table: BTreeMap<String, String> = BTreeMap::new();
    for (op, row) in changes {
        let key = key_of(row);
        match op.as_str() {
            "+I" | "+U" => {
                let previous = table.insert(key, row.clone());
                assert_eq!(previous, None, "{op} {row} without a retraction first");
            }
            "-U" | "-D" => {
                let previous = table.remove(&key);
                assert_eq!(
                    previous.as_ref(),
                    Some(row),
                    "{op} must retract the current row"
                );
            }
            other => panic!("unknown op {other:?}"),
        }
    }
    table.into_values().collect()
}

/// Applies an 'upsert' stream: the last row per key wins, `-D` removes it.
fn replay_upsert(changes: &[(String, String)]) -> Vec<String> {
    let mut table: BTreeMap<String, String> = BTreeMap::new();
    for (op, row) in changes {
        match op.as_str() {
            "+I" | "+U" => {
                table.insert(key_of(row), row.clone());
            }
            "-D" => {
                table.remove(&key_of(row));
            }
            other => panic!("upsert output holds {other:?}: {row}"),
        }
    }
    table.into_values().collect()
}

fn count(changes: &[(String, String)], op: &str) -> usize {
    changes.iter().filter(|(o, _)| o == op).count()
}

async fn check_all_mode(run: Run<'_>) {
    let (changes, expected) = run.execute().await;
    assert!(
        count(&changes, "-U") > 100 && count(&changes, "-U") == count(&changes, "+U"),
        "the query should update its rows: {} -U, {} +U",
        count(&changes, "-U"),
        count(&changes, "+U")
    );
    let mut table = replay_all(&changes);
    table.sort();
    assert_same_rows(
        &format!("{} {} p={}", run.format, run.query, run.parallelism),
        &table,
        &expected,
    );
}

async fn check_upsert_mode(run: Run<'_>) {
    let (changes, expected) = run.execute().await;
    let mut table = replay_upsert(&changes);
    table.sort();
    assert_same_rows(
        &format!("upsert {} {} p={}", run.format, run.query, run.parallelism),
        &table,
        &expected,
    );
    // The job's changes fit in one compaction run per instance, so every key
    // is written once, as its final row.
    assert_eq!(
        changes.len(),
        expected.len(),
        "upsert output is not compacted"
    );
}

#[tokio::test]
async fn all_mode_csv_replays_to_the_batch_answer() {
    check_all_mode(Run {
        query: BY_ACCOUNT,
        key: "account_id",
        format: "csv",
        mode: "all",
        op_column: None,
        primary_key: false,
        parallelism: 1,
        seed: 21,
    })
    .await;
}

#[tokio::test]
async fn all_mode_json_at_parallelism_two_replays_to_the_batch_answer() {
    check_all_mode(Run {
        query: BY_CARD,
        key: "card_id",
        format: "json",
        mode: "all",
        op_column: Some("change"),
        primary_key: false,
        parallelism: 2,
        seed: 22,
    })
    .await;
}

#[tokio::test]
async fn all_mode_csv_at_parallelism_two_replays_to_the_batch_answer() {
    check_all_mode(Run {
        query: BY_CARD,
        key: "card_id",
        format: "csv",
        mode: "all",
        op_column: None,
        primary_key: true,
        parallelism: 2,
        seed: 23,
    })
    .await;
}

#[tokio::test]
async fn upsert_mode_csv_last_row_per_key_is_the_batch_answer() {
    check_upsert_mode(Run {
        query: BY_ACCOUNT,
        key: "account_id",
        format: "csv",
        mode: "upsert",
        op_column: None,
        primary_key: true,
        parallelism: 1,
        seed: 24,
    })
    .await;
}

#[tokio::test]
async fn upsert_mode_at_parallelism_two_last_row_per_key_is_the_batch_answer() {
    for (format, seed) in [("csv", 25), ("json", 26)] {
        check_upsert_mode(Run {
            query: BY_CARD,
            key: "card_id",
            format,
            mode: "upsert",
            op_column: Some("kind"),
            primary_key: true,
            parallelism: 2,
            seed,
        })
        .await;
    }
}

#[tokio::test]
async fn append_only_filesystem_table_refuses_updates_naming_the_option() {
    let (schema, batches) = payments(10, 1, 0.0);
    let ctx = stream_context(&schema, &batches);
    let dir = tempfile::tempdir().expect("tempdir");
    ctx.sql(&format!(
        "CREATE TABLE balances (account_id BIGINT, balance DECIMAL(38, 2)) \
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv')",
        dir.path().join("balances").display()
    ))
    .await
    .expect("ddl");
    let message = ctx
        .sql(
            "INSERT INTO balances SELECT account_id, SUM(amount) FROM payments GROUP BY account_id",
        )
        .await
        .err()
        .expect("an append-only sink refuses an updating query")
        .to_string();
    for part in [
        "'balances' is an append-only sink",
        "set 'sink.changelog-mode' = 'all'",
        "'upsert'",
        "filesystem table 'balances'",
    ] {
        assert!(message.contains(part), "missing {part:?} in: {message}");
    }
    assert!(
        !dir.path().join("balances").exists(),
        "a refused query must not create the output directory"
    );
}

#[tokio::test]
async fn upsert_without_primary_key_is_refused_with_the_table_and_option() {
    let (schema, batches) = payments(10, 1, 0.0);
    let ctx = stream_context(&schema, &batches);
    let dir = tempfile::tempdir().expect("tempdir");
    let run = Run {
        query: BY_ACCOUNT,
        key: "account_id",
        format: "csv",
        mode: "upsert",
        op_column: None,
        primary_key: false,
        parallelism: 1,
        seed: 1,
    };
    ctx.sql(&run.ddl(&dir.path().join("out")))
        .await
        .expect("ddl");
    let message = ctx
        .sql(&format!("INSERT INTO out {BY_ACCOUNT}"))
        .await
        .err()
        .expect("upsert needs a primary key")
        .to_string();
    assert!(
        message.contains("table 'out': option 'sink.changelog-mode' = 'upsert'")
            && message.contains("PRIMARY KEY (...) NOT ENFORCED"),
        "{message}"
    );
}
