//! Grouped aggregation state built from DataFusion's own pieces: `GroupValues`
//! interns group keys (Arrow row format / columnar hash tables) and one
//! `GroupsAccumulator` per aggregate updates all groups of a batch at once.
//!
//! [`AggregateSpec`] says what to compute (taken from DataFusion's physical
//! `AggregateExec`); [`GroupedAggregates`] is the state for one set of groups,
//! e.g. the groups of one window. [`StateBatch`] is that state taken out as
//! arrays (keys plus each accumulator's intermediate state), so several sets of
//! groups can be merged, as DataFusion's final aggregation phase merges partial
//! ones: sliced window aggregation shares one slice's state between windows.
//!
//! With no group expressions (an aggregate over all rows) there is at most one
//! group, kept without a `GroupValues` table.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int64Array, RecordBatchOptions, UInt32Array,
};
use datafusion::arrow::compute::{cast, filter, take};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Int64Type, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_expr::{GroupsAccumulatorAdapter, PhysicalExpr};
use datafusion::physical_plan::aggregates::group_values::{GroupValues, new_group_values};
use datafusion::physical_plan::aggregates::order::GroupOrdering;

use crate::checkpoint::{OperatorState, malformed_state};
use crate::error::Result;

/// One aggregate call: the function and its optional `FILTER (WHERE ...)`.
#[derive(Debug, Clone)]
pub struct AggregateCall {
    /// The DataFusion aggregate (function, arguments, DISTINCT, output field).
    pub function: Arc<AggregateFunctionExpr>,
    /// Rows the aggregate sees, when a FILTER clause is present.
    pub filter: Option<Arc<dyn PhysicalExpr>>,
}

/// What a grouped aggregation computes.
#[derive(Debug, Clone)]
pub struct AggregateSpec {
    /// Group-by expressions over the input, with output names.
    pub group_exprs: Vec<(Arc<dyn PhysicalExpr>, String)>,
    /// The aggregate calls, in output order.
    pub calls: Vec<AggregateCall>,
    /// Schema of the group columns alone.
    pub group_schema: SchemaRef,
    /// Output schema: group columns, then one column per aggregate.
    pub output_schema: SchemaRef,
}

/// The columns of one input batch, evaluated for aggregation.
#[derive(Debug, Clone)]
pub struct AggregateInput {
    /// Group key columns.
    pub groups: Vec<ArrayRef>,
    /// Argument columns per aggregate call.
    pub args: Vec<Vec<ArrayRef>>,
    /// FILTER masks per aggregate call.
    pub filters: Vec<Option<BooleanArray>>,
    /// Number of rows (kept apart from the columns: there may be no group column).
    rows: usize,
}

impl AggregateInput {
    /// Keeps only the rows where `mask` is true.
    pub fn filter(&self, mask: &BooleanArray) -> Result<AggregateInput> {
        self.select_rows(|a| filter(a, mask), mask.true_count())
    }

    /// The rows at `indices`, in that order.
    pub fn take(&self, indices: &UInt32Array) -> Result<AggregateInput> {
        self.select_rows(|a| take(a, indices, None), indices.len())
    }

    /// Applies one row-selection kernel to every column (keys, arguments and
    /// FILTER masks alike); `rows` is the number of rows it selects.
    fn select_rows(
        &self,
        kernel: impl Fn(&dyn Array) -> Result<ArrayRef, datafusion::arrow::error::ArrowError>,
        rows: usize,
    ) -> Result<AggregateInput> {
        let pick = |a: &ArrayRef| kernel(a.as_ref());
        Ok(AggregateInput {
            groups: self.groups.iter().map(pick).collect::<Result<_, _>>()?,
            args: self
                .args
                .iter()
                .map(|args| args.iter().map(pick).collect::<Result<Vec<_>, _>>())
                .collect::<Result<_, _>>()?,
            filters: self
                .filters
                .iter()
                .map(|f| {
                    f.as_ref()
                        .map(|f| kernel(f).map(|a| a.as_boolean().clone()))
                        .transpose()
                })
                .collect::<Result<_, _>>()?,
            rows,
        })
    }

