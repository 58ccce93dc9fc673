//! `StreamFrame`: what a SQL statement turned into, ready to run or inspect.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use futures::Stream;
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::mpsc;
use watershed_connectors::memory::ChannelSinkFactory;
use watershed_engine::EngineError;
use watershed_engine::graph::{JobGraph, NodeKind};
use watershed_engine::runtime::{JobHandle, JobResult, RuntimeConfig, spawn_job};
use watershed_engine::sink::{Sink, SinkFactory};

use crate::error::{Result, WatershedError};

/// The planned form of one statement.
pub struct StreamFrame {
    kind: FrameKind,
}

enum FrameKind {
    Done(String),
    Explain(String),
    Insert {
        graph: JobGraph,
        config: RuntimeConfig,
    },
    Select {
        graph: JobGraph,
        schema: SchemaRef,
        config: RuntimeConfig,
    },
}

impl StreamFrame {
    pub(crate) fn done(message: impl Into<String>) -> Self {
        StreamFrame {
            kind: FrameKind::Done(message.into()),
        }
    }

    pub(crate) fn explain(text: String) -> Self {
        StreamFrame {
            kind: FrameKind::Explain(text),
        }
    }

    pub(crate) fn insert(graph: JobGraph, config: RuntimeConfig) -> Self {
        StreamFrame {
            kind: FrameKind::Insert { graph, config },
        }
    }

    pub(crate) fn select(graph: JobGraph, schema: SchemaRef, config: RuntimeConfig) -> Self {
        StreamFrame {
            kind: FrameKind::Select {
                graph,
                schema,
                config,
            },
        }
    }

    /// The same job with the context's current runtime settings (e.g. after a
    /// checkpoint to restore was chosen).
    pub fn replanned(self, ctx: &crate::StreamContext) -> Result<Self> {
        let fresh = ctx.runtime_config()?;
        Ok(StreamFrame {
            kind: match self.kind {
                FrameKind::Insert { graph, .. } => FrameKind::Insert {
                    graph,
                    config: fresh,
                },
                FrameKind::Select { graph, schema, .. } => FrameKind::Select {
                    graph,
                    schema,
                    config: fresh,
                },
                other => other,
            },
        })
    }

    /// The job graph of a query or `INSERT`.
    pub fn graph(&self) -> Option<&JobGraph> {
        match &self.kind {
            FrameKind::Insert { graph, .. } | FrameKind::Select { graph, .. } => Some(graph),
            _ => None,
        }
    }

    /// The EXPLAIN text of an `EXPLAIN` statement, or of a query's job graph.
    pub fn plan_text(&self) -> Option<String> {
        match &self.kind {
            FrameKind::Explain(text) => Some(text.clone()),
            _ => self.graph().map(|g| g.to_string()),
        }
    }

    /// What a DDL or `SET` statement did, e.g. `created table payments`.
    pub fn message(&self) -> Option<&str> {
        match &self.kind {
            FrameKind::Done(m) => Some(m),
            _ => None,
        }
    }

    /// The schema of a query's results.
    pub fn schema(&self) -> Option<SchemaRef> {
        match &self.kind {
            FrameKind::Select { schema, .. } => Some(schema.clone()),
            _ => None,
        }
    }

    /// True for a bare `SELECT`, whose results go to the caller.
    pub fn is_query(&self) -> bool {
        matches!(self.kind, FrameKind::Select { .. })
    }

    /// Starts an `INSERT INTO` job, or a query whose results go to `sink`.
    pub fn start_with_sink(self, sink: Option<Arc<dyn SinkFactory>>) -> Result<JobHandle> {
        match self.kind {
            FrameKind::Insert { graph, config } => Ok(spawn_job(&graph, &config)?),
            FrameKind::Select {
                mut graph, config, ..
            } => {
                let sink = sink.ok_or_else(|| {
                    WatershedError::Usage(
                        "a query's results need a consumer: use execute_stream() or collect()"
                            .into(),
                    )
                })?;
                replace_sink(&mut graph, sink)?;
                Ok(spawn_job(&graph, &config)?)
            }
            _ => Err(WatershedError::Usage(
                "only a query or an INSERT INTO statement starts a job".into(),
            )),
        }
    }

    /// Runs an `INSERT INTO` job to its end (bounded sources) and reports its counts.
    pub async fn run(self) -> Result<JobResult> {
        Ok(self.start_with_sink(None)?.wait().await?)
    }

    /// Runs a query and streams its result batches as they are emitted. A job
    /// failure arrives as the stream's last item.
    pub fn execute_stream(self) -> Result<ResultStream> {
        let (tx, rx) = mpsc::channel::<RecordBatch>(16);
        let handle = self.start_with_sink(Some(Arc::new(ChannelSinkFactory::new(tx))))?;
        let stream = futures::stream::unfold((rx, Some(handle)), |(mut rx, handle)| async move {
            if let Some(batch) = rx.recv().await {
                return Some((Ok(batch), (rx, handle)));
            }
            let handle = handle?;
            match handle.wait().await {
                Ok(_) => None,
                Err(e) => Some((Err(WatershedError::from(e)), (rx, None))),
            }
        });
        Ok(ResultStream {
            inner: stream.boxed(),
        })
    }

    /// Runs a query to its end and returns all result batches.
    pub async fn collect(self) -> Result<Vec<RecordBatch>> {
        let mut stream = self.execute_stream()?;
        let mut batches = Vec::new();
        while let Some(batch) = stream.next().await {
            batches.push(batch?);
        }
        Ok(batches)
    }
}

/// Result batches of a running query.
pub struct ResultStream {
    inner: BoxStream<'static, Result<RecordBatch>>,
}

impl Stream for ResultStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

fn replace_sink(graph: &mut JobGraph, sink: Arc<dyn SinkFactory>) -> Result<()> {
    let node = graph
        .nodes
        .iter_mut()
        .rev()
        .find(|n| matches!(n.kind, NodeKind::Sink(_)))
        .ok_or_else(|| WatershedError::Usage("the query plan has no result sink".into()))?;
    node.kind = NodeKind::Sink(sink);
    Ok(())
}

/// The sink of a query until its consumer is known.
pub(crate) struct ClientSink;

impl SinkFactory for ClientSink {
    fn accepts_changelog(&self) -> bool {
        true
    }

    fn explain(&self) -> Vec<String> {
        vec!["results to the client".to_string()]
    }

    fn create(
        &self,
        _split: watershed_engine::source::Split,
    ) -> watershed_engine::Result<Box<dyn Sink>> {
        Err(EngineError::Config(
            "the query's results have no consumer".into(),
        ))
    }
}
