//! Checkpoints and restore: a job stopped after some checkpoints and restored
//! from the latest one commits exactly the rows of an uninterrupted run.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{assert_same_rows, replay_changelog, rows_as_text};
use datafusion::arrow::array::RecordBatch;
use watershed::StreamContext;
use watershed::connectors::memory::CollectSinkFactory;
use watershed::engine::checkpoint::{ObjectStoreBackend, StateBackend};

/// Payments from the generator, paced so that a run lasts long enough for a
/// few checkpoints, a second generated table `later` (other payments of the
/// same cards) for joins, and the in-memory sink `out` with columns `out`.
fn tables_ddl(rows_per_second: Option<u64>, out: &str) -> String {
    let rate = rows_per_second
        .map(|r| format!(", 'rows-per-second' = '{r}'"))
        .unwrap_or_default();
    let table = |name: &str, seed: u64| {
        format!(
            "CREATE TABLE {name} (
               txn_id BIGINT, event_time TIMESTAMP(3), card_id BIGINT, merchant_id BIGINT,
               amount DECIMAL(18, 2),
               WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND
             ) WITH ('connector' = 'payments', 'number-of-rows' = '60000', 'cards' = '500',
                     'events-per-second-event-time' = '100', 'seed' = '{seed}'{rate});"
        )
    };
    format!(
        "{}\n{}\nCREATE TABLE out ({out}) WITH ('connector' = 'memory');",
        table("payments", 11),
        table("later", 12)
    )
}

/// The columns of `out` for a window aggregate per card.
const WINDOW_OUT: &str = "window_start TIMESTAMP(3), window_end TIMESTAMP(3), card_id BIGINT, \
    txns BIGINT, total DECIMAL(38, 2), max_amount DECIMAL(18, 2)";

/// Per card and window of `window` (a window TVF over `payments`): the
/// count, sum and maximum of the amounts, into `out` with [`WINDOW_OUT`].
fn window_query(window: &str) -> String {
    format!(
        "INSERT INTO out
         SELECT window_start, window_end, card_id, COUNT(*), SUM(amount), MAX(amount)
         FROM TABLE({window}) GROUP BY window_start, window_end, card_id"
    )
}

/// The TUMBLE window of the first checkpoint tests.
const TUMBLE: &str = "TUMBLE(TABLE payments, DESCRIPTOR(event_time), INTERVAL '1' MINUTES)";

/// Where a test job's checkpoints go and at what parallelism it runs.
#[derive(Debug, Clone)]
struct Checkpoints {
    /// `execution.checkpointing.dir`.
    url: String,
    /// More `SET` statements (the store's options).
    settings: String,
    /// `parallelism.default`.
    parallelism: usize,
}

impl Checkpoints {
    /// Checkpoints in local directory `dir`, at parallelism 2.
    fn local(dir: &str) -> Self {
        Checkpoints {
            url: format!("file://{dir}"),
            settings: String::new(),
            parallelism: 2,
        }
    }

    /// The same store at another parallelism.
    fn at_parallelism(&self, parallelism: usize) -> Self {
        Checkpoints {
            parallelism,
            ..self.clone()
        }
    }
}

async fn context(
    sink: &CollectSinkFactory,
    out: &str,
    rate: Option<u64>,
    checkpoints: Option<&Checkpoints>,
) -> StreamContext {
    let ctx = StreamContext::new();
    ctx.connectors()
        .register_memory_sink("out", Arc::new(sink.clone()));
    if let Some(checkpoints) = checkpoints {
        ctx.sql(&format!(
            "SET 'execution.checkpointing.interval' = '20 ms';
             SET 'execution.checkpointing.dir' = '{}';
             SET 'execution.checkpointing.num-retained' = '2';
             SET 'parallelism.default' = '{}';
             {}",
            checkpoints.url, checkpoints.parallelism, checkpoints.settings
        ))
        .await
        .unwrap();
    }
    ctx.sql(&tables_ddl(rate, out)).await.unwrap();
    ctx
}

/// Rows per second of each generated table with checkpoints: a run lasts three
/// seconds, long enough for a few checkpoints even on a busy machine.
const RATE: u64 = 20_000;

