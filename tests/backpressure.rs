//! Backpressure: when the sink stops taking rows, the source stops reading
//! after the bounded channels between the tasks fill up, instead of piling the
//! stream up in memory; when the sink resumes, every row arrives.
//! (`cargo bench --bench nexmark -- --slow-sink RATE` measures the RSS.)

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use tokio::sync::Semaphore;
use watershed::StreamContext;
use watershed::engine::EngineError;
use watershed::engine::metrics::NodeRole;
use watershed::engine::sink::{Sink, SinkFactory};
use watershed::engine::source::Split;

const ROWS: u64 = 1_000_000;
const BATCH_SIZE: u64 = 1_000;

/// A sink that takes one batch per permit of `gate`.
#[derive(Clone)]
struct GatedSink {
    gate: Arc<Semaphore>,
    rows: Arc<AtomicU64>,
}

impl SinkFactory for GatedSink {
    fn explain(&self) -> Vec<String> {
        vec!["gated sink".into()]
    }

    fn create(&self, _split: Split) -> Result<Box<dyn Sink>, EngineError> {
        Ok(Box::new(self.clone()))
    }
}

#[async_trait]
impl Sink for GatedSink {
    async fn write_batch(&mut self, batch: RecordBatch) -> Result<(), EngineError> {
        if let Ok(permit) = self.gate.acquire().await {
            permit.forget();
        }
        self.rows
            .fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
        Ok(())
    }

    async fn finish(&mut self) -> Result<(), EngineError> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_sink_stops_the_source_and_loses_nothing() {
    let ctx = StreamContext::new();
    ctx.sql(&format!(
        "SET 'execution.batch-size' = '{BATCH_SIZE}';
         CREATE TABLE payments (txn_id BIGINT, event_time TIMESTAMP(3), card_id BIGINT,
           amount DECIMAL(18, 2), status STRING,
           WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND)
         WITH ('connector' = 'payments', 'number-of-rows' = '{ROWS}', 'seed' = '3');"
    ))
    .await
    .unwrap();
    let frame = ctx
        .sql("SELECT txn_id, card_id, amount * 2 AS doubled FROM payments WHERE status <> ''")
        .await
        .unwrap();
    let sink = GatedSink {
        gate: Arc::new(Semaphore::new(0)),
        rows: Arc::default(),
    };
    let handle = frame.start_with_sink(Some(Arc::new(sink.clone()))).unwrap();
    let read = || {
        handle
            .metrics()
            .nodes
            .iter()
            .filter(|(_, role, _)| *role == NodeRole::Source)
            .map(|(_, _, m)| m.rows_out.load(Ordering::Relaxed))
            .sum::<u64>()
    };

    // Wait until the source stops reading (or has read everything).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = u64::MAX;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = read();
        if now == last || now >= ROWS {
            break;
        }
        last = now;
    }
    let stalled_at = read();
    // Each channel holds at most 16 batches; a handful of tasks sit between
    // the source and the sink, each holding a batch or two in flight.
    let bound = 200 * BATCH_SIZE;
    assert!(
        stalled_at > 0 && stalled_at <= bound,
        "with the sink stalled the source read {stalled_at} of {ROWS} rows (bound {bound})"
    );
    assert_eq!(sink.rows.load(Ordering::Relaxed), 0);

    sink.gate.add_permits(Semaphore::MAX_PERMITS / 2);
    let result = handle.wait().await.unwrap();
    assert_eq!(sink.rows.load(Ordering::Relaxed), ROWS);
    assert_eq!(result.rows.read, ROWS);
    assert_eq!(result.rows.written, ROWS);
}
