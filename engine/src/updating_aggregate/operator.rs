//! The running instance of an updating aggregate: interns keys, folds each
//! batch into the running values and emits the changes of the touched groups.

use std::sync::Arc;

use datafusion::arrow::array::{BooleanArray, Int64Array, RecordBatchOptions, UInt32Array};
use datafusion::arrow::compute::kernels::cmp::distinct;
use datafusion::arrow::compute::{concat, concat_batches, or, take};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::logical_expr::EmitTo;
use datafusion::physical_plan::aggregates::group_values::GroupValues;

use super::accumulator::{AggState, passes_filter};
use super::distinct::DistinctValues;
use super::ttl::{GroupExpiry, key_table, retain_keys};
use crate::aggregate::{AggregateInput, AggregateSpec};
use crate::changelog::{RowKind, row_kind_array};
use crate::checkpoint::{OperatorState, Rescaled, check_schema, malformed_state, state_column};
use crate::error::{EngineError, Result};
use crate::metrics::NodeMetrics;
use crate::operator::{Operator, Output};

/// The column of an updating aggregate's checkpoint with each group's idle time.
const IDLE_COLUMN: &str = "idle_ms";

/// The running instance of an [`UpdatingAggregate`](super::UpdatingAggregate).
pub struct UpdatingAggregateOperator {
    pub(super) spec: Arc<AggregateSpec>,
    pub(super) output_schema: SchemaRef,
    /// Interned keys; `None` without group expressions (one group, id 0).
    pub(super) group_values: Option<Box<dyn GroupValues>>,
    pub(super) states: Vec<AggState>,
    /// The values DISTINCT aggregates have seen: one map per distinct
    /// argument, shared by the calls over it.
    pub(super) distinct: Vec<DistinctValues>,
    /// Per aggregate: its map in `distinct` and its member number there
    /// (DISTINCT aggregates only).
    pub(super) distinct_of: Vec<Option<(usize, usize)>>,
    /// Last access per group and the TTL sweep schedule.
    pub(super) expiry: GroupExpiry,
    /// Per group: touched by the current batch (reset after each batch).
    pub(super) marks: Vec<bool>,
    pub(super) group_indices: Vec<usize>,
}

impl UpdatingAggregateOperator {
    /// Number of groups held in state.
    pub fn num_groups(&self) -> usize {
        self.expiry.len()
    }

    /// Approximate bytes held by the state.
    pub fn state_size(&self) -> usize {
        let per_agg: usize = self.states.iter().map(AggState::size).sum();
        let distinct: usize = self.distinct.iter().map(DistinctValues::size).sum();
        self.group_values.as_ref().map_or(0, |v| v.size())
            + per_agg
            + distinct
            + self.expiry.size()
            + self.marks.capacity()
    }

    /// The schema of the state in a checkpoint: the group keys `k<i>`,
    /// `idle_ms` (processing time since the group's last row, for the TTL),
    /// then the columns of each aggregate (see `AggState::state_fields`).
    pub(super) fn state_schema(&self) -> SchemaRef {
        let mut fields: Vec<Field> = self
            .spec
            .group_schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| Field::new(format!("k{i}"), f.data_type().clone(), true))
            .collect();
        fields.push(Field::new(IDLE_COLUMN, DataType::Int64, false));
        for (a, state) in self.states.iter().enumerate() {
            fields.extend(state.state_fields(a));
        }
        Arc::new(Schema::new(fields))
    }

    /// The DISTINCT map `map`.
    fn distinct_map(&self, map: usize) -> Result<&DistinctValues> {
        self.distinct
            .get(map)
            .ok_or_else(|| EngineError::InvalidGraph("updating aggregate: no DISTINCT map".into()))
    }

    /// Records the batch's values in every DISTINCT map, once per row for all
    /// the calls sharing it; per map, per member, per row: whether the row
    /// brought a value new to that call's group (empty for a map whose calls
    /// have no argument).
    fn count_distinct(&mut self, input: &AggregateInput) -> Result<Vec<Vec<Vec<bool>>>> {
        let mut fresh = Vec::with_capacity(self.distinct.len());
        for (m, map) in self.distinct.iter_mut().enumerate() {
            // The calls of this map, in member order.
            let calls: Vec<usize> = (0..self.distinct_of.len())
                .filter(|&a| self.distinct_of[a].is_some_and(|(of, _)| of == m))
                .collect();
            let Some(values) = calls
                .first()
                .and_then(|&a| input.args.get(a))
                .and_then(|args| args.first())
            else {
                fresh.push(Vec::new());
                continue;
            };
            let filters: Vec<_> = calls
                .iter()
                .map(|&a| {
                    let mask = input.filters.get(a).and_then(Option::as_ref);
                    move |i: usize| passes_filter(mask, i)
                })
                .collect();
            let passes: Vec<&dyn Fn(usize) -> bool> = filters
                .iter()
                .map(|f| f as &dyn Fn(usize) -> bool)
                .collect();
            fresh.push(map.insert(values, &self.group_indices, &passes)?);
        }
        Ok(fresh)
    }

    /// Assigns group ids to the rows of `input` (into `group_indices`).
    fn assign_groups(&mut self, input: &AggregateInput) -> Result<()> {
        match &mut self.group_values {
            Some(values) => values.intern(&input.groups, &mut self.group_indices)?,
            None => {
                self.group_indices.clear();
                self.group_indices.resize(input.num_rows(), 0);
            }
        }
        Ok(())
    }

    /// Drops expired groups from memory when a TTL sweep is due (rebuilding the
    /// key table).
    fn cleanup(&mut self, now: i64) -> Result<()> {
        let Some(keep) = self.expiry.sweep(now) else {
            return Ok(());
        };
        if let Some(values) = &mut self.group_values {
            retain_keys(values, &self.spec.group_schema, &keep)?;
        }
        for state in &mut self.states {
            state.compact(&keep);
        }
        for map in &mut self.distinct {
            map.compact(&keep);
        }
        self.marks.truncate(self.expiry.len());
        Ok(())
    }
}

