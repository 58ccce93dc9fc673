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
//! Other aggregate functions (and DISTINCT aggregates) are refused with a
//! [`EngineError::Config`] naming the function.
//!
//! # State TTL
//!
//! With `ttl_ms` (Flink's `table.exec.state.ttl`, processing time), a group idle
//! for `ttl_ms` or longer is treated as absent: its next row starts it afresh and
//! emits `+I` (Flink never returns expired state). Expired groups are removed from
//! memory at most once per `ttl_ms` by rebuilding the key table from the live
//! keys. No retraction is emitted for an expired group, as in Flink. The clock is
//! injectable ([`ProcessingClock`]) for tests.

use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Decimal128Array, Float64Array, Int64Array,
    PrimitiveArray, UInt32Array,
};
use datafusion::arrow::compute::kernels::cmp::distinct;
use datafusion::arrow::compute::{cast, concat, filter, or, take};
use datafusion::arrow::datatypes::{
    ArrowPrimitiveType, DataType, Decimal128Type, Float64Type, Int64Type, Schema, SchemaRef,
};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::logical_expr::EmitTo;
use datafusion::physical_plan::aggregates::group_values::{GroupValues, new_group_values};
use datafusion::physical_plan::aggregates::order::GroupOrdering;

use crate::aggregate::{AggregateInput, AggregateSpec};
use crate::changelog::{RowKind, row_kind_array, schema_with_row_kind};
use crate::error::{EngineError, Result};
use crate::metrics::{NodeMetrics, NodeRole};
use crate::operator::{Operator, OperatorFactory, Output};

/// A processing-time clock in milliseconds; injectable so tests control time.
pub type ProcessingClock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The default clock: milliseconds elapsed since the clock was made
/// (`std::time::Instant`, monotonic).
pub fn monotonic_clock() -> ProcessingClock {
    let start = Instant::now();
    Arc::new(move || i64::try_from(start.elapsed().as_millis()).unwrap_or(i64::MAX))
}

/// The aggregate functions this operator computes itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Func {
    /// `COUNT(*)` / `COUNT()`: every row (passing the FILTER).
    CountStar,
    /// `COUNT(x)`: non-NULL values.
    Count,
    Sum,
    Min,
    Max,
    Avg,
}

/// How running values are held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Integers and temporal values, as `i64`.
    Int,
    /// `Decimal128(_, scale)`, as `i128` at the input's scale.
    Dec(i8),
    /// Floating point, as `f64`.
    Float,
}

impl Kind {
    fn of(data_type: &DataType) -> Option<Kind> {
        use DataType::*;
        match data_type {
            Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64 => Some(Kind::Int),
            Float16 | Float32 | Float64 => Some(Kind::Float),
            Decimal128(_, s) => Some(Kind::Dec(*s)),
            _ => None,
        }
    }

    fn of_min_max(data_type: &DataType) -> Option<Kind> {
        use DataType::*;
        match data_type {
            Timestamp(_, _) | Date32 | Date64 | Time32(_) | Time64(_) | Duration(_) => {
                Some(Kind::Int)
            }
            other => Kind::of(other),
        }
    }

    fn canonical(self) -> DataType {
        match self {
            Kind::Int => DataType::Int64,
            Kind::Dec(s) => DataType::Decimal128(38, s),
            Kind::Float => DataType::Float64,
        }
    }
}

/// One aggregate call as this operator computes it.
#[derive(Debug, Clone)]
struct AggPlan {
    func: Func,
    kind: Kind,
    input_type: DataType,
    output_type: DataType,
}

