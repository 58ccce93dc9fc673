//! The runtime: turns a [`JobGraph`] into tokio tasks.
//!
//! Nodes joined by forward edges of equal parallelism run chained in one task per
//! parallel instance; other edges cross bounded channels (forward, hash by key
//! group, broadcast), so a slow consumer slows its producers instead of growing
//! memory. Sinks run in tasks of their own. A failure or panic in any task stops
//! the whole job and is reported with the node that failed.

pub mod alignment;
pub mod checkpointing;
pub mod exchange;
pub mod restart;
pub mod split_pacer;
pub mod task;

use std::sync::Arc;

use futures::FutureExt;
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::checkpoint::RestoredState;
use crate::error::{EngineError, Result};
use crate::graph::{Edge, JobGraph, NodeId, NodeKind, Partitioning};
use crate::late_rows::{LateRowsSender, late_rows_channel, run_dead_letter_task};
use crate::metrics::{JobMetrics, NodeMetrics, RowSummary};
use crate::source::{SourceContext, Split};
use checkpointing::{
    CheckpointLog, CheckpointSettings, CheckpointStats, Coordinator, RestoredCheckpoint,
    SavepointRequest, TaskNode,
};
use exchange::{Envelope, OutputEdge, Routing};
use restart::{RestartEvent, RestartStrategy};
use split_pacer::SplitPacer;
use task::{Chain, SourceControl, run_operator_task, run_sink_task, run_source_task};

/// Knobs of the runtime.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Preferred rows per batch at sources.
    pub batch_size: usize,
    /// Capacity, in messages, of the channel in front of each sink.
    pub channel_capacity: usize,
    /// Periodic checkpoints, and the checkpoint to restore; `None` runs
    /// without checkpoints.
    pub checkpointing: Option<CheckpointSettings>,
    /// What happens after a failure inside the running job. Restarts need
    /// checkpoints (without them a restart would write rows twice): without
    /// checkpoints every strategy acts as `None`.
    pub restart: RestartStrategy,
    /// Told of every restart (the CLI prints it).
    pub on_restart: Option<RestartListener>,
}

/// A callback told of every restart of a job.
#[derive(Clone)]
pub struct RestartListener(pub Arc<dyn Fn(&RestartEvent) + Send + Sync>);

impl RestartListener {
    fn notify(&self, event: &RestartEvent) {
        (self.0)(event)
    }
}

impl std::fmt::Debug for RestartListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RestartListener")
    }
}

/// What a job needs to start again after a failure.
struct RestartPlan {
    graph: JobGraph,
    config: RuntimeConfig,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            batch_size: 8192,
            channel_capacity: 16,
            checkpointing: None,
            restart: RestartStrategy::None,
            on_restart: None,
        }
    }
}

/// A running job.
pub struct JobHandle {
    name: String,
    metrics: JobMetrics,
    tasks: Vec<(String, JoinHandle<Result<()>>)>,
    checkpoints: Option<Arc<CheckpointLog>>,
    restart: Option<RestartPlan>,
    savepoints: Option<mpsc::UnboundedSender<SavepointRequest>>,
}

/// Stops or savepoints a running job from elsewhere (e.g. a signal handler)
/// while another task waits for it.
#[derive(Clone)]
pub struct JobController {
    aborts: Vec<tokio::task::AbortHandle>,
    savepoints: Option<mpsc::UnboundedSender<SavepointRequest>>,
}

impl JobController {
    /// Stops every task of the job (its first attempt's, with restarts).
    pub fn cancel(&self) {
        self.aborts.iter().for_each(|a| a.abort());
    }

