//! The checkpoint coordinator and each task's handle on it.
//!
//! Every `interval` the coordinator starts checkpoint `n`: source tasks see the
//! trigger between two batches, report their split's read position and their
//! chained operators' state, and send barrier `n` downstream. Other tasks report
//! their state once barrier `n` has arrived from every sender (see
//! [`crate::runtime::alignment`]) and pass the barrier on; sinks stage their
//! output. When every task has reported (or finished), the coordinator writes
//! the state objects and then the manifest, which completes the checkpoint, and
//! tells the sinks, which make the staged output visible. The next checkpoint
//! starts only after the previous one completed.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, watch};

use crate::checkpoint::ipc::{decode_batches, encode_batches};
use crate::checkpoint::{
    CheckpointManifest, OperatorState, Rescaled, RestoredState, StateBackend, StateEntry,
};
use crate::error::{EngineError, Result};

/// How a job checkpoints.
#[derive(Debug, Clone)]
pub struct CheckpointSettings {
    /// Time between the completion of one checkpoint and the start of the next.
    pub interval: Duration,
    /// Where checkpoints are written.
    pub backend: Arc<dyn StateBackend>,
    /// How many completed checkpoints to keep.
    pub num_retained: usize,
    /// The checkpoint to start from, if any.
    pub restore: Option<Arc<RestoredCheckpoint>>,
}

/// The state of a completed checkpoint, read back for a restore.
#[derive(Debug)]
pub struct RestoredCheckpoint {
    /// Its manifest.
    pub manifest: CheckpointManifest,
    states: HashMap<(String, usize), OperatorState>,
}

impl RestoredCheckpoint {
    /// Reads every state object of a completed checkpoint.
    pub async fn load(backend: &dyn StateBackend, manifest: CheckpointManifest) -> Result<Self> {
        let mut states = HashMap::new();
        for entry in &manifest.entries {
            let data = backend
                .read_state(manifest.checkpoint_id, &entry.object)
                .await?;
            let (schema, batches) = decode_batches(data)?;
            states.insert(
                (entry.operator_id.clone(), entry.instance),
                OperatorState { schema, batches },
            );
        }
        Ok(RestoredCheckpoint { manifest, states })
    }

    /// The state instance `instance` of operator `operator_id` had, if any.
    pub fn state(&self, operator_id: &str, instance: usize) -> Option<OperatorState> {
        self.states
            .get(&(operator_id.to_string(), instance))
            .cloned()
    }

    /// What instance `instance` of `node` restores from: its own state, or,
    /// when the node ran another number of instances, every old instance's.
    pub fn restored(&self, node: &TaskNode, instance: usize) -> Option<RestoredState> {
        match self.manifest.parallelism.get(&node.operator_id) {
            Some(&old) if old != node.parallelism => {
                let mut states: Vec<(usize, OperatorState)> = (0..old)
                    .filter_map(|i| self.state(&node.operator_id, i).map(|s| (i, s)))
                    .collect();
                states.sort_by_key(|(i, _)| *i);
                Some(RestoredState::Rescaled(Rescaled {
                    old_parallelism: old,
                    new_parallelism: node.parallelism,
                    instance,
                    input_keys: node.input_keys.clone(),
                    states,
                }))
            }
            _ => self
                .state(&node.operator_id, instance)
                .map(RestoredState::Same),
        }
    }
}

/// One node of a task, as checkpoints see it.
#[derive(Debug, Clone)]
pub struct TaskNode {
    /// The node's stable id.
    pub operator_id: String,
    /// Its parallel instances in this run.
    pub parallelism: usize,
    /// Per input, the input columns the exchange hashes rows by (`None`: not
    /// hash-partitioned); a restore at another parallelism splits keyed state
    /// by them.
    pub input_keys: Vec<Option<Vec<usize>>>,
}

/// What one completed checkpoint cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointStats {
    /// The checkpoint's id.
    pub id: u64,
    /// From the trigger to the manifest being written.
    pub duration: Duration,
    /// The longest time a task spent aligning barriers.
    pub alignment: Duration,
    /// Bytes of state written.
    pub bytes: u64,
    /// Where it was written.
    pub location: String,
}

