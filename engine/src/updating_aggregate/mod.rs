//! Non-windowed (updating) `GROUP BY` aggregation that emits a changelog, as
//! Flink's `GroupAggFunction` does with mini-batch emission per input batch:
//! `SELECT account_id, SUM(amount) AS balance FROM payments GROUP BY account_id`.
//!
//! After each input batch, every group the batch touched emits `+I` with its new
//! values when seen for the first time, or `-U` (the values it last emitted)
//! immediately followed by `+U` (its new values); a group whose values did not
//! change emits nothing. Rows are in order of the group's first row in the batch.
//! The output is encoded with [`crate::changelog`]: keys, aggregates, `__row_kind`.
//!
//! # Design: cost per batch proportional to the touched groups
//!
//! DataFusion's `GroupsAccumulator::evaluate` drains its state, so reading the
//! current value of a few groups would cost O(all groups) per batch. Instead:
//!
//! - a DataFusion `GroupValues` interns the keys into dense group ids;
//! - each aggregate keeps its running value per group id in plain vectors
//!   (`i64` for integers and temporal values, `i128` for decimals, `f64` for
//!   floats) plus a non-NULL count. The input is append-only, so COUNT, SUM, MIN,
//!   MAX and AVG never need retraction and these vectors are exact;
//! - per batch, the touched groups are collected once (a mark per group id), the
//!   *previous* values are built as Arrow arrays for those groups only, the batch
//!   is folded in with typed loops over the Arrow buffers (no `ScalarValue`), the
//!   new values are built, and `distinct` (Arrow kernel, NULL-aware) finds changed
//!   rows. Keys are taken from the batch (`take` at each group's first row), so
//!   the key table is never read back.
//!
//! # DISTINCT
//!
//! `COUNT(DISTINCT x)`, `SUM(DISTINCT x)` and `AVG(DISTINCT x)` keep, per
//! aggregate, one hash set of (group id, value) (`distinct.rs`). A row counts
//! only when its value is new for its group (NULLs and rows failing the FILTER
//! never count); the same typed loops then fold just those rows. As the input is
//! append-only, the set only grows, until the group expires. `MIN`/`MAX`
//! `DISTINCT` are plain `MIN`/`MAX`.
//!
//! Other aggregate functions are refused with a [`EngineError::Config`] naming
//! the function.
//!
//! # State TTL
//!
//! With `ttl_ms` (Flink's `table.exec.state.ttl`, processing time), a group idle
//! for `ttl_ms` or longer is treated as absent: its next row starts it afresh and
//! emits `+I` (Flink never returns expired state), its DISTINCT values forgotten
//! too. Expired groups and their distinct values are removed from memory at most
//! once per `ttl_ms` by rebuilding the key table and the sets from the live
//! groups. No retraction is emitted for an expired group, as in Flink. The clock
//! is injectable ([`ProcessingClock`]) for tests.

mod accumulator;
mod distinct;
mod operator;
mod plan;
#[cfg(test)]
mod tests;
mod ttl;

use std::sync::Arc;

use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::physical_plan::aggregates::group_values::new_group_values;
use datafusion::physical_plan::aggregates::order::GroupOrdering;

use crate::aggregate::{AggregateCall, AggregateSpec};
use crate::changelog::schema_with_row_kind;
use crate::error::{EngineError, Result};
use crate::metrics::NodeRole;
use crate::operator::{Operator, OperatorFactory};

use accumulator::AggState;
use distinct::DistinctValues;
pub use operator::UpdatingAggregateOperator;
use plan::AggPlan;
use ttl::GroupExpiry;
pub use ttl::{ProcessingClock, monotonic_clock};

/// A non-windowed `GROUP BY` emitting a changelog (`+I`, `-U`/`+U`) per input
/// batch; see the module docs.
#[derive(Clone)]
pub struct UpdatingAggregate {
    spec: Arc<AggregateSpec>,
    plans: Arc<Vec<AggPlan>>,
    output_schema: SchemaRef,
    ttl_ms: Option<i64>,
    clock: ProcessingClock,
}

impl std::fmt::Debug for UpdatingAggregate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpdatingAggregate")
            .field("spec", &self.spec)
            .field("ttl_ms", &self.ttl_ms)
            .finish_non_exhaustive()
    }
}

