//! A sink that sends result batches into a bounded `tokio::sync::mpsc` channel,
//! for the embedded API's result streams.
//!
//! Sending awaits free capacity, so a slow consumer slows the job down
//! (backpressure) instead of growing memory. If the receiver has been dropped,
//! the consumer stopped listening: the sink keeps accepting batches and discards
//! them, so the job still completes and its metrics stay meaningful, rather than
//! failing a job nobody watches.
//!
//! The factory keeps the sender only while sinks it created are open: when the
//! last open sink finishes, or is dropped without finishing (a failed or
//! cancelled job), the factory drops its copy and the receiver sees the end of
//! the stream. A consumer tells success from failure by the job's result. Sinks
//! created after that discard their input.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use datafusion::arrow::record_batch::RecordBatch;
use tokio::sync::mpsc::Sender;
use watershed_engine::EngineError;
use watershed_engine::sink::{Sink, SinkFactory};
use watershed_engine::source::Split;

use super::IDENTIFIER;
use crate::options::CONNECTOR;

/// State shared by the factory and its sinks.
#[derive(Debug)]
struct Shared {
    sender: Mutex<Option<Sender<RecordBatch>>>,
    open_sinks: AtomicUsize,
}

impl Shared {
    fn sender(&self) -> MutexGuard<'_, Option<Sender<RecordBatch>>> {
        self.sender
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Builds sinks that send into one channel.
#[derive(Debug, Clone)]
pub struct ChannelSinkFactory {
    shared: Arc<Shared>,
}

impl ChannelSinkFactory {
    /// Sinks sending into `sender`'s channel.
    pub fn new(sender: Sender<RecordBatch>) -> Self {
        ChannelSinkFactory {
            shared: Arc::new(Shared {
                sender: Mutex::new(Some(sender)),
                open_sinks: AtomicUsize::new(0),
            }),
        }
    }
}

impl SinkFactory for ChannelSinkFactory {
    fn accepts_changelog(&self) -> bool {
        true
    }

    fn explain(&self) -> Vec<String> {
        vec![
            format!("{CONNECTOR}={IDENTIFIER}"),
            "sink=channel".to_string(),
        ]
    }

    /// Every instance sends into the same channel, so the split is ignored; the
    /// channel closes when the last open instance finishes or is dropped.
    fn create(&self, _split: Split) -> Result<Box<dyn Sink>, EngineError> {
        let sender = self.shared.sender().clone();
        self.shared.open_sinks.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(ChannelSink {
            sender,
            shared: self.shared.clone(),
            finished: false,
        }))
    }
}

struct ChannelSink {
    /// `None` once the receiver is gone (or the channel was already closed).
    sender: Option<Sender<RecordBatch>>,
    shared: Arc<Shared>,
    finished: bool,
}

#[async_trait]
impl Sink for ChannelSink {
    async fn write_batch(&mut self, batch: RecordBatch) -> Result<(), EngineError> {
        if let Some(sender) = &self.sender
            && sender.send(batch).await.is_err()
        {
            tracing::debug!("result receiver dropped; discarding further batches");
            self.sender = None;
        }
        Ok(())
    }

    async fn finish(&mut self) -> Result<(), EngineError> {
        self.close();
        Ok(())
    }
}

impl ChannelSink {
    /// Releases this sink's sender; the last open sink also closes the channel.
    fn close(&mut self) {
        if !self.finished {
            self.finished = true;
            self.sender = None;
            if self.shared.open_sinks.fetch_sub(1, Ordering::SeqCst) == 1 {
                self.shared.sender().take();
            }
        }
    }
}

impl Drop for ChannelSink {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{ArrayRef, Int64Array};
    use tokio::sync::mpsc;

    fn batch(n: i64) -> RecordBatch {
        let a: ArrayRef = Arc::new(Int64Array::from_iter_values(0..n));
        RecordBatch::try_from_iter([("a", a)]).unwrap()
    }

    #[tokio::test]
    async fn sends_with_backpressure_and_closes_after_finish() {
        let (tx, mut rx) = mpsc::channel(1);
        let factory = ChannelSinkFactory::new(tx);
        let mut a = factory.create(Split::SINGLE).unwrap();
        let mut b = factory.create(Split::SINGLE).unwrap();
        a.write_batch(batch(1)).await.unwrap();
        // The channel is full: the next send waits until the consumer reads.
        let pending = tokio::time::timeout(
            std::time::Duration::from_millis(20),
            b.write_batch(batch(2)),
        )
        .await;
        assert!(pending.is_err());
        assert_eq!(rx.recv().await.unwrap().num_rows(), 1);
        b.write_batch(batch(3)).await.unwrap();
        a.finish().await.unwrap();
        b.finish().await.unwrap();
        assert_eq!(rx.recv().await.unwrap().num_rows(), 3);
        assert!(rx.recv().await.is_none());
    }

    #[tokio::test]
    async fn a_sink_dropped_without_finishing_closes_the_channel() {
        let (tx, mut rx) = mpsc::channel(4);
        let factory = ChannelSinkFactory::new(tx);
        let mut sink = factory.create(Split::SINGLE).unwrap();
        sink.write_batch(batch(2)).await.unwrap();
        drop(sink);
        assert_eq!(rx.recv().await.unwrap().num_rows(), 2);
        assert!(rx.recv().await.is_none());
    }

    #[tokio::test]
    async fn a_dropped_receiver_discards_quietly() {
        let (tx, rx) = mpsc::channel(1);
        drop(rx);
        let factory = ChannelSinkFactory::new(tx);
        let mut sink = factory.create(Split::SINGLE).unwrap();
        sink.write_batch(batch(1)).await.unwrap();
        sink.write_batch(batch(1)).await.unwrap();
        sink.finish().await.unwrap();
    }
}