/// The checkpoints a job completed, readable while it runs.
#[derive(Debug, Default)]
pub struct CheckpointLog {
    completed: Mutex<Vec<CheckpointStats>>,
}

impl CheckpointLog {
    /// Every completed checkpoint so far, oldest first.
    pub fn completed(&self) -> Vec<CheckpointStats> {
        self.completed.lock().map(|c| c.clone()).unwrap_or_default()
    }

    fn push(&self, stats: CheckpointStats) {
        if let Ok(mut completed) = self.completed.lock() {
            completed.push(stats);
        }
    }
}

/// A task's report to the coordinator.
#[derive(Debug)]
enum Report {
    Snapshot {
        checkpoint_id: u64,
        task: usize,
        states: Vec<(String, usize, OperatorState)>,
        alignment: Duration,
    },
    /// The task stopped without finishing (failed or cancelled): no
    /// checkpoint in flight can complete any more.
    Failed,
    /// The task reached the end of its input; its final state goes into the
    /// final checkpoint, taken once every task has ended.
    Final {
        task: usize,
        states: Vec<(String, usize, OperatorState)>,
    },
    /// A sink made checkpoint `checkpoint_id`'s output visible.
    Committed { checkpoint_id: u64, task: usize },
}

/// What the coordinator announces once the final checkpoint (taken after every
/// task reached the end of its input) is complete: sinks then make everything
/// they staged visible.
pub const FINAL_CHECKPOINT_DONE: u64 = u64::MAX;

/// The key under which sinks stage their output at the end of their input.
pub const FINAL_STAGE: u64 = u64::MAX - 1;

/// Asks for a savepoint: answered once it completed and every sink committed it.
pub type SavepointRequest = tokio::sync::oneshot::Sender<Result<CheckpointStats>>;

/// One task's handle on the coordinator. A task that ends normally calls
/// [`TaskCheckpointing::finish`], after which checkpoints complete without it;
/// dropping the handle otherwise (the task failed or was cancelled) stops
/// checkpointing, since the job is going down.
#[derive(Debug)]
pub struct TaskCheckpointing {
    task: usize,
    /// The parallel instance the task runs.
    pub instance: usize,
    /// The task's nodes, head first (source or operators, or the sink).
    pub nodes: Vec<TaskNode>,
    reports: mpsc::UnboundedSender<Report>,
    triggers: watch::Receiver<u64>,
    completed: watch::Receiver<u64>,
    restore: Option<Arc<RestoredCheckpoint>>,
    /// Set by [`TaskCheckpointing::finish`]: the task ended normally.
    finished: bool,
}

impl TaskCheckpointing {
    /// The task has processed all its input and reports its final state
    /// (node `position`'s for every `(position, state)`): checkpoints no longer
    /// wait for it, and the final checkpoint holds this state. (A handle
    /// dropped without this means the task failed.)
    pub fn finish(mut self, states: Vec<(usize, OperatorState)>) {
        self.report_final(states);
        self.finished = true;
    }

    /// Like [`TaskCheckpointing::finish`], for a sink that then waits for the
    /// final checkpoint ([`FINAL_CHECKPOINT_DONE`]) before it commits.
    pub fn report_final(&mut self, states: Vec<(usize, OperatorState)>) {
        let states = self.named(states);
        let _ = self.reports.send(Report::Final {
            task: self.task,
            states,
        });
        self.finished = true;
    }

    fn named(&self, states: Vec<(usize, OperatorState)>) -> Vec<(String, usize, OperatorState)> {
        states
            .into_iter()
            .filter_map(|(position, state)| {
                let node = self.nodes.get(position)?;
                Some((node.operator_id.clone(), self.instance, state))
            })
            .collect()
    }

    /// For source tasks: the checkpoint to take now, if one was triggered since
    /// the last call.
    pub fn pending_trigger(&mut self) -> Option<u64> {
        if self.triggers.has_changed().unwrap_or(false) {
            Some(*self.triggers.borrow_and_update())
        } else {
            None
        }
    }

