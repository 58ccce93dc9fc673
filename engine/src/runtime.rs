//! The runtime: turns a [`JobGraph`] into tokio tasks.
//!
//! One task runs a source and the operators chained to it over forward edges; the
//! sink runs in its own task behind a bounded channel, so a slow sink slows the
//! source instead of growing memory. Errors and panics in any task stop the job
//! and are reported with the node that failed.

use std::sync::Arc;

use futures::FutureExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::error::{EngineError, Result};
use crate::graph::{JobGraph, NodeId, NodeKind};
use crate::message::Message;
use crate::metrics::{JobMetrics, NodeMetrics, RowSummary};
use crate::operator::{Operator, Output};
use crate::source::{Source, SourceContext};

/// Knobs of the runtime.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Preferred rows per batch at sources.
    pub batch_size: usize,
    /// Capacity, in messages, of the channel in front of each sink.
    pub channel_capacity: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            batch_size: 8192,
            channel_capacity: 16,
        }
    }
}

/// A running job.
pub struct JobHandle {
    name: String,
    metrics: JobMetrics,
    tasks: Vec<(String, JoinHandle<Result<()>>)>,
}

/// What a finished job reports.
#[derive(Debug, Clone)]
pub struct JobResult {
    /// The job's name.
    pub name: String,
    /// Final row accounting.
    pub rows: RowSummary,
    /// Final per-node counters.
    pub metrics: JobMetrics,
}

impl JobHandle {
    /// The job's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Live counters, readable while the job runs.
    pub fn metrics(&self) -> &JobMetrics {
        &self.metrics
    }

    /// Stops every task of the job.
    pub fn cancel(&self) {
        for (_, task) in &self.tasks {
            task.abort();
        }
    }

