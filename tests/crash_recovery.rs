//! The `watershed` binary killed with SIGKILL at random moments and restored
//! each time with `--restore latest`: the committed output (visible part files)
//! equals, row for row, the output of an uninterrupted run.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::binary::{assert_no_in_progress_files, committed_rows, watershed};

use rand::{Rng, SeedableRng};

/// Which query a crash test runs.
#[derive(Clone, Copy)]
enum Job {
    /// Per card and minute: count, sum and maximum.
    Tumble,
    /// The payment time-out rule: each payment LEFT JOINed with the card's
    /// later payments within 10 s (unmatched payments come out with NULLs once
    /// the watermark passes).
    IntervalJoin,
    /// A running balance per card (an updating aggregate with DISTINCT),
    /// written as a changelog with its op column first.
    UpdatingAggregate,
}

impl Job {
    /// What the test compares: the final table a changelog replays to, or
    /// the rows themselves.
    fn output(self, dir: &Path) -> Vec<String> {
        match self {
            Job::UpdatingAggregate => final_table(dir),
            _ => committed_rows(dir),
        }
    }
}

/// Generated payments through `job` into the exactly-once file sink,
/// checkpointing every 200 ms at parallelism 2. The rate limit makes a run last
/// a few seconds, so that kills land mid-stream.
fn script(out: &Path, checkpoints: Option<&Path>, job: Job) -> String {
    script_with_interval(out, checkpoints, "200 ms", job)
}

fn script_with_interval(
    out: &Path,
    checkpoints: Option<&Path>,
    interval: &str,
    job: Job,
) -> String {
    // The uninterrupted run needs no pacing (batch sizes do not change results).
    let rate = if checkpoints.is_some() {
        ", 'rows-per-second' = '60000'"
    } else {
        ""
    };
    let settings = checkpoints.map_or_else(String::new, |dir| {
        format!(
            "SET 'execution.checkpointing.interval' = '{interval}';
             SET 'execution.checkpointing.dir' = 'file://{}';",
            dir.display()
        )
    });
    // The join's tables spread over more cards: a payment then has about one
    // later payment of its card within 10 s, not several.
    let cards = match job {
        Job::IntervalJoin => 50_000,
        _ => 5_000,
    };
    let table = |name: &str, seed: u64| {
        format!(
            "CREATE TABLE {name} (
               txn_id BIGINT, event_time TIMESTAMP(3), card_id BIGINT, amount DECIMAL(18, 2),
               WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND
             ) WITH ('connector' = 'payments', 'number-of-rows' = '1000000', 'cards' = '{cards}',
                     'events-per-second-event-time' = '1000', 'seed' = '{seed}'{rate});"
        )
    };
    let mut sink_options = String::new();
    let (tables, sink_columns, query) = match job {
        Job::Tumble => (
            table("payments", 3),
            "window_start TIMESTAMP(3), window_end TIMESTAMP(3), card_id BIGINT, \
             txns BIGINT, total DECIMAL(38, 2), max_amount DECIMAL(18, 2)",
            "SELECT window_start, window_end, card_id, COUNT(*), SUM(amount), MAX(amount)
             FROM TABLE(TUMBLE(TABLE payments, DESCRIPTOR(event_time), INTERVAL '1' MINUTES))
             GROUP BY window_start, window_end, card_id",
        ),
        Job::IntervalJoin => (
            format!("{}\n{}", table("payments", 3), table("later", 4)),
            "txn_id BIGINT, card_id BIGINT, amount DECIMAL(18, 2), later_txn BIGINT",
            "SELECT a.txn_id, a.card_id, a.amount, b.txn_id
             FROM payments a LEFT JOIN later b ON a.card_id = b.card_id
             AND b.event_time BETWEEN a.event_time AND a.event_time + INTERVAL '10' SECOND",
        ),
        Job::UpdatingAggregate => {
            sink_options = ", 'sink.changelog-mode' = 'all'".to_string();
            (
                table("payments", 3),
                "card_id BIGINT, balance DECIMAL(38, 2), payments BIGINT, amounts BIGINT",
                "SELECT card_id, SUM(amount), COUNT(*), COUNT(DISTINCT amount)
                 FROM payments GROUP BY card_id",
            )
        }
    };
    format!(
        "{settings}
         SET 'parallelism.default' = '2';
         {tables}
         CREATE TABLE result ({sink_columns})
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv'{sink_options});
         INSERT INTO result {query};",
        out.display(),
    )
}

