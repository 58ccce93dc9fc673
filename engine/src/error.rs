//! The engine's error type. Every failure carries enough context (which node,
//! which file or row) for a user to act on it.

use datafusion::arrow::error::ArrowError;
use datafusion::error::DataFusionError;

/// Errors raised while building or running a streaming job.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// An Arrow kernel failed.
    #[error("arrow: {0}")]
    Arrow(#[from] ArrowError),
    /// A DataFusion expression or accumulator failed.
    #[error("{0}")]
    DataFusion(#[from] DataFusionError),
    /// Reading from or writing to an external system failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, and on which path.
        context: String,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// Input data could not be decoded (a malformed row).
    #[error("{0}")]
    MalformedInput(String),
    /// A connector or job was configured incorrectly.
    #[error("{0}")]
    Config(String),
    /// The job graph is not one the runtime can execute.
    #[error("invalid job graph: {0}")]
    InvalidGraph(String),
    /// A task of the job panicked; the panic was caught and turned into this error.
    #[error("task '{task}' panicked: {message}")]
    TaskPanicked {
        /// The task (node chain) that panicked.
        task: String,
        /// The panic payload, when it was a string.
        message: String,
    },
    /// A channel between tasks closed because the other side stopped.
    #[error("downstream task stopped")]
    ChannelClosed,
    /// The job was cancelled.
    #[error("job cancelled")]
    Cancelled,
    /// The job failed again after its restart strategy's last restart.
    #[error("gave up after {restarts} restarts: {cause}")]
    RestartsExhausted {
        /// Restarts made.
        restarts: u32,
        /// The last failure.
        cause: Box<EngineError>,
    },
    /// Reading or writing checkpoint state failed.
    #[error("checkpoint storage {location}: {message}")]
    CheckpointStorage {
        /// Where: the storage URL, or the object within it.
        location: String,
        /// What went wrong.
        message: String,
    },
    /// A node failed; the error is wrapped with the node's name.
    #[error("{node}: {source}")]
    InNode {
        /// The failing node's display name.
        node: String,
        /// What went wrong.
        source: Box<EngineError>,
    },
}

impl EngineError {
    /// Wraps an I/O error with a description of what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        EngineError::Io {
            context: context.into(),
            source,
        }
    }

    /// Attributes this error to a node, unless it already names one.
    pub fn in_node(self, node: &str) -> Self {
        match self {
            e @ EngineError::InNode { .. } => e,
            e @ EngineError::ChannelClosed => e,
            e => EngineError::InNode {
                node: node.to_string(),
                source: Box::new(e),
            },
        }
    }

    /// True when this error is only the echo of another task's failure.
    pub fn is_secondary(&self) -> bool {
        match self {
            EngineError::ChannelClosed | EngineError::Cancelled => true,
            EngineError::InNode { source, .. } => source.is_secondary(),
            _ => false,
        }
    }
}

/// Result with [`EngineError`].
pub type Result<T, E = EngineError> = std::result::Result<T, E>;
