//! Grouped aggregation state built from DataFusion's own pieces: `GroupValues`
//! interns group keys (Arrow row format / columnar hash tables) and one
//! `GroupsAccumulator` per aggregate updates all groups of a batch at once.
//!
//! [`AggregateSpec`] says what to compute (taken from DataFusion's physical
//! `AggregateExec`); [`GroupedAggregates`] is the state for one set of groups,
//! e.g. the groups of one window.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, BooleanArray};
use datafusion::arrow::compute::{cast, filter};
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_expr::{GroupsAccumulatorAdapter, PhysicalExpr};
use datafusion::physical_plan::aggregates::group_values::{GroupValues, new_group_values};
use datafusion::physical_plan::aggregates::order::GroupOrdering;

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
}

impl AggregateInput {
    /// Keeps only the rows where `mask` is true.
    pub fn filter(&self, mask: &BooleanArray) -> Result<AggregateInput> {
        let keep = |a: &ArrayRef| filter(a.as_ref(), mask);
        Ok(AggregateInput {
            groups: self.groups.iter().map(keep).collect::<Result<_, _>>()?,
            args: self
                .args
                .iter()
                .map(|args| args.iter().map(keep).collect::<Result<Vec<_>, _>>())
                .collect::<Result<_, _>>()?,
            filters: self
                .filters
                .iter()
                .map(|f| {
                    f.as_ref()
                        .map(|f| filter(f, mask).map(|a| a.as_boolean().clone()))
                        .transpose()
                })
                .collect::<Result<_, _>>()?,
        })
    }

    /// Number of rows.
    pub fn num_rows(&self) -> usize {
        self.groups.first().map(|g| g.len()).unwrap_or(0)
    }
}

impl AggregateSpec {
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
        })
    }

    /// Fresh, empty state for one set of groups.
    pub fn new_state(&self) -> Result<GroupedAggregates> {
        let accumulators = self
            .calls
            .iter()
            .map(|call| create_groups_accumulator(&call.function))
            .collect::<Result<Vec<_>>>()?;
        Ok(GroupedAggregates {
            group_values: new_group_values(self.group_schema.clone(), &GroupOrdering::None)?,
            accumulators,
            group_indices: Vec::new(),
        })
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
    group_values: Box<dyn GroupValues>,
    accumulators: Vec<Box<dyn GroupsAccumulator>>,
    group_indices: Vec<usize>,
}

impl GroupedAggregates {
    /// Folds a batch of evaluated input into the state.
    pub fn update(&mut self, input: &AggregateInput) -> Result<()> {
        self.group_values
            .intern(&input.groups, &mut self.group_indices)?;
        let total = self.group_values.len();
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

    /// Number of groups held.
    pub fn num_groups(&self) -> usize {
        self.group_values.len()
    }

    /// Bytes of memory held by keys and accumulators.
    pub fn size(&self) -> usize {
        self.group_values.size() + self.accumulators.iter().map(|a| a.size()).sum::<usize>()
    }

    /// Emits every group and its aggregates as a batch of `schema`, leaving the
    /// state empty.
    pub fn emit(&mut self, schema: &SchemaRef) -> Result<RecordBatch> {
        let mut columns = self.group_values.emit(EmitTo::All)?;
        for acc in &mut self.accumulators {
            columns.push(acc.evaluate(EmitTo::All)?);
        }
        let columns = columns
            .into_iter()
            .zip(schema.fields())
            .map(|(c, f)| {
                if c.data_type() == f.data_type() {
                    Ok(c)
                } else {
                    cast(&c, f.data_type())
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RecordBatch::try_new(schema.clone(), columns)?)
    }
}
