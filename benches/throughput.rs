//! Throughput of the streaming engine on one core, next to DataFusion batch,
//! then keyed aggregation at parallelism 1 and 2 on two cores.
//!
//! Run with `cargo bench --bench throughput` (add `-- --rows N` to change the
//! input size, `-- --only single|parallel` to run one part). The single-core
//! part runs on a current-thread tokio runtime, so its rows/s is rows per
//! second per core. Numbers are printed, never asserted.

use std::sync::Arc;

/// The allocator the CLI uses (see `src/main.rs`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::time::Instant;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use watershed::StreamContext;
use watershed::connectors::payments::{PaymentsConfig, generate_payments, payments_schema};

const TUMBLE_SQL: &str = "
INSERT INTO sink
SELECT window_start, window_end, card_id, COUNT(*), SUM(amount), MAX(amount)
FROM TABLE(TUMBLE(TABLE payments, DESCRIPTOR(event_time), INTERVAL '1' MINUTES))
GROUP BY window_start, window_end, card_id";

const HOP_SQL: &str = "
INSERT INTO sink
SELECT window_start, window_end, card_id, COUNT(*), SUM(amount), MAX(amount)
FROM TABLE(HOP(TABLE payments, DESCRIPTOR(event_time), INTERVAL '1' MINUTE, INTERVAL '5' MINUTES))
GROUP BY window_start, window_end, card_id";

const TUMBLE_BATCH_SQL: &str = "
SELECT date_bin(INTERVAL '1 minute', event_time, TIMESTAMP '1970-01-01 00:00:00') AS ws,
       date_bin(INTERVAL '1 minute', event_time, TIMESTAMP '1970-01-01 00:00:00') + INTERVAL '1 minute' AS we,
       card_id, COUNT(*), SUM(amount), MAX(amount)
FROM payments GROUP BY 1, 2, card_id";

const FILTER_SQL: &str = "
INSERT INTO filtered
SELECT txn_id, card_id, amount FROM payments WHERE amount > 500 AND status <> 'APPROVED'";

const FILTER_BATCH_SQL: &str =
    "SELECT txn_id, card_id, amount FROM payments WHERE amount > 500 AND status <> 'APPROVED'";

fn generate(
    rows: usize,
    cards: u64,
) -> (datafusion::arrow::datatypes::SchemaRef, Vec<RecordBatch>) {
    let config = PaymentsConfig {
        seed: 42,
        cards,
        events_per_second: 1_000,
        ..PaymentsConfig::default()
    };
    let batches = generate_payments(config, rows as u64, 8192).expect("generate");
    (payments_schema(), batches)
}

async fn streaming(
    schema: &datafusion::arrow::datatypes::SchemaRef,
    batches: &[RecordBatch],
    ddl: &str,
    sql: &str,
) -> (f64, u64) {
    let (seconds, result) = streaming_job(schema, batches, ddl, sql, 1).await;
    (seconds, result.rows.written)
}

async fn streaming_job(
    schema: &datafusion::arrow::datatypes::SchemaRef,
    batches: &[RecordBatch],
    ddl: &str,
    sql: &str,
    parallelism: usize,
) -> (f64, watershed::engine::runtime::JobResult) {
    let ctx = StreamContext::new();
    ctx.sql(&format!("SET 'parallelism.default' = '{parallelism}'"))
        .await
        .expect("set parallelism");
    ctx.register_batches(
        "payments",
        schema.clone(),
        batches.to_vec(),
        Some(("event_time", 5_000)),
    )
    .expect("register");
    ctx.sql(ddl).await.expect("ddl");
    let frame = ctx.sql(sql).await.expect("plan");
    let started = Instant::now();
    let result = frame.run().await.expect("run");
    (started.elapsed().as_secs_f64(), result)
}

