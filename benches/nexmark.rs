//! The bench suites: runs each query of `benches/nexmark/` (Nexmark q0 to q22
//! over the `nexmark` generator) and of `benches/payments/` (the payments risk
//! rules over the `payments` generator) and reports, per query, events per
//! second for the whole job and per core used, CPU cores used, and peak
//! memory, as JSON lines and a table.
//!
//! `cargo bench --bench nexmark -- [--suite nexmark|payments|all] [--events N]
//! [--rate TPS] [--parallelism N] [--queries q0,q5] [--json PATH]`
//!
//! Nexmark events count every generated event (people, auctions and bids), as
//! the Nexmark repository does; a query over `bid` alone reads about 92% of
//! them, and one over `person` and `auction` only 8% (the generator skips the
//! other kinds cheaply, where Flink's datagen table makes every event).
//! Each query runs in a process of its own (the runner starts itself with
//! `--child`), so its peak RSS is its own. CPU time and peak RSS come from
//! `/proc/self` (Linux). Numbers are printed, never asserted.

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
}

async fn run(query: &suite::Query, parallelism: u64) -> Result<Outcome, String> {
    let ctx = StreamContext::new();
    ctx.sql(&format!("SET 'parallelism.default' = '{parallelism}';"))
        .await
        .map_err(|e| e.to_string())?;
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
    Ok(Outcome {
        seconds,
        cpu,
        rss: peak_rss_mib(),
        rows_written: result.rows.written,
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
        "rows_written": o.rows_written,
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
            format!(
                "{name:<16} {:>8} {:>12} {:>6} {:>14} {:>9} {:>10}",
                number("seconds", 2),
                number("events_per_second", 0),
                number("cores", 2),
                number("events_per_second_per_core", 0),
                number("peak_rss_mib", 0),
                line["rows_written"]
            )
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
async fn child(suite_name: &str, query: &suite::Query, events: u64, parallelism: u64) {
    let line = match run(query, parallelism).await {
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
    for key in ["--events", "--rate", "--parallelism"] {
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

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
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
                child(suite_name, query, events, parallelism).await;
            }
            continue;
        }
        println!(
            "\n{suite_name}: {events} events at {rate} events/s of event time, parallelism {parallelism}, one process per query"
        );
        println!(
            "{:<16} {:>8} {:>12} {:>6} {:>14} {:>9} {:>10}",
            "query", "seconds", "events/s", "cores", "events/s/core", "peak MiB", "rows out"
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