/// The table a changelog directory replays to, as sorted `key,values` lines.
/// A key's changes all come from one sink instance, whose part files were
/// written one after the other (across restarts too), so replaying files in
/// modification-time order replays each key's changes in order.
fn final_table(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<(std::time::SystemTime, std::path::PathBuf)> = entries
        .map(|e| e.expect("entry"))
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| {
            (
                e.metadata().and_then(|m| m.modified()).expect("mtime"),
                e.path(),
            )
        })
        .collect();
    files.sort();
    let mut table = std::collections::BTreeMap::new();
    for (_, path) in files {
        for line in std::fs::read_to_string(&path).expect("read part").lines() {
            let mut fields = line.splitn(3, ',');
            let (Some(op), Some(key), Some(values)) = (fields.next(), fields.next(), fields.next())
            else {
                panic!("malformed changelog line {line:?} in {}", path.display());
            };
            match op {
                "+I" | "+U" => {
                    table.insert(key.to_string(), values.to_string());
                }
                "-D" => {
                    table.remove(key);
                }
                "-U" => {}
                other => panic!("unknown op {other:?} in {line:?}"),
            }
        }
    }
    table.into_iter().map(|(k, v)| format!("{k},{v}")).collect()
}

#[test]
fn twenty_sigkills_of_an_updating_aggregate_replay_to_the_uninterrupted_table() {
    twenty_sigkills_commit_the_uninterrupted_rows(Job::UpdatingAggregate);
}

#[test]
fn twenty_sigkills_of_a_window_aggregate_commit_the_uninterrupted_rows() {
    twenty_sigkills_commit_the_uninterrupted_rows(Job::Tumble);
}

#[test]
fn twenty_sigkills_of_an_interval_join_commit_the_uninterrupted_rows() {
    twenty_sigkills_commit_the_uninterrupted_rows(Job::IntervalJoin);
}

/// The crash tests run one at a time: each keeps both cores busy, and run
/// together on a 2-core machine their attempts would be too slow to complete
/// a checkpoint between two kills.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn twenty_sigkills_commit_the_uninterrupted_rows(job: Job) {
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();

    let expected = uninterrupted_output(root, job);
    assert!(expected.len() > 1_000, "{} rows", expected.len());
    let changelog = matches!(job, Job::UpdatingAggregate);

    // The same job, killed 20 times.
    let out = root.join("out");
    let checkpoints = root.join("checkpoints");
    let job_script = root.join("job.sql");
    std::fs::write(&job_script, script(&out, Some(&checkpoints), job)).expect("script");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(20);
    let mut kills = 0;
    let mut finished_early = 0;
    let started = Instant::now();
    while kills < 20 {
        let mut child = watershed(&job_script, kills > 0 || finished_early > 0)
            .spawn()
            .expect("spawn");
        let delay = Duration::from_millis(rng.random_range(150..900));
        std::thread::sleep(delay);
        match child.try_wait().expect("try_wait") {
            Some(status) => {
                // The job ended before the kill: start over from scratch is
                // not possible, so this run must have succeeded.
                let stderr = child
                    .wait_with_output()
                    .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
                    .unwrap_or_default();
                assert!(status.success(), "attempt {kills} failed: {stderr}");
                finished_early += 1;
                break;
            }
            None => {
                child.kill().expect("SIGKILL");
                child.wait().expect("reap");
                kills += 1;
                // Readers never see partial files: only whole committed parts
                // are visible, so every visible row is one of the expected rows
                // (a changelog's intermediate changes depend on batching: its
                // lines must at least all parse).
                if changelog {
                    final_table(&out);
                    continue;
                }
                let visible = committed_rows(&out);
                let missing: Vec<&String> = visible
                    .iter()
                    .filter(|r| expected.binary_search(r).is_err())
                    .take(3)
                    .collect();
                assert!(missing.is_empty(), "after kill {kills}: {missing:?}");
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "20 kills took too long"
        );
    }
    // The kills interrupted a job that made progress: checkpoints completed
    // and committed rows before the last attempt.
    let committed_before = committed_rows(&out).len();
    assert!(
        committed_before > 0 && (changelog || committed_before < expected.len()),
        "{committed_before} of {} rows committed before the last attempt",
        expected.len()
    );
    // Finish the job.
    if finished_early == 0 {
        let output = watershed(&job_script, true).output().expect("run");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let got = job.output(&out);
    assert_eq!(kills, 20, "the job finished before it was killed 20 times");
    assert_eq!(got.len(), expected.len(), "row count after {kills} kills");
    assert!(got == expected, "rows differ after {kills} kills");
    assert_no_in_progress_files(&out);
}

#[test]
fn sigterm_takes_a_savepoint_and_the_restored_run_completes_the_output() {
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let expected = uninterrupted_output(root, Job::Tumble);

    // Checkpoints every 10 minutes: only the savepoint can commit anything.
    let out = root.join("out");
    let checkpoints = root.join("checkpoints");
    let job_script = root.join("job.sql");
    std::fs::write(
        &job_script,
        script_with_interval(&out, Some(&checkpoints), "10 min", Job::Tumble),
    )
    .expect("script");
    let child = watershed(&job_script, false).spawn().expect("spawn");
    std::thread::sleep(Duration::from_millis(1500));
    let term = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .expect("kill -TERM");
    assert!(term.success());
    let output = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("savepoint 1 written to"), "{stderr}");
    assert!(stderr.contains("--restore latest"), "{stderr}");

    let saved = committed_rows(&out);
    assert!(
        !saved.is_empty() && saved.len() < expected.len(),
        "{} of {} rows committed by the savepoint",
        saved.len(),
        expected.len()
    );
    assert!(saved.iter().all(|r| expected.binary_search(r).is_ok()));

    let output = watershed(&job_script, true).output().expect("restore");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("restoring checkpoint 1"), "{stderr}");
    assert!(
        committed_rows(&out) == expected,
        "rows differ after the savepoint"
    );
}