/// CPU time (user + system) this process has used, in seconds, from
/// `/proc/self/stat` (clock ticks of 10 ms); 0 where that file is missing.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name: utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// Peak state bytes per live key-window of the job's aggregate.
fn bytes_per_key_window(result: &watershed::engine::runtime::JobResult) -> (u64, u64) {
    result
        .metrics
        .nodes
        .iter()
        .map(|(_, _, m)| {
            let bytes = m
                .peak_state_bytes
                .load(std::sync::atomic::Ordering::Relaxed);
            let groups = m
                .peak_state_groups
                .load(std::sync::atomic::Ordering::Relaxed);
            (bytes, groups)
        })
        .max()
        .unwrap_or((0, 0))
}

async fn batch(
    schema: &datafusion::arrow::datatypes::SchemaRef,
    batches: &[RecordBatch],
    sql: &str,
) -> (f64, usize) {
    let ctx = SessionContext::new_with_config(
        datafusion::prelude::SessionConfig::new().with_target_partitions(1),
    );
    let table = MemTable::try_new(schema.clone(), vec![batches.to_vec()]).expect("memtable");
    ctx.register_table("payments", Arc::new(table))
        .expect("register");
    let df = ctx.sql(sql).await.expect("plan");
    let started = Instant::now();
    let out = df.collect().await.expect("run");
    (
        started.elapsed().as_secs_f64(),
        out.iter().map(|b| b.num_rows()).sum(),
    )
}

fn report(name: &str, rows: usize, seconds: f64, out: u64) {
    println!(
        "{name:<44} {:>10.2} M rows/s   ({rows} rows in {seconds:.3} s, {out} out)",
        rows as f64 / seconds / 1e6
    );
}