    /// Takes a savepoint: a checkpoint marked as such, started at once (or
    /// right after the one in flight), returned once it completed and every
    /// sink made its output visible.
    pub async fn savepoint(&self) -> Result<CheckpointStats> {
        let Some(savepoints) = &self.savepoints else {
            return Err(EngineError::Config(
                "the job runs without checkpoints: set 'execution.checkpointing.interval'".into(),
            ));
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        savepoints.send(tx).map_err(|_| EngineError::Cancelled)?;
        rx.await.map_err(|_| EngineError::Cancelled)?
    }
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
    /// The checkpoints the job completed, oldest first.
    pub checkpoints: Vec<CheckpointStats>,
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

    /// The live log of completed checkpoints, for readers that outlive a
    /// borrow of the handle (e.g. a progress reporter); `None` without checkpoints.
    pub fn checkpoint_log(&self) -> Option<Arc<CheckpointLog>> {
        self.checkpoints.clone()
    }

    /// The checkpoints completed so far, oldest first (empty without checkpoints).
    pub fn checkpoints(&self) -> Vec<CheckpointStats> {
        self.checkpoints
            .as_ref()
            .map(|log| log.completed())
            .unwrap_or_default()
    }

    /// A controller to cancel or savepoint the job while it is being waited for.
    pub fn controller(&self) -> JobController {
        JobController {
            aborts: self.tasks.iter().map(|(_, t)| t.abort_handle()).collect(),
            savepoints: self.savepoints.clone(),
        }
    }

    /// Stops every task of the job.
    pub fn cancel(&self) {
        for (_, task) in &self.tasks {
            task.abort();
        }
    }

    /// Waits for the job to finish. The first real failure stops every other task
    /// and wins over the echoes it causes in them (closed channels). With a
    /// restart strategy and checkpoints, a failed job restarts from its latest
    /// completed checkpoint until the strategy runs out.
    pub async fn wait(self) -> Result<JobResult> {
        let JobHandle {
            name,
            metrics,
            tasks,
            checkpoints,
            restart,
            savepoints: _,
        } = self;
        let mut attempt = (tasks, metrics, checkpoints);
        let mut earlier: Vec<CheckpointStats> = Vec::new();
        let mut restarts = 0;
        loop {
            let (tasks, metrics, checkpoints) = attempt;
            let log = checkpoints.clone();
            let error = match wait_tasks(name.clone(), tasks, metrics, checkpoints).await {
                Ok(mut result) => {
                    earlier.append(&mut result.checkpoints);
                    result.checkpoints = earlier;
                    return Ok(result);
                }
                Err(e) => e,
            };
            earlier.extend(log.map(|l| l.completed()).unwrap_or_default());
            let plan = match &restart {
                Some(plan) if !matches!(error, EngineError::Cancelled) => plan,
                _ => return Err(error),
            };
            restarts += 1;
            let Some(delay) = plan.config.restart.delay_before(restarts) else {
                return Err(if restarts > 1 {
                    EngineError::RestartsExhausted {
                        restarts: restarts - 1,
                        cause: Box::new(error),
                    }
                } else {
                    error
                });
            };
            let mut config = plan.config.clone();
            let checkpoint = match config.checkpointing.as_mut() {
                Some(settings) => {
                    let restored = match settings.backend.latest_completed().await? {
                        Some(manifest) => Some(Arc::new(
                            RestoredCheckpoint::load(settings.backend.as_ref(), manifest).await?,
                        )),
                        None => None,
                    };
                    let id = restored.as_ref().map(|r| r.manifest.checkpoint_id);
                    settings.restore = restored;
                    id
                }
                None => None,
            };
            if let Some(listener) = &plan.config.on_restart {
                listener.notify(&RestartEvent {
                    attempt: restarts,
                    attempts: plan.config.restart.attempts(),
                    cause: error.to_string(),
                    delay,
                    checkpoint,
                });
            }
            tokio::time::sleep(delay).await;
            let next = spawn_job(&plan.graph, &config)?;
            attempt = (next.tasks, next.metrics, next.checkpoints);
        }
    }
}

/// Waits for one attempt's tasks (see [`JobHandle::wait`]).
async fn wait_tasks(
    name: String,
    tasks: Vec<(String, JoinHandle<Result<()>>)>,
    metrics: JobMetrics,
    checkpoints: Option<Arc<CheckpointLog>>,
) -> Result<JobResult> {
    let aborts: Vec<_> = tasks.iter().map(|(_, t)| t.abort_handle()).collect();
    let mut running: FuturesUnordered<_> = tasks
        .into_iter()
        .map(|(name, task)| async move { (name, task.await) })
        .collect();
    let mut first_error: Option<EngineError> = None;
    while let Some((task_name, outcome)) = running.next().await {
        let outcome = match outcome {
            Ok(r) => r,
            Err(e) if e.is_cancelled() => Err(EngineError::Cancelled),
            Err(e) => Err(EngineError::TaskPanicked {
                task: task_name,
                message: e.to_string(),
            }),
        };
        if let Err(e) = outcome {
            if !e.is_secondary() && first_error.as_ref().is_none_or(|p| p.is_secondary()) {
                aborts.iter().for_each(|a| a.abort());
            }
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
            name,
            rows: metrics.summary(),
            metrics,
            checkpoints: checkpoints.map(|log| log.completed()).unwrap_or_default(),
        }),
    }
}

