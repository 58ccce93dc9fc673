//! The `Operator` trait: a synchronous, columnar step of a pipeline.
//!
//! Operators are chained inside one task: the runtime hands each message to the
//! first operator, and whatever it pushes into its [`Output`] goes to the next.
//! Operators never block and never allocate per row.

use std::sync::Arc;

use datafusion::arrow::array::BooleanArray;
use datafusion::arrow::compute::{filter_record_batch, not};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;

use crate::checkpoint::{OperatorState, Rescaled, checkpoints_unsupported};
use crate::error::Result;
use crate::late_rows::{LateRows, LateRowsSender};
use crate::message::Message;
use crate::metrics::{NodeMetrics, NodeRole};
use crate::time::Timestamp;

/// Where an operator puts what it emits, and its counters.
pub struct Output<'a> {
    messages: &'a mut Vec<Message>,
    metrics: &'a NodeMetrics,
    /// The dead-letter channel and this operator's name, when the job has one.
    late_rows: Option<(&'a LateRowsSender, &'a str)>,
}

impl<'a> Output<'a> {
    /// Wraps a message buffer and the node's counters.
    pub fn new(messages: &'a mut Vec<Message>, metrics: &'a NodeMetrics) -> Self {
        Output {
            messages,
            metrics,
            late_rows: None,
        }
    }

    /// Sends the late rows this operator (named `operator`) drops to `sender`.
    pub fn with_late_rows(mut self, sender: Option<&'a LateRowsSender>, operator: &'a str) -> Self {
        self.late_rows = sender.map(|s| (s, operator));
        self
    }

    /// Drops the rows of `input` where `keep` is false as late: counts them in
    /// `rows_late` and, when the job has a dead-letter table, sends them there
    /// with `reason` and the operator's `watermark`.
    pub fn drop_late(
        &mut self,
        input: &RecordBatch,
        keep: &BooleanArray,
        reason: &str,
        watermark: Timestamp,
    ) -> Result<()> {
        let late = keep.len() - keep.true_count();
        NodeMetrics::add(&self.metrics.rows_late, late);
        if late > 0 && self.late_rows.is_some() {
            let rows = filter_record_batch(input, &not(keep)?)?;
            self.send_late(rows, reason, watermark);
        }
        Ok(())
    }

    /// Drops every row of `input` as late (see [`Output::drop_late`]).
    pub fn drop_late_batch(&mut self, input: &RecordBatch, reason: &str, watermark: Timestamp) {
        NodeMetrics::add(&self.metrics.rows_late, input.num_rows());
        if input.num_rows() > 0 {
            self.send_late(input.clone(), reason, watermark);
        }
    }

    fn send_late(&mut self, rows: RecordBatch, reason: &str, watermark: Timestamp) {
        if let Some((sender, operator)) = self.late_rows {
            sender.send(LateRows {
                operator: operator.to_string(),
                reason: reason.to_string(),
                watermark,
                rows,
            });
        }
    }

    /// Emits a batch downstream (empty batches are dropped).
    pub fn batch(&mut self, batch: RecordBatch) {
        if batch.num_rows() > 0 {
            NodeMetrics::add(&self.metrics.rows_out, batch.num_rows());
            self.messages.push(Message::Batch(batch));
        }
    }

    /// Emits a watermark downstream.
    pub fn watermark(&mut self, wm: Timestamp) {
        self.metrics.set_watermark(wm);
        self.messages.push(Message::Watermark(wm));
    }

    /// The node's counters, for filtered/late/rejected/aggregated rows.
    pub fn metrics(&self) -> &NodeMetrics {
        self.metrics
    }
}

/// A step of a streaming pipeline.
pub trait Operator: Send {
    /// The schema of the batches this operator emits.
    fn output_schema(&self) -> SchemaRef;

    /// Processes one batch of input rows.
    fn on_batch(&mut self, batch: RecordBatch, out: &mut Output<'_>) -> Result<()>;

    /// Processes one batch from input number `input` (0 for single-input
    /// operators; 0 = left and 1 = right for joins). The default ignores the input
    /// number. The watermark an operator sees is the minimum over all its inputs.
    fn on_input_batch(
        &mut self,
        input: usize,
        batch: RecordBatch,
        out: &mut Output<'_>,
    ) -> Result<()> {
        let _ = input;
        self.on_batch(batch, out)
    }

    /// Reacts to event time advancing. The default forwards the watermark.
    fn on_watermark(&mut self, watermark: Timestamp, out: &mut Output<'_>) -> Result<()> {
        out.watermark(watermark);
        Ok(())
    }

    /// Input number `input` has ended: every upstream instance feeding it has
    /// finished. Called once per input, before [`Operator::on_end`] and before the
    /// watermark that the input's end lets advance is delivered, so an operator
    /// that waits for one input (a bounded table) can emit what it held back
    /// ahead of that watermark. The default does nothing.
    fn on_input_end(&mut self, input: usize, out: &mut Output<'_>) -> Result<()> {
        let _ = (input, out);
        Ok(())
    }

    /// Every input is finished: flush whatever is pending. The default does nothing.
    fn on_end(&mut self, _out: &mut Output<'_>) -> Result<()> {
        Ok(())
    }

    /// The operator's state for a checkpoint, taken when a barrier has arrived
    /// on every input; `None` for an operator without state. The default says
    /// the operator cannot take part in checkpoints: stateful operators override
    /// it (with [`Operator::restore`]), stateless ones return `Ok(None)`.
    fn snapshot(&mut self) -> Result<Option<OperatorState>> {
        Err(checkpoints_unsupported("this operator"))
    }

    /// Puts back the state a [`Operator::snapshot`] of the same operator took,
    /// before any input arrives.
    fn restore(&mut self, state: OperatorState) -> Result<()> {
        let _ = state;
        Err(checkpoints_unsupported("this operator"))
    }

    /// Puts back the part of a checkpoint taken at another parallelism that
    /// this instance owns (keyed operators: the rows of its key groups), before
    /// any input arrives. The default refuses, naming the parallelism to use.
    fn restore_rescaled(&mut self, rescaled: Rescaled) -> Result<()> {
        Err(rescaled.unsupported("this operator"))
    }
}

/// Builds instances of an operator (one per parallel instance, and again after a
/// restart) and describes it for EXPLAIN.
pub trait OperatorFactory: Send + Sync {
    /// A short name, e.g. `Filter` or `TumbleWindowAggregate`.
    fn name(&self) -> String;

    /// Lines describing the operator for EXPLAIN; deterministic text only.
    fn explain(&self) -> Vec<String>;

    /// How the operator's counts enter the job summary.
    fn role(&self) -> NodeRole {
        NodeRole::Stateless
    }

    /// The schema of the batches the operator emits.
    fn output_schema(&self) -> SchemaRef;

    /// Creates a fresh instance.
    fn create(&self) -> Result<Box<dyn Operator>>;
}

/// A shared operator factory.
pub type OperatorFactoryRef = Arc<dyn OperatorFactory>;