    /// For sinks: waits until a checkpoint completes and returns its id; never
    /// returns once the coordinator is gone.
    pub async fn next_completed(&mut self) -> u64 {
        if self.completed.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
        *self.completed.borrow_and_update()
    }

    /// The restored state of node number `position` of this task, if the job
    /// was restored and the node had state.
    pub fn restored(&self, position: usize) -> Option<RestoredState> {
        let node = self.nodes.get(position)?;
        self.restore.as_ref()?.restored(node, self.instance)
    }

    /// For sinks: the output of checkpoint `checkpoint_id` is now visible.
    pub fn committed(&self, checkpoint_id: u64) {
        let _ = self.reports.send(Report::Committed {
            checkpoint_id,
            task: self.task,
        });
    }

    /// Reports this task's part of checkpoint `checkpoint_id`: the state of node
    /// number `position` for every `(position, state)`.
    pub fn report(
        &self,
        checkpoint_id: u64,
        states: Vec<(usize, OperatorState)>,
        alignment: Duration,
    ) -> Result<()> {
        let states = self.named(states);
        self.reports
            .send(Report::Snapshot {
                checkpoint_id,
                task: self.task,
                states,
                alignment,
            })
            .map_err(|_| EngineError::ChannelClosed)
    }
}

impl Drop for TaskCheckpointing {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.reports.send(Report::Failed);
        }
    }
}

/// Hands out task handles and runs the coordinator of one job.
pub struct Coordinator {
    settings: CheckpointSettings,
    job: String,
    fingerprint: String,
    parallelism: std::collections::BTreeMap<String, usize>,
    reports_tx: mpsc::UnboundedSender<Report>,
    reports: mpsc::UnboundedReceiver<Report>,
    triggers: watch::Sender<u64>,
    completed: watch::Sender<u64>,
    tasks: usize,
    sinks: HashSet<usize>,
    savepoints_tx: mpsc::UnboundedSender<SavepointRequest>,
    savepoints: mpsc::UnboundedReceiver<SavepointRequest>,
    log: Arc<CheckpointLog>,
}

impl Coordinator {
    /// A coordinator for job `job` whose graph has fingerprint `fingerprint`
    /// and runs `parallelism` instances of each operator (by id).
    pub fn new(
        settings: CheckpointSettings,
        job: String,
        fingerprint: String,
        parallelism: std::collections::BTreeMap<String, usize>,
    ) -> Self {
        let (reports_tx, reports) = mpsc::unbounded_channel();
        let (savepoints_tx, savepoints) = mpsc::unbounded_channel();
        let first = settings
            .restore
            .as_ref()
            .map_or(0, |r| r.manifest.checkpoint_id);
        Coordinator {
            settings,
            job,
            fingerprint,
            parallelism,
            reports_tx,
            reports,
            triggers: watch::channel(first).0,
            completed: watch::channel(first).0,
            tasks: 0,
            sinks: HashSet::new(),
            savepoints_tx,
            savepoints,
            log: Arc::new(CheckpointLog::default()),
        }
    }

    /// Where to ask this job for savepoints.
    pub fn savepoints(&self) -> mpsc::UnboundedSender<SavepointRequest> {
        self.savepoints_tx.clone()
    }

    /// The log of completed checkpoints.
    pub fn log(&self) -> Arc<CheckpointLog> {
        self.log.clone()
    }

    /// The handle of a new task running `instance` of `nodes` (a sink task when
    /// `sink`: savepoints wait for its commit).
    pub fn task(&mut self, instance: usize, nodes: Vec<TaskNode>, sink: bool) -> TaskCheckpointing {
        let task = self.tasks;
        self.tasks += 1;
        if sink {
            self.sinks.insert(task);
        }
        TaskCheckpointing {
            task,
            instance,
            nodes,
            reports: self.reports_tx.clone(),
            triggers: self.triggers.subscribe(),
            completed: self.completed.subscribe(),
            restore: self.settings.restore.clone(),
            finished: false,
        }
    }

