//! The bench suites: runs each query of `benches/nexmark/` (Nexmark q0 to q22
//! over the `nexmark` generator) and of `benches/payments/` (the payments risk
//! rules over the `payments` generator) and reports, per query, events per
//! second for the whole job and per core used, CPU cores used, and peak
//! memory, as JSON lines and a table.
//!
//! `cargo bench --bench nexmark -- [--suite nexmark|payments|all] [--events N]
//! [--rate TPS] [--parallelism N] [--queries q0,q5] [--json PATH]
//! [--checkpoint-interval '1 s']` (with checkpoints, each query also reports
//! how many it took, the longest and the largest)
//!
//! `-- --slow-sink ROWS_PER_SECOND [--seconds S] [--events N]` instead
//! measures memory when the sink is slower than the source (see
//! `nexmark/slow_sink.rs`): the RSS at 10%, 50% and 90% of the run, for a
//! stateless query, a windowed rule and an updating aggregate. Events default
//! to about S (20) seconds of the sink's rate.
//!
//! `-- --latency RATE [--seconds S] [--warmup W] [--queries q8]` instead measures p50/p99 end-to-end
//! latency with the sources paced to RATE events per second (see
//! `nexmark/latency.rs`): window-emit latency of Nexmark q7, q8 and q11 and of
//! the payments velocity rule, and arrival-to-output latency of q0.
//!
//! Nexmark events count every generated event (people, auctions and bids), as
//! the Nexmark repository does; a query over `bid` alone reads about 92% of
//! them, and one over `person` and `auction` only 8% (the generator skips the
//! other kinds cheaply, where Flink's datagen table makes every event).
//! Each query runs in a process of its own (the runner starts itself with
//! `--child`), so its peak RSS is its own. CPU time and peak RSS come from
//! `/proc/self` (Linux). Numbers are printed, never asserted.

#[path = "nexmark/latency.rs"]
mod latency;
#[path = "nexmark/slow_sink.rs"]
mod slow_sink;
#[path = "nexmark/suite.rs"]
mod suite;

use std::io::Write;
use std::time::Instant;

/// The allocator the CLI uses (see `src/main.rs`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use watershed::StreamContext;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// This process's user + system CPU time in seconds (`/proc/self/stat`,
/// in clock ticks of 1/100 s).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// Resets the peak resident set size (`/proc/self/clear_refs`).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The peak resident set size since the last reset, in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

struct Outcome {
    seconds: f64,
    cpu: Option<f64>,
    rss: Option<f64>,
    rows_written: u64,
    /// The largest state each stateful node held, summed over the nodes
    /// (every stateful operator records it: window, session and updating
    /// aggregates, Top-N, interval, window and bounded-table joins).
    state_bytes: u64,
    /// Checkpoints taken (with `--checkpoint-interval`): count, longest
    /// duration in ms, largest size in bytes.
    checkpoints: Option<(usize, f64, u64)>,
}

async fn run(
    query: &suite::Query,
    parallelism: u64,
    checkpoint_interval: Option<&str>,
) -> Result<Outcome, String> {
    let ctx = StreamContext::new();
    ctx.sql(&format!("SET 'parallelism.default' = '{parallelism}';"))
        .await
        .map_err(|e| e.to_string())?;
    let checkpoint_dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    if let Some(interval) = checkpoint_interval {
        ctx.sql(&format!(
            "SET 'execution.checkpointing.interval' = '{interval}';
             SET 'execution.checkpointing.dir' = 'file://{}';",
            checkpoint_dir.path().display()
        ))
        .await
        .map_err(|e| e.to_string())?;
    }
    ctx.sql(&query.ddl).await.map_err(|e| e.to_string())?;
    let job = ctx.sql(&query.insert).await.map_err(|e| e.to_string())?;
    reset_peak_rss();
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let result = job.run().await.map_err(|e| e.to_string())?;
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds()
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    let state_bytes = result
        .metrics
        .nodes
        .iter()
        .map(|(_, _, m)| {
            m.peak_state_bytes
                .load(std::sync::atomic::Ordering::Relaxed)
        })
        .sum();
    let checkpoints = checkpoint_interval.map(|_| {
        let longest = result
            .checkpoints
            .iter()
            .map(|c| c.duration.as_secs_f64() * 1000.0)
            .fold(0.0, f64::max);
        let largest = result
            .checkpoints
            .iter()
            .map(|c| c.bytes)
            .max()
            .unwrap_or(0);
        (result.checkpoints.len(), longest, largest)
    });
    Ok(Outcome {
        seconds,
        cpu,
        rss: peak_rss_mib(),
        rows_written: result.rows.written,
        state_bytes,
        checkpoints,
    })
}

