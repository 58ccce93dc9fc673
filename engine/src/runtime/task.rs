//! One task: a chain of nodes joined by forward edges, run as one tokio task.
//!
//! A task is fed by its source (for source chains) or by one inbound channel that
//! all its upstream instances share. It tracks the watermark of every upstream
//! channel and passes the minimum on; an input ends when all its channels have
//! ended. Its output goes to every outgoing edge of its last node.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::error::{EngineError, Result};
use crate::late_rows::LateRowsSender;
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
    /// Where operators send the late rows they drop, when the job has a
    /// dead-letter table.
    pub late_rows: Option<LateRowsSender>,
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
                let mut output =
                    Output::new(&mut next, metrics).with_late_rows(self.late_rows.as_ref(), name);
                let result = match message {
                    Message::Batch(batch) => {
                        NodeMetrics::add(&metrics.rows_in, batch.num_rows());
                        op.on_input_batch(input, batch, &mut output)
                    }
                    Message::Watermark(wm) => op.on_watermark(wm, &mut output),
                    Message::Barrier(_) | Message::Idle => {
                        next.push(message);
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

/// Reads a source split, runs the chain, routes the results. With an
/// `idle_timeout`, a split that yields no batch for that long sends
/// [`Message::Idle`] once, until its next batch.
pub async fn run_source_task(
    mut source: Box<dyn Source>,
    mut chain: Chain,
    ctx: SourceContext,
    outputs: Vec<OutputEdge>,
    name: String,
    idle_timeout: Option<Duration>,
) -> Result<()> {
    let mut pending = Vec::new();
    let mut idle = false;
    loop {
        let next = match idle_timeout {
            None => source.next_batch(&ctx).await,
            Some(timeout) => {
                // The read stays the same future across timeouts: a source
                // need not be cancel-safe.
                let read = source.next_batch(&ctx);
                tokio::pin!(read);
                loop {
                    match tokio::time::timeout(timeout, &mut read).await {
                        Ok(next) => break next,
                        Err(_) if !idle => {
                            idle = true;
                            chain.push(0, Message::Idle, &mut pending)?;
                            route_all(&outputs, &mut pending).await?;
                        }
                        Err(_) => {}
                    }
                }
            }
        }
        .map_err(|e| e.in_node(&name))?;
        let message = match next {
            Some(batch) => {
                idle = false;
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

/// What a task knows of one upstream channel.
#[derive(Debug, Clone, Copy)]
struct Channel {
    /// The channel's watermark; `MAX_WATERMARK` once it ended.
    watermark: Timestamp,
    /// Declared idle and silent since: left out of the minimum.
    idle: bool,
    /// The sender has sent its end. Kept apart from the watermark: a bounded
    /// source sends the maximum watermark just before its end, and a task that
    /// took that for the end would stop while the sender still has its end to
    /// deliver (which would then fail on the closed channel).
    ended: bool,
}

impl Channel {
    fn ended(&self) -> bool {
        self.ended
    }
}

/// Per-channel watermarks, idleness and end-of-input of a task's inputs.
///
/// The combined watermark is the minimum over the channels that are not idle
/// (ended channels count as `MAX_WATERMARK`). When every open channel is idle it
/// becomes the maximum over them (nothing else will move it; Flink's valve does
/// the same). A channel becomes active again with its next batch or watermark,
/// and the combined watermark never goes back.
pub struct InputTracker {
    /// Per input, per sender.
    channels: Vec<Vec<Channel>>,
    combined: Timestamp,
}

impl InputTracker {
    /// A tracker for inputs with the given numbers of senders.
    pub fn new(senders_per_input: &[usize]) -> Self {
        let open = Channel {
            watermark: MIN_WATERMARK,
            idle: false,
            ended: false,
        };
        InputTracker {
            channels: senders_per_input.iter().map(|&n| vec![open; n]).collect(),
            combined: MIN_WATERMARK,
        }
    }

    fn slot(&mut self, input: usize, sender: usize) -> Result<&mut Channel> {
        self.channels
            .get_mut(input)
            .and_then(|i| i.get_mut(sender))
            .ok_or_else(|| {
                EngineError::InvalidGraph(format!("unexpected sender {sender} on input {input}"))
            })
    }

    /// Records a batch: its sender is active again.
    pub fn batch(&mut self, input: usize, sender: usize) -> Result<()> {
        self.slot(input, sender)?.idle = false;
        Ok(())
    }

    /// Records a watermark; returns the new combined watermark if it advanced.
    pub fn watermark(
        &mut self,
        input: usize,
        sender: usize,
        wm: Timestamp,
    ) -> Result<Option<Timestamp>> {
        let slot = self.slot(input, sender)?;
        slot.watermark = slot.watermark.max(wm);
        slot.idle = false;
        Ok(self.advance())
    }

    /// Records that a sender went idle; returns the new combined watermark if
    /// leaving it out advanced it.
    pub fn idle(&mut self, input: usize, sender: usize) -> Result<Option<Timestamp>> {
        self.slot(input, sender)?.idle = true;
        Ok(self.advance())
    }

    /// Records the end of a sender; returns the new combined watermark if it advanced.
    pub fn end(&mut self, input: usize, sender: usize) -> Result<Option<Timestamp>> {
        let slot = self.slot(input, sender)?;
        slot.watermark = MAX_WATERMARK;
        slot.idle = false;
        slot.ended = true;
        Ok(self.advance())
    }

    /// True when every sender of every input has ended.
    pub fn all_ended(&self) -> bool {
        self.channels.iter().flatten().all(Channel::ended)
    }

    /// True when at least one sender is open and every open sender is idle.
    pub fn all_idle(&self) -> bool {
        let mut open = self.channels.iter().flatten().filter(|c| !c.ended());
        let mut any = false;
        let all = open.all(|c| {
            any = true;
            c.idle
        });
        any && all
    }

    fn advance(&mut self) -> Option<Timestamp> {
        let next = if self.all_idle() {
            // Nothing will advance any more until a channel speaks again: flush
            // to the highest watermark any open channel reached, as Flink's
            // valve does when all its inputs are idle.
            self.channels
                .iter()
                .flatten()
                .filter(|c| !c.ended())
                .map(|c| c.watermark)
                .max()
                .unwrap_or(MIN_WATERMARK)
        } else {
            self.channels
                .iter()
                .flatten()
                .filter(|c| !c.idle)
                .map(|c| c.watermark)
                .min()
                .unwrap_or(MAX_WATERMARK)
        };
        if next > self.combined {
            self.combined = next;
            Some(next)
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
    // Whether downstream was told this task is idle (all its inputs are).
    let mut told_idle = false;
    while let Some(envelope) = inbox.recv().await {
        let Envelope {
            input,
            sender,
            message,
        } = envelope;
        match message {
            Message::Batch(_) => {
                tracker.batch(input, sender)?;
                told_idle = false;
                chain.push(input, message, &mut pending)?;
            }
            Message::Barrier(_) => chain.push(input, message, &mut pending)?,
            Message::Watermark(wm) => {
                if let Some(wm) = tracker.watermark(input, sender, wm)? {
                    told_idle = false;
                    chain.push(input, Message::Watermark(wm), &mut pending)?;
                }
            }
            Message::Idle => {
                if let Some(wm) = tracker.idle(input, sender)? {
                    chain.push(input, Message::Watermark(wm), &mut pending)?;
                }
                if tracker.all_idle() && !told_idle {
                    told_idle = true;
                    chain.push(input, Message::Idle, &mut pending)?;
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
                tracker.batch(envelope.input, envelope.sender)?;
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
            Message::Idle => {
                if let Some(wm) = tracker.idle(envelope.input, envelope.sender)? {
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
    fn combined_watermark_is_the_minimum_over_channels() {
        let mut t = InputTracker::new(&[2, 1]);
        assert_eq!(t.watermark(0, 0, 10).unwrap(), None);
        assert_eq!(t.watermark(0, 1, 20).unwrap(), None);
        assert_eq!(t.watermark(1, 0, 15).unwrap(), Some(10));
        assert_eq!(t.watermark(0, 0, 30).unwrap(), Some(15));
        assert_eq!(t.end(1, 0).unwrap(), Some(20));
        assert!(!t.all_ended());
    }

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
        assert!(tracker.watermark(2, 0, 1).is_err(), "no input 2");
    }

    #[test]
    fn an_idle_channel_does_not_hold_the_watermark_back_until_it_speaks_again() {
        let mut t = InputTracker::new(&[2]);
        assert_eq!(t.watermark(0, 0, 100).unwrap(), None);
        // Sender 1 never sent anything; once idle, sender 0 alone decides.
        assert_eq!(t.idle(0, 1).unwrap(), Some(100));
        assert!(!t.all_idle());
        assert_eq!(t.watermark(0, 0, 200).unwrap(), Some(200));
        // Sender 1 is back (a batch): the minimum includes it again, and the
        // combined watermark never goes back.
        t.batch(0, 1).unwrap();
        assert_eq!(t.watermark(0, 0, 300).unwrap(), None);
        assert_eq!(t.watermark(0, 1, 250).unwrap(), Some(250));
    }

    #[test]
    fn when_every_open_channel_is_idle_the_highest_watermark_is_flushed() {
        let mut t = InputTracker::new(&[2]);
        assert_eq!(t.watermark(0, 0, 100).unwrap(), None);
        // Sender 0 goes idle first, while sender 1 has said nothing: no move.
        assert_eq!(t.idle(0, 0).unwrap(), None);
        // Now both are idle: flush to the highest watermark reached.
        assert_eq!(t.idle(0, 1).unwrap(), Some(100));
        assert!(t.all_idle());
        // An ended channel is not idle, and ending the other one ends all.
        assert_eq!(t.end(0, 0).unwrap(), None);
        assert!(t.all_idle());
        assert_eq!(t.end(0, 1).unwrap(), Some(MAX_WATERMARK));
        assert!(t.all_ended() && !t.all_idle());
    }
}