    /// Waits for the job to finish. The first real failure wins over the echoes
    /// it causes in other tasks (closed channels).
    pub async fn wait(self) -> Result<JobResult> {
        let mut first_error: Option<EngineError> = None;
        for (task_name, task) in self.tasks {
            let outcome = match task.await {
                Ok(r) => r,
                Err(e) if e.is_cancelled() => Err(EngineError::Cancelled),
                Err(e) => Err(EngineError::TaskPanicked {
                    task: task_name,
                    message: e.to_string(),
                }),
            };
            if let Err(e) = outcome {
                let replace = match &first_error {
                    None => true,
                    Some(prev) => prev.is_secondary() && !e.is_secondary(),
                };
                if replace {
                    first_error = Some(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(JobResult {
                name: self.name,
                rows: self.metrics.summary(),
                metrics: self.metrics,
            }),
        }
    }
}

/// Starts a job on the current tokio runtime.
pub fn spawn_job(graph: &JobGraph, config: &RuntimeConfig) -> Result<JobHandle> {
    let order = graph.pipeline()?;
    let node_metrics: Vec<Arc<NodeMetrics>> = graph
        .nodes
        .iter()
        .map(|_| Arc::new(NodeMetrics::default()))
        .collect();
    let metrics = JobMetrics {
        nodes: order
            .iter()
            .map(|&id| {
                let node = &graph.nodes[id];
                (node.name.clone(), node.role(), node_metrics[id].clone())
            })
            .collect(),
    };

    let (source_id, rest) = order
        .split_first()
        .ok_or_else(|| EngineError::InvalidGraph("empty pipeline".into()))?;
    let (sink_id, operator_ids) = rest
        .split_last()
        .ok_or_else(|| EngineError::InvalidGraph("a pipeline needs a sink".into()))?;

    let NodeKind::Source(source_factory) = &graph.nodes[*source_id].kind else {
        return Err(EngineError::InvalidGraph(
            "a pipeline must start with a source".into(),
        ));
    };
    let NodeKind::Sink(sink_factory) = &graph.nodes[*sink_id].kind else {
        return Err(EngineError::InvalidGraph(
            "a pipeline must end with a sink".into(),
        ));
    };
    let source = source_factory.create()?;
    let chain = Chain::create(graph, operator_ids, &node_metrics)?;
    let mut sink = sink_factory.create()?;
    let source_name = graph.nodes[*source_id].name.clone();
    let sink_name = graph.nodes[*sink_id].name.clone();
    let ctx = SourceContext {
        metrics: node_metrics[*source_id].clone(),
        batch_size: config.batch_size.max(1),
    };
    let sink_metrics = node_metrics[*sink_id].clone();

    let (tx, mut rx) = mpsc::channel::<Message>(config.channel_capacity.max(1));
    let source_task = {
        let name = source_name.clone();
        let fut = run_source(source, chain, ctx, tx, name.clone());
        tokio::spawn(catch_panics(name, fut))
    };
    let sink_task = {
        let name = sink_name.clone();
        let fut = async move {
            while let Some(message) = rx.recv().await {
                match message {
                    Message::Batch(batch) => {
                        NodeMetrics::add(&sink_metrics.rows_in, batch.num_rows());
                        sink.write_batch(batch)
                            .await
                            .map_err(|e| e.in_node(&name))?;
                    }
                    Message::Watermark(wm) => sink_metrics.set_watermark(wm),
                    Message::Barrier(_) => {}
                    Message::End => {
                        sink.finish().await.map_err(|e| e.in_node(&name))?;
                        return Ok(());
                    }
                }
            }
            // The upstream task stopped without End: it failed and reports why.
            Err(EngineError::ChannelClosed)
        };
        tokio::spawn(catch_panics(sink_name.clone(), fut))
    };
    Ok(JobHandle {
        name: graph.name.clone(),
        metrics,
        tasks: vec![(source_name, source_task), (sink_name, sink_task)],
    })
}

async fn catch_panics(
    task: String,
    fut: impl std::future::Future<Output = Result<()>> + Send,
) -> Result<()> {
    match std::panic::AssertUnwindSafe(fut).catch_unwind().await {
        Ok(r) => r,
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".to_string());
            Err(EngineError::TaskPanicked { task, message })
        }
    }
}

async fn run_source(
    mut source: Box<dyn Source>,
    mut chain: Chain,
    ctx: SourceContext,
    tx: mpsc::Sender<Message>,
    name: String,
) -> Result<()> {
    let mut pending = Vec::new();
    loop {
        let next = source
            .next_batch(&ctx)
            .await
            .map_err(|e| e.in_node(&name))?;
        let message = match next {
            Some(batch) => {
                NodeMetrics::add(&ctx.metrics.rows_out, batch.num_rows());
                Message::Batch(batch)
            }
            None => Message::End,
        };
        let end = matches!(message, Message::End);
        chain.push(message, &mut pending)?;
        for m in pending.drain(..) {
            tx.send(m).await.map_err(|_| EngineError::ChannelClosed)?;
        }
        if end {
            return Ok(());
        }
    }
}

/// Operators chained in one task.
struct Chain {
    operators: Vec<(Box<dyn Operator>, Arc<NodeMetrics>, String)>,
}

impl Chain {
    fn create(graph: &JobGraph, ids: &[NodeId], metrics: &[Arc<NodeMetrics>]) -> Result<Self> {
        let operators = ids
            .iter()
            .map(|&id| {
                let node = &graph.nodes[id];
                let NodeKind::Operator(factory) = &node.kind else {
                    return Err(EngineError::InvalidGraph(format!(
                        "{} cannot sit inside a pipeline",
                        node.name
                    )));
                };
                Ok((factory.create()?, metrics[id].clone(), node.name.clone()))
            })
            .collect::<Result<_>>()?;
        Ok(Chain { operators })
    }

    /// Runs one message through every operator, appending what comes out of the
    /// last one to `out`.
    fn push(&mut self, message: Message, out: &mut Vec<Message>) -> Result<()> {
        let mut current = vec![message];
        for (op, metrics, name) in &mut self.operators {
            let mut next = Vec::with_capacity(current.len());
            for message in current.drain(..) {
                let mut output = Output::new(&mut next, metrics);
                let result = match message {
                    Message::Batch(batch) => {
                        NodeMetrics::add(&metrics.rows_in, batch.num_rows());
                        op.on_batch(batch, &mut output)
                    }
                    Message::Watermark(wm) => op.on_watermark(wm, &mut output),
                    Message::Barrier(id) => {
                        next.push(Message::Barrier(id));
                        Ok(())
                    }
                    Message::End => {
                        let r = op.on_end(&mut output);
                        next.push(Message::End);
                        r
                    }
                };
                result.map_err(|e| e.in_node(name))?;
            }
            current = next;
        }
        out.append(&mut current);
        Ok(())
    }
}
