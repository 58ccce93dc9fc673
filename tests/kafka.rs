//! The Kafka connectors against a real Kafka-protocol broker (tansu, started
//! by `.ci/run`; `WATERSHED_KAFKA_BROKERS`, default `127.0.0.1:9092`). Without
//! a broker these tests are skipped with a message, except under CI, where its
//! absence fails them.
//!
//! Every test writes its own topics (unique names; topics are never deleted:
//! tansu 0.6 with sqlite deletes all topics at once).

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::binary::{
    assert_no_in_progress_files, committed_rows, latest_checkpoint_id, watershed,
};
use common::{assert_same_rows, batch_rows, payments, rows_as_text, stream_rows, tumble_oracle};
use datafusion::arrow::array::RecordBatch;
use rand::{Rng, SeedableRng};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use watershed::StreamContext;
use watershed::connectors::memory::CollectSinkFactory;

/// The broker's address, or `None` (with a message) when none listens.
fn brokers() -> Option<String> {
    let brokers =
        std::env::var("WATERSHED_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let reachable = brokers
        .split(',')
        .filter_map(|b| std::net::ToSocketAddrs::to_socket_addrs(b).ok())
        .flatten()
        .any(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok());
    if reachable {
        return Some(brokers);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "no Kafka broker at {brokers}: .ci/run starts tansu there"
    );
    eprintln!("\n*** SKIPPED: no Kafka broker at {brokers} (start tansu, see README) ***\n");
    None
}

/// A topic name no other test or run uses.
fn unique_topic(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{name}-{}-{nanos}", std::process::id())
}

async fn create_topic(brokers: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin client");
    let results = admin
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("create topic");
    for result in results {
        result.expect("topic created");
    }
}

/// Sends `values` to partition `partition` of `topic`, in order.
async fn produce(brokers: &str, topic: &str, partition: i32, values: &[&str]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("producer");
    for value in values {
        producer
            .send(
                FutureRecord::<(), str>::to(topic)
                    .payload(value)
                    .partition(partition),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .expect("delivered");
    }
}

/// The generated payments' columns, as a Kafka table over `topic`.
fn payments_table(name: &str, brokers: &str, topic: &str, extra: &str) -> String {
    format!(
        "CREATE TABLE {name} (
           txn_id BIGINT, event_time TIMESTAMP(3), card_id BIGINT, account_id BIGINT,
           merchant_id BIGINT, mcc STRING, country STRING, amount DECIMAL(18, 2),
           currency STRING, status STRING,
           WATERMARK FOR event_time AS event_time - INTERVAL '1' HOUR
         ) WITH ('connector' = 'kafka', 'topic' = '{topic}',
                 'properties.bootstrap.servers' = '{brokers}', 'format' = 'csv'{extra})"
    )
}

/// Writes generated payments into a new topic of 3 partitions through the
/// Kafka sink; returns the payments.
async fn payments_topic(brokers: &str, topic: &str, rows: usize) -> Vec<RecordBatch> {
    create_topic(brokers, topic, 3).await;
    let (schema, batches) = payments(rows, 21, 0.0);
    let ctx = common::stream_context(&schema, &batches);
    ctx.sql(&payments_table(
        "payments_topic",
        brokers,
        topic,
        ", 'sink.partitioner' = 'round-robin'",
    ))
    .await
    .unwrap();
    let result = ctx
        .sql("INSERT INTO payments_topic SELECT * FROM payments")
        .await
        .unwrap()
        .run()
        .await
        .unwrap();
    assert_eq!(result.rows.written as usize, rows);
    batches
}

/// A context with the collect sink `out` and `SET` statements `settings`.
async fn context(sink: &CollectSinkFactory, settings: &str) -> StreamContext {
    let ctx = StreamContext::new();
    ctx.connectors()
        .register_memory_sink("out", Arc::new(sink.clone()));
    if !settings.is_empty() {
        ctx.sql(settings).await.unwrap();
    }
    ctx
}

const WINDOW_OUT: &str = "CREATE TABLE out (window_start TIMESTAMP(3), window_end TIMESTAMP(3), \
    card_id BIGINT, txns BIGINT, total DECIMAL(38, 2)) WITH ('connector' = 'memory')";

const WINDOW_QUERY: &str = "INSERT INTO out
    SELECT window_start, window_end, card_id, COUNT(*), SUM(amount)
    FROM TABLE(TUMBLE(TABLE payments, DESCRIPTOR(event_time), INTERVAL '1' MINUTES))
    GROUP BY window_start, window_end, card_id";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_written_to_a_topic_read_back_whole_and_window_like_the_batch_query() {
    let Some(brokers) = brokers() else {
        return;
    };
    let topic = unique_topic("payments");
    let batches = payments_topic(&brokers, &topic, 20_000).await;
    let schema = batches[0].schema();

    // Every row, read back by two splits over three partitions.
    let sink = CollectSinkFactory::new();
    let ctx = context(&sink, "SET 'parallelism.default' = '2';").await;
    let bounded = ", 'scan.bounded.mode' = 'latest-offset'";
    ctx.sql(&payments_table("payments", &brokers, &topic, bounded))
        .await
        .unwrap();
    let read = stream_rows(&ctx, "SELECT * FROM payments").await;
    assert_same_rows("topic rows", &read, &rows_as_text(&batches));

    // A one-minute TUMBLE per card over the topic, against DataFusion's batch
    // answer over the same payments.
    ctx.sql(WINDOW_OUT).await.unwrap();
    ctx.sql(WINDOW_QUERY).await.unwrap().run().await.unwrap();
    let oracle = batch_rows(
        &schema,
        &batches,
        &format!(
            "SELECT window_start, window_end, card_id, COUNT(*), SUM(amount) FROM {} \
             GROUP BY window_start, window_end, card_id",
            tumble_oracle(60_000)
        ),
    )
    .await;
    assert_same_rows(
        "windows over the topic",
        &rows_as_text(&sink.batches()),
        &oracle,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_restored_from_its_checkpoint_reads_each_message_once() {
    let Some(brokers) = brokers() else {
        return;
    };
    let topic = unique_topic("restore");
    payments_topic(&brokers, &topic, 60_000).await;
    let table = payments_table(
        "payments",
        &brokers,
        &topic,
        ", 'scan.bounded.mode' = 'latest-offset'",
    );

    // The uninterrupted run.
    let expected_sink = CollectSinkFactory::new();
    let ctx = context(&expected_sink, "SET 'parallelism.default' = '2';").await;
    ctx.sql(&table).await.unwrap();
    ctx.sql(WINDOW_OUT).await.unwrap();
    ctx.sql(WINDOW_QUERY).await.unwrap().run().await.unwrap();
    let expected = rows_as_text(&expected_sink.batches());
    assert!(expected.len() > 1_000, "{} rows", expected.len());

    // Stopped after the first checkpoints, then restored from the latest.
    let dir = tempfile::tempdir().unwrap();
    let settings = checkpoint_settings(dir.path());
    let sink = CollectSinkFactory::new();
    let ctx = context(&sink, &settings).await;
    ctx.sql(&table).await.unwrap();
    ctx.sql(WINDOW_OUT).await.unwrap();
    stop_after_checkpoints(&ctx, WINDOW_QUERY, 2).await;

    // Messages written after the first start are past the end offsets it
    // took: the restored run keeps those ends and does not read them.
    let late_arrivals: Vec<String> = (0..50)
        .map(|i| {
            format!(
                "{},2024-01-01 00:00:30,{i},1,1,5411,US,10.00,USD,approved",
                900_000 + i
            )
        })
        .collect();
    let late_arrivals: Vec<&str> = late_arrivals.iter().map(String::as_str).collect();
    produce(&brokers, &topic, 0, &late_arrivals).await;

    let ctx = context(&sink, &settings).await;
    ctx.sql(&table).await.unwrap();
    ctx.sql(WINDOW_OUT).await.unwrap();
    assert!(ctx.restore_latest().await.unwrap().is_some());
    ctx.sql(WINDOW_QUERY).await.unwrap().run().await.unwrap();
    assert_same_rows("restored run", &rows_as_text(&sink.batches()), &expected);
}

/// Parallelism 2, small batches and a checkpoint every 10 ms into `dir`.
fn checkpoint_settings(dir: &Path) -> String {
    format!(
        "SET 'parallelism.default' = '2';
         SET 'execution.batch-size' = '200';
         SET 'execution.checkpointing.interval' = '10 ms';
         SET 'execution.checkpointing.dir' = 'file://{}';",
        dir.display()
    )
}

/// Starts `query` and cancels it once `checkpoints` checkpoints completed.
async fn stop_after_checkpoints(ctx: &StreamContext, query: &str, checkpoints: usize) {
    let job = ctx.sql(query).await.unwrap().start_with_sink(None).unwrap();
    let waited = tokio::time::timeout(Duration::from_secs(60), async {
        while job.checkpoints().len() < checkpoints {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "no checkpoints within a minute");
    job.cancel();
    assert!(job.wait().await.is_err(), "cancelled");
}

/// A table of `(id BIGINT, name STRING)` CSV messages on `topic`.
fn people_table(brokers: &str, topic: &str, extra: &str) -> String {
    format!(
        "CREATE TABLE people (id BIGINT, name STRING) WITH (
           'connector' = 'kafka', 'topic' = '{topic}',
           'properties.bootstrap.servers' = '{brokers}', 'format' = 'csv',
           'scan.bounded.mode' = 'latest-offset'{extra})"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_message_fails_naming_its_offset_or_is_skipped_and_counted() {
    let Some(brokers) = brokers() else {
        return;
    };
    let topic = unique_topic("malformed");
    create_topic(&brokers, &topic, 1).await;
    produce(&brokers, &topic, 0, &["1,ann", "oops,bob", "3,cy"]).await;

    let sink = CollectSinkFactory::new();
    let ctx = context(&sink, "").await;
    ctx.sql(&people_table(&brokers, &topic, "")).await.unwrap();
    let err = ctx
        .sql("SELECT * FROM people")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("topic '{topic}' partition 0 offset 1")),
        "{err}"
    );

    let ctx = context(&sink, "").await;
    ctx.sql(&people_table(
        &brokers,
        &topic,
        ", 'csv.ignore-parse-errors' = 'true'",
    ))
    .await
    .unwrap();
    ctx.sql("CREATE TABLE out (id BIGINT, name STRING) WITH ('connector' = 'memory')")
        .await
        .unwrap();
    let result = ctx
        .sql("INSERT INTO out SELECT * FROM people")
        .await
        .unwrap()
        .run()
        .await
        .unwrap();
    assert_eq!(rows_as_text(&sink.batches()), ["1 | ann", "3 | cy"]);
    assert_eq!(result.rows.rejected, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_and_bounded_offsets_pick_the_messages_read() {
    let Some(brokers) = brokers() else {
        return;
    };
    let topic = unique_topic("offsets");
    create_topic(&brokers, &topic, 1).await;
    let values: Vec<String> = (0..10).map(|i| format!("{i},p{i}")).collect();
    let values: Vec<&str> = values.iter().map(String::as_str).collect();
    produce(&brokers, &topic, 0, &values).await;

    let sink = CollectSinkFactory::new();
    let ctx = context(&sink, "").await;
    ctx.sql(&format!(
        "CREATE TABLE people (id BIGINT, name STRING) WITH (
           'connector' = 'kafka', 'topic' = '{topic}',
           'properties.bootstrap.servers' = '{brokers}', 'format' = 'csv',
           'scan.startup.mode' = 'specific-offsets',
           'scan.startup.specific-offsets' = 'partition:0,offset:4',
           'scan.bounded.mode' = 'specific-offsets',
           'scan.bounded.specific-offsets' = 'partition:0,offset:8')"
    ))
    .await
    .unwrap();
    let rows = stream_rows(&ctx, "SELECT id FROM people").await;
    assert_eq!(rows, ["4", "5", "6", "7"]);

    // latest-offset at the start of a bounded read: nothing.
    let ctx = context(&sink, "").await;
    ctx.sql(&people_table(
        &brokers,
        &topic,
        ", 'scan.startup.mode' = 'latest-offset'",
    ))
    .await
    .unwrap();
    let rows = stream_rows(&ctx, "SELECT id FROM people").await;
    assert!(rows.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_broker_fails_the_job_with_a_clear_error() {
    // No broker needed: nothing listens on port 1.
    let sink = CollectSinkFactory::new();
    let ctx = context(&sink, "").await;
    ctx.sql(&people_table(
        "127.0.0.1:1",
        "nowhere",
        ", 'watershed.kafka.request-timeout' = '2 s'",
    ))
    .await
    .unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(60), async {
        ctx.sql("SELECT * FROM people")
            .await
            .unwrap()
            .collect()
            .await
    })
    .await
    .expect("an error, not a hang");
    let err = outcome.unwrap_err().to_string();
    assert!(err.contains("127.0.0.1:1"), "{err}");
    assert!(err.contains("topic 'nowhere'"), "{err}");
}

/// A table `readings (id, event_time)` over `topic` (5 s watermark delay,
/// `extra` options) and the collect table `out (window_end, readings)`.
fn readings_tables(brokers: &str, topic: &str, extra: &str) -> String {
    format!(
        "CREATE TABLE readings (id BIGINT, event_time TIMESTAMP(3),
           WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND
         ) WITH ('connector' = 'kafka', 'topic' = '{topic}',
                 'properties.bootstrap.servers' = '{brokers}', 'format' = 'csv'{extra});
         CREATE TABLE out (window_end TIMESTAMP(3), readings BIGINT)
         WITH ('connector' = 'memory');"
    )
}

/// Readings per one-minute window into `out`.
const READINGS_PER_MINUTE: &str = "INSERT INTO out SELECT window_end, COUNT(*)
     FROM TABLE(TUMBLE(TABLE readings, DESCRIPTOR(event_time), INTERVAL '1' MINUTES))
     GROUP BY window_start, window_end";

/// Ten minutes of readings, one per second, all in partition 0 of a topic of
/// two partitions, read as a stream by `parallelism` splits: with two, split
/// 1 has no data; with one, the split's partition 1 has none.
async fn idle_partition_job(
    brokers: &str,
    idle_timeout: Option<&str>,
    wait: Duration,
    parallelism: usize,
) -> Vec<String> {
    let topic = unique_topic("idle");
    create_topic(brokers, &topic, 2).await;
    let values: Vec<String> = (0..600)
        .map(|s| format!("{s},2026-01-01 00:{:02}:{:02}", s / 60, s % 60))
        .collect();
    let values: Vec<&str> = values.iter().map(String::as_str).collect();
    produce(brokers, &topic, 0, &values).await;

    let sink = CollectSinkFactory::new();
    let ctx = context(
        &sink,
        &format!("SET 'parallelism.default' = '{parallelism}';"),
    )
    .await;
    let idle = idle_timeout
        .map(|t| format!(", 'scan.watermark.idle-timeout' = '{t}'"))
        .unwrap_or_default();
    ctx.sql(&readings_tables(brokers, &topic, &idle))
        .await
        .unwrap();
    let job = ctx
        .sql(READINGS_PER_MINUTE)
        .await
        .unwrap()
        .start_with_sink(None)
        .unwrap();
    // The nine windows that end before the last reading's watermark.
    let _ = tokio::time::timeout(wait, async {
        while sink
            .batches()
            .iter()
            .map(RecordBatch::num_rows)
            .sum::<usize>()
            < 9
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    job.cancel();
    let _ = job.wait().await;
    rows_as_text(&sink.batches())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_partition_holds_the_watermark_back_only_without_an_idle_timeout() {
    let Some(brokers) = brokers() else {
        return;
    };
    let expected: Vec<String> = (1..=9)
        .map(|m| format!("2026-01-01T00:{m:02}:00 | 60"))
        .collect();
    // An idle split (parallelism 2), or an idle partition of the one split.
    for parallelism in [2, 1] {
        let fired = idle_partition_job(
            &brokers,
            Some("300 ms"),
            Duration::from_secs(30),
            parallelism,
        )
        .await;
        assert_eq!(fired, expected, "parallelism {parallelism}");
        // Without the timeout the empty partition holds every window back
        // (as in Flink): nothing fires.
        let held = idle_partition_job(&brokers, None, Duration::from_secs(5), parallelism).await;
        assert!(held.is_empty(), "parallelism {parallelism}: {held:?}");
    }
}

/// Every message of `topic` as `(partition, key, value)`, in offset order
/// per partition (values as text; `None` for a tombstone).
fn read_topic(brokers: &str, topic: &str) -> Vec<(i32, Option<String>, Option<String>)> {
    use rdkafka::Message;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique_topic("reader"))
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let timeout = Duration::from_secs(10);
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .expect("metadata");
    let mut assignment = rdkafka::TopicPartitionList::new();
    let mut remaining = 0;
    let mut ends = std::collections::BTreeMap::new();
    for p in metadata.topics()[0].partitions() {
        let (_, high) = consumer
            .fetch_watermarks(topic, p.id(), timeout)
            .expect("watermarks");
        if high > 0 {
            assignment
                .add_partition_offset(topic, p.id(), rdkafka::Offset::Beginning)
                .unwrap();
            ends.insert(p.id(), high);
            remaining += 1;
        }
    }
    let mut messages = Vec::new();
    if remaining == 0 {
        return messages;
    }
    consumer.assign(&assignment).expect("assign");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while remaining > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "reading {topic} took over a minute"
        );
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message.expect("message");
        let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
        messages.push((
            message.partition(),
            text(message.key()),
            text(message.payload()),
        ));
        if message.offset() + 1 >= ends[&message.partition()] {
            remaining -= 1;
        }
    }
    messages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upsert_kafka_table_holds_the_running_result_keyed_by_its_primary_key() {
    let Some(brokers) = brokers() else {
        return;
    };
    let topic = unique_topic("payments-upsert");
    let batches = payments_topic(&brokers, &topic, 20_000).await;
    let balances = unique_topic("balances");
    create_topic(&brokers, &balances, 2).await;

    let sink = CollectSinkFactory::new();
    let ctx = context(&sink, "").await;
    ctx.sql(&payments_table(
        "payments",
        &brokers,
        &topic,
        ", 'scan.bounded.mode' = 'latest-offset'",
    ))
    .await
    .unwrap();
    ctx.sql(&format!(
        "CREATE TABLE balances (account_id BIGINT, txns BIGINT, total DECIMAL(38, 2),
           PRIMARY KEY (account_id) NOT ENFORCED
         ) WITH ('connector' = 'upsert-kafka', 'topic' = '{balances}',
                 'properties.bootstrap.servers' = '{brokers}',
                 'key.format' = 'csv', 'value.format' = 'csv')"
    ))
    .await
    .unwrap();
    ctx.sql(
        "INSERT INTO balances SELECT account_id, COUNT(*), SUM(amount) FROM payments \
         GROUP BY account_id",
    )
    .await
    .unwrap()
    .run()
    .await
    .unwrap();

    // Compacting the topic by key (the last value per key wins, a tombstone
    // deletes) gives the batch query's answer.
    let messages = read_topic(&brokers, &balances);
    let mut latest = std::collections::BTreeMap::new();
    for (_, key, value) in &messages {
        let key = key.clone().expect("every message has a key");
        match value {
            Some(value) => {
                assert!(value.starts_with(&format!("{key},")), "{key}: {value}");
                latest.insert(key, value.replace(',', " | "));
            }
            None => {
                latest.remove(&key);
            }
        }
    }
    assert!(
        messages.len() > latest.len(),
        "the running result is updated: {} messages for {} keys",
        messages.len(),
        latest.len()
    );
    let mut compacted: Vec<String> = latest.into_values().collect();
    compacted.sort();
    let oracle = batch_rows(
        &batches[0].schema(),
        &batches,
        "SELECT account_id, COUNT(*), SUM(amount) FROM payments GROUP BY account_id",
    )
    .await;
    assert_same_rows("compacted upsert topic", &compacted, &oracle);

    // A key's changes all go to one partition, so they stay in order.
    let mut partitions = std::collections::BTreeMap::new();
    for (partition, key, _) in &messages {
        assert_eq!(
            *partitions.entry(key.clone()).or_insert(*partition),
            *partition
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exactly_once_sink_restored_from_its_checkpoint_commits_each_row_once() {
    let Some(brokers) = brokers() else {
        return;
    };
    let topic = unique_topic("payments-eo");
    payments_topic(&brokers, &topic, 60_000).await;
    let input = payments_table(
        "payments",
        &brokers,
        &topic,
        ", 'scan.bounded.mode' = 'latest-offset'",
    );
    let windows = unique_topic("windows-eo");
    create_topic(&brokers, &windows, 2).await;
    create_topic(&brokers, &format!("{windows}-probe"), 2).await;
    let output = |name: &str| {
        format!(
            "CREATE TABLE {name} (window_start TIMESTAMP(3), window_end TIMESTAMP(3),
               card_id BIGINT, txns BIGINT, total DECIMAL(38, 2)
             ) WITH ('connector' = 'kafka', 'topic' = '{windows}',
                     'properties.bootstrap.servers' = '{brokers}', 'format' = 'csv',
                     'sink.delivery-guarantee' = 'exactly-once',
                     'sink.transactional-id-prefix' = '{windows}',
                     'scan.bounded.mode' = 'latest-offset')"
        )
    };
    let query = WINDOW_QUERY.replace("INSERT INTO out", "INSERT INTO windows");

    // The uninterrupted answer.
    let expected_sink = CollectSinkFactory::new();
    let ctx = context(&expected_sink, "SET 'parallelism.default' = '2';").await;
    ctx.sql(&input).await.unwrap();
    ctx.sql(WINDOW_OUT).await.unwrap();
    ctx.sql(WINDOW_QUERY).await.unwrap().run().await.unwrap();
    let expected = rows_as_text(&expected_sink.batches());

    // Without checkpoints there is nothing to commit transactions at.
    ctx.sql(&output("windows")).await.unwrap();
    let err = ctx
        .sql(&query)
        .await
        .unwrap()
        .run()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("execution.checkpointing.interval") && err.contains("'windows'"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let settings = checkpoint_settings(dir.path());
    let unused = CollectSinkFactory::new();

    // tansu 0.6 has no transactions (EndTxn): the job fails, saying so, on
    // its first commit. On a broker with transactions, the rest runs.
    let probe = tempfile::tempdir().unwrap();
    let ctx = context(
        &unused,
        &format!(
            "SET 'restart-strategy.type' = 'none';
             SET 'execution.checkpointing.interval' = '10 ms';
             SET 'execution.checkpointing.dir' = 'file://{}';",
            probe.path().display()
        ),
    )
    .await;
    ctx.sql(&input).await.unwrap();
    ctx.sql(&output("windows").replace(&windows, &format!("{windows}-probe")))
        .await
        .unwrap();
    if let Err(e) = ctx.sql(&query).await.unwrap().run().await {
        let err = e.to_string();
        assert!(
            err.contains("cannot commit a transaction") && err.contains("not supported by broker"),
            "{err}"
        );
        eprintln!(
            "\n*** NOT VERIFIED: exactly-once Kafka delivery; the broker at {brokers} has no \
             transactions ({err}) ***\n"
        );
        return;
    }

    let reader = CollectSinkFactory::new();
    let ctx = context(&reader, "").await;
    ctx.sql(&output("probe").replace(&windows, &format!("{windows}-probe")))
        .await
        .unwrap();
    let written = stream_rows(&ctx, "SELECT * FROM probe").await;
    assert_same_rows("committed windows, uninterrupted", &written, &expected);

    // Stopped after the first checkpoints, then restored from the latest.
    let ctx = context(&unused, &settings).await;
    ctx.sql(&input).await.unwrap();
    ctx.sql(&output("windows")).await.unwrap();
    stop_after_checkpoints(&ctx, &query, 3).await;
    let before_restore = read_topic(&brokers, &windows).len();
    assert!(
        before_restore < expected.len(),
        "the first run was stopped before its end ({before_restore} rows)"
    );

    let ctx = context(&unused, &settings).await;
    ctx.sql(&input).await.unwrap();
    ctx.sql(&output("windows")).await.unwrap();
    assert!(ctx.restore_latest().await.unwrap().is_some());
    ctx.sql(&query).await.unwrap().run().await.unwrap();

    // Read back through the engine: each window row once.
    let reader = CollectSinkFactory::new();
    let ctx = context(&reader, "").await;
    ctx.sql(&output("windows")).await.unwrap();
    let written = stream_rows(&ctx, "SELECT * FROM windows").await;
    assert_same_rows("committed windows", &written, &expected);
}

/// A topic of payments read by three splits (one per partition) through a
/// one-minute TUMBLE into the exactly-once file sink, checkpointing every
/// 200 ms, as a script for the `watershed` binary.
fn crash_script(brokers: &str, topic: &str, out: &Path, checkpoints: Option<&Path>) -> String {
    let settings = checkpoints.map_or_else(String::new, |dir| {
        format!(
            "SET 'execution.checkpointing.interval' = '200 ms';
             SET 'execution.checkpointing.dir' = 'file://{}';",
            dir.display()
        )
    });
    format!(
        "{settings}
         SET 'parallelism.default' = '3';
         {};
         CREATE TABLE result (window_start TIMESTAMP(3), window_end TIMESTAMP(3),
           card_id BIGINT, txns BIGINT, total DECIMAL(38, 2))
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
         {};",
        payments_table(
            "payments",
            brokers,
            topic,
            ", 'scan.bounded.mode' = 'latest-offset'"
        ),
        out.display(),
        WINDOW_QUERY.replace("INSERT INTO out", "INSERT INTO result"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_runs_over_a_topic_commit_the_uninterrupted_rows() {
    let Some(brokers) = brokers() else {
        return;
    };
    let topic = unique_topic("crash");
    payments_topic(&brokers, &topic, 300_000).await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();

    let expected_out = root.join("expected");
    let expected_script = root.join("expected.sql");
    std::fs::write(
        &expected_script,
        crash_script(&brokers, &topic, &expected_out, None),
    )
    .unwrap();
    let run = watershed(&expected_script, false).output().unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let expected = committed_rows(&expected_out);
    assert!(expected.len() > 1_000, "{} rows", expected.len());

    // Each attempt is killed at a random moment after it completed a
    // checkpoint of its own (so every attempt makes progress, however long
    // the broker takes to answer), then restored from the latest checkpoint.
    let out = root.join("out");
    let checkpoints = root.join("checkpoints");
    let script = root.join("job.sql");
    std::fs::write(
        &script,
        crash_script(&brokers, &topic, &out, Some(&checkpoints)),
    )
    .unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let mut kills = 0;
    let started = std::time::Instant::now();
    let finished = loop {
        let before = latest_checkpoint_id(&checkpoints);
        let mut child = watershed(&script, kills > 0).spawn().unwrap();
        let extra = Duration::from_millis(rng.random_range(0..400));
        let ended = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if latest_checkpoint_id(&checkpoints) > before {
                tokio::time::sleep(extra).await;
                break child.try_wait().unwrap();
            }
            assert!(
                started.elapsed() < Duration::from_secs(300),
                "no checkpoint completed within 5 minutes (after {kills} kills)"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        if let Some(status) = ended {
            let stderr = child.wait_with_output().unwrap().stderr;
            assert!(status.success(), "{}", String::from_utf8_lossy(&stderr));
            break false;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
        // Only whole committed parts are visible: each row is an expected one.
        let visible = committed_rows(&out);
        let unexpected: Vec<&String> = visible
            .iter()
            .filter(|r| expected.binary_search(r).is_err())
            .take(3)
            .collect();
        assert!(unexpected.is_empty(), "after kill {kills}: {unexpected:?}");
        if kills == 8 {
            break true;
        }
    };
    assert!(
        finished,
        "the job ended after {kills} kills, before the eighth"
    );
    let committed_before = committed_rows(&out).len();
    assert!(
        committed_before < expected.len(),
        "the kills interrupted the job ({committed_before} of {} rows committed)",
        expected.len()
    );
    let run = watershed(&script, true).output().unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let got = committed_rows(&out);
    assert_eq!(got.len(), expected.len(), "row count after {kills} kills");
    assert!(got == expected, "rows differ after {kills} kills");
    assert_no_in_progress_files(&out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_split_of_two_partitions_keeps_a_watermark_per_partition() {
    let Some(brokers) = brokers() else {
        return;
    };
    // The same ten minutes of readings, one per second, in each partition:
    // read by one split, a partition read ahead must not make the other's
    // rows late.
    let topic = unique_topic("two-partitions");
    create_topic(&brokers, &topic, 2).await;
    let values: Vec<String> = (0..600)
        .map(|s| format!("{s},2026-01-01 00:{:02}:{:02}", s / 60, s % 60))
        .collect();
    let values: Vec<&str> = values.iter().map(String::as_str).collect();
    produce(&brokers, &topic, 0, &values).await;
    produce(&brokers, &topic, 1, &values).await;

    let sink = CollectSinkFactory::new();
    let ctx = context(&sink, "SET 'parallelism.default' = '1';").await;
    ctx.sql(&readings_tables(
        &brokers,
        &topic,
        ", 'scan.bounded.mode' = 'latest-offset'",
    ))
    .await
    .unwrap();
    let result = ctx
        .sql(READINGS_PER_MINUTE)
        .await
        .unwrap()
        .run()
        .await
        .unwrap();
    assert_eq!(result.rows.late, 0, "no row is late");
    let expected: Vec<String> = (1..=10)
        .map(|m| format!("2026-01-01T00:{m:02}:00 | 120"))
        .collect();
    assert_eq!(rows_as_text(&sink.batches()), expected);
}