/// Starts a job on the current tokio runtime.
///
/// Every chain of the graph (see [`JobGraph::chains`]) runs as one task per
/// parallel instance. A chain that starts with a source reads its split; any other
/// chain has one bounded inbound channel shared by its upstream instances.
pub fn spawn_job(graph: &JobGraph, config: &RuntimeConfig) -> Result<JobHandle> {
    let pinned;
    let graph = match config
        .checkpointing
        .as_ref()
        .and_then(|c| c.restore.as_ref())
    {
        Some(restore) => {
            pinned = pin_source_parallelism(graph, &restore.manifest);
            &pinned
        }
        None => graph,
    };
    graph.validate()?;
    let node_metrics: Vec<Arc<NodeMetrics>> = graph
        .nodes
        .iter()
        .map(|_| Arc::new(NodeMetrics::default()))
        .collect();
    let emits_results = graph.emits_results();
    let metrics = JobMetrics {
        fed_by_results: graph.fed_by_results(),
        nodes: graph
            .nodes
            .iter()
            .map(|node| {
                (
                    node.name.clone(),
                    node.role(),
                    node_metrics[node.id].clone(),
                )
            })
            .collect(),
    };
    let chains = graph.chains();
    let chain_of = |node: NodeId| chains.iter().position(|c| c.contains(&node));

    // One inbound channel per instance of every chain that does not start with a source.
    let mut inboxes: Vec<Vec<Option<mpsc::Receiver<Envelope>>>> = Vec::new();
    let mut senders: Vec<Vec<mpsc::Sender<Envelope>>> = Vec::new();
    for chain in &chains {
        let head = &graph.nodes[chain[0]];
        let (txs, rxs) = if matches!(head.kind, NodeKind::Source(_)) {
            (Vec::new(), Vec::new())
        } else {
            (0..head.parallelism)
                .map(|_| {
                    let (tx, rx) = mpsc::channel(config.channel_capacity.max(1));
                    (tx, Some(rx))
                })
                .unzip()
        };
        senders.push(txs);
        inboxes.push(rxs);
    }

    let mut coordinator = match &config.checkpointing {
        Some(settings) => {
            let fingerprint = graph.fingerprint();
            if let Some(restore) = &settings.restore {
                check_restore_matches(graph, &fingerprint, &restore.manifest)?;
            }
            Some(Coordinator::new(
                settings.clone(),
                graph.name.clone(),
                fingerprint,
                graph
                    .nodes
                    .iter()
                    .map(|n| (n.operator_id(), n.parallelism))
                    .collect(),
            ))
        }
        None => None,
    };
    let mut tasks = Vec::new();
    // The dead-letter writer, if any: it ends once every chain (holding a
    // sender) has ended.
    let late_rows = match &graph.dead_letter {
        Some(dead_letter) => {
            let (tx, rx) = late_rows_channel();
            let sink = dead_letter.sink.create(Split::SINGLE)?;
            let name = format!("Late rows: {}", dead_letter.table);
            let fut = run_dead_letter_task(rx, sink, dead_letter.sink_schema.clone());
            tasks.push((name.clone(), tokio::spawn(catch_panics(name, fut))));
            Some(tx)
        }
        None => None,
    };
    for (c, chain) in chains.iter().enumerate() {
        let head = &graph.nodes[chain[0]];
        let tail = chain[chain.len() - 1];
        // The splits of a bounded parallel source read in step.
        let pacer = match &head.kind {
            NodeKind::Source(factory) if factory.is_bounded() && head.parallelism > 1 => {
                Some(SplitPacer::new(head.parallelism))
            }
            _ => None,
        };
        // Inputs of the head node, in edge order, and how many senders each has.
        let inputs: Vec<&Edge> = graph.edges.iter().filter(|e| e.to == head.id).collect();
        let senders_per_input: Vec<usize> = inputs
            .iter()
            .map(|e| match e.partitioning {
                Partitioning::Forward => 1,
                _ => graph.nodes[e.from].parallelism,
            })
            .collect();
        for instance in 0..head.parallelism {
            let split = Split {
                index: instance,
                count: head.parallelism,
            };
            let mut outputs = Vec::new();
            for (edge_input, edge) in graph.edges.iter().filter(|e| e.from == tail).map(|e| {
                let position = graph
                    .edges
                    .iter()
                    .filter(|x| x.to == e.to)
                    .position(|x| std::ptr::eq(x, e))
                    .unwrap_or(0);
                (position, e)
            }) {
                let target_chain = chain_of(edge.to).ok_or_else(|| {
                    EngineError::InvalidGraph(format!("node {} is in no chain", edge.to))
                })?;
                let downstream = &senders[target_chain];
                let (routing, targets, sender) = match &edge.partitioning {
                    Partitioning::Forward => {
                        let target = downstream.get(instance).ok_or_else(|| {
                            EngineError::InvalidGraph(format!(
                                "forward edge {} -> {} joins different parallelisms",
                                edge.from, edge.to
                            ))
                        })?;
                        (Routing::Forward, vec![target.clone()], 0)
                    }
                    Partitioning::Hash(keys) => {
                        let schema = graph.output_schema(tail)?;
                        let keys = keys
                            .iter()
                            .map(|k| schema.index_of(k).map_err(EngineError::from))
                            .collect::<Result<Vec<_>>>()?;
                        (Routing::Hash(keys), downstream.clone(), instance)
                    }
                    Partitioning::Broadcast => (Routing::Broadcast, downstream.clone(), instance),
                };
                outputs.push(OutputEdge {
                    routing,
                    targets,
                    input: edge_input,
                    sender,
                });
            }
            let task_name = format!("{} #{instance}", head.name);
            let task_nodes = chain
                .iter()
                .map(|&n| task_node(graph, n))
                .collect::<Result<Vec<_>>>()?;
            let is_sink = matches!(head.kind, NodeKind::Sink(_));
            let checkpointing = coordinator
                .as_mut()
                .map(|c| c.task(instance, task_nodes, is_sink));
            let handle = match &head.kind {
                NodeKind::Source(factory) => {
                    let mut source = factory.create(split)?;
                    let mut chain = build_chain(graph, &chain[1..], &node_metrics, &late_rows)?;
                    if let Some(cp) = &checkpointing {
                        match cp.restored(0) {
                            Some(RestoredState::Same(state)) => source.restore(state),
                            // Sources keep the checkpoint's parallelism (see
                            // `pin_source_parallelism`).
                            Some(RestoredState::Rescaled(rescaled)) => {
                                Err(rescaled.unsupported("a source"))
                            }
                            None => source.snapshot().map(drop),
                        }
                        .map_err(|e| e.in_node(&head.name))?;
                        chain.restore(|position| cp.restored(position + 1))?;
                    }
                    let ctx = SourceContext {
                        metrics: node_metrics[head.id].clone(),
                        batch_size: config.batch_size.max(1),
                        idle_timeout: head.idle_timeout,
                    };
                    let fut = run_source_task(
                        source,
                        chain,
                        ctx,
                        outputs,
                        head.name.clone(),
                        SourceControl {
                            idle_timeout: head.idle_timeout,
                            pacing: pacer.as_ref().map(|p| p.turn(instance)),
                            checkpointing,
                        },
                    );
                    tokio::spawn(catch_panics(task_name.clone(), fut))
                }
                NodeKind::Operator(_) => {
                    let inbox = take_inbox(&mut inboxes[c], instance)?;
                    let mut chain = build_chain(graph, chain, &node_metrics, &late_rows)?;
                    if let Some(cp) = &checkpointing {
                        chain.restore(|position| cp.restored(position))?;
                    }
                    // Rows a join must not count as absorbed source rows:
                    // broadcast copies, and results of an aggregate or join.
                    let replicated = inputs
                        .iter()
                        .map(|e| {
                            (e.partitioning == Partitioning::Broadcast && instance > 0)
                                || emits_results.get(e.from).copied().unwrap_or(false)
                        })
                        .collect();
                    let fut = run_operator_task(
                        inbox,
                        senders_per_input.clone(),
                        replicated,
                        chain,
                        outputs,
                        checkpointing,
                    );
                    tokio::spawn(catch_panics(task_name.clone(), fut))
                }
                NodeKind::Sink(factory) => {
                    let inbox = take_inbox(&mut inboxes[c], instance)?;
                    let sink = factory.create(split)?;
                    let fut = run_sink_task(
                        inbox,
                        senders_per_input.clone(),
                        sink,
                        node_metrics[head.id].clone(),
                        head.name.clone(),
                        checkpointing,
                    );
                    tokio::spawn(catch_panics(task_name.clone(), fut))
                }
            };
            tasks.push((task_name, handle));
        }
    }
    // Only tasks hold senders now: a channel closes when its upstream tasks stop.
    drop(senders);
    let checkpoints = coordinator.as_ref().map(Coordinator::log);
    let savepoints = coordinator.as_ref().map(Coordinator::savepoints);
    if let Some(coordinator) = coordinator {
        let name = "Checkpoint coordinator".to_string();
        tasks.push((
            name.clone(),
            tokio::spawn(catch_panics(name, coordinator.run())),
        ));
    }
    let restart =
        (config.checkpointing.is_some() && config.restart != RestartStrategy::None).then(|| {
            RestartPlan {
                graph: graph.clone(),
                config: config.clone(),
            }
        });
    Ok(JobHandle {
        name: graph.name.clone(),
        metrics,
        tasks,
        checkpoints,
        restart,
        savepoints,
    })
}

