//! One task: a chain of nodes joined by forward edges, run as one tokio task.
//!
//! A task is fed by its source (for source chains) or by one inbound channel that
//! all its upstream instances share. It tracks the watermark of every upstream
//! channel and passes the minimum on; an input ends when all its channels have
//! ended. Its output goes to every outgoing edge of its last node.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::error::{EngineError, Result};
use crate::message::Message;
use crate::metrics::NodeMetrics;
use crate::operator::{Operator, Output};
use crate::runtime::exchange::{Envelope, OutputEdge};
use crate::sink::Sink;
use crate::source::{Source, SourceContext};
use crate::time::{MAX_WATERMARK, MIN_WATERMARK, Timestamp};

/// Operators chained in one task, each with its node's counters and name.
pub struct Chain {
    /// The operators, head first.
    pub operators: Vec<(Box<dyn Operator>, Arc<NodeMetrics>, String)>,
}

impl Chain {
    /// Runs one message through every operator (the head sees it as coming from
    /// `input`), appending what comes out of the last one to `out`.
    pub fn push(&mut self, input: usize, message: Message, out: &mut Vec<Message>) -> Result<()> {
        let mut current = vec![message];
        for (position, (op, metrics, name)) in self.operators.iter_mut().enumerate() {
            let input = if position == 0 { input } else { 0 };
            let mut next = Vec::with_capacity(current.len());
            for message in current.drain(..) {
                let mut output = Output::new(&mut next, metrics);
                let result = match message {
                    Message::Batch(batch) => {
                        NodeMetrics::add(&metrics.rows_in, batch.num_rows());
                        op.on_input_batch(input, batch, &mut output)
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

async fn route_all(outputs: &[OutputEdge], messages: &mut Vec<Message>) -> Result<()> {
    for message in messages.drain(..) {
        for edge in outputs {
            edge.route(&message).await?;
        }
    }
    Ok(())
}

/// Reads a source split, runs the chain, routes the results.
pub async fn run_source_task(
    mut source: Box<dyn Source>,
    mut chain: Chain,
    ctx: SourceContext,
    outputs: Vec<OutputEdge>,
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
        chain.push(0, message, &mut pending)?;
        route_all(&outputs, &mut pending).await?;
        if end {
            return Ok(());
        }
    }
}

/// Per-channel watermarks and end-of-input of a task's inputs.
pub struct InputTracker {
    /// Watermark per input, per sender; `MAX_WATERMARK` once the sender ended.
    watermarks: Vec<Vec<Timestamp>>,
    /// Whether each sender has sent its end. Kept apart from the watermarks:
    /// a bounded source sends the maximum watermark just before its end, and a
    /// task that took that for the end would stop while the sender still has
    /// its end to deliver (which then fails on the closed channel).
    ended: Vec<Vec<bool>>,
    combined: Timestamp,
}

impl InputTracker {
    /// A tracker for inputs with the given numbers of senders.
    pub fn new(senders_per_input: &[usize]) -> Self {
        InputTracker {
            watermarks: senders_per_input
                .iter()
                .map(|&n| vec![MIN_WATERMARK; n])
                .collect(),
            ended: senders_per_input.iter().map(|&n| vec![false; n]).collect(),
            combined: MIN_WATERMARK,
        }
    }

    fn slot(&mut self, input: usize, sender: usize) -> Result<&mut Timestamp> {
        self.watermarks
            .get_mut(input)
            .and_then(|i| i.get_mut(sender))
            .ok_or_else(|| {
                EngineError::InvalidGraph(format!("unexpected sender {sender} on input {input}"))
            })
    }

    /// Records a watermark; returns the new combined watermark if it advanced.
    pub fn watermark(
        &mut self,
        input: usize,
        sender: usize,
        wm: Timestamp,
    ) -> Result<Option<Timestamp>> {
        let slot = self.slot(input, sender)?;
        *slot = (*slot).max(wm);
        Ok(self.advance())
    }

    /// Records the end of a sender; returns the new combined watermark if it advanced.
    pub fn end(&mut self, input: usize, sender: usize) -> Result<Option<Timestamp>> {
        *self.slot(input, sender)? = MAX_WATERMARK;
        if let Some(ended) = self.ended.get_mut(input).and_then(|i| i.get_mut(sender)) {
            *ended = true;
        }
        Ok(self.advance())
    }

    /// True when every sender of every input has sent its end.
    pub fn all_ended(&self) -> bool {
        self.ended.iter().flatten().all(|&ended| ended)
    }

    fn advance(&mut self) -> Option<Timestamp> {
        let min = self
            .watermarks
            .iter()
            .flatten()
            .copied()
            .min()
            .unwrap_or(MAX_WATERMARK);
        if min > self.combined {
            self.combined = min;
            Some(min)
        } else {
            None
        }
    }
}

/// Runs a chain fed by an inbound channel.
pub async fn run_operator_task(
    mut inbox: mpsc::Receiver<Envelope>,
    senders_per_input: Vec<usize>,
    mut chain: Chain,
    outputs: Vec<OutputEdge>,
) -> Result<()> {
    let mut tracker = InputTracker::new(&senders_per_input);
    let mut pending = Vec::new();
    while let Some(envelope) = inbox.recv().await {
        let Envelope {
            input,
            sender,
            message,
        } = envelope;
        match message {
            Message::Batch(_) | Message::Barrier(_) => chain.push(input, message, &mut pending)?,
            Message::Watermark(wm) => {
                if let Some(wm) = tracker.watermark(input, sender, wm)? {
                    chain.push(input, Message::Watermark(wm), &mut pending)?;
                }
            }
            Message::End => {
                if let Some(wm) = tracker.end(input, sender)?
                    && (wm != MAX_WATERMARK || !tracker.all_ended())
                {
                    chain.push(input, Message::Watermark(wm), &mut pending)?;
                }
                if tracker.all_ended() {
                    chain.push(input, Message::End, &mut pending)?;
                    route_all(&outputs, &mut pending).await?;
                    return Ok(());
                }
            }
        }
        route_all(&outputs, &mut pending).await?;
    }
    // Every sender went away without ending: an upstream task failed.
    Err(EngineError::ChannelClosed)
}

/// Writes everything that reaches a sink instance.
pub async fn run_sink_task(
    mut inbox: mpsc::Receiver<Envelope>,
    senders_per_input: Vec<usize>,
    mut sink: Box<dyn Sink>,
    metrics: Arc<NodeMetrics>,
    name: String,
) -> Result<()> {
    let mut tracker = InputTracker::new(&senders_per_input);
    while let Some(envelope) = inbox.recv().await {
        match envelope.message {
            Message::Batch(batch) => {
                NodeMetrics::add(&metrics.rows_in, batch.num_rows());
                sink.write_batch(batch)
                    .await
                    .map_err(|e| e.in_node(&name))?;
            }
            Message::Watermark(wm) => {
                if let Some(wm) = tracker.watermark(envelope.input, envelope.sender, wm)? {
                    metrics.set_watermark(wm);
                }
            }
            Message::Barrier(_) => {}
            Message::End => {
                tracker.end(envelope.input, envelope.sender)?;
                if tracker.all_ended() {
                    sink.finish().await.map_err(|e| e.in_node(&name))?;
                    return Ok(());
                }
            }
        }
    }
    Err(EngineError::ChannelClosed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_maximum_watermark_is_not_the_end() {
        let mut tracker = InputTracker::new(&[2]);
        assert_eq!(tracker.watermark(0, 0, MAX_WATERMARK).unwrap(), None);
        assert_eq!(tracker.end(0, 1).unwrap(), Some(MAX_WATERMARK));
        assert!(
            !tracker.all_ended(),
            "sender 0 sent the maximum watermark but not its end"
        );
        assert_eq!(tracker.end(0, 0).unwrap(), None);
        assert!(tracker.all_ended());
    }

    #[test]
    fn the_combined_watermark_is_the_minimum_over_senders_of_all_inputs() {
        let mut tracker = InputTracker::new(&[2, 1]);
        assert_eq!(tracker.watermark(0, 0, 10).unwrap(), None);
        assert_eq!(tracker.watermark(0, 1, 5).unwrap(), None);
        assert_eq!(tracker.watermark(1, 0, 7).unwrap(), Some(5));
        assert_eq!(tracker.end(0, 1).unwrap(), Some(7));
        assert_eq!(tracker.end(1, 0).unwrap(), Some(10));
        assert!(!tracker.all_ended());
        assert!(tracker.watermark(2, 0, 1).is_err(), "no input 2");
    }
}
