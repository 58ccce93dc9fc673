//! Checkpoint storage: state objects in Arrow IPC plus a JSON manifest per
//! checkpoint, behind the [`StateBackend`] trait.
//!
//! This is the storage half of checkpointing. The runtime half (barriers,
//! alignment, operator snapshots and restore) builds on it.

pub mod backend;
pub mod ipc;
pub mod manifest;
pub mod rescale;
pub mod s3;
pub mod state;

pub use backend::{ObjectStoreBackend, StateBackend};
pub use manifest::{CheckpointManifest, StateEntry};
pub use rescale::{Rescaled, RestoredState};
pub use state::{
    OperatorState, StatePart, check_schema, checkpoints_unsupported, malformed_state, state_column,
    take_through,
};