    /// Runs until every task has finished.
    pub async fn run(self) -> Result<()> {
        let Coordinator {
            settings,
            job,
            fingerprint,
            parallelism,
            reports_tx,
            mut reports,
            triggers,
            completed,
            tasks,
            sinks,
            savepoints_tx,
            mut savepoints,
            log,
        } = self;
        drop(reports_tx);
        drop(savepoints_tx);
        let target = CheckpointTarget {
            settings: &settings,
            job: &job,
            fingerprint: &fingerprint,
            parallelism: &parallelism,
            log: &log,
        };
        // Savepoint requests waiting for the next checkpoint to start, and the
        // savepoint waiting for its sinks' commits.
        let mut requested: Vec<SavepointRequest> = Vec::new();
        let mut committing: Option<(CheckpointStats, HashSet<usize>, Vec<SavepointRequest>)> = None;
        let mut next_id = *triggers.borrow() + 1;
        let mut finished: HashSet<usize> = HashSet::new();
        // Final states of the tasks that reached the end of their input: they
        // go into every later checkpoint (an ended source split's position
        // must not be missing from a checkpoint it no longer reports to).
        let mut finals: std::collections::BTreeMap<usize, Vec<(String, usize, OperatorState)>> =
            std::collections::BTreeMap::new();
        let mut final_written = false;
        let mut failed = false;
        let mut in_flight: Option<InFlight> = None;
        let mut next_start = tokio::time::Instant::now() + settings.interval;
        loop {
            let report = tokio::select! {
                report = reports.recv() => report,
                Some(request) = savepoints.recv() => {
                    if failed {
                        let _ = request.send(Err(EngineError::Cancelled));
                    } else {
                        requested.push(request);
                        // Start it now unless a checkpoint is in flight.
                        next_start = tokio::time::Instant::now();
                    }
                    continue;
                }
                () = tokio::time::sleep_until(next_start), if in_flight.is_none() => {
                    if finished.len() < tasks && !failed {
                        let mut flight = InFlight::new(next_id);
                        if !requested.is_empty() {
                            flight.savepoint = std::mem::take(&mut requested);
                        }
                        in_flight = Some(flight);
                        // Source tasks see it between two batches.
                        triggers.send_replace(next_id);
                        next_id += 1;
                    }
                    next_start = tokio::time::Instant::now() + settings.interval;
                    continue;
                }
            };
            match report {
                None => return Ok(()),
                Some(Report::Final { task, states }) => {
                    finished.insert(task);
                    finals.insert(task, states);
                }
                Some(Report::Failed) => {
                    // A checkpoint must not complete without the failed
                    // task's state.
                    failed = true;
                    if let Some(flight) = in_flight.take() {
                        for request in flight.savepoint {
                            let _ = request.send(Err(EngineError::Cancelled));
                        }
                    }
                }
                Some(Report::Committed {
                    checkpoint_id,
                    task,
                }) => {
                    if let Some((stats, waiting, _)) = committing.as_mut()
                        && checkpoint_id >= stats.id
                    {
                        waiting.remove(&task);
                    }
                }
                Some(Report::Snapshot {
                    checkpoint_id,
                    task,
                    states,
                    alignment,
                }) => {
                    if let Some(flight) = in_flight.as_mut().filter(|f| f.id == checkpoint_id) {
                        flight.reported.insert(task);
                        flight.alignment = flight.alignment.max(alignment);
                        flight.states.extend(states);
                    }
                }
            }
            let done = in_flight.as_ref().is_some_and(|f| {
                (0..tasks).all(|t| f.reported.contains(&t) || finished.contains(&t))
            });
            if done && let Some(mut flight) = in_flight.take() {
                for (task, states) in &finals {
                    if !flight.reported.contains(task) {
                        flight.states.extend(states.iter().cloned());
                    }
                }
                let requests = std::mem::take(&mut flight.savepoint);
                let stats = target.complete(flight, !requests.is_empty()).await?;
                completed.send_replace(stats.id);
                if !requests.is_empty() {
                    let waiting = sinks.difference(&finished).copied().collect();
                    committing = Some((stats, waiting, requests));
                }
                next_start = if requested.is_empty() {
                    tokio::time::Instant::now() + settings.interval
                } else {
                    tokio::time::Instant::now()
                };
            }
            // Every task reached the end of its input: the final checkpoint
            // (sources at their end, the operators' final state, the sinks'
            // last staged output), then the sinks commit everything. A crash
            // before it is written restores the last periodic checkpoint, and
            // nothing after that was visible yet.
            if finished.len() == tasks && !final_written && !failed && in_flight.is_none() {
                final_written = true;
                let mut flight = InFlight::new(next_id);
                next_id += 1;
                flight.states = std::mem::take(&mut finals)
                    .into_values()
                    .flatten()
                    .collect();
                target.complete(flight, false).await?;
                completed.send_replace(FINAL_CHECKPOINT_DONE);
            }
            // A savepoint is done once every open sink committed it.
            if committing
                .as_ref()
                .is_some_and(|(_, waiting, _)| waiting.iter().all(|t| finished.contains(t)))
                && let Some((stats, _, requests)) = committing.take()
            {
                for request in requests {
                    let _ = request.send(Ok(stats.clone()));
                }
            }
        }
    }
}

