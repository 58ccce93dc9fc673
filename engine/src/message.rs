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
    /// The sender has had no data for its idle timeout
    /// (`scan.watermark.idle-timeout`): until it sends a batch or a watermark
    /// again, receivers leave it out of their minimum watermark, so an idle
    /// source split does not hold event time back.
    Idle,
    /// The upstream is finished; nothing follows.
    End,
}
