//! Barrier alignment: a task with several senders takes its snapshot for
//! checkpoint `n` only once barrier `n` has arrived from every sender, as in
//! Flink's aligned checkpoints (Chandy-Lamport over FIFO channels).
//!
//! All senders of a task share one inbox, so a sender cannot be paused: after
//! its barrier, its messages are held here until the others' barriers arrive,
//! then released in arrival order. A sender that has ended counts as aligned.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::error::{EngineError, Result};
use crate::message::Message;
use crate::runtime::exchange::Envelope;

#[derive(Debug, Clone, Copy, Default)]
struct SenderState {
    /// Its barrier of the checkpoint being aligned has arrived.
    blocked: bool,
    ended: bool,
}

/// Aligns barriers over the senders of every input of one task.
#[derive(Debug)]
pub struct BarrierAligner {
    senders: Vec<Vec<SenderState>>,
    /// The checkpoint being aligned and when its first barrier arrived.
    current: Option<(u64, Instant)>,
    /// The newest checkpoint already aligned (older barriers are stale).
    last_aligned: Option<u64>,
    held: VecDeque<Envelope>,
}

impl BarrierAligner {
    /// An aligner for inputs with the given numbers of senders.
    pub fn new(senders_per_input: &[usize]) -> Self {
        BarrierAligner {
            senders: senders_per_input
                .iter()
                .map(|&n| vec![SenderState::default(); n])
                .collect(),
            current: None,
            last_aligned: None,
            held: VecDeque::new(),
        }
    }

    fn sender(&mut self, input: usize, sender: usize) -> Result<&mut SenderState> {
        self.senders
            .get_mut(input)
            .and_then(|i| i.get_mut(sender))
            .ok_or_else(|| {
                EngineError::InvalidGraph(format!("unexpected sender {sender} on input {input}"))
            })
    }

    /// Takes one message off the inbox. Returns it when the task should process
    /// it now; `None` when it was a barrier or is held behind one.
    pub fn accept(&mut self, envelope: Envelope) -> Result<Option<Envelope>> {
        let (input, sender) = (envelope.input, envelope.sender);
        let state = *self.sender(input, sender)?;
        if state.blocked {
            self.held.push_back(envelope);
            return Ok(None);
        }
        match envelope.message {
            Message::Barrier(id) => {
                if self.last_aligned.is_some_and(|last| id <= last) {
                    return Ok(None);
                }
                match self.current {
                    None => self.current = Some((id, Instant::now())),
                    Some((current, _)) if current == id => {}
                    Some((current, _)) => {
                        return Err(EngineError::InvalidGraph(format!(
                            "barrier of checkpoint {id} arrived while checkpoint {current} \
                             was being aligned"
                        )));
                    }
                }
                self.sender(input, sender)?.blocked = true;
                Ok(None)
            }
            Message::End => {
                self.sender(input, sender)?.ended = true;
                Ok(Some(envelope))
            }
            _ => Ok(Some(envelope)),
        }
    }

    /// After a message was processed: the checkpoint whose barriers have now
    /// arrived from every open sender, with how long alignment took. The task
    /// snapshots its state, forwards the barrier, then processes
    /// [`BarrierAligner::release`]d messages before reading its inbox again.
    pub fn take_aligned(&mut self) -> Option<(u64, Duration)> {
        let (id, started) = self.current?;
        let aligned = self.senders.iter().flatten().all(|s| s.blocked || s.ended);
        if !aligned {
            return None;
        }
        self.current = None;
        self.last_aligned = Some(id);
        self.senders
            .iter_mut()
            .flatten()
            .for_each(|s| s.blocked = false);
        Some((id, started.elapsed()))
    }

    /// The messages held during the last alignment, in arrival order. They go
    /// through [`BarrierAligner::accept`] again (one may be the next barrier).
    pub fn release(&mut self) -> VecDeque<Envelope> {
        std::mem::take(&mut self.held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(input: usize, sender: usize, message: Message) -> Envelope {
        Envelope {
            input,
            sender,
            message,
        }
    }

    fn label(e: &Envelope) -> String {
        let what = match &e.message {
            Message::Watermark(w) => format!("wm{w}"),
            Message::Barrier(b) => format!("barrier{b}"),
            Message::End => "end".into(),
            other => format!("{other:?}"),
        };
        format!("{}.{} {what}", e.input, e.sender)
    }

    /// Feeds messages like a task does and logs what it processes and when it
    /// snapshots.
    fn run(aligner: &mut BarrierAligner, messages: Vec<Envelope>) -> Vec<String> {
        let mut log = Vec::new();
        let mut queue: VecDeque<Envelope> = messages.into();
        while let Some(next) = queue.pop_front() {
            if let Some(e) = aligner.accept(next).unwrap() {
                log.push(label(&e));
            }
            if let Some((id, _)) = aligner.take_aligned() {
                log.push(format!("snapshot {id}"));
                let mut released = aligner.release();
                released.append(&mut queue);
                queue = released;
            }
        }
        log
    }

    #[test]
    fn messages_after_a_barrier_wait_for_the_other_senders_barriers() {
        let mut aligner = BarrierAligner::new(&[2, 1]);
        let log = run(
            &mut aligner,
            vec![
                envelope(0, 0, Message::Watermark(1)),
                envelope(0, 0, Message::Barrier(1)),
                envelope(0, 0, Message::Watermark(2)), // held: after its barrier
                envelope(0, 1, Message::Watermark(3)),
                envelope(1, 0, Message::Barrier(1)),
                envelope(1, 0, Message::Watermark(4)), // held
                envelope(0, 1, Message::Barrier(1)),   // aligned
                envelope(0, 1, Message::Watermark(5)),
            ],
        );
        assert_eq!(
            log,
            vec![
                "0.0 wm1",
                "0.1 wm3",
                "snapshot 1",
                "0.0 wm2",
                "1.0 wm4",
                "0.1 wm5"
            ]
        );
    }

    #[test]
    fn an_ended_sender_counts_as_aligned_and_the_next_barrier_can_be_held() {
        let mut aligner = BarrierAligner::new(&[3]);
        let log = run(
            &mut aligner,
            vec![
                envelope(0, 0, Message::End),
                envelope(0, 1, Message::Barrier(1)),
                envelope(0, 1, Message::Barrier(2)), // held behind barrier 1
                envelope(0, 2, Message::Watermark(7)),
                envelope(0, 2, Message::Barrier(1)), // aligned: 0 ended
                envelope(0, 2, Message::End),
                envelope(0, 1, Message::Watermark(8)),
            ],
        );
        // Barrier 2 is released with sender 1's held messages; sender 2 ends
        // before sending it, so checkpoint 2 aligns at once.
        assert_eq!(
            log,
            vec![
                "0.0 end",
                "0.2 wm7",
                "snapshot 1",
                "0.2 end",
                "snapshot 2",
                "0.1 wm8"
            ]
        );
    }

    #[test]
    fn without_barriers_nothing_is_held_and_stale_barriers_are_ignored() {
        let mut aligner = BarrierAligner::new(&[1]);
        assert_eq!(
            run(
                &mut aligner,
                vec![
                    envelope(0, 0, Message::Watermark(1)),
                    envelope(0, 0, Message::Barrier(3)),
                    envelope(0, 0, Message::Barrier(2)),
                    envelope(0, 0, Message::Watermark(2)),
                ],
            ),
            vec!["0.0 wm1", "snapshot 3", "0.0 wm2"]
        );
        let unknown = aligner.accept(envelope(0, 5, Message::End)).unwrap_err();
        assert!(unknown.to_string().contains("unexpected sender 5"));
    }
}