    /// A zero-copy view of `len` rows starting at `offset`.
    pub fn slice(&self, offset: usize, len: usize) -> AggregateInput {
        AggregateInput {
            groups: self.groups.iter().map(|a| a.slice(offset, len)).collect(),
            args: self
                .args
                .iter()
                .map(|args| args.iter().map(|a| a.slice(offset, len)).collect())
                .collect(),
            filters: self
                .filters
                .iter()
                .map(|f| f.as_ref().map(|f| f.slice(offset, len)))
                .collect(),
            rows: len,
        }
    }

    /// Number of rows.
    pub fn num_rows(&self) -> usize {
        self.rows
    }
}

impl AggregateSpec {
    /// The names of the state key columns (`k<i>`, see [`StateBatch::columns`])
    /// that hold the input columns `input_keys` a hash exchange routes by: a
    /// restore at another parallelism splits the state by them.
    pub fn state_key_names(&self, input_keys: &[usize]) -> Result<Vec<String>> {
        use datafusion::physical_expr::expressions::Column;
        input_keys
            .iter()
            .map(|&key| {
                self.group_exprs
                    .iter()
                    .position(|(expr, _)| {
                        let any: &dyn std::any::Any = expr.as_ref();
                        any.downcast_ref::<Column>()
                            .is_some_and(|c| c.index() == key)
                    })
                    .map(|i| format!("k{i}"))
                    .ok_or_else(|| {
                        crate::error::EngineError::InvalidGraph(format!(
                            "hash key column {key} is not a GROUP BY column"
                        ))
                    })
            })
            .collect()
    }