impl AggPlan {
    fn try_new(
        function: &datafusion::physical_expr::aggregate::AggregateFunctionExpr,
        input_schema: &Schema,
    ) -> Result<AggPlan> {
        let name = function.fun().name().to_ascii_lowercase();
        let unsupported = |why: &str| {
            EngineError::Config(format!(
                "updating (non-windowed) GROUP BY does not support {}{}: {why}; supported are \
                 COUNT, SUM, MIN, MAX and AVG over integer, floating point and decimal values \
                 (MIN/MAX also over temporal values)",
                name.to_ascii_uppercase(),
                if function.is_distinct() {
                    " DISTINCT"
                } else {
                    ""
                },
            ))
        };
        if function.is_distinct() {
            return Err(unsupported("DISTINCT aggregates are not implemented"));
        }
        let args = function.expressions();
        let output_type = function.field().data_type().clone();
        let arg_type = match args.first() {
            Some(arg) => Some(arg.data_type(input_schema)?),
            None => None,
        };
        let (func, kind, input_type) = match (name.as_str(), arg_type) {
            ("count", None) => (Func::CountStar, Kind::Int, DataType::Int64),
            ("count", Some(t)) if args.len() == 1 => (Func::Count, Kind::Int, t),
            ("sum" | "avg", Some(t)) if args.len() == 1 => {
                let func = if name == "sum" { Func::Sum } else { Func::Avg };
                let kind = Kind::of(&t).ok_or_else(|| unsupported(&format!("argument {t}")))?;
                (func, kind, t)
            }
            ("min" | "max", Some(t)) if args.len() == 1 => {
                let func = if name == "min" { Func::Min } else { Func::Max };
                let kind =
                    Kind::of_min_max(&t).ok_or_else(|| unsupported(&format!("argument {t}")))?;
                (func, kind, t)
            }
            ("count" | "sum" | "avg" | "min" | "max", _) => {
                return Err(unsupported("expected exactly one argument"));
            }
            _ => return Err(unsupported("function not implemented")),
        };
        Ok(AggPlan {
            func,
            kind,
            input_type,
            output_type,
        })
    }
}

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
        let mut next_cleanup = i64::MAX;
        if let Some(ttl) = self.ttl_ms {
            next_cleanup = (self.clock)().saturating_add(ttl);
        }
        Ok(UpdatingAggregateOperator {
            spec: self.spec.clone(),
            output_schema: self.output_schema.clone(),
            ttl_ms: self.ttl_ms,
            clock: self.clock.clone(),
            group_values,
            states: self.plans.iter().cloned().map(AggState::new).collect(),
            last_access: Vec::new(),
            marks: Vec::new(),
            group_indices: Vec::new(),
            next_cleanup,
        })
    }
}

/// Running values of one aggregate, per group id.
struct AggState {
    plan: AggPlan,
    /// Non-NULL values (rows, for `COUNT(*)`) seen per group.
    counts: Vec<i64>,
    ints: Vec<i64>,
    decs: Vec<i128>,
    floats: Vec<f64>,
}

impl AggState {
    fn new(plan: AggPlan) -> Self {
        AggState {
            plan,
            counts: Vec::new(),
            ints: Vec::new(),
            decs: Vec::new(),
            floats: Vec::new(),
        }
    }

    fn uses_values(&self) -> bool {
        !matches!(self.plan.func, Func::Count | Func::CountStar)
    }

    fn resize(&mut self, groups: usize) {
        self.counts.resize(groups, 0);
        if self.uses_values() {
            match self.plan.kind {
                Kind::Int => self.ints.resize(groups, 0),
                Kind::Dec(_) => self.decs.resize(groups, 0),
                Kind::Float => self.floats.resize(groups, 0.0),
            }
        }
    }

    fn reset(&mut self, group: usize) {
        if let Some(c) = self.counts.get_mut(group) {
            *c = 0;
        }
    }

    /// Keeps the groups where `keep` is true, in order.
    fn compact(&mut self, keep: &[bool]) {
        fn retain<T>(v: &mut Vec<T>, keep: &[bool]) {
            let mut i = 0;
            v.retain(|_| {
                let k = keep.get(i).copied().unwrap_or(false);
                i += 1;
                k
            });
        }
        retain(&mut self.counts, keep);
        retain(&mut self.ints, keep);
        retain(&mut self.decs, keep);
        retain(&mut self.floats, keep);
    }

    /// Folds one batch's argument column into the groups.
    fn update(
        &mut self,
        args: &[ArrayRef],
        mask: Option<&BooleanArray>,
        groups: &[usize],
    ) -> Result<()> {
        let passes = |i: usize| mask.is_none_or(|m| m.is_valid(i) && m.value(i));
        let arg = match (self.plan.func, args.first()) {
            (Func::CountStar, _) | (_, None) => {
                for (i, &g) in groups.iter().enumerate() {
                    if passes(i) {
                        self.counts[g] += 1;
                    }
                }
                return Ok(());
            }
            (_, Some(arg)) => arg,
        };
        if self.plan.func == Func::Count {
            for (i, &g) in groups.iter().enumerate() {
                if passes(i) && arg.is_valid(i) {
                    self.counts[g] += 1;
                }
            }
            return Ok(());
        }
        let arg = cast(arg, &self.plan.kind.canonical())?;
        let func = self.plan.func;
        match self.plan.kind {
            Kind::Int => fold(
                &mut self.ints,
                &mut self.counts,
                groups,
                arg.as_primitive::<Int64Type>(),
                &passes,
                |a, b| match func {
                    Func::Min => a.min(b),
                    Func::Max => a.max(b),
                    _ => a.wrapping_add(b),
                },
            ),
            Kind::Dec(_) => fold(
                &mut self.decs,
                &mut self.counts,
                groups,
                arg.as_primitive::<Decimal128Type>(),
                &passes,
                |a, b| match func {
                    Func::Min => a.min(b),
                    Func::Max => a.max(b),
                    _ => a.wrapping_add(b),
                },
            ),
            Kind::Float => fold(
                &mut self.floats,
                &mut self.counts,
                groups,
                arg.as_primitive::<Float64Type>(),
                &passes,
                |a, b| match func {
                    Func::Min => a.min(b),
                    Func::Max => a.max(b),
                    _ => a + b,
                },
            ),
        }
        Ok(())
    }