impl UpdatingAggregate {
    /// An updating aggregate over input rows of `input_schema`. Its output is the
    /// spec's group columns and aggregates (the spec's output schema when it has
    /// exactly those columns, else the group schema and each aggregate's field),
    /// followed by `__row_kind`. `ttl_ms` is the idle state retention
    /// (processing time); `None` keeps groups forever. Fails with
    /// [`EngineError::Config`] for an aggregate function it cannot compute.
    pub fn new(spec: AggregateSpec, input_schema: &Schema, ttl_ms: Option<i64>) -> Result<Self> {
        if let Some(ttl) = ttl_ms
            && ttl <= 0
        {
            return Err(EngineError::Config(format!(
                "state TTL must be positive, got {ttl} ms"
            )));
        }
        let plans = spec
            .calls
            .iter()
            .map(|call| AggPlan::try_new(&call.function, input_schema))
            .collect::<Result<Vec<_>>>()?;
        // Fail here, at planning, if a DISTINCT aggregate's values cannot be keyed.
        distinct_maps(&plans, &spec.calls)?;
        let width = spec.group_schema.fields().len() + spec.calls.len();
        let base = if spec.output_schema.fields().len() == width {
            spec.output_schema.clone()
        } else {
            let mut fields: Vec<_> = spec.group_schema.fields().iter().cloned().collect();
            fields.extend(spec.calls.iter().map(|c| c.function.field()));
            Arc::new(Schema::new(fields))
        };
        Ok(UpdatingAggregate {
            spec: Arc::new(spec),
            plans: Arc::new(plans),
            output_schema: schema_with_row_kind(&base),
            ttl_ms,
            clock: monotonic_clock(),
        })
    }

    /// Replaces the processing-time clock used for the state TTL.
    pub fn with_clock(mut self, clock: ProcessingClock) -> Self {
        self.clock = clock;
        self
    }

    /// The state TTL in milliseconds, if any.
    pub fn ttl_ms(&self) -> Option<i64> {
        self.ttl_ms
    }
}

impl OperatorFactory for UpdatingAggregate {
    fn name(&self) -> String {
        "UpdatingAggregate".to_string()
    }

    fn explain(&self) -> Vec<String> {
        let keys = self.spec.key_names();
        let aggs = self.spec.aggregate_names();
        let mut lines = vec![
            format!("group by: [{keys}]"),
            format!("aggregates: [{aggs}]"),
            "emit: changelog (+I, -U/+U) per input batch".to_string(),
        ];
        if let Some(ttl) = self.ttl_ms {
            lines.push(format!("state ttl: {ttl} ms"));
        }
        lines
    }

    fn role(&self) -> NodeRole {
        NodeRole::Aggregate
    }

    fn output_schema(&self) -> SchemaRef {
        self.output_schema.clone()
    }

    fn create(&self) -> Result<Box<dyn Operator>> {
        Ok(Box::new(self.create_operator()?))
    }
}

impl UpdatingAggregate {
    /// A fresh running instance (what [`OperatorFactory::create`] boxes).
    pub fn create_operator(&self) -> Result<UpdatingAggregateOperator> {
        let group_values = if self.spec.group_schema.fields().is_empty() {
            None
        } else {
            Some(new_group_values(
                self.spec.group_schema.clone(),
                &GroupOrdering::None,
            )?)
        };
        let (distinct, distinct_of) = distinct_maps(&self.plans, &self.spec.calls)?;
        Ok(UpdatingAggregateOperator {
            distinct,
            distinct_of,
            spec: self.spec.clone(),
            output_schema: self.output_schema.clone(),
            group_values,
            states: self
                .plans
                .iter()
                .cloned()
                .map(AggState::try_new)
                .collect::<Result<_>>()?,
            expiry: GroupExpiry::new(self.ttl_ms, self.clock.clone()),
            marks: Vec::new(),
            group_indices: Vec::new(),
        })
    }
}

/// The maps of DISTINCT values: one per distinct argument (the same
/// expressions over the same type), shared by every DISTINCT call over it (up
/// to [`distinct::MAX_MEMBERS`]), and per call its map and member number.
#[allow(clippy::type_complexity)]
fn distinct_maps(
    plans: &[AggPlan],
    calls: &[AggregateCall],
) -> Result<(Vec<DistinctValues>, Vec<Option<(usize, usize)>>)> {
    let mut maps: Vec<DistinctValues> = Vec::new();
    // Per map: its argument and its members so far.
    let mut arguments: Vec<(String, usize)> = Vec::new();
    let mut of = Vec::with_capacity(plans.len());
    for (plan, call) in plans.iter().zip(calls) {
        if !plan.distinct {
            of.push(None);
            continue;
        }
        let exprs: Vec<String> = call
            .function
            .expressions()
            .iter()
            .map(|e| e.to_string())
            .collect();
        let argument = format!("{} {}", exprs.join(", "), plan.input_type);
        let open = arguments
            .iter()
            .rposition(|(a, members)| *a == argument && *members < distinct::MAX_MEMBERS);
        let map = match open {
            Some(map) => map,
            None => {
                maps.push(DistinctValues::try_new(&plan.input_type)?);
                arguments.push((argument, 0));
                arguments.len() - 1
            }
        };
        let member = arguments[map].1;
        arguments[map].1 += 1;
        of.push(Some((map, member)));
    }
    Ok((maps, of))
}