/// How the rows a query committed are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    /// Append-only rows, as a multiset.
    Rows,
    /// A changelog, by the table it ends at when replayed in order.
    Changelog,
}

impl Output {
    /// The rows to compare, as sorted text.
    fn rows(self, batches: &[RecordBatch]) -> Vec<String> {
        match self {
            Output::Rows => rows_as_text(batches),
            Output::Changelog => {
                replay_changelog(batches)
                    .unwrap_or_else(|e| panic!("replaying the changelog: {e}"))
                    .rows
            }
        }
    }
}

/// Runs `query` (into `out` with columns `out`) once without checkpoints, then
/// with checkpoints, stopped as by a crash after three completed checkpoints
/// and restored from the latest: the restored job must commit what the
/// uninterrupted run did.
async fn assert_restore_replays(out: &str, query: &str, output: Output) {
    let dir = tempfile::tempdir().unwrap();
    let checkpoints = Checkpoints::local(&dir.path().display().to_string());
    assert_restore_replays_in(out, query, output, &checkpoints, &checkpoints).await;
}

/// [`assert_restore_replays`] with the first attempt's checkpoints `first` and
/// the restored attempt's `second` (the same store, maybe another parallelism).
async fn assert_restore_replays_in(
    out: &str,
    query: &str,
    output: Output,
    first: &Checkpoints,
    second: &Checkpoints,
) {
    // The expected rows: one run without checkpoints.
    let expected_sink = CollectSinkFactory::new();
    let ctx = context(&expected_sink, out, None, None).await;
    ctx.sql(query).await.unwrap().run().await.unwrap();
    let expected = output.rows(&expected_sink.batches());
    assert!(expected.len() > 400, "{} rows", expected.len());

    let sink = CollectSinkFactory::new();

    // First attempt: stopped (as by a crash) after three completed checkpoints.
    let ctx = context(&sink, out, Some(RATE), Some(first)).await;
    let job = ctx.sql(query).await.unwrap().start_with_sink(None).unwrap();
    let waited = tokio::time::timeout(Duration::from_secs(20), async {
        while job.checkpoints().len() < 3 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
    if waited.is_err() {
        let outcome = job.wait().await.map(|r| r.checkpoints.len());
        panic!("no three checkpoints within a minute: {outcome:?}");
    }
    let taken = job.checkpoints();
    job.cancel();
    assert!(job.wait().await.is_err(), "the job was cancelled");
    let committed_before = sink
        .batches()
        .iter()
        .map(RecordBatch::num_rows)
        .sum::<usize>();
    let expected_rows = expected_sink
        .batches()
        .iter()
        .map(RecordBatch::num_rows)
        .sum::<usize>();
    // (A changelog's length depends on batching.)
    assert!(
        output == Output::Changelog || committed_before < expected_rows,
        "the first attempt should not have finished"
    );
    for stats in &taken {
        assert!(stats.bytes > 0, "{stats:?}");
        assert!(stats.location.starts_with(&first.url), "{stats:?}");
    }

    // Second attempt: the same query (the rate is part of its source's
    // definition), restored from the latest checkpoint.
    let ctx = context(&sink, out, Some(RATE), Some(second)).await;
    let restored = ctx.restore_latest().await.unwrap();
    assert!(
        restored.is_some_and(|id| id >= taken.last().map_or(0, |s| s.id)),
        "{restored:?} {taken:?}"
    );
    let result = ctx.sql(query).await.unwrap().run().await.unwrap();
    assert!(result.rows.written > 0);
    assert_same_rows("restored run", &output.rows(&sink.batches()), &expected);

    if second.parallelism != first.parallelism {
        // The keyed operators and what follows them did run at the new
        // parallelism, and sources kept their splits: the final checkpoint's
        // manifest says so.
        let options = std::collections::BTreeMap::new();
        let backend = ObjectStoreBackend::open_with_options(&second.url, &options).unwrap();
        let manifest = backend.latest_completed().await.unwrap().unwrap();
        let of = |kind: &str| -> Vec<usize> {
            manifest
                .parallelism
                .iter()
                .filter(|(id, _)| id.contains(kind))
                .map(|(_, p)| *p)
                .collect()
        };
        assert!(
            of("Sink").iter().all(|&p| p == second.parallelism)
                && of("Source").iter().all(|&p| p == first.parallelism),
            "{:?}",
            manifest.parallelism
        );
    }
}

/// A query of the restore tests: the columns of `out`, the query, and how its
/// output is compared.
struct Case {
    out: &'static str,
    query: String,
    output: Output,
    /// Files the query reads, deleted with the case.
    _data: Option<tempfile::TempDir>,
}

impl Case {
    fn window(window: &str) -> Case {
        Case {
            out: WINDOW_OUT,
            query: window_query(window),
            output: Output::Rows,
            _data: None,
        }
    }

    fn tumble() -> Case {
        Case::window(TUMBLE)
    }

    fn hop() -> Case {
        Case::window(
            "HOP(TABLE payments, DESCRIPTOR(event_time), INTERVAL '1' MINUTES, INTERVAL '5' MINUTES)",
        )
    }

    fn cumulate() -> Case {
        Case::window(
            "CUMULATE(TABLE payments, DESCRIPTOR(event_time), INTERVAL '1' MINUTES, INTERVAL '5' MINUTES)",
        )
    }

    fn session() -> Case {
        Case::window(
            "SESSION(TABLE payments PARTITION BY card_id, DESCRIPTOR(event_time), INTERVAL '8' SECOND)",
        )
    }

    fn left_interval_join() -> Case {
        Case {
            out: "txn_id BIGINT, card_id BIGINT, amount DECIMAL(18, 2), later_txn BIGINT, \
                  later_amount DECIMAL(18, 2)",
            query: "INSERT INTO out
                SELECT a.txn_id, a.card_id, a.amount, b.txn_id, b.amount
                FROM payments a LEFT JOIN later b
                ON a.card_id = b.card_id
                AND b.event_time BETWEEN a.event_time AND a.event_time + INTERVAL '10' SECOND"
                .into(),
            output: Output::Rows,
            _data: None,
        }
    }

    fn updating_aggregate() -> Case {
        Case {
            out: "card_id BIGINT, total DECIMAL(38, 2), merchants BIGINT",
            query: "INSERT INTO out
                SELECT card_id, SUM(amount), COUNT(DISTINCT merchant_id)
                FROM payments GROUP BY card_id"
                .into(),
            output: Output::Changelog,
            _data: None,
        }
    }

    /// Over the TVF's rows, so the ranking buffers rows across checkpoints
    /// (over a window aggregate it would rank each window as it fires).
    fn window_top_n() -> Case {
        Case {
            out: "window_start TIMESTAMP(3), window_end TIMESTAMP(3), txn_id BIGINT, \
                  amount DECIMAL(18, 2), rownum BIGINT",
            query: "INSERT INTO out
                SELECT * FROM (
                  SELECT window_start, window_end, txn_id, amount,
                         ROW_NUMBER() OVER (PARTITION BY window_start, window_end
                                            ORDER BY amount DESC, txn_id) AS rownum
                  FROM TABLE(TUMBLE(TABLE payments, DESCRIPTOR(event_time), INTERVAL '10' SECONDS))
                ) AS ranked WHERE rownum <= 10"
                .into(),
            output: Output::Rows,
            _data: None,
        }
    }

    /// Payments joined with a bounded table of card limits (a CSV file
    /// without a time attribute), the payments on the preserved side: the
    /// table is state of every instance once loaded.
    fn bounded_table_join() -> Case {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("limits.csv");
        let csv: String = (0..450)
            .map(|card: i64| format!("{card},{}.{:02}\n", card * 37 % 900, card % 100))
            .collect();
        std::fs::write(&path, csv).unwrap();
        Case {
            out: "txn_id BIGINT, card_id BIGINT, amount DECIMAL(18, 2), \
                  max_amount DECIMAL(18, 2)",
            query: format!(
                "CREATE TABLE limits (card_id BIGINT, max_amount DECIMAL(18, 2))
                 WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
                 INSERT INTO out
                 SELECT p.txn_id, p.card_id, p.amount, l.max_amount
                 FROM payments p LEFT JOIN limits l
                 ON p.card_id = l.card_id AND p.amount > l.max_amount",
                path.display()
            ),
            output: Output::Rows,
            _data: Some(dir),
        }
    }

    /// Checkpointed at parallelism 2, restored at the same.
    async fn assert_restore_replays(&self) {
        assert_restore_replays(self.out, &self.query, self.output).await;
    }

    /// Checkpointed at parallelism `from`, restored at `to`: keyed state
    /// moves between instances by key group.
    async fn assert_rescaled_restore_replays(&self, from: usize, to: usize) {
        let dir = tempfile::tempdir().unwrap();
        let first = Checkpoints::local(&dir.path().display().to_string()).at_parallelism(from);
        let second = first.at_parallelism(to);
        assert_restore_replays_in(self.out, &self.query, self.output, &first, &second).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_restored_from_its_latest_checkpoint_commits_the_uninterrupted_rows() {
    Case::tumble().assert_restore_replays().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_hop_aggregate_commits_the_uninterrupted_rows() {
    Case::hop().assert_restore_replays().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_cumulate_aggregate_commits_the_uninterrupted_rows() {
    Case::cumulate().assert_restore_replays().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_left_interval_join_commits_the_uninterrupted_rows() {
    Case::left_interval_join().assert_restore_replays().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_updating_aggregate_ends_at_the_uninterrupted_table() {
    Case::updating_aggregate().assert_restore_replays().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_session_aggregate_commits_the_uninterrupted_rows() {
    Case::session().assert_restore_replays().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_window_top_n_commits_the_uninterrupted_rows() {
    Case::window_top_n().assert_restore_replays().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_bounded_table_join_commits_the_uninterrupted_rows() {
    Case::bounded_table_join().assert_restore_replays().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_aggregates_restored_at_another_parallelism_commit_the_uninterrupted_rows() {
    Case::tumble().assert_rescaled_restore_replays(2, 3).await;
    Case::tumble().assert_rescaled_restore_replays(1, 2).await;
    Case::hop().assert_rescaled_restore_replays(2, 1).await;
    Case::cumulate().assert_rescaled_restore_replays(3, 2).await;
    Case::session().assert_rescaled_restore_replays(2, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_left_interval_join_restored_at_another_parallelism_commits_the_uninterrupted_rows() {
    Case::left_interval_join()
        .assert_rescaled_restore_replays(2, 3)
        .await;
    Case::left_interval_join()
        .assert_rescaled_restore_replays(3, 1)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_updating_aggregate_restored_at_another_parallelism_ends_at_the_uninterrupted_table() {
    Case::updating_aggregate()
        .assert_rescaled_restore_replays(2, 3)
        .await;
    Case::updating_aggregate()
        .assert_rescaled_restore_replays(2, 1)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_top_n_restored_at_another_parallelism_commits_the_uninterrupted_rows() {
    Case::window_top_n()
        .assert_rescaled_restore_replays(2, 3)
        .await;
}

#[tokio::test]
async fn restoring_into_a_changed_query_is_refused_naming_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().display().to_string();
    let sink = CollectSinkFactory::new();
    let query = window_query(TUMBLE);
    let ctx = context(
        &sink,
        WINDOW_OUT,
        Some(200_000),
        Some(&Checkpoints::local(&dir)),
    )
    .await;
    let result = ctx.sql(&query).await.unwrap().run().await.unwrap();
    assert!(!result.checkpoints.is_empty(), "the run took checkpoints");

    let ctx = context(
        &sink,
        WINDOW_OUT,
        Some(200_000),
        Some(&Checkpoints::local(&dir)),
    )
    .await;
    ctx.restore_latest().await.unwrap();
    let changed = query.replace("INTERVAL '1' MINUTES", "INTERVAL '2' MINUTES");
    let err = ctx
        .sql(&changed)
        .await
        .unwrap()
        .run()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot restore checkpoint"), "{err}");
    assert!(
        err.contains("definitions, options or edges changed"),
        "{err}"
    );
}

/// A collect sink whose writes fail while `failures` is above zero (each
/// failure counts down), to make a running job fail.
#[derive(Clone)]
struct FlakySinkFactory {
    inner: CollectSinkFactory,
    failures: Arc<std::sync::atomic::AtomicI64>,
    /// Writes to let through before failing.
    after_writes: i64,
    writes: Arc<std::sync::atomic::AtomicI64>,
}

struct FlakySink {
    inner: Box<dyn watershed::engine::sink::Sink>,
    factory: FlakySinkFactory,
}

impl watershed::engine::sink::SinkFactory for FlakySinkFactory {
    fn explain(&self) -> Vec<String> {
        vec!["flaky".into()]
    }

    fn create(
        &self,
        split: watershed::engine::source::Split,
    ) -> Result<Box<dyn watershed::engine::sink::Sink>, watershed::engine::EngineError> {
        Ok(Box::new(FlakySink {
            inner: self.inner.create(split)?,
            factory: self.clone(),
        }))
    }
}

#[async_trait::async_trait]
impl watershed::engine::sink::Sink for FlakySink {
    async fn write_batch(
        &mut self,
        batch: datafusion::arrow::record_batch::RecordBatch,
    ) -> Result<(), watershed::engine::EngineError> {
        use std::sync::atomic::Ordering;
        let writes = self.factory.writes.fetch_add(1, Ordering::SeqCst);
        if writes >= self.factory.after_writes
            && self.factory.failures.fetch_sub(1, Ordering::SeqCst) > 0
        {
            return Err(watershed::engine::EngineError::Config(
                "disk full (injected)".into(),
            ));
        }
        self.inner.write_batch(batch).await
    }

    async fn finish(&mut self) -> Result<(), watershed::engine::EngineError> {
        self.inner.finish().await
    }

    async fn prepare_checkpoint(
        &mut self,
        id: u64,
    ) -> Result<Option<watershed::engine::checkpoint::OperatorState>, watershed::engine::EngineError>
    {
        self.inner.prepare_checkpoint(id).await
    }

    async fn commit_checkpoint(&mut self, id: u64) -> Result<(), watershed::engine::EngineError> {
        self.inner.commit_checkpoint(id).await
    }

    async fn restore(
        &mut self,
        state: Option<watershed::engine::checkpoint::OperatorState>,
    ) -> Result<(), watershed::engine::EngineError> {
        self.inner.restore(state).await
    }
}

async fn flaky_context(sink: &FlakySinkFactory, dir: &str, restarts: &str) -> StreamContext {
    let ctx = StreamContext::new();
    ctx.connectors()
        .register_memory_sink("out", Arc::new(sink.clone()));
    ctx.sql(&format!(
        "SET 'execution.checkpointing.interval' = '20 ms';
         SET 'execution.checkpointing.dir' = 'file://{dir}';
         SET 'restart-strategy.type' = 'fixed-delay';
         SET 'restart-strategy.fixed-delay.attempts' = '{restarts}';
         SET 'restart-strategy.fixed-delay.delay' = '10 ms';"
    ))
    .await
    .unwrap();
    ctx.sql(&tables_ddl(Some(100_000), WINDOW_OUT))
        .await
        .unwrap();
    ctx
}

fn flaky(failures: i64) -> FlakySinkFactory {
    FlakySinkFactory {
        inner: CollectSinkFactory::new(),
        failures: Arc::new(std::sync::atomic::AtomicI64::new(failures)),
        after_writes: 5,
        writes: Arc::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_job_restarts_from_its_latest_checkpoint_and_commits_each_row_once() {
    let expected_sink = CollectSinkFactory::new();
    let ctx = context(&expected_sink, WINDOW_OUT, None, None).await;
    ctx.sql(&window_query(TUMBLE))
        .await
        .unwrap()
        .run()
        .await
        .unwrap();
    let expected = rows_as_text(&expected_sink.batches());

    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().display().to_string();
    let sink = flaky(2);
    let ctx = flaky_context(&sink, &dir, "3").await;
    let restarts = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = restarts.clone();
    ctx.on_restart(move |event| seen.lock().unwrap().push(event.clone()));
    ctx.sql(&window_query(TUMBLE))
        .await
        .unwrap()
        .run()
        .await
        .unwrap();

    let restarts = restarts.lock().unwrap().clone();
    assert_eq!(restarts.len(), 2, "{restarts:?}");
    assert!(
        restarts[0].cause.contains("disk full (injected)"),
        "{restarts:?}"
    );
    assert_eq!((restarts[1].attempt, restarts[1].attempts), (2, 3));
    assert_same_rows(
        "restarted run",
        &rows_as_text(&sink.inner.batches()),
        &expected,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_keeps_failing_gives_up_when_restarts_run_out() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().display().to_string();
    let sink = flaky(i64::MAX);
    let ctx = flaky_context(&sink, &dir, "2").await;
    let err = ctx
        .sql(&window_query(TUMBLE))
        .await
        .unwrap()
        .run()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("gave up after 2 restarts"), "{err}");
    assert!(err.contains("disk full (injected)"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_job_ends_with_a_final_checkpoint_and_its_restore_adds_nothing() {
    let expected_sink = CollectSinkFactory::new();
    let query = window_query(TUMBLE);
    let ctx = context(&expected_sink, WINDOW_OUT, None, None).await;
    ctx.sql(&query).await.unwrap().run().await.unwrap();
    let expected = rows_as_text(&expected_sink.batches());

    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().display().to_string();
    let sink = CollectSinkFactory::new();
    let ctx = context(
        &sink,
        WINDOW_OUT,
        Some(200_000),
        Some(&Checkpoints::local(&dir)),
    )
    .await;
    let result = ctx.sql(&query).await.unwrap().run().await.unwrap();
    let last = result.checkpoints.last().expect("the final checkpoint");
    assert_same_rows("finished run", &rows_as_text(&sink.batches()), &expected);

    // Restoring the final checkpoint: sources at their end, nothing new.
    let ctx = context(
        &sink,
        WINDOW_OUT,
        Some(200_000),
        Some(&Checkpoints::local(&dir)),
    )
    .await;
    assert_eq!(ctx.restore_latest().await.unwrap(), Some(last.id));
    let again = ctx.sql(&query).await.unwrap().run().await.unwrap();
    assert_eq!(again.rows.read, 0, "the restored sources were at their end");
    assert_same_rows("after restoring", &rows_as_text(&sink.batches()), &expected);
}

/// A local S3-compatible server (moto's `moto_server`, from PyPI) on a free
/// port, stopped when dropped.
struct S3Server {
    child: std::process::Child,
    endpoint: String,
}

impl S3Server {
    /// Starts `moto_server`, or `None` (with a loud message) when it is not
    /// installed outside CI; under CI (`.ci/run` installs it) its absence fails.
    fn start() -> Option<S3Server> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let child = std::process::Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(e) if std::env::var_os("CI").is_none() => {
                eprintln!(
                    "\n*** SKIPPED: the S3 checkpoint test needs moto_server \
                     (pip install 'moto[server]'): {e} ***\n"
                );
                return None;
            }
            Err(e) => panic!("moto_server must be installed under CI (.ci/run does): {e}"),
        };
        let server = S3Server {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "moto_server did not listen"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(server)
    }

    /// Creates `bucket` (moto accepts unsigned requests).
    fn create_bucket(&self, bucket: &str) {
        use std::io::{Read, Write};
        let address = self.endpoint.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        write!(
            stream,
            "PUT /{bucket} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_in_an_s3_store_restore_the_uninterrupted_rows() {
    let Some(server) = S3Server::start() else {
        return;
    };
    server.create_bucket("checkpoints");
    let checkpoints = Checkpoints {
        url: "s3://checkpoints/jobs/tumble".into(),
        settings: format!(
            "SET 's3.endpoint' = '{}';
             SET 's3.access-key' = 'test';
             SET 's3.secret-key' = 'test';
             SET 's3.path.style.access' = 'true';",
            server.endpoint
        ),
        parallelism: 2,
    };
    assert_restore_replays_in(
        WINDOW_OUT,
        &window_query(TUMBLE),
        Output::Rows,
        &checkpoints,
        &checkpoints,
    )
    .await;

    // A bucket that does not exist: the error names the store and the bucket.
    let sink = CollectSinkFactory::new();
    let missing = Checkpoints {
        url: "s3://no-such-bucket/x".into(),
        ..checkpoints.clone()
    };
    let ctx = context(&sink, WINDOW_OUT, Some(RATE), Some(&missing)).await;
    let err = ctx.restore_latest().await.unwrap_err().to_string();
    assert!(err.contains("s3://no-such-bucket/x"), "{err}");
    assert!(
        err.contains("NoSuchBucket") || err.contains("does not exist"),
        "{err}"
    );
}
