//! The state of a sliced window aggregate: partial aggregates per slice,
//! merged into a window's result when the window fires.
//!
//! A slice starts *live* (a [`GroupedAggregates`] that rows update). The first
//! time a window reads it, the slice is *frozen* into a [`StateBatch`] that
//! later windows merge again without disturbing it; rows that still arrive for
//! the slice (late for its fired windows, on time for the others) go to a new
//! live part, folded into the frozen one at the next read. A slice is dropped
//! when its last window fires. For nesting windows (CUMULATE), a fired window's
//! merged state replaces its slices, so each window merges one prefix and the
//! new slices instead of every slice since the start of its cycle.

use std::collections::BTreeMap;
use std::ops::Bound::{Excluded, Included};
use std::sync::Arc;

use crate::aggregate::{AggregateInput, AggregateSpec, GroupedAggregates, StateBatch};
use crate::checkpoint::OperatorState;
use crate::error::Result;
use crate::time::Timestamp;
use crate::window::slicing::SliceSpec;
use crate::window::window_fired;

/// Partial aggregates of one slice.
#[derive(Default)]
struct Slice {
    /// Groups already read by a window, as state arrays.
    frozen: Option<StateBatch>,
    /// Groups updated since the last read.
    live: Option<GroupedAggregates>,
}

impl Slice {
    fn update(&mut self, spec: &AggregateSpec, input: &AggregateInput) -> Result<()> {
        match &mut self.live {
            Some(live) => live.update(input),
            None => {
                let mut live = spec.new_state()?;
                live.update(input)?;
                self.live = Some(live);
                Ok(())
            }
        }
    }

    /// Folds the live part into the frozen one and returns it.
    fn freeze(&mut self, spec: &AggregateSpec) -> Result<Option<&StateBatch>> {
        if let Some(live) = self.live.take() {
            let state = live.into_state()?;
            self.frozen = Some(match self.frozen.take() {
                None => state,
                Some(frozen) => {
                    let mut merged = spec.new_state()?;
                    merged.merge_state(&frozen)?;
                    merged.merge_state(&state)?;
                    merged.into_state()?
                }
            });
        }
        Ok(self.frozen.as_ref())
    }

    fn into_aggregates(self, spec: &AggregateSpec) -> Result<GroupedAggregates> {
        match (self.frozen, self.live) {
            (None, Some(live)) => Ok(live),
            (frozen, live) => {
                let mut merged = spec.new_state()?;
                if let Some(frozen) = frozen {
                    merged.merge_state(&frozen)?;
                }
                if let Some(live) = live {
                    merged.merge_state(&live.into_state()?)?;
                }
                Ok(merged)
            }
        }
    }

    fn into_state(self, spec: &AggregateSpec) -> Result<StateBatch> {
        match (self.frozen, self.live) {
            (Some(frozen), None) => Ok(frozen),
            (frozen, live) => Slice { frozen, live }.into_aggregates(spec)?.into_state(),
        }
    }

    fn size(&self) -> usize {
        self.frozen.as_ref().map_or(0, |f| f.size()) + self.live.as_ref().map_or(0, |l| l.size())
    }

    fn num_groups(&self) -> usize {
        self.frozen.as_ref().map_or(0, |f| f.num_groups())
            + self.live.as_ref().map_or(0, |l| l.num_groups())
    }
}

/// Slices of one operator instance, ordered by slice end.
pub struct SliceStore {
    slicing: SliceSpec,
    spec: Arc<AggregateSpec>,
    slices: BTreeMap<Timestamp, Slice>,
}

impl SliceStore {
    /// An empty store for windows cut by `slicing`, aggregating as `spec` says.
    pub fn new(slicing: SliceSpec, spec: Arc<AggregateSpec>) -> Self {
        SliceStore {
            slicing,
            spec,
            slices: BTreeMap::new(),
        }
    }

    /// Folds rows into the slice ending at `slice_end`.
    pub fn update(&mut self, slice_end: Timestamp, input: &AggregateInput) -> Result<()> {
        self.slices
            .entry(slice_end)
            .or_default()
            .update(&self.spec, input)
    }

    /// The ends of the windows holding data that fire when the watermark moves
    /// from `previous` to `watermark`, in increasing order.
    pub fn windows_firing(&self, previous: Timestamp, watermark: Timestamp) -> Vec<Timestamp> {
        // window_fired(e, wm) <=> e <= wm + 1.
        let (after, up_to) = (previous.saturating_add(1), watermark.saturating_add(1));
        let mut ends: Vec<Timestamp> = self
            .slices
            .range(..=up_to)
            .flat_map(|(&slice_end, _)| self.slicing.window_ends_between(slice_end, after, up_to))
            .collect();
        ends.sort_unstable();
        ends.dedup();
        ends
    }

