//! An unbounded source fed live through a channel by the embedding program.
//!
//! One reader takes the receiver (the first split created); with parallelism
//! above one the other splits have no data of their own and stay open until the
//! channel closes, like idle partitions of a queue. They therefore hold the
//! watermark back unless the table sets `'scan.watermark.idle-timeout'`.
//! The stream ends when every sender is dropped. A stream can be read by one
//! job only.

use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use tokio::sync::{mpsc, watch};
use watershed_engine::EngineError;
use watershed_engine::source::{Source, SourceContext, SourceFactory, Split};

use super::IDENTIFIER;
use super::source::conform;
use crate::options::CONNECTOR;

/// Builds the readers of a live in-memory stream.
#[derive(Debug)]
pub struct StreamSourceFactory {
    name: String,
    schema: SchemaRef,
    receiver: Mutex<Option<mpsc::Receiver<RecordBatch>>>,
    closed: watch::Sender<bool>,
}

impl StreamSourceFactory {
    /// A source named `name` (for messages) reading `receiver`; every batch
    /// sent must have `schema`'s column names and types.
    pub fn new(
        name: impl Into<String>,
        schema: SchemaRef,
        receiver: mpsc::Receiver<RecordBatch>,
    ) -> Self {
        StreamSourceFactory {
            name: name.into(),
            schema,
            receiver: Mutex::new(Some(receiver)),
            closed: watch::Sender::new(false),
        }
    }
}

impl SourceFactory for StreamSourceFactory {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn explain(&self) -> Vec<String> {
        vec![format!("{CONNECTOR}={IDENTIFIER}"), "stream".into()]
    }

    fn is_bounded(&self) -> bool {
        false
    }

    /// The first split created reads the channel; the others wait for it to
    /// close. Fails when a job already took the channel.
    fn create(&self, split: Split) -> Result<Box<dyn Source>, EngineError> {
        if split.index > 0 {
            return Ok(Box::new(StreamSource::Waiting(self.closed.subscribe())));
        }
        let receiver = self
            .receiver
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .ok_or_else(|| {
                EngineError::Config(format!(
                    "table '{}': the stream was already read by a job; register a new one",
                    self.name
                ))
            })?;
        Ok(Box::new(StreamSource::Reading {
            name: self.name.clone(),
            schema: self.schema.clone(),
            receiver,
            closed: self.closed.clone(),
            current: None,
        }))
    }
}

/// A reader of the stream, or a split without data waiting for its end.
enum StreamSource {
    Reading {
        name: String,
        schema: SchemaRef,
        receiver: mpsc::Receiver<RecordBatch>,
        closed: watch::Sender<bool>,
        /// The batch being handed out in slices, and the offset reached.
        current: Option<(RecordBatch, usize)>,
    },
    Waiting(watch::Receiver<bool>),
}

#[async_trait]
impl Source for StreamSource {
    async fn next_batch(
        &mut self,
        ctx: &SourceContext,
    ) -> Result<Option<RecordBatch>, EngineError> {
        match self {
            StreamSource::Waiting(closed) => {
                // An error means the factory is gone: nothing more can come.
                let _ = closed.wait_for(|closed| *closed).await;
                Ok(None)
            }
            StreamSource::Reading {
                name,
                schema,
                receiver,
                closed,
                current,
            } => loop {
                if let Some((batch, offset)) = current.as_mut()
                    && *offset < batch.num_rows()
                {
                    let len = (batch.num_rows() - *offset).min(ctx.batch_size.max(1));
                    let slice = batch.slice(*offset, len);
                    *offset += len;
                    watershed_engine::metrics::NodeMetrics::add(&ctx.metrics.rows_in, len);
                    return Ok(Some(slice));
                }
                match receiver.recv().await {
                    Some(batch) => {
                        let batch = conform(schema, batch).map_err(|e| {
                            EngineError::Config(format!("stream table '{name}': {e}"))
                        })?;
                        *current = Some((batch, 0));
                    }
                    None => {
                        closed.send_replace(true);
                        return Ok(None);
                    }
                }
            },
        }
    }
}
