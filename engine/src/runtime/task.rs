//! One task: a chain of nodes joined by forward edges, run as one tokio task.
//!
//! A task is fed by its source (for source chains) or by one inbound channel that
//! all its upstream instances share. It tracks the watermark of every upstream
//! channel and passes the minimum on; an input ends when all its channels have
//! ended. Its output goes to every outgoing edge of its last node.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::checkpoint::{OperatorState, RestoredState};
use crate::error::{EngineError, Result};
use crate::late_rows::LateRowsSender;
use crate::message::Message;
use crate::metrics::NodeMetrics;
use crate::operator::{Operator, Output};
use crate::runtime::alignment::BarrierAligner;
use crate::runtime::checkpointing::{FINAL_CHECKPOINT_DONE, FINAL_STAGE, TaskCheckpointing};
use crate::runtime::exchange::{Envelope, OutputEdge};
use crate::runtime::split_pacer::SplitTurn;
use crate::sink::Sink;
use crate::source::{Source, SourceContext};
use crate::time::{MAX_WATERMARK, MIN_WATERMARK, Timestamp};
use crate::watermark::is_partition_tagged;

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
        self.run_from(0, input, vec![message], out)
    }

    /// Tells the head operator that its input `input` has ended (see
    /// [`Operator::on_input_end`]) and runs what it emits through the rest of the
    /// chain. Chained operators after the head have one input, whose end is the
    /// `End` message; they are told when it passes.
    pub fn end_input(&mut self, input: usize, out: &mut Vec<Message>) -> Result<()> {
        let Some((op, metrics, name)) = self.operators.first_mut() else {
            return Ok(());
        };
        let mut emitted = Vec::new();
        let late_rows = self.late_rows.as_ref();
        op.on_input_end(
            input,
            &mut Output::new(&mut emitted, metrics).with_late_rows(late_rows, name),
        )
        .map_err(|e| e.in_node(name))?;
        self.run_from(1, 0, emitted, out)
    }

    /// The state of every operator that has some, by position in the chain.
    pub fn snapshot(&mut self) -> Result<Vec<(usize, OperatorState)>> {
        let mut states = Vec::new();
        for (position, (op, _, name)) in self.operators.iter_mut().enumerate() {
            if let Some(state) = op.snapshot().map_err(|e| e.in_node(name))? {
                states.push((position, state));
            }
        }
        Ok(states)
    }

    /// Before the first message of a job with checkpoints: restores every
    /// operator that has state in the checkpoint (`state(position)`), and makes
    /// sure the others can take part in checkpoints at all.
    pub fn restore(&mut self, state: impl Fn(usize) -> Option<RestoredState>) -> Result<()> {
        for (position, (op, _, name)) in self.operators.iter_mut().enumerate() {
            match state(position) {
                Some(RestoredState::Same(state)) => op.restore(state),
                Some(RestoredState::Rescaled(rescaled)) if rescaled.states.is_empty() => {
                    op.snapshot().map(drop)
                }
                Some(RestoredState::Rescaled(rescaled)) => op.restore_rescaled(rescaled),
                None => op.snapshot().map(drop),
            }
            .map_err(|e| e.in_node(name))?;
        }
        Ok(())
    }

    /// The counters of the head operator.
    pub fn head_metrics(&self) -> Option<&NodeMetrics> {
        self.operators
            .first()
            .map(|(_, metrics, _)| metrics.as_ref())
    }

    /// Runs `messages` through the operators from position `start` on.
    fn run_from(
        &mut self,
        start: usize,
        input: usize,
        messages: Vec<Message>,
        out: &mut Vec<Message>,
    ) -> Result<()> {
        let mut current = messages;
        for (position, (op, metrics, name)) in self.operators.iter_mut().enumerate().skip(start) {
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
                        // The head's inputs were ended one by one by `end_input`.
                        let ended = if position == 0 {
                            Ok(())
                        } else {
                            op.on_input_end(0, &mut output)
                        };
                        let r = ended.and_then(|()| op.on_end(&mut output));
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

/// How a source task is driven besides reading.
#[derive(Debug, Default)]
pub struct SourceControl {
    /// A split that yields no batch for this long sends [`Message::Idle`] once,
    /// until its next batch.
    pub idle_timeout: Option<Duration>,
    /// The split waits for its turn before each read (see
    /// [`crate::runtime::split_pacer`]).
    pub pacing: Option<SplitTurn>,
    /// The split takes part in checkpoints.
    pub checkpointing: Option<TaskCheckpointing>,
}

/// Reads a source split, runs the chain, routes the results.
pub async fn run_source_task(
    mut source: Box<dyn Source>,
    mut chain: Chain,
    ctx: SourceContext,
    outputs: Vec<OutputEdge>,
    name: String,
    control: SourceControl,
) -> Result<()> {
    let SourceControl {
        idle_timeout,
        pacing,
        mut checkpointing,
    } = control;
    let mut pending = Vec::new();
    let mut idle = false;
    // Since when the split has read no row (for sources that report waiting
    // with empty batches).
    let mut silent_since = tokio::time::Instant::now();
    loop {
        // A triggered checkpoint: the split's position and the chain's state,
        // then the barrier, all between two batches.
        if let Some(cp) = checkpointing.as_mut()
            && let Some(id) = cp.pending_trigger()
        {
            let mut states = vec![(0, source.snapshot().map_err(|e| e.in_node(&name))?)];
            states.extend(chain.snapshot()?.into_iter().map(|(p, s)| (p + 1, s)));
            cp.report(id, states, Duration::ZERO)?;
            chain.push(0, Message::Barrier(id), &mut pending)?;
            route_all(&outputs, &mut pending).await?;
        }
        if let Some(turn) = &pacing {
            turn.wait().await;
        }
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
            // Waiting for data: nothing to pass on, but the loop goes round,
            // so checkpoint triggers are seen and the split can go idle.
            Some(batch) if batch.num_rows() == 0 => {
                if let Some(timeout) = idle_timeout
                    && !idle
                    && silent_since.elapsed() >= timeout
                {
                    idle = true;
                    chain.push(0, Message::Idle, &mut pending)?;
                    route_all(&outputs, &mut pending).await?;
                }
                // The partitions counting toward the watermark changed.
                if is_partition_tagged(&batch) {
                    chain.push(0, Message::Batch(batch), &mut pending)?;
                    route_all(&outputs, &mut pending).await?;
                }
                continue;
            }
            Some(batch) => {
                idle = false;
                silent_since = tokio::time::Instant::now();
                if let Some(turn) = &pacing {
                    turn.read_one();
                }
                NodeMetrics::add(&ctx.metrics.rows_out, batch.num_rows());
                Message::Batch(batch)
            }
            None => Message::End,
        };
        let end = matches!(message, Message::End);
        if end {
            chain.end_input(0, &mut pending)?;
        }
        chain.push(0, message, &mut pending)?;
        route_all(&outputs, &mut pending).await?;
        if end {
            if let Some(cp) = checkpointing.take() {
                // The split's end position and its chain's final state.
                let mut states = vec![(0, source.snapshot().map_err(|e| e.in_node(&name))?)];
                states.extend(chain.snapshot()?.into_iter().map(|(p, s)| (p + 1, s)));
                cp.finish(states);
            }
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

    /// True when every sender of input `input` has ended.
    pub fn input_ended(&self, input: usize) -> bool {
        self.channels
            .get(input)
            .is_some_and(|senders| senders.iter().all(Channel::ended))
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
///
/// `replicated[i]` is true when input `i` is a broadcast copy that another
/// instance also receives (every instance but the first of a broadcast edge):
/// its rows are counted in `rows_replicated` so the job summary counts each row
/// once.
pub async fn run_operator_task(
    mut inbox: mpsc::Receiver<Envelope>,
    senders_per_input: Vec<usize>,
    replicated: Vec<bool>,
    mut chain: Chain,
    outputs: Vec<OutputEdge>,
    mut checkpointing: Option<TaskCheckpointing>,
) -> Result<()> {
    let mut tracker = InputTracker::new(&senders_per_input);
    let mut aligner = checkpointing
        .as_ref()
        .map(|_| BarrierAligner::new(&senders_per_input));
    // Messages held during an alignment, processed before the inbox.
    let mut released: VecDeque<Envelope> = VecDeque::new();
    let mut pending = Vec::new();
    // Whether downstream was told this task is idle (all its inputs are).
    let mut told_idle = false;
    loop {
        let envelope = match released.pop_front() {
            Some(envelope) => envelope,
            None => match inbox.recv().await {
                Some(envelope) => envelope,
                // Every sender went away without ending: an upstream task failed.
                None => return Err(EngineError::ChannelClosed),
            },
        };
        let accepted = match aligner.as_mut() {
            Some(aligner) => aligner.accept(envelope)?,
            None => Some(envelope),
        };
        if let Some(Envelope {
            input,
            sender,
            message,
        }) = accepted
        {
            match message {
                Message::Batch(batch) => {
                    tracker.batch(input, sender)?;
                    told_idle = false;
                    if replicated.get(input).copied().unwrap_or(false)
                        && let Some(metrics) = chain.head_metrics()
                    {
                        NodeMetrics::add(&metrics.rows_replicated, batch.num_rows());
                    }
                    chain.push(input, Message::Batch(batch), &mut pending)?
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
                    let was_ended = tracker.input_ended(input);
                    let advanced = tracker.end(input, sender)?;
                    // The operator hears of the input's end before the watermark the
                    // end releases (a bounded table's MIN watermark stops holding the
                    // others back only now).
                    if !was_ended && tracker.input_ended(input) {
                        chain.end_input(input, &mut pending)?;
                    }
                    if let Some(wm) = advanced
                        && (wm != MAX_WATERMARK || !tracker.all_ended())
                    {
                        chain.push(input, Message::Watermark(wm), &mut pending)?;
                    }
                    if tracker.all_ended() {
                        chain.push(input, Message::End, &mut pending)?;
                        route_all(&outputs, &mut pending).await?;
                        if let Some(cp) = checkpointing.take() {
                            cp.finish(chain.snapshot()?);
                        }
                        return Ok(());
                    }
                }
            }
        }
        // Barriers from every open sender: snapshot, then pass the barrier on.
        if let (Some(aligner), Some(cp)) = (aligner.as_mut(), checkpointing.as_ref())
            && let Some((id, alignment)) = aligner.take_aligned()
        {
            cp.report(id, chain.snapshot()?, alignment)?;
            chain.push(0, Message::Barrier(id), &mut pending)?;
            let mut held = aligner.release();
            held.append(&mut released);
            released = held;
        }
        let routed = !pending.is_empty();
        route_all(&outputs, &mut pending).await?;
        if routed {
            // Tokio runs the task a send woke next on this worker (its LIFO
            // slot, which other workers cannot steal), but only once this task
            // yields. Without the yield, a window's results waited in the
            // sink's inbox while this task released the window's state: 73 ms
            // of q7's latency at 100k events/s.
            tokio::task::yield_now().await;
        }
    }
}

/// Writes everything that reaches a sink instance.
pub async fn run_sink_task(
    mut inbox: mpsc::Receiver<Envelope>,
    senders_per_input: Vec<usize>,
    mut sink: Box<dyn Sink>,
    metrics: Arc<NodeMetrics>,
    name: String,
    mut checkpointing: Option<TaskCheckpointing>,
) -> Result<()> {
    if let Some(cp) = &checkpointing {
        // Also for a fresh start: output staged by an earlier attempt goes.
        match cp.restored(0) {
            Some(RestoredState::Rescaled(rescaled)) => sink.restore_rescaled(rescaled).await,
            Some(RestoredState::Same(state)) => sink.restore(Some(state)).await,
            None => sink.restore(None).await,
        }
        .map_err(|e| e.in_node(&name))?;
    }
    let mut tracker = InputTracker::new(&senders_per_input);
    let mut aligner = checkpointing
        .as_ref()
        .map(|_| BarrierAligner::new(&senders_per_input));
    let mut released: VecDeque<Envelope> = VecDeque::new();
    loop {
        let envelope = match released.pop_front() {
            Some(envelope) => envelope,
            None => {
                tokio::select! {
                    // A completed checkpoint: make what it covers visible.
                    id = completed_checkpoint(checkpointing.as_mut()) => {
                        sink.commit_checkpoint(id).await.map_err(|e| e.in_node(&name))?;
                        if let Some(cp) = &checkpointing {
                            cp.committed(id);
                        }
                        continue;
                    }
                    envelope = inbox.recv() => match envelope {
                        Some(envelope) => envelope,
                        None => return Err(EngineError::ChannelClosed),
                    },
                }
            }
        };
        let accepted = match aligner.as_mut() {
            Some(aligner) => aligner.accept(envelope)?,
            None => Some(envelope),
        };
        if let Some(envelope) = accepted {
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
                        if let Some(mut cp) = checkpointing.take() {
                            // Staged, not visible, until the final checkpoint
                            // (taken once every task ended) is complete.
                            let state = sink
                                .prepare_checkpoint(FINAL_STAGE)
                                .await
                                .map_err(|e| e.in_node(&name))?;
                            cp.report_final(state.map(|s| (0, s)).into_iter().collect());
                            loop {
                                let id = cp.next_completed().await;
                                sink.commit_checkpoint(id)
                                    .await
                                    .map_err(|e| e.in_node(&name))?;
                                cp.committed(id);
                                if id == FINAL_CHECKPOINT_DONE {
                                    break;
                                }
                            }
                        }
                        sink.finish().await.map_err(|e| e.in_node(&name))?;
                        return Ok(());
                    }
                }
            }
        }
        if let (Some(aligner), Some(cp)) = (aligner.as_mut(), checkpointing.as_ref())
            && let Some((id, alignment)) = aligner.take_aligned()
        {
            let state = sink
                .prepare_checkpoint(id)
                .await
                .map_err(|e| e.in_node(&name))?;
            cp.report(id, state.map(|s| (0, s)).into_iter().collect(), alignment)?;
            let mut held = aligner.release();
            held.append(&mut released);
            released = held;
        }
    }
}

/// The next completed checkpoint, or never without checkpoints.
async fn completed_checkpoint(checkpointing: Option<&mut TaskCheckpointing>) -> u64 {
    match checkpointing {
        Some(cp) => cp.next_completed().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use datafusion::arrow::array::{Int64Array, RecordBatch};
    use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

    use super::*;

    /// Logs every call as `"{name} {call}"` and forwards watermarks.
    struct Recorder {
        name: &'static str,
        log: Arc<Mutex<Vec<String>>>,
    }

    impl Recorder {
        fn note(&self, call: String) {
            self.log
                .lock()
                .unwrap()
                .push(format!("{} {call}", self.name));
        }
    }

    impl Operator for Recorder {
        fn output_schema(&self) -> SchemaRef {
            Arc::new(Schema::empty())
        }

        fn on_batch(&mut self, _batch: RecordBatch, _out: &mut Output<'_>) -> Result<()> {
            Ok(())
        }

        fn on_input_batch(
            &mut self,
            input: usize,
            batch: RecordBatch,
            _out: &mut Output<'_>,
        ) -> Result<()> {
            self.note(format!("batch {input} ({} rows)", batch.num_rows()));
            Ok(())
        }

        fn on_watermark(&mut self, watermark: Timestamp, out: &mut Output<'_>) -> Result<()> {
            self.note(format!("watermark {watermark}"));
            out.watermark(watermark);
            Ok(())
        }

        fn on_input_end(&mut self, input: usize, _out: &mut Output<'_>) -> Result<()> {
            self.note(format!("input_end {input}"));
            Ok(())
        }

        fn on_end(&mut self, _out: &mut Output<'_>) -> Result<()> {
            self.note("end".into());
            Ok(())
        }
    }

    fn envelope(input: usize, sender: usize, message: Message) -> Envelope {
        Envelope {
            input,
            sender,
            message,
        }
    }

    #[tokio::test]
    async fn an_input_end_comes_before_the_watermark_it_releases() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let head_metrics = Arc::new(NodeMetrics::default());
        let chain = Chain {
            operators: vec![
                (
                    Box::new(Recorder {
                        name: "A",
                        log: log.clone(),
                    }),
                    head_metrics.clone(),
                    "A".into(),
                ),
                (
                    Box::new(Recorder {
                        name: "B",
                        log: log.clone(),
                    }),
                    Arc::new(NodeMetrics::default()),
                    "B".into(),
                ),
            ],
            late_rows: None,
        };
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let batch =
            RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![1, 2, 3]))]).unwrap();
        let (tx, rx) = mpsc::channel(16);
        // Input 0 has one sender (a stream), input 1 two (a table, broadcast).
        for e in [
            envelope(0, 0, Message::Watermark(5)),
            envelope(1, 0, Message::Batch(batch.clone())),
            envelope(1, 1, Message::Batch(batch)),
            envelope(1, 0, Message::End),
            envelope(0, 0, Message::Watermark(7)),
            envelope(1, 1, Message::End),
            envelope(0, 0, Message::End),
        ] {
            tx.send(e).await.unwrap();
        }
        drop(tx);
        run_operator_task(rx, vec![1, 2], vec![false, true], chain, Vec::new(), None)
            .await
            .unwrap();
        let log = log.lock().unwrap().clone();
        assert_eq!(
            log,
            vec![
                "A batch 1 (3 rows)",
                "A batch 1 (3 rows)",
                // The table's MIN watermark held the stream's 5 and 7 back.
                "A input_end 1",
                "A watermark 7",
                "B watermark 7",
                "A input_end 0",
                "A end",
                "B input_end 0",
                "B end",
            ]
        );
        // This instance's copy of the broadcast input is a replica: the first
        // instance counts those rows.
        let counts = head_metrics.snapshot();
        assert_eq!(counts.rows_in, 6);
        assert_eq!(counts.rows_replicated, 6);
    }

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
