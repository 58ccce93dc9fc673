//! What checkpoints cost: the throughput of a keyed TUMBLE job with a 1 s
//! checkpoint interval next to the same job without checkpoints, and the time
//! to checkpoint and restore about a million keys of window state.
//!
//! Run with `cargo bench --bench checkpoints` (`-- --rows N` changes the
//! throughput job's input). Numbers are printed, never asserted.

use std::time::Instant;

/// The allocator the CLI uses (see `src/main.rs`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use watershed::StreamContext;

fn ddl(rows: u64, cards: u64, extra: &str) -> String {
    format!(
        "CREATE TABLE payments (
           txn_id BIGINT, event_time TIMESTAMP(3), card_id BIGINT, amount DECIMAL(18, 2),
           WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND
         ) WITH ('connector' = 'payments', 'number-of-rows' = '{rows}', 'cards' = '{cards}',
                 'seed' = '5'{extra});
         CREATE TABLE sink (ws TIMESTAMP(3), we TIMESTAMP(3), card_id BIGINT, n BIGINT,
                            total DECIMAL(38, 2), mx DECIMAL(18, 2))
         WITH ('connector' = 'blackhole');"
    )
}

fn query(window: &str) -> String {
    format!(
        "INSERT INTO sink
         SELECT window_start, window_end, card_id, COUNT(*), SUM(amount), MAX(amount)
         FROM TABLE(TUMBLE(TABLE payments, DESCRIPTOR(event_time), INTERVAL {window}))
         GROUP BY window_start, window_end, card_id"
    )
}

async fn context(checkpoints: Option<(&str, &str)>, ddl: &str) -> StreamContext {
    context_at(checkpoints, ddl, 1).await
}

async fn context_at(
    checkpoints: Option<(&str, &str)>,
    ddl: &str,
    parallelism: usize,
) -> StreamContext {
    let ctx = StreamContext::new();
    ctx.sql(&format!("SET 'parallelism.default' = '{parallelism}';"))
        .await
        .expect("parallelism");
    if let Some((interval, dir)) = checkpoints {
        ctx.sql(&format!(
            "SET 'execution.checkpointing.interval' = '{interval}';
             SET 'execution.checkpointing.dir' = 'file://{dir}';
             SET 'execution.checkpointing.num-retained' = '1000';
             SET 'restart-strategy.type' = 'none';"
        ))
        .await
        .expect("settings");
    }
    ctx.sql(ddl).await.expect("ddl");
    ctx
}

fn main() {
    watershed::memory::avoid_transparent_huge_pages();
    let args: Vec<String> = std::env::args().collect();
    let rows: u64 = args
        .iter()
        .position(|a| a == "--rows")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(60_000_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = std::env::temp_dir().join(format!("watershed-bench-{}", std::process::id()));
    let dir_text = dir.display().to_string();
    runtime.block_on(async {
        if !args.iter().any(|a| a == "--state-only") {
            throughput(rows, &dir, &dir_text).await;
        }
        large_state(&dir, &dir_text).await;
    });
    let _ = std::fs::remove_dir_all(&dir);
}

/// Throughput with and without a 1 s interval, alternating, median of 3.
async fn throughput(rows: u64, dir: &std::path::Path, dir_text: &str) {
    println!("keyed TUMBLE 1 min over {rows} generated payments (50k cards), one worker:");
    let ddl_text = ddl(rows, 50_000, "");
    let mut rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for round in 0..3 {
        for (slot, checkpoints) in [None, Some(("1 s", dir_text))].into_iter().enumerate() {
            let _ = std::fs::remove_dir_all(dir);
            let ctx = context(checkpoints, &ddl_text).await;
            let started = Instant::now();
            let result = ctx
                .sql(&query("'1' MINUTES"))
                .await
                .expect("plan")
                .run()
                .await
                .expect("run");
            let seconds = started.elapsed().as_secs_f64();
            let rate = rows as f64 / seconds;
            let taken = &result.checkpoints;
            let longest = taken.iter().map(|c| c.duration).max().unwrap_or_default();
            println!(
                "  round {round}, {:<22} {:>6.2} M rows/s  ({} checkpoints, longest {} ms, {} bytes last)",
                if slot == 0 {
                    "no checkpoints"
                } else {
                    "checkpoint every 1 s"
                },
                rate / 1e6,
                taken.len(),
                longest.as_millis(),
                taken.last().map_or(0, |c| c.bytes)
            );
            rates[slot].push(rate);
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let [plain, checkpointed] = rates.map(median);
    println!(
        "median: {:.2} vs {:.2} M rows/s: with checkpoints {:.0}% of the throughput\n",
        plain / 1e6,
        checkpointed / 1e6,
        100.0 * checkpointed / plain
    );
}

/// Checkpoint and restore of a million keys and more of window state.
async fn large_state(dir: &std::path::Path, dir_text: &str) {
    // A million keys and more of window state: one-day windows over 6M rows
    // of 3M cards (the generator's hot cards take many of the rows), paced
    // so that checkpoints land while the state is large.
    let keys_ddl = ddl(
        6_000_000,
        3_000_000,
        ", 'events-per-second-event-time' = '60', 'rows-per-second' = '2500000'",
    );
    let _ = std::fs::remove_dir_all(dir);
    let ctx = context(Some(("500 ms", dir_text)), &keys_ddl).await;
    let result = ctx
        .sql(&query("'1' DAY"))
        .await
        .expect("plan")
        .run()
        .await
        .expect("run");
    let peak_groups = result
        .metrics
        .nodes
        .iter()
        .map(|(_, _, m)| {
            m.peak_state_groups
                .load(std::sync::atomic::Ordering::Relaxed)
        })
        .max()
        .unwrap_or(0);
    println!("window state of up to {peak_groups} keys (1 day windows, 3M cards):");
    for c in &result.checkpoints {
        println!(
            "  checkpoint {}: {} ms (alignment {} ms), {:.1} MB",
            c.id,
            c.duration.as_millis(),
            c.alignment.as_millis(),
            c.bytes as f64 / 1e6
        );
    }
    // Restore the largest: read and decode it, then rebuild the state.
    let largest = result
        .checkpoints
        .iter()
        .max_by_key(|c| c.bytes)
        .map(|c| c.id);
    // At the same parallelism, then at 2 (each instance keeps the keys of
    // its key groups).
    for parallelism in [1, 2].into_iter().filter(|_| largest.is_some()) {
        let id = largest.unwrap_or_default();
        let ctx = context_at(Some(("500 ms", dir_text)), &keys_ddl, parallelism).await;
        let started = Instant::now();
        ctx.restore_checkpoint(id).await.expect("load");
        let loaded = started.elapsed();
        let frame = ctx.sql(&query("'1' DAY")).await.expect("plan");
        let started = Instant::now();
        let job = frame.start_with_sink(None).expect("restore");
        let rebuilt = started.elapsed();
        job.cancel();
        let _ = job.wait().await;
        println!(
            "restore of checkpoint {id} at parallelism {parallelism}: read + decode {} ms, \
             rebuild operator state {} ms, total {} ms",
            loaded.as_millis(),
            rebuilt.as_millis(),
            (loaded + rebuilt).as_millis()
        );
    }
}