    /// Builds a spec; the output schema is the group schema followed by each
    /// aggregate's field.
    pub fn new(
        group_exprs: Vec<(Arc<dyn PhysicalExpr>, String)>,
        calls: Vec<AggregateCall>,
        input_schema: &Schema,
        output_schema: SchemaRef,
    ) -> Result<Self> {
        let group_fields = group_exprs
            .iter()
            .map(|(e, name)| {
                Ok(datafusion::arrow::datatypes::Field::new(
                    name,
                    e.data_type(input_schema)?,
                    e.nullable(input_schema)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(AggregateSpec {
            group_exprs,
            calls,
            group_schema: Arc::new(Schema::new(group_fields)),
            output_schema,
        })
    }

    /// The group keys' output names, comma-separated, for EXPLAIN.
    pub fn key_names(&self) -> String {
        self.group_exprs
            .iter()
            .map(|(_, name)| name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The aggregate calls as DataFusion names them, comma-separated, for EXPLAIN.
    pub fn aggregate_names(&self) -> String {
        self.calls
            .iter()
            .map(|c| c.function.name())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Evaluates group keys, aggregate arguments and filters over a batch.
    pub fn evaluate(&self, batch: &RecordBatch) -> Result<AggregateInput> {
        let rows = batch.num_rows();
        let eval = |e: &Arc<dyn PhysicalExpr>| e.evaluate(batch).and_then(|v| v.into_array(rows));
        let groups = self
            .group_exprs
            .iter()
            .map(|(e, _)| eval(e))
            .collect::<datafusion::error::Result<Vec<_>>>()?;
        let mut args = Vec::with_capacity(self.calls.len());
        let mut filters = Vec::with_capacity(self.calls.len());
        for call in &self.calls {
            args.push(
                call.function
                    .expressions()
                    .iter()
                    .map(eval)
                    .collect::<datafusion::error::Result<Vec<_>>>()?,
            );
            filters.push(match &call.filter {
                Some(f) => Some(eval(f)?.as_boolean().clone()),
                None => None,
            });
        }
        Ok(AggregateInput {
            groups,
            args,
            filters,
            rows,
        })
    }

    /// Fresh, empty state for one set of groups.
    pub fn new_state(&self) -> Result<GroupedAggregates> {
        let accumulators = self
            .calls
            .iter()
            .map(|call| create_groups_accumulator(&call.function))
            .collect::<Result<Vec<_>>>()?;
        let group_values = if self.group_schema.fields().is_empty() {
            None
        } else {
            Some(new_group_values(
                self.group_schema.clone(),
                &GroupOrdering::None,
            )?)
        };
        Ok(GroupedAggregates {
            group_values,
            group_schema: self.group_schema.clone(),
            single_group: false,
            accumulators,
            group_indices: Vec::new(),
        })
    }

    /// One fresh `GroupsAccumulator` per aggregate call, in call order, for
    /// operators that assign group indices themselves instead of interning keys
    /// (session windows: one group per session).
    pub fn new_accumulators(&self) -> Result<Vec<Box<dyn GroupsAccumulator>>> {
        self.calls
            .iter()
            .map(|call| create_groups_accumulator(&call.function))
            .collect()
    }
}

fn create_groups_accumulator(
    function: &Arc<AggregateFunctionExpr>,
) -> Result<Box<dyn GroupsAccumulator>> {
    if function.groups_accumulator_supported() {
        Ok(function.create_groups_accumulator()?)
    } else {
        let function = Arc::clone(function);
        Ok(Box::new(GroupsAccumulatorAdapter::new(move || {
            function.create_accumulator()
        })))
    }
}

/// Aggregation state for one set of groups.
pub struct GroupedAggregates {
    /// Interned group keys; `None` when there are no group expressions.
    group_values: Option<Box<dyn GroupValues>>,
    group_schema: SchemaRef,
    /// Without group expressions: whether the one group exists (a row was seen).
    single_group: bool,
    accumulators: Vec<Box<dyn GroupsAccumulator>>,
    group_indices: Vec<usize>,
}

/// The state of a [`GroupedAggregates`] taken out as arrays: one row per group,
/// the group key columns and, per aggregate, the accumulator's intermediate
/// state (`GroupsAccumulator::state`), ready for `GroupsAccumulator::merge_batch`.
#[derive(Debug, Clone)]
pub struct StateBatch {
    keys: Vec<ArrayRef>,
    states: Vec<Vec<ArrayRef>>,
    num_groups: usize,
}

impl StateBatch {
    /// Number of groups (rows).
    pub fn num_groups(&self) -> usize {
        self.num_groups
    }

    /// The group key columns.
    pub fn keys(&self) -> &[ArrayRef] {
        &self.keys
    }

    /// Intermediate state arrays, per aggregate call.
    pub fn states(&self) -> &[Vec<ArrayRef>] {
        &self.states
    }

    /// Bytes of memory held by the arrays.
    pub fn size(&self) -> usize {
        self.keys
            .iter()
            .chain(self.states.iter().flatten())
            .map(|a| a.get_array_memory_size())
            .sum()
    }
}

impl StateBatch {
    /// A state of `num_groups` groups: the key columns and, per aggregate call,
    /// the accumulator's state columns (`GroupsAccumulator::state`).
    pub fn new(keys: Vec<ArrayRef>, states: Vec<Vec<ArrayRef>>, num_groups: usize) -> Self {
        StateBatch {
            keys,
            states,
            num_groups,
        }
    }

    /// The key columns and the state columns per aggregate call.
    pub fn into_parts(self) -> (Vec<ArrayRef>, Vec<Vec<ArrayRef>>) {
        (self.keys, self.states)
    }

    /// The state's columns in a checkpoint: the key columns `k<i>` and the
    /// state columns `s<a>_<j>` (state column `j` of aggregate `a`).
    pub fn columns(&self) -> (Vec<Field>, Vec<ArrayRef>) {
        let mut fields = Vec::new();
        let mut columns = Vec::new();
        for (i, key) in self.keys.iter().enumerate() {
            fields.push(Field::new(format!("k{i}"), key.data_type().clone(), true));
            columns.push(Arc::clone(key));
        }
        for (a, state) in self.states.iter().enumerate() {
            for (j, column) in state.iter().enumerate() {
                fields.push(Field::new(
                    format!("s{a}_{j}"),
                    column.data_type().clone(),
                    true,
                ));
                columns.push(Arc::clone(column));
            }
        }
        (fields, columns)
    }

    /// Reads back the columns [`StateBatch::columns`] wrote, of `num_groups`
    /// rows.
    pub fn from_columns(
        fields: &[FieldRef],
        columns: &[ArrayRef],
        num_groups: usize,
    ) -> Result<StateBatch> {
        let mut keys = Vec::new();
        let mut states: Vec<Vec<ArrayRef>> = Vec::new();
        for (field, column) in fields.iter().zip(columns) {
            let name = field.name();
            if name.starts_with('k') {
                keys.push(Arc::clone(column));
            } else if let Some((a, _)) = name.strip_prefix('s').and_then(|n| n.split_once('_')) {
                let a: usize = a
                    .parse()
                    .map_err(|_| malformed_state(&format!("column '{name}'")))?;
                if states.len() <= a {
                    states.resize_with(a + 1, Vec::new);
                }
                states[a].push(Arc::clone(column));
            } else {
                return Err(malformed_state(&format!("unexpected column '{name}'")));
            }
        }
        Ok(StateBatch {
            keys,
            states,
            num_groups,
        })
    }

    /// The state as one record batch for a checkpoint: an Int64 column `tag`
    /// (what the caller keys the state by, e.g. a window end) holding `tag` on
    /// every row, then the [`StateBatch::columns`].
    pub fn to_record_batch(&self, tag: i64) -> Result<RecordBatch> {
        let (state_fields, state_columns) = self.columns();
        let mut fields = vec![Field::new("tag", DataType::Int64, false)];
        fields.extend(state_fields);
        let mut columns: Vec<ArrayRef> =
            vec![Arc::new(Int64Array::from(vec![tag; self.num_groups]))];
        columns.extend(state_columns);
        let options = RecordBatchOptions::new().with_row_count(Some(self.num_groups));
        Ok(RecordBatch::try_new_with_options(
            Arc::new(Schema::new(fields)),
            columns,
            &options,
        )?)
    }

    /// Reads back a batch [`StateBatch::to_record_batch`] wrote: its tag (0 for
    /// an empty batch) and the state.
    pub fn from_record_batch(batch: &RecordBatch) -> Result<(i64, StateBatch)> {
        let schema = batch.schema();
        let tag = batch
            .column_by_name("tag")
            .and_then(|c| c.as_primitive_opt::<Int64Type>())
            .ok_or_else(|| malformed_state("no Int64 'tag' column"))?;
        let tag = if tag.is_empty() { 0 } else { tag.value(0) };
        let state = StateBatch::from_columns(
            schema.fields().get(1..).unwrap_or_default(),
            batch.columns().get(1..).unwrap_or_default(),
            batch.num_rows(),
        )?;
        Ok((tag, state))
    }

    /// Every non-empty state of a checkpoint made of
    /// [`StateBatch::to_record_batch`] batches (one per window or slice), with
    /// its tag, checked against what `spec` aggregates.
    pub fn read_tagged(
        state: &OperatorState,
        spec: &AggregateSpec,
    ) -> Result<Vec<(i64, StateBatch)>> {
        state
            .batches
            .iter()
            .filter(|b| b.num_rows() > 0)
            .map(|batch| {
                let (tag, state) = StateBatch::from_record_batch(batch)?;
                state.check(spec)?;
                Ok((tag, state))
            })
            .collect()
    }

    /// Fails, naming the column, unless the state has the key columns and
    /// accumulator states of `spec` (accumulators may panic on other arrays).
    pub fn check(&self, spec: &AggregateSpec) -> Result<()> {
        let keys = spec.group_schema.fields();
        if self.keys.len() != keys.len() {
            return Err(malformed_state(&format!(
                "{} key columns where the aggregate groups by {}",
                self.keys.len(),
                keys.len()
            )));
        }
        for (i, (key, field)) in self.keys.iter().zip(keys).enumerate() {
            if !same_layout(key.data_type(), field.data_type()) {
                return Err(malformed_state(&format!(
                    "key column k{i} is {}, expected {}",
                    key.data_type(),
                    field.data_type()
                )));
            }
        }
        if self.states.len() != spec.calls.len() {
            return Err(malformed_state(&format!(
                "states of {} aggregates where the query has {}",
                self.states.len(),
                spec.calls.len()
            )));
        }
        for (a, (state, call)) in self.states.iter().zip(&spec.calls).enumerate() {
            let fields = call.function.state_fields()?;
            if state.len() != fields.len() {
                return Err(malformed_state(&format!(
                    "{} state columns for aggregate {a} ({}) where it keeps {}",
                    state.len(),
                    call.function.name(),
                    fields.len()
                )));
            }
            for (j, (column, field)) in state.iter().zip(&fields).enumerate() {
                if !same_layout(column.data_type(), field.data_type()) {
                    return Err(malformed_state(&format!(
                        "state column s{a}_{j} is {}, expected {}",
                        column.data_type(),
                        field.data_type()
                    )));
                }
            }
        }
        Ok(())
    }

    /// A checkpoint state of tagged states (see [`StateBatch::to_record_batch`];
    /// empty ones are left out) and the operator's watermark.
    pub fn write_tagged<'a>(
        states: impl IntoIterator<Item = (i64, &'a StateBatch)>,
        watermark: crate::time::Timestamp,
    ) -> Result<OperatorState> {
        let batches = states
            .into_iter()
            .filter(|(_, s)| s.num_groups() > 0)
            .map(|(tag, s)| s.to_record_batch(tag))
            .collect::<Result<Vec<_>>>()?;
        OperatorState::tagged_batches(batches)?.with_watermark(watermark)
    }
}

/// True when arrays of types `a` and `b` are read alike: equal types, where
/// nested fields may differ in name and nullability.
fn same_layout(a: &DataType, b: &DataType) -> bool {
    match (a, b) {
        (DataType::List(x), DataType::List(y))
        | (DataType::LargeList(x), DataType::LargeList(y)) => {
            same_layout(x.data_type(), y.data_type())
        }
        (DataType::Struct(x), DataType::Struct(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y.iter())
                    .all(|(x, y)| same_layout(x.data_type(), y.data_type()))
        }
        _ => a.equals_datatype(b),
    }
}

impl GroupedAggregates {
    /// A copy of the state for a checkpoint. The state is taken out and merged
    /// back into fresh accumulators (DataFusion's accumulators can only hand
    /// their state over), so this costs about one merge of every group.
    pub fn snapshot(&mut self, spec: &AggregateSpec) -> Result<StateBatch> {
        let taken = std::mem::replace(self, spec.new_state()?).into_state()?;
        self.merge_state(&taken)?;
        Ok(taken)
    }

    /// Folds a batch of evaluated input into the state.
    pub fn update(&mut self, input: &AggregateInput) -> Result<()> {
        if !self.assign_groups(&input.groups, input.num_rows())? {
            return Ok(());
        }
        let total = self.num_groups();
        for ((acc, args), filter) in self
            .accumulators
            .iter_mut()
            .zip(&input.args)
            .zip(&input.filters)
        {
            acc.update_batch(args, &self.group_indices, filter.as_ref(), total)?;
        }
        Ok(())
    }

    /// Merges a state taken from another `GroupedAggregates` of the same spec:
    /// afterwards this state holds the groups of both, as if it had seen the
    /// rows of both.
    pub fn merge_state(&mut self, state: &StateBatch) -> Result<()> {
        let keys = cast_to_fields(state.keys.clone(), self.group_schema.fields())?;
        if !self.assign_groups(&keys, state.num_groups)? {
            return Ok(());
        }
        let total = self.num_groups();
        for (acc, values) in self.accumulators.iter_mut().zip(&state.states) {
            acc.merge_batch(values, &self.group_indices, total)?;
        }
        Ok(())
    }

    /// Takes the state out as arrays (see [`StateBatch`]).
    pub fn into_state(mut self) -> Result<StateBatch> {
        let num_groups = self.num_groups();
        let keys = match &mut self.group_values {
            Some(values) => values.emit(EmitTo::All)?,
            None => Vec::new(),
        };
        let states = self
            .accumulators
            .iter_mut()
            .map(|acc| acc.state(EmitTo::All))
            .collect::<datafusion::error::Result<Vec<_>>>()?;
        Ok(StateBatch {
            keys,
            states,
            num_groups,
        })
    }

    /// Number of groups held.
    pub fn num_groups(&self) -> usize {
        match &self.group_values {
            Some(values) => values.len(),
            None => usize::from(self.single_group),
        }
    }

    /// Bytes of memory held by keys and accumulators.
    pub fn size(&self) -> usize {
        self.group_values.as_ref().map_or(0, |v| v.size())
            + self.accumulators.iter().map(|a| a.size()).sum::<usize>()
    }

    /// Emits every group and its aggregates as a batch of `schema`, leaving the
    /// state empty.
    pub fn emit(&mut self, schema: &SchemaRef) -> Result<RecordBatch> {
        let (mut columns, aggregates) = self.evaluate()?;
        columns.extend(aggregates);
        let columns = cast_to_fields(columns, schema.fields())?;
        Ok(RecordBatch::try_new(schema.clone(), columns)?)
    }

    /// Evaluates every group: the group key columns and one column per
    /// aggregate, as the accumulators produce them (not cast), leaving the state
    /// empty.
    pub fn evaluate(&mut self) -> Result<(Vec<ArrayRef>, Vec<ArrayRef>)> {
        let keys = match &mut self.group_values {
            Some(values) => values.emit(EmitTo::All)?,
            None => Vec::new(),
        };
        self.single_group = false;
        let aggregates = self
            .accumulators
            .iter_mut()
            .map(|acc| acc.evaluate(EmitTo::All))
            .collect::<datafusion::error::Result<Vec<_>>>()?;
        Ok((keys, aggregates))
    }

    /// Fills `group_indices` for `rows` rows keyed by `keys`; false when there
    /// are no rows (nothing to update).
    fn assign_groups(&mut self, keys: &[ArrayRef], rows: usize) -> Result<bool> {
        if rows == 0 {
            return Ok(false);
        }
        match &mut self.group_values {
            Some(values) => values.intern(keys, &mut self.group_indices)?,
            None => {
                self.single_group = true;
                self.group_indices.clear();
                self.group_indices.resize(rows, 0);
            }
        }
        Ok(true)
    }
}

/// Casts each column to the type of its field (pairwise; columns of the right
/// type are kept as they are). Accumulators and interned keys may come out as
/// a wider or narrower type than the schema declares.
pub fn cast_to_fields(
    columns: Vec<ArrayRef>,
    fields: &datafusion::arrow::datatypes::Fields,
) -> Result<Vec<ArrayRef>> {
    columns
        .into_iter()
        .zip(fields.iter())
        .map(|(c, f)| {
            if c.data_type() == f.data_type() {
                Ok(c)
            } else {
                cast(&c, f.data_type())
            }
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(crate::error::EngineError::from)
}