fn main() {
    watershed::memory::avoid_transparent_huge_pages();
    let args: Vec<String> = std::env::args().collect();
    let rows = args
        .iter()
        .position(|a| a == "--rows")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000usize);
    // `--only single` or `--only parallel` runs one part (for profiling).
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_default();
    // `--parallelism N` runs the parallel part at that parallelism only (for
    // profiling one side of the comparison).
    let only_parallelism: Option<usize> = args
        .iter()
        .position(|a| a == "--parallelism")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok());
    // `--cards N` changes the key count of the parallel part (50k by default).
    let parallel_cards: u64 = args
        .iter()
        .position(|a| a == "--cards")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (schema, batches) = generate(rows, 50_000);
    let sink_ddl =
        "CREATE TABLE sink (ws TIMESTAMP(3), we TIMESTAMP(3), card_id BIGINT, n BIGINT, \
                    total DECIMAL(38, 2), mx DECIMAL(18, 2)) WITH ('connector' = 'blackhole');
                    CREATE TABLE filtered (txn_id BIGINT, card_id BIGINT, amount DECIMAL(18, 2)) \
                    WITH ('connector' = 'blackhole')";
    runtime.block_on(async {
        if only == "parallel" {
            return;
        }
        println!("payments: {rows} rows, 50k cards, one core (current-thread runtime)\n");
        for round in 0..2 {
            let label = if round == 0 { " (warm-up)" } else { "" };
            let (s, out) = streaming(&schema, &batches, sink_ddl, TUMBLE_SQL).await;
            report(&format!("streaming TUMBLE 1 min aggregate{label}"), rows, s, out);
            let (s, out) = streaming(&schema, &batches, sink_ddl, HOP_SQL).await;
            report(&format!("streaming HOP 1 min / 5 min aggregate{label}"), rows, s, out);
            let (s, out) = batch(&schema, &batches, TUMBLE_BATCH_SQL).await;
            report(&format!("DataFusion batch, same aggregate{label}"), rows, s, out as u64);
            let (s, out) = streaming(&schema, &batches, sink_ddl, FILTER_SQL).await;
            report(&format!("streaming filter + projection{label}"), rows, s, out);
            let (s, out) = batch(&schema, &batches, FILTER_BATCH_SQL).await;
            report(&format!("DataFusion batch filter + projection{label}"), rows, s, out as u64);
            println!();
        }
        // HOP's cost against TUMBLE on the same data, as the median of five
        // alternating runs of each (single runs of ~0.1 s are noisy). With 50k
        // cards most key-windows hold one or two rows, so HOP's cost is
        // dominated by emitting ~2x the rows of TUMBLE and merging five slices
        // per window. With 1k cards each key-window aggregates ~60 rows and
        // slice sharing shows.
        let (few_schema, few_batches) = generate(rows, 1_000);
        for (cards, schema, batches) in [
            ("50k", &schema, &batches),
            ("1k", &few_schema, &few_batches),
        ] {
            let mut seconds: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
            for _ in 0..5 {
                for (slot, sql) in [TUMBLE_SQL, HOP_SQL].into_iter().enumerate() {
                    let (s, _) = streaming(schema, batches, sink_ddl, sql).await;
                    seconds[slot].push(s);
                }
            }
            let [tumble, hop] = seconds.map(|mut runs| {
                runs.sort_by(f64::total_cmp);
                runs[runs.len() / 2]
            });
            println!(
                "{cards} cards, median of 5: TUMBLE {:.2} M rows/s, HOP {:.2} M rows/s, \
                 HOP / TUMBLE cost {:.2}x",
                rows as f64 / tumble / 1e6,
                rows as f64 / hop / 1e6,
                hop / tumble
            );
        }
        println!();
        let (_, result) = streaming_job(&schema, &batches, sink_ddl, TUMBLE_SQL, 1).await;
        let (bytes, groups) = bytes_per_key_window(&result);
        println!(
            "TUMBLE state at its peak: {bytes} bytes for {groups} key-windows = {} bytes per key-window \
             (COUNT, SUM, MAX)",
            bytes / groups.max(1)
        );
    });

    // Parallel keyed aggregation: two worker threads, parallelism 1 vs 2.
    let parallel = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    if only == "single" {
        return;
    }
    // Four times the rows: a run at parallelism 2 should last long enough that
    // start-up does not count.
    let parallel_rows = rows * 4;
    let (schema, batches) = generate(parallel_rows, parallel_cards);
    parallel.block_on(async {
        println!(
            "\nkeyed TUMBLE aggregate on a 2-worker runtime (hash exchange on card_id), \
             {parallel_rows} rows, {parallel_cards} cards:"
        );
        // Runs alternate between the two parallelisms; each rate is the median
        // of five runs after a warm-up (a run lasts a few tenths of a second, so
        // single runs are noisy).
        let mut rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
        let mut cores: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
        for round in 0..6 {
            for (slot, parallelism) in [1, 2].into_iter().enumerate() {
                if only_parallelism.is_some_and(|p| p != parallelism) {
                    continue;
                }
                let cpu = cpu_seconds();
                let (s, result) =
                    streaming_job(&schema, &batches, sink_ddl, TUMBLE_SQL, parallelism).await;
                // CPU time includes planning, which is small next to the run.
                let used = (cpu_seconds() - cpu) / s;
                let label = if round == 0 { " (warm-up)" } else { "" };
                let (_, peak_groups) = bytes_per_key_window(&result);
                report(
                    &format!(
                        "parallelism {parallelism}{label}, {used:.2} cores busy, \
                         peak {peak_groups} key-windows per instance"
                    ),
                    parallel_rows,
                    s,
                    result.rows.written,
                );
                if round > 0 {
                    rates[slot].push(parallel_rows as f64 / s);
                    cores[slot].push(used);
                }
            }
        }
        if only_parallelism.is_some() {
            return;
        }
        let median = |rates: &mut Vec<f64>| {
            rates.sort_by(f64::total_cmp);
            rates[rates.len() / 2]
        };
        let (one, two) = (median(&mut rates[0]), median(&mut rates[1]));
        let [cores_one, cores_two] = &mut cores;
        let (busy_one, busy_two) = (median(cores_one), median(cores_two));
        println!(
            "median of 5: parallelism 1 {:.2} M rows/s on {busy_one:.2} cores, parallelism 2 \
             {:.2} M rows/s on {busy_two:.2} cores, speed-up {:.2}x",
            one / 1e6,
            two / 1e6,
            two / one
        );
    });
}
