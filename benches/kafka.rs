//! Kafka throughput: generated payments into a local topic (the sink), then a
//! keyed one-minute TUMBLE read from the topic next to the same query over the
//! same rows in a CSV directory. Needs a broker at `WATERSHED_KAFKA_BROKERS`
//! (default `127.0.0.1:9092`), e.g. tansu (see README "Kafka").
//!
//! `cargo bench --bench kafka -- [--rows N] [--partitions N] [--parallelism N]`

use std::time::Instant;

use watershed::StreamContext;

const COLUMNS: &str = "txn_id BIGINT, event_time TIMESTAMP(3), card_id BIGINT, account_id BIGINT, \
    merchant_id BIGINT, mcc STRING, country STRING, amount DECIMAL(18, 2), currency STRING, \
    status STRING";

fn arg(args: &[String], name: &str, default: u64) -> u64 {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs `sql` (the last statement an INSERT) and returns rows read per second.
async fn run(settings: &str, sql: &str) -> (u64, f64) {
    let ctx = StreamContext::new();
    ctx.sql(settings).await.expect("settings");
    let started = Instant::now();
    let result = ctx.sql(sql).await.expect("plan").run().await.expect("run");
    let seconds = started.elapsed().as_secs_f64();
    (result.rows.read, result.rows.read as f64 / seconds)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rows = arg(&args, "--rows", 1_000_000);
    let partitions = arg(&args, "--partitions", 2);
    let parallelism = arg(&args, "--parallelism", 1);
    let brokers =
        std::env::var("WATERSHED_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let topic = format!("bench-payments-{nanos}");
    let dir = std::env::temp_dir().join(format!("watershed-kafka-bench-{nanos}"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(usize::try_from(parallelism).unwrap_or(1).max(1))
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let status = std::process::Command::new("tansu")
            .args(["topic", "create", &topic, "--partitions", &partitions.to_string()])
            .args(["--broker", &format!("tcp://{brokers}")])
            .status();
        if !status.is_ok_and(|s| s.success()) {
            eprintln!("could not create topic {topic} with `tansu topic create`: is tansu installed and running at {brokers}?");
            return;
        }
        let settings = format!("SET 'parallelism.default' = '{parallelism}';");
        let generator = format!(
            "CREATE TABLE generated ({COLUMNS}) WITH ('connector' = 'payments',
               'number-of-rows' = '{rows}', 'cards' = '50000', 'seed' = '7');"
        );
        let kafka = |extra: &str| {
            format!(
                "CREATE TABLE payments ({COLUMNS},
                   WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND)
                 WITH ('connector' = 'kafka', 'topic' = '{topic}',
                       'properties.bootstrap.servers' = '{brokers}', 'format' = 'csv'{extra});"
            )
        };
        let file = format!(
            "CREATE TABLE payments ({COLUMNS},
               WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND)
             WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');",
            dir.display()
        );
        let window = "CREATE TABLE out (window_start TIMESTAMP(3), window_end TIMESTAMP(3),
                        card_id BIGINT, txns BIGINT, total DECIMAL(38, 2))
                      WITH ('connector' = 'blackhole');
                      INSERT INTO out
                      SELECT window_start, window_end, card_id, COUNT(*), SUM(amount)
                      FROM TABLE(TUMBLE(TABLE payments, DESCRIPTOR(event_time),
                                        INTERVAL '1' MINUTES))
                      GROUP BY window_start, window_end, card_id;";

        println!(
            "{rows} generated payments, {partitions} partitions, parallelism {parallelism}, \
             broker {brokers}:"
        );
        let (_, rate) = run(
            &settings,
            &format!(
                "{generator}{} INSERT INTO payments SELECT * FROM generated;",
                kafka(", 'sink.partitioner' = 'round-robin'")
            ),
        )
        .await;
        println!("  generator -> kafka sink (at-least-once): {:>10.0} rows/s", rate);
        let (_, rate) = run(
            &settings,
            &format!("{generator}{file} INSERT INTO payments SELECT * FROM generated;"),
        )
        .await;
        println!("  generator -> csv files:                  {:>10.0} rows/s", rate);
        let (read, rate) = run(
            &settings,
            &format!("{}{window}", kafka(", 'scan.bounded.mode' = 'latest-offset'")),
        )
        .await;
        println!("  kafka topic -> TUMBLE 1 min per card:    {:>10.0} rows/s ({read} rows)", rate);
        let (read, rate) = run(&settings, &format!("{file}{window}")).await;
        println!("  csv files -> TUMBLE 1 min per card:      {:>10.0} rows/s ({read} rows)", rate);
    });
    let _ = std::fs::remove_dir_all(&dir);
}
