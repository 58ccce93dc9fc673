//! The error type of the embedded API and the CLI.

use datafusion::arrow::error::ArrowError;
use watershed_engine::EngineError;
use watershed_sql::error::SqlError;

/// Anything that can go wrong when planning or running a job.
#[derive(Debug, thiserror::Error)]
pub enum WatershedError {
    /// The SQL could not be parsed or planned.
    #[error("{0}")]
    Sql(#[from] SqlError),
    /// The job failed while running.
    #[error("{0}")]
    Engine(#[from] EngineError),
    /// An Arrow value could not be read into a Rust value.
    #[error("{0}")]
    Arrow(#[from] ArrowError),
    /// The API was used in a way it does not support.
    #[error("{0}")]
    Usage(String),
}

/// Result with [`WatershedError`].
pub type Result<T, E = WatershedError> = std::result::Result<T, E>;