impl Operator for UpdatingAggregateOperator {
    fn output_schema(&self) -> SchemaRef {
        self.output_schema.clone()
    }

    /// One row per group (see [`UpdatingAggregateOperator::state_schema`]): its
    /// keys, idle time and running values, from which the `-U` rows of later
    /// changes are computed, and the values a DISTINCT aggregate has seen.
    fn snapshot(&mut self) -> Result<Option<OperatorState>> {
        let schema = self.state_schema();
        let groups = self.num_groups();
        if groups == 0 {
            return Ok(Some(OperatorState {
                schema,
                batches: Vec::new(),
            }));
        }
        let mut columns = match &mut self.group_values {
            Some(values) => {
                // Reading the keys empties the table: build it again, in order.
                let keys = values.emit(EmitTo::All)?;
                *values = key_table(&self.spec.group_schema, &keys)?;
                keys
            }
            None => Vec::new(),
        };
        columns.push(Arc::new(Int64Array::from(self.expiry.idle_times())));
        for (state, of) in self.states.iter().zip(&self.distinct_of) {
            columns.extend(state.snapshot(groups)?);
            if let Some((map, member)) = *of {
                columns.push(self.distinct_map(map)?.snapshot(groups, member)?);
            }
        }
        let options = RecordBatchOptions::new().with_row_count(Some(groups));
        let batch = RecordBatch::try_new_with_options(schema.clone(), columns, &options)?;
        Ok(Some(OperatorState {
            schema,
            batches: vec![batch],
        }))
    }

    fn restore(&mut self, state: OperatorState) -> Result<()> {
        if self.num_groups() > 0 {
            return Err(EngineError::InvalidGraph(
                "updating aggregate: restore into an instance that has groups".into(),
            ));
        }
        let schema = self.state_schema();
        check_schema(&state.schema, &schema)?;
        let batch = concat_batches(&state.schema, &state.batches)?;
        let groups = batch.num_rows();
        let keys = self.spec.group_schema.fields().len();
        match &mut self.group_values {
            Some(values) => {
                *values = key_table(&self.spec.group_schema, &batch.columns()[..keys])
                    .map_err(|e| malformed_state(&format!("updating aggregate keys: {e}")))?;
            }
            None if groups > 1 => {
                return Err(malformed_state(&format!(
                    "{groups} groups for an aggregate without GROUP BY"
                )));
            }
            None => {}
        }
        let idle = state_column::<Int64Type>(&batch, IDLE_COLUMN)?;
        self.expiry.restore(idle.values());
        let mut position = keys + 1;
        for map in &mut self.distinct {
            map.resize(groups)?;
        }
        for (a, agg) in self.states.iter_mut().enumerate() {
            let width = agg.state_fields(a).len();
            let columns = batch
                .columns()
                .get(position..position + width)
                .ok_or_else(|| malformed_state("updating aggregate: too few columns"))?;
            match self.distinct_of.get(a).copied().flatten() {
                Some((map, member)) => {
                    let (values, lists) = columns.split_at(width.saturating_sub(1));
                    agg.restore(values)?;
                    let map = self.distinct.get_mut(map).ok_or_else(|| {
                        EngineError::InvalidGraph("updating aggregate: no DISTINCT map".into())
                    })?;
                    if let Some(lists) = lists.first() {
                        map.restore(lists, member)?;
                    }
                }
                None => agg.restore(columns)?,
            }
            position += width;
        }
        self.marks.resize(groups, false);
        Ok(())
    }