/// Where and as what a job's checkpoints are written.
struct CheckpointTarget<'a> {
    settings: &'a CheckpointSettings,
    job: &'a str,
    fingerprint: &'a str,
    parallelism: &'a std::collections::BTreeMap<String, usize>,
    log: &'a CheckpointLog,
}

impl CheckpointTarget<'_> {
    /// Writes a checkpoint whose every task has reported, applies retention
    /// and logs it.
    async fn complete(&self, flight: InFlight, savepoint: bool) -> Result<CheckpointStats> {
        let backend = self.settings.backend.as_ref();
        let stats = flight
            .write(
                backend,
                self.job,
                self.fingerprint,
                self.parallelism,
                savepoint,
            )
            .await?;
        backend.retain(self.settings.num_retained).await?;
        self.log.push(stats.clone());
        Ok(stats)
    }
}

/// A checkpoint that has started and not completed.
struct InFlight {
    id: u64,
    started: Instant,
    reported: HashSet<usize>,
    alignment: Duration,
    states: Vec<(String, usize, OperatorState)>,
    /// Who asked for this checkpoint as a savepoint.
    savepoint: Vec<SavepointRequest>,
}

impl InFlight {
    fn new(id: u64) -> Self {
        InFlight {
            id,
            started: Instant::now(),
            reported: HashSet::new(),
            alignment: Duration::ZERO,
            states: Vec::new(),
            savepoint: Vec::new(),
        }
    }

    /// Writes the state objects, then the manifest.
    async fn write(
        self,
        backend: &dyn StateBackend,
        job: &str,
        fingerprint: &str,
        parallelism: &std::collections::BTreeMap<String, usize>,
        savepoint: bool,
    ) -> Result<CheckpointStats> {
        let mut entries = Vec::with_capacity(self.states.len());
        for (operator_id, instance, state) in self.states {
            let data = encode_batches(&state.schema, &state.batches)?;
            let object = format!("{operator_id}.{instance}.arrow");
            let bytes = data.len() as u64;
            backend.write_state(self.id, &object, data).await?;
            entries.push(StateEntry {
                operator_id,
                instance,
                object,
                bytes,
            });
        }
        entries.sort_by(|a, b| (&a.operator_id, a.instance).cmp(&(&b.operator_id, b.instance)));
        let manifest = CheckpointManifest {
            checkpoint_id: self.id,
            job: job.to_string(),
            fingerprint: fingerprint.to_string(),
            savepoint,
            parallelism: parallelism.clone(),
            completed_at_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            entries,
        };
        backend.complete(&manifest).await?;
        Ok(CheckpointStats {
            id: self.id,
            duration: self.started.elapsed(),
            alignment: self.alignment,
            bytes: manifest.state_bytes(),
            location: backend.location().to_string(),
        })
    }
}