/// The measurement of one query as a JSON object.
fn measured(
    suite: &str,
    query: &suite::Query,
    events: u64,
    parallelism: u64,
    o: &Outcome,
) -> serde_json::Value {
    let cores = o.cpu.map(|cpu| cpu / o.seconds);
    serde_json::json!({
        "suite": suite,
        "query": query.name,
        "status": "ok",
        "events": events,
        "parallelism": parallelism,
        "seconds": o.seconds,
        "events_per_second": events as f64 / o.seconds,
        "cpu_seconds": o.cpu,
        "cores": cores,
        "events_per_second_per_core": o.cpu.map(|cpu| events as f64 / cpu.max(1e-9)),
        "peak_rss_mib": o.rss,
        "peak_state_mib": o.state_bytes as f64 / (1024.0 * 1024.0),
        "rows_written": o.rows_written,
        "checkpoints": o.checkpoints.map(|c| c.0),
        "checkpoint_max_ms": o.checkpoints.map(|c| c.1),
        "checkpoint_max_mib": o.checkpoints.map(|c| c.2 as f64 / (1024.0 * 1024.0)),
    })
}

/// One table row of a measurement.
fn table_row(line: &serde_json::Value) -> String {
    let name = line["query"].as_str().unwrap_or("?");
    match line["status"].as_str() {
        Some("ok") => {
            let number = |key: &str, digits: usize| {
                line[key]
                    .as_f64()
                    .map_or("n/a".to_string(), |v| format!("{v:.digits$}"))
            };
            let mut row = format!(
                "{name:<16} {:>8} {:>12} {:>6} {:>14} {:>9} {:>11} {:>10}",
                number("seconds", 2),
                number("events_per_second", 0),
                number("cores", 2),
                number("events_per_second_per_core", 0),
                number("peak_rss_mib", 0),
                number("peak_state_mib", 1),
                line["rows_written"]
            );
            if !line["checkpoints"].is_null() {
                row.push_str(&format!(
                    "  {} checkpoints, longest {} ms, largest {} MiB",
                    line["checkpoints"],
                    number("checkpoint_max_ms", 0),
                    number("checkpoint_max_mib", 1)
                ));
            }
            row
        }
        Some("not runnable") => format!(
            "{name:<16} not runnable: {}",
            line["reason"].as_str().unwrap_or_default()
        ),
        _ => format!(
            "{name:<16} failed: {}",
            line["error"].as_str().unwrap_or_default()
        ),
    }
}

/// Runs one query in this process and prints its measurement (`--child`).
async fn child(
    suite_name: &str,
    query: &suite::Query,
    events: u64,
    parallelism: u64,
    checkpoint_interval: Option<&str>,
) {
    let line = match run(query, parallelism, checkpoint_interval).await {
        Ok(o) => measured(suite_name, query, events, parallelism, &o),
        Err(e) => {
            serde_json::json!({"suite": suite_name, "query": query.name, "status": "failed", "error": e})
        }
    };
    println!("RESULT {line}");
}