#[test]
fn sigkilled_runs_restored_at_other_parallelisms_commit_the_uninterrupted_rows() {
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let expected = uninterrupted_output(root, Job::Tumble);

    // The same job at parallelism 2, then 3, each killed mid-stream, then
    // finished at parallelism 1: part files of the old instances are
    // committed or discarded by the instances that take them over.
    let out = root.join("out");
    let checkpoints = root.join("checkpoints");
    let at_parallelism = |p: usize| {
        let path = root.join(format!("job-{p}.sql"));
        let text = script(&out, Some(&checkpoints), Job::Tumble).replace(
            "SET 'parallelism.default' = '2';",
            &format!("SET 'parallelism.default' = '{p}';"),
        );
        std::fs::write(&path, text).expect("script");
        path
    };
    for (attempt, parallelism) in [2, 3].into_iter().enumerate() {
        let mut child = watershed(&at_parallelism(parallelism), attempt > 0)
            .spawn()
            .expect("spawn");
        std::thread::sleep(Duration::from_millis(1_500));
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "the run at parallelism {parallelism} ended before the kill"
        );
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        let visible = committed_rows(&out);
        assert!(
            visible.iter().all(|r| expected.binary_search(r).is_ok()),
            "after the kill at parallelism {parallelism}"
        );
    }
    assert!(
        !committed_rows(&out).is_empty(),
        "checkpoints committed rows"
    );
    let output = watershed(&at_parallelism(1), true)
        .output()
        .expect("restore");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("restoring checkpoint"), "{stderr}");
    let got = committed_rows(&out);
    assert_eq!(got.len(), expected.len(), "row count");
    assert!(got == expected, "rows differ after restores at 3 and 1");
    assert_no_in_progress_files(&out);
}

/// The output of `job` run once without checkpoints, under `root/expected`.
fn uninterrupted_output(root: &Path, job: Job) -> Vec<String> {
    let expected_out = root.join("expected");
    let expected_script = root.join("expected.sql");
    std::fs::write(&expected_script, script(&expected_out, None, job)).expect("script");
    let status = watershed(&expected_script, false)
        .status()
        .expect("run watershed");
    assert!(status.success());
    job.output(&expected_out)
}