    /// The current values of `groups`, as an array of the aggregate's output type.
    fn evaluate(&self, groups: &[usize]) -> Result<ArrayRef> {
        let present = |g: usize| self.counts[g] > 0;
        let array: ArrayRef = match (self.plan.func, self.plan.kind) {
            (Func::Count | Func::CountStar, _) => Arc::new(Int64Array::from_iter_values(
                groups.iter().map(|&g| self.counts[g]),
            )),
            (Func::Avg, kind) => self.evaluate_avg(kind, groups)?,
            (_, Kind::Int) => Arc::new(
                groups
                    .iter()
                    .map(|&g| present(g).then(|| self.ints[g]))
                    .collect::<Int64Array>(),
            ),
            (_, Kind::Dec(s)) => Arc::new(
                groups
                    .iter()
                    .map(|&g| present(g).then(|| self.decs[g]))
                    .collect::<Decimal128Array>()
                    .with_precision_and_scale(38, s)?,
            ),
            (_, Kind::Float) => Arc::new(
                groups
                    .iter()
                    .map(|&g| present(g).then(|| self.floats[g]))
                    .collect::<Float64Array>(),
            ),
        };
        // Temporal MIN/MAX: Int64 casts back to the input type first.
        let array = if self.plan.kind == Kind::Int
            && matches!(self.plan.func, Func::Min | Func::Max)
            && Kind::of(&self.plan.input_type).is_none()
        {
            cast(&array, &self.plan.input_type)?
        } else {
            array
        };
        if array.data_type() == &self.plan.output_type {
            Ok(array)
        } else {
            Ok(cast(&array, &self.plan.output_type)?)
        }
    }

    /// AVG with Flink's result semantics: integer division (truncating) for an
    /// integer result, `round_half_up(sum * 10^(t - s) / count)` for a decimal
    /// result of scale `t`, otherwise floating point.
    fn evaluate_avg(&self, kind: Kind, groups: &[usize]) -> Result<ArrayRef> {
        let counts = &self.counts;
        Ok(match (kind, &self.plan.output_type) {
            (Kind::Dec(s), DataType::Decimal128(p, t)) => {
                let (p, t) = (*p, *t);
                let shift = i32::from(t) - i32::from(s);
                let pow = 10i128
                    .checked_pow(shift.unsigned_abs())
                    .unwrap_or(i128::MAX);
                Arc::new(
                    groups
                        .iter()
                        .map(|&g| {
                            let n = i128::from(counts[g]);
                            if n == 0 {
                                return None;
                            }
                            let sum = self.decs[g];
                            if shift >= 0 {
                                sum.checked_mul(pow).map(|x| div_round_half_up(x, n))
                            } else {
                                n.checked_mul(pow).map(|d| div_round_half_up(sum, d))
                            }
                        })
                        .collect::<Decimal128Array>()
                        .with_precision_and_scale(p, t)?,
                )
            }
            (Kind::Int, out) if out.is_integer() => Arc::new(
                groups
                    .iter()
                    .map(|&g| (counts[g] > 0).then(|| self.ints[g] / counts[g]))
                    .collect::<Int64Array>(),
            ),
            (kind, _) => {
                let as_f64 = |g: usize| match kind {
                    Kind::Int => self.ints[g] as f64,
                    Kind::Dec(s) => self.decs[g] as f64 / 10f64.powi(i32::from(s)),
                    Kind::Float => self.floats[g],
                };
                Arc::new(
                    groups
                        .iter()
                        .map(|&g| (counts[g] > 0).then(|| as_f64(g) / counts[g] as f64))
                        .collect::<Float64Array>(),
                )
            }
        })
    }
}