    /// Merges the slices of the window ending at `window_end` into its result,
    /// and releases the slices no later window needs. Windows must fire in
    /// increasing order of end. `None` when the window holds no data.
    pub fn fire(&mut self, window_end: Timestamp) -> Result<Option<GroupedAggregates>> {
        let start = self.slicing.window_start(window_end);
        let ends: Vec<Timestamp> = self
            .slices
            .range((Excluded(start), Included(window_end)))
            .map(|(&end, _)| end)
            .collect();
        if ends.is_empty() {
            return Ok(None);
        }
        if self.slicing.windows_nest() && self.slicing.last_window_end(window_end) > window_end {
            return self.fire_nested(window_end, &ends).map(Some);
        }
        let spec = Arc::clone(&self.spec);
        let mut merged: Option<GroupedAggregates> = None;
        for end in ends {
            if self.slicing.last_window_end(end) <= window_end {
                // This is the slice's last window: consume it.
                let Some(slice) = self.slices.remove(&end) else {
                    continue;
                };
                match &mut merged {
                    None => merged = Some(slice.into_aggregates(&spec)?),
                    Some(merged) => merged.merge_state(&slice.into_state(&spec)?)?,
                }
            } else if let Some(slice) = self.slices.get_mut(&end)
                && let Some(state) = slice.freeze(&spec)?
            {
                // Later windows still need the slice: read it without consuming it.
                match &mut merged {
                    Some(merged) => merged.merge_state(state)?,
                    None => {
                        let mut fresh = spec.new_state()?;
                        fresh.merge_state(state)?;
                        merged = Some(fresh);
                    }
                }
            }
        }
        Ok(merged)
    }

    /// A window of a nesting kind that is not the last of its cycle: its merged
    /// state replaces its slices, keyed by the window end.
    fn fire_nested(
        &mut self,
        window_end: Timestamp,
        ends: &[Timestamp],
    ) -> Result<GroupedAggregates> {
        let mut parts = ends.iter().filter_map(|end| self.slices.remove(end));
        let state = match (parts.next(), parts.next()) {
            (Some(only), None) => only.into_state(&self.spec)?,
            (first, second) => {
                let mut merged = match first {
                    Some(first) => first.into_aggregates(&self.spec)?,
                    None => self.spec.new_state()?,
                };
                for part in second.into_iter().chain(parts) {
                    merged.merge_state(&part.into_state(&self.spec)?)?;
                }
                merged.into_state()?
            }
        };
        let mut result = self.spec.new_state()?;
        result.merge_state(&state)?;
        self.slices.insert(
            window_end,
            Slice {
                frozen: Some(state),
                live: None,
            },
        );
        Ok(result)
    }

    /// Drops slices whose last window has fired at `watermark`.
    pub fn release_fired(&mut self, watermark: Timestamp) {
        // A slice's last window end grows with the slice end.
        while let Some(entry) = self.slices.first_entry() {
            if !window_fired(self.slicing.last_window_end(*entry.key()), watermark) {
                break;
            }
            entry.remove();
        }
    }

    /// Whether the row's slice still has a window open at `watermark`.
    pub fn accepts(&self, slice_end: Timestamp, watermark: Timestamp) -> bool {
        !window_fired(self.slicing.last_window_end(slice_end), watermark)
    }

    /// The store for a checkpoint: one state per slice, tagged with the slice
    /// end (for a nesting window that fired before the last of its cycle, the
    /// end of that window, whose merged state replaced its slices), and the
    /// operator's `watermark`, which tells which windows have fired. Live parts
    /// are frozen, as a window reading the slice would, so the store goes on
    /// unchanged.
    pub fn snapshot(&mut self, watermark: Timestamp) -> Result<OperatorState> {
        for slice in self.slices.values_mut() {
            slice.freeze(&self.spec)?;
        }
        let frozen = self
            .slices
            .iter()
            .filter_map(|(&end, slice)| slice.frozen.as_ref().map(|state| (end, state)));
        StateBatch::write_tagged(frozen, watermark)
    }

    /// Puts back the slices of a [`SliceStore::snapshot`], each as a live part
    /// (merged with what the store holds for the same end, if anything).
    pub fn restore(&mut self, state: &OperatorState) -> Result<()> {
        for (end, restored) in StateBatch::read_tagged(state, &self.spec)? {
            let slice = self.slices.entry(end).or_default();
            match &mut slice.live {
                Some(live) => live.merge_state(&restored)?,
                None => {
                    let mut live = self.spec.new_state()?;
                    live.merge_state(&restored)?;
                    slice.live = Some(live);
                }
            }
        }
        Ok(())
    }

    /// Number of slices held.
    pub fn num_slices(&self) -> usize {
        self.slices.len()
    }

    /// Number of (slice, key) groups held.
    pub fn num_groups(&self) -> usize {
        self.slices.values().map(Slice::num_groups).sum()
    }

    /// Bytes held by all slices.
    pub fn size(&self) -> usize {
        self.slices.values().map(Slice::size).sum()
    }
}