/// Runs one query in a fresh process, so its peak memory is its own.
fn in_child_process(args: &[String], suite_name: &str, query: &str) -> serde_json::Value {
    let failed = |e: String| serde_json::json!({"suite": suite_name, "query": query, "status": "failed", "error": e});
    let mut command = match std::env::current_exe() {
        Ok(exe) => std::process::Command::new(exe),
        Err(e) => return failed(e.to_string()),
    };
    for key in [
        "--events",
        "--rate",
        "--parallelism",
        "--checkpoint-interval",
        "--slow-sink",
        "--seconds",
    ] {
        if let Some(value) = arg(args, key) {
            command.args([key, &value]);
        }
    }
    command.args(["--child", "--suite", suite_name, "--queries", query]);
    let output = match command.output() {
        Ok(output) => output,
        Err(e) => return failed(e.to_string()),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    match stdout.lines().find_map(|l| l.strip_prefix("RESULT ")) {
        Some(json) => serde_json::from_str(json).unwrap_or_else(|e| failed(e.to_string())),
        None => failed(format!(
            "no result; exit {:?}: {}",
            output.status.code(),
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .last()
                .unwrap_or_default()
        )),
    }
}

/// One latency measurement: `suite`'s `query`, whose output column
/// `due.column` (plus `due.offset_ms`) says when each row was due.
struct LatencyCase {
    suite: &'static str,
    query: &'static str,
    due: latency::Due,
    /// The event time of the suite's first event.
    first_event_ms: i64,
    /// The suite's DDL option to replace, and what paces the source instead.
    pacing: (&'static str, String),
}

/// `--latency RATE`: runs each case paced to `rate` events per second for
/// `seconds`, and prints p50/p99/max latency.
async fn latency_main(args: &[String], rate: u64, seconds: u64) {
    use watershed::connectors::nexmark::model::BASE_TIME_MILLIS;
    use watershed::connectors::payments::config::DEFAULT_START_TIME_MILLIS;
    let events = rate * seconds;
    let warmup_seconds: f64 = arg(args, "--warmup").map_or(15.0, |v| v.parse().expect("--warmup"));
    let nexmark_pacing = (
        "'events.num' = '${EVENTS_NUM}'",
        format!("'events.num' = '{events}', 'rate.limited' = 'true'"),
    );
    let due = |column: &str, offset_ms: i64| latency::Due {
        column: column.to_string(),
        offset_ms,
        align_ms: None,
    };
    let cases = [
        LatencyCase {
            suite: "nexmark",
            query: "q0",
            due: due("dateTime", 0),
            first_event_ms: BASE_TIME_MILLIS,
            pacing: nexmark_pacing.clone(),
        },
        LatencyCase {
            suite: "nexmark",
            query: "q8",
            // Window start + 10 s window + 4 s WATERMARK delay.
            due: due("stime", 14_000),
            first_event_ms: BASE_TIME_MILLIS,
            pacing: nexmark_pacing.clone(),
        },
        LatencyCase {
            suite: "nexmark",
            query: "q7",
            // The bid's 10 s window's end + 4 s WATERMARK delay.
            due: latency::Due {
                align_ms: Some(10_000),
                ..due("dateTime", 14_000)
            },
            first_event_ms: BASE_TIME_MILLIS,
            pacing: nexmark_pacing.clone(),
        },
        LatencyCase {
            suite: "nexmark",
            query: "q11",
            // Session end + 4 s WATERMARK delay.
            due: due("endtime", 4_000),
            first_event_ms: BASE_TIME_MILLIS,
            pacing: nexmark_pacing,
        },
        LatencyCase {
            suite: "payments",
            query: "card_velocity",
            // Window end + 5 s WATERMARK delay.
            due: due("window_end", 5_000),
            first_event_ms: DEFAULT_START_TIME_MILLIS,
            pacing: (
                "'events-per-second-event-time' = '1000'",
                format!("'events-per-second-event-time' = '{rate}', 'rows-per-second' = '{rate}'"),
            ),
        },
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    let side_input = dir.path().join("side_input.csv");
    suite::write_side_input(&side_input);
    println!(
        "\nlatency at {rate} events/s for {seconds} s (sources emit 10 ms batches; rows due in the first {warmup_seconds} s left out), parallelism {}",
        arg(args, "--parallelism").unwrap_or_else(|| "1".into())
    );
    println!(
        "{:<24} {:>10} {:>10} {:>10} {:>10}",
        "query", "p50 ms", "p99 ms", "max ms", "rows"
    );
    let only = arg(args, "--queries");
    for case in cases {
        if only
            .as_ref()
            .is_some_and(|q| !q.split(',').any(|q| q == case.query))
        {
            continue;
        }
        let settings = suite::Settings {
            events,
            rate,
            output_dir: dir.path(),
            side_input: &side_input,
        };
        let Some(query) = suite::load(case.suite, &settings)
            .into_iter()
            .find(|q| q.name == case.query)
        else {
            continue;
        };
        // The suites' DDL with placeholders filled: put the pacing back in.
        let filled_from = case.pacing.0.replace("${EVENTS_NUM}", &events.to_string());
        let ddl = query
            .ddl_with_memory_sink()
            .replace(&filled_from, &case.pacing.1);
        let sink = latency::LatencySinkFactory {
            start: Default::default(),
            first_event_ms: case.first_event_ms,
            due: case.due.clone(),
            horizon_ms: (seconds * 1000) as f64,
            warmup_ms: warmup_seconds * 1000.0,
            latencies: latency::Latencies::default(),
        };
        let ctx = StreamContext::new();
        ctx.connectors()
            .register_memory_sink(query.sink_table(), std::sync::Arc::new(sink.clone()));
        let settings = format!(
            "SET 'parallelism.default' = '{}'; SET 'execution.batch-size' = '{}';",
            arg(args, "--parallelism").unwrap_or_else(|| "1".into()),
            (rate / 100).max(1)
        );
        let run = async {
            ctx.sql(&settings).await.map_err(|e| e.to_string())?;
            ctx.sql(&ddl).await.map_err(|e| e.to_string())?;
            let job = ctx.sql(&query.insert).await.map_err(|e| e.to_string())?;
            if let Ok(mut start) = sink.start.lock() {
                *start = Some(Instant::now());
            }
            job.run().await.map_err(|e| e.to_string())
        };
        let name = format!("{}/{}", case.suite, case.query);
        match run.await {
            Err(e) => println!("{name:<24} failed: {e}"),
            Ok(_) => match sink.latencies.percentiles() {
                Some((p50, p99, max, n)) => {
                    println!("{name:<24} {p50:>10.1} {p99:>10.1} {max:>10.1} {n:>10}");
                    eprintln!(
                        "{}",
                        serde_json::json!({"suite": case.suite, "query": case.query,
                            "rate": rate, "p50_ms": p50, "p99_ms": p99, "max_ms": max, "rows": n})
                    );
                }
                None => println!("{name:<24} no window closed by the watermark"),
            },
        }
    }
}

/// The queries `--slow-sink` runs, each with about how many events make one
/// output row (so a run lasts about `--seconds` at the sink's rate): a
/// stateless query (every bid reaches the sink), a windowed rule and an
/// updating aggregate (two changelog rows per approved payment).
const SLOW_SINK_CASES: [(&str, &str, f64); 3] = [
    ("nexmark", "q0", 1.09),
    ("payments", "card_velocity", 13.7),
    ("payments", "running_balance", 0.55),
];

/// One `--slow-sink` case in this process (`--child`): runs `suite`'s
/// `query` over `events` unpaced events into a sink taking `sink_rate` rows
/// per second, sampling the RSS.
async fn slow_sink_child(args: &[String], suite_name: &str, query_name: &str, sink_rate: u64) {
    let seconds: f64 = arg(args, "--seconds").map_or(20.0, |v| v.parse().expect("--seconds"));
    let events_per_row = SLOW_SINK_CASES
        .iter()
        .find(|c| c.0 == suite_name && c.1 == query_name)
        .map_or(1.0, |c| c.2);
    let events: u64 = arg(args, "--events")
        .map_or((sink_rate as f64 * seconds * events_per_row) as u64, |v| {
            v.parse().expect("--events")
        });
    let dir = tempfile::tempdir().expect("tempdir");
    let side_input = dir.path().join("side_input.csv");
    suite::write_side_input(&side_input);
    let settings = suite::Settings {
        events,
        rate: 10_000_000,
        output_dir: dir.path(),
        side_input: &side_input,
    };
    let failed = |e: String| serde_json::json!({"suite": suite_name, "query": query_name, "status": "failed", "error": e});
    let Some(query) = suite::load(suite_name, &settings)
        .into_iter()
        .find(|q| q.name == query_name)
    else {
        println!("RESULT {}", failed("no such query".into()));
        return;
    };
    let sink = slow_sink::ThrottledSinkFactory::new(sink_rate);
    let ctx = StreamContext::new();
    ctx.connectors()
        .register_memory_sink(query.sink_table(), std::sync::Arc::new(sink.clone()));
    let sampler = slow_sink::RssSampler::start();
    let started = Instant::now();
    let run = async {
        ctx.sql(&format!(
            "SET 'parallelism.default' = '{}';",
            arg(args, "--parallelism").unwrap_or_else(|| "1".into())
        ))
        .await
        .map_err(|e| e.to_string())?;
        ctx.sql(&query.ddl_with_memory_sink())
            .await
            .map_err(|e| e.to_string())?;
        let job = ctx.sql(&query.insert).await.map_err(|e| e.to_string())?;
        job.run().await.map_err(|e| e.to_string())
    };
    let result = run.await;
    let seconds = started.elapsed().as_secs_f64();
    let samples = sampler.stop();
    let line = match result {
        Err(e) => failed(e),
        Ok(_) => {
            let at = slow_sink::rss_at(&samples, &[0.1, 0.5, 0.9]);
            let max = samples.iter().map(|s| s.1).fold(0.0, f64::max);
            serde_json::json!({
                "suite": suite_name, "query": query_name, "status": "ok",
                "events": events, "sink_rows_per_second": sink_rate,
                "seconds": seconds, "rows_written": sink.rows(),
                "rss_mib_at_10pct": at[0], "rss_mib_at_50pct": at[1],
                "rss_mib_at_90pct": at[2], "rss_mib_max": max,
            })
        }
    };
    println!("RESULT {line}");
}

/// `--slow-sink RATE`: each of [`SLOW_SINK_CASES`] in a process of its own,
/// printing the RSS at 10%, 50% and 90% of the run.
fn slow_sink_main(args: &[String], sink_rate: u64) {
    println!(
        "\nmemory with a sink taking {sink_rate} rows/s and an unpaced source (RSS sampled every 100 ms)"
    );
    println!(
        "{:<28} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "query", "seconds", "rows out", "MiB @10%", "MiB @50%", "MiB @90%", "MiB max"
    );
    let mut json = arg(args, "--json").map(|p| std::fs::File::create(p).expect("--json file"));
    for (suite_name, query, _) in SLOW_SINK_CASES {
        if arg(args, "--queries").is_some_and(|q| !q.split(',').any(|q| q == query)) {
            continue;
        }
        let line = in_child_process(args, suite_name, query);
        let name = format!("{suite_name}/{query}");
        match line["status"].as_str() {
            Some("ok") => {
                let n = |key: &str| line[key].as_f64().unwrap_or(f64::NAN);
                println!(
                    "{name:<28} {:>8.1} {:>10} {:>10.0} {:>10.0} {:>10.0} {:>10.0}",
                    n("seconds"),
                    line["rows_written"],
                    n("rss_mib_at_10pct"),
                    n("rss_mib_at_50pct"),
                    n("rss_mib_at_90pct"),
                    n("rss_mib_max")
                );
            }
            _ => println!("{name:<28} failed: {}", line["error"]),
        }
        match json.as_mut() {
            Some(file) => writeln!(file, "{line}").expect("write json"),
            None => eprintln!("{line}"),
        }
    }
}

#[tokio::main]
async fn main() {
    // As the `watershed` command does (see `watershed::memory`); the line
    // says which way the figures were taken.
    let thp_off = watershed::memory::avoid_transparent_huge_pages();
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--child") {
        eprintln!(
            "transparent huge pages: {}",
            if thp_off {
                "off (WATERSHED_THP=1 keeps them on)"
            } else {
                "on"
            }
        );
    }
    if let Some(rate) = arg(&args, "--slow-sink") {
        let rate: u64 = rate.parse().expect("--slow-sink ROWS_PER_SECOND");
        if args.iter().any(|a| a == "--child") {
            let suite_name = arg(&args, "--suite").unwrap_or_default();
            let query = arg(&args, "--queries").unwrap_or_default();
            slow_sink_child(&args, &suite_name, &query, rate).await;
        } else {
            slow_sink_main(&args, rate);
        }
        return;
    }
    if let Some(rate) = arg(&args, "--latency") {
        let rate: u64 = rate.parse().expect("--latency RATE");
        let seconds: u64 = arg(&args, "--seconds").map_or(20, |v| v.parse().expect("--seconds"));
        latency_main(&args, rate, seconds).await;
        return;
    }
    let events: u64 = arg(&args, "--events").map_or(10_000_000, |v| v.parse().expect("--events"));
    let rate: u64 = arg(&args, "--rate").map_or(10_000_000, |v| v.parse().expect("--rate"));
    let parallelism: u64 =
        arg(&args, "--parallelism").map_or(1, |v| v.parse().expect("--parallelism"));
    let only: Option<Vec<String>> =
        arg(&args, "--queries").map(|q| q.split(',').map(str::to_string).collect());
    let is_child = args.iter().any(|a| a == "--child");
    let mut json = arg(&args, "--json").map(|p| std::fs::File::create(p).expect("--json file"));

    let dir = tempfile::tempdir().expect("tempdir");
    let side_input = dir.path().join("side_input.csv");
    suite::write_side_input(&side_input);
    let suites: Vec<&str> = match arg(&args, "--suite").as_deref() {
        None | Some("all") => vec!["nexmark", "payments"],
        Some("nexmark") => vec!["nexmark"],
        Some("payments") => vec!["payments"],
        Some(other) => panic!("--suite {other}: expected nexmark, payments or all"),
    };
    for suite_name in suites {
        let queries = suite::load(
            suite_name,
            &suite::Settings {
                events,
                rate,
                output_dir: dir.path(),
                side_input: &side_input,
            },
        );
        let selected = queries
            .iter()
            .filter(|q| only.as_ref().is_none_or(|o| o.contains(&q.name)));
        if is_child {
            for query in selected {
                child(
                    suite_name,
                    query,
                    events,
                    parallelism,
                    arg(&args, "--checkpoint-interval").as_deref(),
                )
                .await;
            }
            continue;
        }
        println!(
            "\n{suite_name}: {events} events at {rate} events/s of event time, parallelism {parallelism}, one process per query"
        );
        println!(
            "{:<16} {:>8} {:>12} {:>6} {:>14} {:>9} {:>11} {:>10}",
            "query",
            "seconds",
            "events/s",
            "cores",
            "events/s/core",
            "peak MiB",
            "state MiB",
            "rows out"
        );
        for query in selected {
            let line = match &query.runnable {
                Err(reason) => serde_json::json!({
                    "suite": suite_name, "query": query.name, "status": "not runnable", "reason": reason
                }),
                Ok(()) => in_child_process(&args, suite_name, &query.name),
            };
            println!("{}", table_row(&line));
            match json.as_mut() {
                Some(file) => writeln!(file, "{line}").expect("write json"),
                None => eprintln!("{line}"),
            }
        }
    }
}
