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
        op.on_input_end(input, &mut Output::new(&mut emitted, metrics))
            .map_err(|e| e.in_node(name))?;
        self.run_from(1, 0, emitted, out)
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
        if end {
            chain.end_input(0, &mut pending)?;
        }
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
        Ok(self.advance())
    }

    /// True when every sender of input `input` has ended.
    pub fn input_ended(&self, input: usize) -> bool {
        self.watermarks
            .get(input)
            .is_some_and(|senders| senders.iter().all(|&w| w == MAX_WATERMARK))
    }

    /// True when every sender of every input has ended.
    pub fn all_ended(&self) -> bool {
        self.watermarks
            .iter()
            .flatten()
            .all(|&w| w == MAX_WATERMARK)
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
            Message::Batch(batch) => {
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
                    chain.push(input, Message::Watermark(wm), &mut pending)?;
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
        run_operator_task(rx, vec![1, 2], vec![false, true], chain, Vec::new())
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
}