    fn restore_rescaled(&mut self, rescaled: Rescaled) -> Result<()> {
        let keys = self
            .spec
            .state_key_names(rescaled.keys_of_input(0, "an updating aggregate")?)?;
        self.restore(rescaled.owned_state(&keys)?)
    }

    fn on_batch(&mut self, batch: RecordBatch, out: &mut Output<'_>) -> Result<()> {
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(());
        }
        let now = self.expiry.now();
        self.cleanup(now)?;
        let input = self.spec.evaluate(&batch)?;
        self.assign_groups(&input)?;
        let groups_before = self.num_groups();
        let total = match &self.group_values {
            Some(values) => values.len(),
            None => 1,
        };
        for state in &mut self.states {
            state.resize(total)?;
        }
        for map in &mut self.distinct {
            map.resize(total)?;
        }
        self.expiry.resize(total, now);
        self.marks.resize(total, false);

        // Touched groups, in order of their first row.
        let mut touched: Vec<usize> = Vec::new();
        let mut first_rows: Vec<u32> = Vec::new();
        for (i, &g) in self.group_indices.iter().enumerate() {
            if !self.marks[g] {
                self.marks[g] = true;
                touched.push(g);
                first_rows.push(u32::try_from(i).map_err(|_| {
                    EngineError::Config("updating aggregate: batch too large".into())
                })?);
            }
        }
        for &g in &touched {
            self.marks[g] = false;
        }
        let is_new: Vec<bool> = touched
            .iter()
            .map(|&g| g >= groups_before || self.expiry.expired(g, now))
            .collect();
        for (&g, &new) in touched.iter().zip(&is_new) {
            if new {
                for state in &mut self.states {
                    state.reset(g);
                }
                for map in &mut self.distinct {
                    map.reset(g);
                }
            }
        }

        let old = self
            .states
            .iter()
            .map(|s| s.evaluate(&touched))
            .collect::<Result<Vec<_>>>()?;
        let fresh = self.count_distinct(&input)?;
        for (a, ((state, args), mask)) in self
            .states
            .iter_mut()
            .zip(&input.args)
            .zip(&input.filters)
            .enumerate()
        {
            let fresh = self.distinct_of[a]
                .and_then(|(map, member)| fresh.get(map)?.get(member))
                .map(Vec::as_slice);
            state.update(args, mask.as_ref(), &self.group_indices, fresh)?;
        }
        let new = self
            .states
            .iter()
            .map(|s| s.evaluate(&touched))
            .collect::<Result<Vec<_>>>()?;
        self.expiry.touch(&touched, now);
        NodeMetrics::add(&out.metrics().rows_aggregated, rows);

        let mut changed = BooleanArray::from(vec![false; touched.len()]);
        for (o, n) in old.iter().zip(&new) {
            changed = or(&changed, &distinct(o, n)?)?;
        }
        let n = touched.len();
        let mut indices: Vec<u32> = Vec::with_capacity(2 * n);
        let mut kinds: Vec<RowKind> = Vec::with_capacity(2 * n);
        for (j, &new_group) in is_new.iter().enumerate() {
            let (before, after) = (j as u32, (n + j) as u32);
            if new_group {
                indices.push(after);
                kinds.push(RowKind::Insert);
            } else if changed.value(j) {
                indices.extend([before, after]);
                kinds.extend([RowKind::UpdateBefore, RowKind::UpdateAfter]);
            }
        }
        out.metrics()
            .record_state(self.state_size(), self.num_groups());
        if indices.is_empty() {
            return Ok(());
        }
        let indices = UInt32Array::from(indices);
        let first_rows = UInt32Array::from(first_rows);
        let fields = self.output_schema.fields();
        let mut columns = Vec::with_capacity(fields.len());
        for key in &input.groups {
            let key = take(key.as_ref(), &first_rows, None)?;
            columns.push(take(concat(&[&key, &key])?.as_ref(), &indices, None)?);
        }
        for (o, n) in old.iter().zip(&new) {
            columns.push(take(concat(&[o, n])?.as_ref(), &indices, None)?);
        }
        let mut columns = crate::aggregate::cast_to_fields(columns, fields)?;
        columns.push(row_kind_array(&kinds));
        out.batch(RecordBatch::try_new(self.output_schema.clone(), columns)?);
        Ok(())
    }
}