/// `n / d` rounded half away from zero (Java's `RoundingMode.HALF_UP`); `d > 0`.
fn div_round_half_up(n: i128, d: i128) -> i128 {
    let q = n / d;
    let r = n % d;
    if r.unsigned_abs() * 2 >= d.unsigned_abs() {
        q + n.signum()
    } else {
        q
    }
}

/// Folds `values` into `state` by group: the first non-NULL value of a group is
/// taken as is, later ones are combined with `combine`.
fn fold<T: ArrowPrimitiveType>(
    state: &mut [T::Native],
    counts: &mut [i64],
    groups: &[usize],
    values: &PrimitiveArray<T>,
    passes: &dyn Fn(usize) -> bool,
    combine: impl Fn(T::Native, T::Native) -> T::Native,
) {
    let raw = values.values();
    for (i, &g) in groups.iter().enumerate() {
        if !passes(i) || values.is_null(i) {
            continue;
        }
        let v = raw[i];
        state[g] = if counts[g] == 0 {
            v
        } else {
            combine(state[g], v)
        };
        counts[g] += 1;
    }
}

/// The running instance of an [`UpdatingAggregate`].
pub struct UpdatingAggregateOperator {
    spec: Arc<AggregateSpec>,
    output_schema: SchemaRef,
    ttl_ms: Option<i64>,
    clock: ProcessingClock,
    /// Interned keys; `None` without group expressions (one group, id 0).
    group_values: Option<Box<dyn GroupValues>>,
    states: Vec<AggState>,
    /// Processing time of each group's last row.
    last_access: Vec<i64>,
    /// Per group: touched by the current batch (reset after each batch).
    marks: Vec<bool>,
    group_indices: Vec<usize>,
    next_cleanup: i64,
}

impl UpdatingAggregateOperator {
    /// Number of groups held in state.
    pub fn num_groups(&self) -> usize {
        self.last_access.len()
    }

    /// Approximate bytes held by the state.
    pub fn state_size(&self) -> usize {
        let per_agg: usize = self
            .states
            .iter()
            .map(|s| {
                s.counts.capacity() * 8
                    + s.ints.capacity() * 8
                    + s.decs.capacity() * 16
                    + s.floats.capacity() * 8
            })
            .sum();
        self.group_values.as_ref().map_or(0, |v| v.size())
            + per_agg
            + self.last_access.capacity() * 8
            + self.marks.capacity()
    }

    fn expired(&self, group: usize, now: i64) -> bool {
        match self.ttl_ms {
            Some(ttl) => self
                .last_access
                .get(group)
                .is_some_and(|&t| now.saturating_sub(t) >= ttl),
            None => false,
        }
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

    /// Drops expired groups from memory (rebuilding the key table).
    fn cleanup(&mut self, now: i64) -> Result<()> {
        let Some(ttl) = self.ttl_ms else {
            return Ok(());
        };
        if now < self.next_cleanup {
            return Ok(());
        }
        self.next_cleanup = now.saturating_add(ttl);
        let keep: Vec<bool> = (0..self.num_groups())
            .map(|g| !self.expired(g, now))
            .collect();
        if keep.iter().all(|&k| k) {
            return Ok(());
        }
        if let Some(values) = &mut self.group_values {
            let keys = values.emit(EmitTo::All)?;
            let mask = BooleanArray::from(keep.clone());
            let keys = keys
                .iter()
                .map(|k| filter(k.as_ref(), &mask))
                .collect::<Result<Vec<_>, _>>()?;
            let mut fresh = new_group_values(self.spec.group_schema.clone(), &GroupOrdering::None)?;
            if mask.true_count() > 0 {
                fresh.intern(&keys, &mut self.group_indices)?;
                // Distinct keys interned in order get ids 0, 1, 2, ...
                if self.group_indices.iter().enumerate().any(|(i, &g)| i != g) {
                    return Err(EngineError::InvalidGraph(
                        "updating aggregate: key table rebuild reordered groups".into(),
                    ));
                }
            }
            *values = fresh;
        }
        for state in &mut self.states {
            state.compact(&keep);
        }
        let mut i = 0;
        self.last_access.retain(|_| {
            let k = keep[i];
            i += 1;
            k
        });
        self.marks.truncate(self.last_access.len());
        Ok(())
    }
}

impl Operator for UpdatingAggregateOperator {
    fn output_schema(&self) -> SchemaRef {
        self.output_schema.clone()
    }

