//! The JSON manifest of one checkpoint: which state objects it holds and what
//! job it belongs to. It is written last, so a checkpoint without a manifest
//! never completed and is never restored.

use serde::{Deserialize, Serialize};

/// The state one parallel instance of one operator (or source split) wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateEntry {
    /// The operator's stable id (the same across runs of the same query).
    pub operator_id: String,
    /// The parallel instance that wrote it.
    pub instance: usize,
    /// The object's name within the checkpoint.
    pub object: String,
    /// Size of the object in bytes.
    pub bytes: u64,
}

/// Everything a restore needs to know about one completed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointManifest {
    /// Increasing per job, from 1.
    pub checkpoint_id: u64,
    /// The job's name.
    pub job: String,
    /// A digest of the job graph's operators; a restore into a graph with a
    /// different fingerprint is refused.
    pub fingerprint: String,
    /// True for the final checkpoint of a graceful stop.
    pub savepoint: bool,
    /// When the checkpoint completed, in milliseconds since the Unix epoch.
    pub completed_at_ms: i64,
    /// The state objects, one per operator instance that has state.
    pub entries: Vec<StateEntry>,
    /// Parallel instances of every node, by operator id.
    #[serde(default)]
    pub parallelism: std::collections::BTreeMap<String, usize>,
}

impl CheckpointManifest {
    /// Total bytes of state the checkpoint holds.
    pub fn state_bytes(&self) -> u64 {
        self.entries.iter().map(|e| e.bytes).sum()
    }
}