/// The graph to restore `manifest` into: every source keeps the number of
/// splits it had (a split's read position cannot be divided), and so does
/// every node joined to a source by forward edges. Keyed operators behind a
/// hash exchange, and what follows them, run at the new parallelism.
fn pin_source_parallelism(
    graph: &JobGraph,
    manifest: &crate::checkpoint::CheckpointManifest,
) -> JobGraph {
    let mut graph = graph.clone();
    let mut pending: Vec<(NodeId, usize)> = graph
        .nodes
        .iter()
        .filter(|n| matches!(n.kind, NodeKind::Source(_)))
        .filter_map(|n| {
            let old = manifest.parallelism.get(&n.operator_id())?;
            Some((n.id, *old))
        })
        .collect();
    let mut seen = std::collections::HashSet::new();
    while let Some((node, parallelism)) = pending.pop() {
        if !seen.insert(node) {
            continue;
        }
        graph.nodes[node].parallelism = parallelism;
        for edge in &graph.edges {
            if edge.partitioning != Partitioning::Forward {
                continue;
            }
            if edge.from == node {
                pending.push((edge.to, parallelism));
            } else if edge.to == node {
                pending.push((edge.from, parallelism));
            }
        }
    }
    graph
}

/// One node of a task, for checkpoints: its id, parallelism and, per input,
/// the columns a hash exchange routes by.
fn task_node(graph: &JobGraph, node: NodeId) -> Result<TaskNode> {
    let input_keys = graph
        .edges
        .iter()
        .filter(|e| e.to == node)
        .map(|edge| match &edge.partitioning {
            Partitioning::Hash(keys) => {
                let schema = graph.output_schema(edge.from)?;
                keys.iter()
                    .map(|k| schema.index_of(k).map_err(EngineError::from))
                    .collect::<Result<Vec<_>>>()
                    .map(Some)
            }
            _ => Ok(None),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(TaskNode {
        operator_id: graph.nodes[node].operator_id(),
        parallelism: graph.nodes[node].parallelism,
        input_keys,
    })
}

/// Refuses to restore a checkpoint of another query, naming what changed.
fn check_restore_matches(
    graph: &JobGraph,
    fingerprint: &str,
    manifest: &crate::checkpoint::CheckpointManifest,
) -> Result<()> {
    if manifest.fingerprint == fingerprint {
        return Ok(());
    }
    let ids: std::collections::BTreeSet<String> =
        graph.nodes.iter().map(|n| n.operator_id()).collect();
    let missing: std::collections::BTreeSet<&str> = manifest
        .entries
        .iter()
        .map(|e| e.operator_id.as_str())
        .filter(|id| !ids.contains(*id))
        .collect();
    let what = if missing.is_empty() {
        "its operators keep their names but their definitions, options or edges changed".to_string()
    } else {
        format!(
            "the checkpoint holds state of operators this query does not have: {}",
            missing.into_iter().collect::<Vec<_>>().join(", ")
        )
    };
    Err(EngineError::Config(format!(
        "cannot restore checkpoint {} of job '{}' into this query: {what} \
         (checkpoint fingerprint {}, this query's {fingerprint})",
        manifest.checkpoint_id, manifest.job, manifest.fingerprint
    )))
}

fn take_inbox(
    inboxes: &mut [Option<mpsc::Receiver<Envelope>>],
    instance: usize,
) -> Result<mpsc::Receiver<Envelope>> {
    inboxes
        .get_mut(instance)
        .and_then(Option::take)
        .ok_or_else(|| EngineError::InvalidGraph(format!("no inbox for instance {instance}")))
}

fn build_chain(
    graph: &JobGraph,
    ids: &[NodeId],
    metrics: &[Arc<NodeMetrics>],
    late_rows: &Option<LateRowsSender>,
) -> Result<Chain> {
    let operators = ids
        .iter()
        .map(|&id| {
            let node = &graph.nodes[id];
            let NodeKind::Operator(factory) = &node.kind else {
                return Err(EngineError::InvalidGraph(format!(
                    "{} cannot be chained after another node",
                    node.name
                )));
            };
            Ok((factory.create()?, metrics[id].clone(), node.name.clone()))
        })
        .collect::<Result<_>>()?;
    Ok(Chain {
        operators,
        late_rows: late_rows.clone(),
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