    fn on_batch(&mut self, batch: RecordBatch, out: &mut Output<'_>) -> Result<()> {
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(());
        }
        let now = if self.ttl_ms.is_some() {
            (self.clock)()
        } else {
            0
        };
        self.cleanup(now)?;
        let input = self.spec.evaluate(&batch)?;
        self.assign_groups(&input)?;
        let groups_before = self.num_groups();
        let total = match &self.group_values {
            Some(values) => values.len(),
            None => 1,
        };
        for state in &mut self.states {
            state.resize(total);
        }
        self.last_access.resize(total, now);
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
            .map(|&g| g >= groups_before || self.expired(g, now))
            .collect();
        for (&g, &new) in touched.iter().zip(&is_new) {
            if new {
                for state in &mut self.states {
                    state.reset(g);
                }
            }
        }

        let old = self
            .states
            .iter()
            .map(|s| s.evaluate(&touched))
            .collect::<Result<Vec<_>>>()?;
        for ((state, args), mask) in self.states.iter_mut().zip(&input.args).zip(&input.filters) {
            state.update(args, mask.as_ref(), &self.group_indices)?;
        }
        let new = self
            .states
            .iter()
            .map(|s| s.evaluate(&touched))
            .collect::<Result<Vec<_>>>()?;
        for &g in &touched {
            self.last_access[g] = now;
        }
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
        let mut columns = columns
            .into_iter()
            .zip(fields.iter())
            .map(|(c, f)| {
                if c.data_type() == f.data_type() {
                    Ok(c)
                } else {
                    cast(&c, f.data_type())
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        columns.push(row_kind_array(&kinds));
        out.batch(RecordBatch::try_new(self.output_schema.clone(), columns)?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicI64, Ordering};

    use datafusion::arrow::array::StringArray;
    use datafusion::arrow::datatypes::Field;
    use datafusion::arrow::util::display::array_value_to_string;
    use datafusion::functions_aggregate::average::avg_udaf;
    use datafusion::functions_aggregate::count::count_udaf;
    use datafusion::functions_aggregate::min_max::{max_udaf, min_udaf};
    use datafusion::functions_aggregate::sum::sum_udaf;
    use datafusion::logical_expr::{AggregateUDF, Operator as BinaryOp};
    use datafusion::physical_expr::PhysicalExpr;
    use datafusion::physical_expr::aggregate::AggregateExprBuilder;
    use datafusion::physical_expr::expressions::{binary, col, lit};

    use super::*;
    use crate::aggregate::AggregateCall;
    use crate::changelog::{is_changelog, row_kinds};
    use crate::message::Message;

    const KEYS: [Option<&str>; 5] = [Some("a"), Some("b"), Some("c"), Some("dd"), None];

    #[derive(Debug, Clone, Copy)]
    struct Row {
        key: Option<&'static str>,
        v: Option<i64>,
        /// Decimal(10, 2) as its unscaled value.
        d: Option<i128>,
    }

    fn input_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("v", DataType::Int64, true),
            Field::new("d", DataType::Decimal128(10, 2), true),
        ]))
    }

    fn batch(rows: &[Row]) -> RecordBatch {
        let d = rows
            .iter()
            .map(|r| r.d)
            .collect::<Decimal128Array>()
            .with_precision_and_scale(10, 2)
            .unwrap();
        RecordBatch::try_new(
            input_schema(),
            vec![
                Arc::new(rows.iter().map(|r| r.key).collect::<StringArray>()),
                Arc::new(rows.iter().map(|r| r.v).collect::<Int64Array>()),
                Arc::new(d),
            ],
        )
        .unwrap()
    }

    fn call(
        udaf: Arc<AggregateUDF>,
        arg: Arc<dyn PhysicalExpr>,
        name: &str,
        distinct: bool,
        filter: Option<Arc<dyn PhysicalExpr>>,
    ) -> AggregateCall {
        let schema = input_schema();
        AggregateCall {
            function: Arc::new(
                AggregateExprBuilder::new(udaf, vec![arg])
                    .schema(schema)
                    .alias(name)
                    .with_distinct(distinct)
                    .build()
                    .unwrap(),
            ),
            filter,
        }
    }

    fn spec(keyed: bool, calls: Vec<AggregateCall>) -> AggregateSpec {
        let schema = input_schema();
        let group_exprs = if keyed {
            vec![(col("k", &schema).unwrap(), "k".to_string())]
        } else {
            vec![]
        };
        AggregateSpec::new(group_exprs, calls, &schema, Arc::new(Schema::empty())).unwrap()
    }

