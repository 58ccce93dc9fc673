//! The message type on every edge of a job graph.

use datafusion::arrow::record_batch::RecordBatch;

use crate::time::Timestamp;

/// One unit of data or control flowing between operators.
#[derive(Debug, Clone)]
pub enum Message {
    /// A batch of rows, all with the schema of the edge.
    Batch(RecordBatch),
    /// Event time has advanced: no row with a timestamp `<=` this value follows.
    Watermark(Timestamp),
    /// A checkpoint barrier carrying the checkpoint id.
    Barrier(u64),
    /// The upstream is finished; nothing follows.
    End,
}