    /// cnt = COUNT(1), cnt_v = COUNT(v), sum_v, sum_d, min_v, max_v, avg_v, avg_d,
    /// big = COUNT(v) FILTER (WHERE v > 50).
    fn full_calls() -> Vec<AggregateCall> {
        let s = input_schema();
        let v = col("v", &s).unwrap();
        let d = col("d", &s).unwrap();
        let over_50 = binary(v.clone(), BinaryOp::Gt, lit(50i64), &s).unwrap();
        vec![
            call(count_udaf(), lit(1i64), "cnt", false, None),
            call(count_udaf(), v.clone(), "cnt_v", false, None),
            call(sum_udaf(), v.clone(), "sum_v", false, None),
            call(sum_udaf(), d.clone(), "sum_d", false, None),
            call(min_udaf(), v.clone(), "min_v", false, None),
            call(max_udaf(), v.clone(), "max_v", false, None),
            call(avg_udaf(), v.clone(), "avg_v", false, None),
            call(avg_udaf(), d, "avg_d", false, None),
            call(count_udaf(), v, "big", false, Some(over_50)),
        ]
    }

    fn fmt_dec(value: i128, p: u8, s: i8) -> String {
        let a = Decimal128Array::from(vec![value])
            .with_precision_and_scale(p, s)
            .unwrap();
        array_value_to_string(&a, 0).unwrap()
    }

    fn opt(v: Option<String>) -> String {
        v.unwrap_or_default()
    }

    /// The expected output row (aggregates only, formatted) of one key's rows,
    /// computed independently of the operator.
    fn oracle(rows: &[Row], schema: &Schema) -> Vec<String> {
        let vs: Vec<i64> = rows.iter().filter_map(|r| r.v).collect();
        let ds: Vec<i128> = rows.iter().filter_map(|r| r.d).collect();
        let dec_type = |name: &str| match schema.field_with_name(name).unwrap().data_type() {
            DataType::Decimal128(p, s) => (*p, *s),
            other => panic!("{other}"),
        };
        let (sp, ss) = dec_type("sum_d");
        let (ap, at) = dec_type("avg_d");
        let avg_d = (!ds.is_empty()).then(|| {
            let n = ds.len() as i128;
            let scaled = ds.iter().sum::<i128>() * 10i128.pow((at - 2) as u32);
            // half away from zero: (2x + sign(x) * n) / 2n, truncated
            let x = (2 * scaled + scaled.signum() * n) / (2 * n);
            fmt_dec(x, ap, at)
        });
        let avg_v = (!vs.is_empty()).then(|| {
            let a = Float64Array::from(vec![vs.iter().sum::<i64>() as f64 / vs.len() as f64]);
            array_value_to_string(&a, 0).unwrap()
        });
        vec![
            rows.len().to_string(),
            vs.len().to_string(),
            opt((!vs.is_empty()).then(|| vs.iter().sum::<i64>().to_string())),
            opt((!ds.is_empty()).then(|| fmt_dec(ds.iter().sum(), sp, ss))),
            opt(vs.iter().min().map(|m| m.to_string())),
            opt(vs.iter().max().map(|m| m.to_string())),
            opt(avg_v),
            opt(avg_d),
            vs.iter().filter(|&&v| v > 50).count().to_string(),
        ]
    }

    fn row_strings(batch: &RecordBatch, i: usize) -> (String, Vec<String>) {
        let cols = batch.num_columns() - 1;
        let key = array_value_to_string(batch.column(0), i).unwrap();
        let key = if batch.column(0).is_null(i) {
            "<null>".to_string()
        } else {
            key
        };
        let vals = (1..cols)
            .map(|c| array_value_to_string(batch.column(c), i).unwrap())
            .collect();
        (key, vals)
    }

    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self, n: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) % n
        }
    }

    fn run_batch(op: &mut dyn Operator, rows: &[Row], metrics: &NodeMetrics) -> Vec<RecordBatch> {
        let mut messages = Vec::new();
        op.on_batch(batch(rows), &mut Output::new(&mut messages, metrics))
            .unwrap();
        messages
            .into_iter()
            .filter_map(|m| match m {
                Message::Batch(b) => Some(b),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn updating_changelog_matches_oracle() {
        let factory =
            UpdatingAggregate::new(spec(true, full_calls()), &input_schema(), None).unwrap();
        let schema = factory.output_schema();
        assert!(is_changelog(&schema));
        let mut op = factory.create().unwrap();
        let metrics = NodeMetrics::default();
        let mut rng = Lcg(42);
        let mut all: HashMap<String, Vec<Row>> = HashMap::new();
        let mut view: HashMap<String, Vec<String>> = HashMap::new();
        let mut total = 0;
        for _ in 0..200 {
            let n = 1 + rng.next(12) as usize;
            let rows: Vec<Row> = (0..n)
                .map(|_| Row {
                    key: KEYS[rng.next(KEYS.len() as u64) as usize],
                    v: (rng.next(5) != 0).then(|| rng.next(120) as i64 - 20),
                    d: (rng.next(4) != 0).then(|| rng.next(100_000) as i128 - 20_000),
                })
                .collect();
            total += n;
            let before: HashMap<String, Vec<String>> = view.clone();
            let mut touched: Vec<String> = Vec::new();
            for r in &rows {
                let key = r.key.map_or("<null>".to_string(), str::to_string);
                if !touched.contains(&key) {
                    touched.push(key.clone());
                }
                all.entry(key).or_default().push(*r);
            }
            let mut emitted: Vec<String> = Vec::new();
            for out in run_batch(op.as_mut(), &rows, &metrics) {
                assert_eq!(out.schema(), schema);
                let kinds = row_kinds(&out).unwrap();
                for (i, kind) in kinds.iter().enumerate() {
                    let (key, vals) = row_strings(&out, i);
                    match kind {
                        RowKind::Insert => {
                            assert!(!before.contains_key(&key), "+I for known {key}");
                            assert!(view.insert(key.clone(), vals).is_none());
                            emitted.push(key);
                        }
                        RowKind::UpdateBefore => {
                            assert_eq!(view.remove(&key), Some(vals), "-U of {key}");
                            // its +U follows immediately
                            assert_eq!(kinds.get(i + 1), Some(&RowKind::UpdateAfter));
                            assert_eq!(row_strings(&out, i + 1).0, key);
                        }
                        RowKind::UpdateAfter => {
                            assert_eq!(kinds[i - 1], RowKind::UpdateBefore);
                            assert_ne!(before.get(&key), Some(&vals), "unchanged {key}");
                            assert!(view.insert(key.clone(), vals).is_none());
                            emitted.push(key);
                        }
                        RowKind::Delete => panic!("no deletes expected"),
                    }
                }
            }
            // every touched key whose values changed was emitted once, in order
            let changed: Vec<String> = touched
                .iter()
                .filter(|k| before.get(*k) != Some(&oracle(&all[*k], &schema)))
                .cloned()
                .collect();
            assert_eq!(emitted, changed);
            assert_eq!(view.len(), all.len());
            for (key, rows) in &all {
                assert_eq!(view[key], oracle(rows, &schema), "key {key}");
            }
        }
        assert_eq!(
            metrics.rows_aggregated.load(Ordering::Relaxed),
            total as u64
        );
    }

    #[test]
    fn updating_unchanged_group_emits_nothing() {
        let s = input_schema();
        let v = col("v", &s).unwrap();
        let calls = vec![
            call(max_udaf(), v.clone(), "max_v", false, None),
            call(sum_udaf(), v, "sum_v", false, None),
        ];
        let mut op = UpdatingAggregate::new(spec(true, calls), &s, None)
            .unwrap()
            .create()
            .unwrap();
        let metrics = NodeMetrics::default();
        let row = |key, v| Row { key, v, d: None };
        let out = run_batch(
            op.as_mut(),
            &[row(Some("a"), Some(5)), row(None, None)],
            &metrics,
        );
        assert_eq!(row_kinds(&out[0]).unwrap(), [RowKind::Insert; 2]);
        // NULL value: neither MAX nor SUM changes; 0 leaves both unchanged too.
        let out = run_batch(
            op.as_mut(),
            &[
                row(Some("a"), None),
                row(Some("a"), Some(0)),
                row(None, None),
            ],
            &metrics,
        );
        assert!(out.is_empty());
        let out = run_batch(op.as_mut(), &[row(Some("a"), Some(7))], &metrics);
        assert_eq!(
            row_kinds(&out[0]).unwrap(),
            [RowKind::UpdateBefore, RowKind::UpdateAfter]
        );
        assert_eq!(row_strings(&out[0], 0).1, ["5", "5"]);
        assert_eq!(row_strings(&out[0], 1).1, ["7", "12"]);
    }

    #[test]
    fn updating_global_aggregate_without_keys() {
        let s = input_schema();
        let calls = vec![call(count_udaf(), lit(1i64), "cnt", false, None)];
        let mut op = UpdatingAggregate::new(spec(false, calls), &s, None)
            .unwrap()
            .create()
            .unwrap();
        let metrics = NodeMetrics::default();
        let row = Row {
            key: None,
            v: None,
            d: None,
        };
        let out = run_batch(op.as_mut(), &[row, row], &metrics);
        assert_eq!(row_kinds(&out[0]).unwrap(), [RowKind::Insert]);
        assert_eq!(array_value_to_string(out[0].column(0), 0).unwrap(), "2");
        let out = run_batch(op.as_mut(), &[row], &metrics);
        assert_eq!(
            row_kinds(&out[0]).unwrap(),
            [RowKind::UpdateBefore, RowKind::UpdateAfter]
        );
        assert_eq!(array_value_to_string(out[0].column(0), 1).unwrap(), "3");
    }

    #[test]
    fn updating_refuses_unsupported_aggregates() {
        let s = input_schema();
        let v = col("v", &s).unwrap();
        let calls = vec![call(count_udaf(), v, "n", true, None)];
        let err = UpdatingAggregate::new(spec(true, calls), &s, None).unwrap_err();
        assert!(err.to_string().contains("COUNT DISTINCT"), "{err}");
    }

    #[test]
    fn updating_state_ttl_drops_idle_groups() {
        let s = input_schema();
        let calls = vec![call(count_udaf(), lit(1i64), "cnt", false, None)];
        let now = Arc::new(AtomicI64::new(0));
        let clock_now = now.clone();
        let factory = UpdatingAggregate::new(spec(true, calls), &s, Some(100))
            .unwrap()
            .with_clock(Arc::new(move || clock_now.load(Ordering::SeqCst)));
        let mut op = factory.create_operator().unwrap();
        let metrics = NodeMetrics::default();
        let row = |key| Row {
            key,
            v: None,
            d: None,
        };
        let kinds_of = |out: &[RecordBatch]| -> Vec<(String, RowKind, String)> {
            out.iter()
                .flat_map(|b| {
                    let kinds = row_kinds(b).unwrap();
                    (0..b.num_rows())
                        .map(|i| {
                            let (k, v) = row_strings(b, i);
                            (k, kinds[i], v[0].clone())
                        })
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        let ins = |k: &str, n: &str| (k.to_string(), RowKind::Insert, n.to_string());
        let out = run_batch(&mut op, &[row(Some("a")), row(Some("b"))], &metrics);
        assert_eq!(kinds_of(&out), [ins("a", "1"), ins("b", "1")]);
        now.store(60, Ordering::SeqCst);
        let out = run_batch(&mut op, &[row(Some("b")), row(Some("e"))], &metrics);
        assert_eq!(out[0].num_rows(), 3);
        assert_eq!(op.num_groups(), 3);
        // at 120: a idle 120 ms (expired, dropped), b idle 60 ms (kept)
        now.store(120, Ordering::SeqCst);
        let out = run_batch(&mut op, &[row(Some("c"))], &metrics);
        assert_eq!(kinds_of(&out), [ins("c", "1")]);
        assert_eq!(op.num_groups(), 3);
        // a starts afresh: +I, no retraction; b still counts on
        let out = run_batch(&mut op, &[row(Some("a")), row(Some("b"))], &metrics);
        let rows = kinds_of(&out);
        assert_eq!(rows[0], ins("a", "1"));
        assert_eq!(
            rows[1],
            ("b".to_string(), RowKind::UpdateBefore, "2".to_string())
        );
        assert_eq!(
            rows[2],
            ("b".to_string(), RowKind::UpdateAfter, "3".to_string())
        );
        assert_eq!(op.num_groups(), 4);
        // e expired at 160 but is not cleaned up before 220: still absent
        now.store(165, Ordering::SeqCst);
        let out = run_batch(&mut op, &[row(Some("e"))], &metrics);
        assert_eq!(kinds_of(&out), [ins("e", "1")]);
        assert_eq!(op.num_groups(), 4);
        // at 230 the cleanup drops a, b, c (idle 110 ms), keeps e
        now.store(230, Ordering::SeqCst);
        let out = run_batch(&mut op, &[row(Some("e"))], &metrics);
        assert_eq!(
            kinds_of(&out)[1],
            ("e".to_string(), RowKind::UpdateAfter, "2".to_string())
        );
        assert_eq!(op.num_groups(), 1);
        let out = run_batch(&mut op, &[row(Some("b"))], &metrics);
        assert_eq!(kinds_of(&out), [ins("b", "1")]);
    }
}
