//! Running values of one aggregate call per group id, in plain typed vectors,
//! folded with typed loops over the Arrow buffers and read back as Arrow arrays
//! for the touched groups only.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Decimal128Array, Float64Array, Int64Array,
    PrimitiveArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    ArrowPrimitiveType, DataType, Decimal128Type, Field, Float64Type, Int64Type,
};

use super::distinct::list_type;
use super::plan::{AggPlan, Func, Kind};
use super::ttl::retain_kept;
use crate::checkpoint::malformed_state;
use crate::error::{EngineError, Result};

/// True when row `i` passes an aggregate's FILTER `mask` (NULL does not).
pub(super) fn passes_filter(mask: Option<&BooleanArray>, i: usize) -> bool {
    mask.is_none_or(|m| m.is_valid(i) && m.value(i))
}

/// Running values of one aggregate, per group id.
pub(super) struct AggState {
    plan: AggPlan,
    /// Non-NULL values (rows, for `COUNT(*)`) seen per group.
    counts: Vec<i64>,
    ints: Vec<i64>,
    decs: Vec<i128>,
    floats: Vec<f64>,
    /// For a DISTINCT aggregate: the type of its values' lists in a
    /// checkpoint. The values live in the operator's `DistinctValues` of its
    /// argument, shared with the other DISTINCT calls over it.
    distinct_list: Option<DataType>,
}

impl AggState {
    /// Empty state.
    pub(super) fn try_new(plan: AggPlan) -> Result<Self> {
        let distinct_list = plan.distinct.then(|| list_type(&plan.input_type));
        Ok(AggState {
            plan,
            counts: Vec::new(),
            ints: Vec::new(),
            decs: Vec::new(),
            floats: Vec::new(),
            distinct_list,
        })
    }

    fn uses_values(&self) -> bool {
        !matches!(self.plan.func, Func::Count | Func::CountStar)
    }

    /// Holds `groups` groups; new ones start empty.
    pub(super) fn resize(&mut self, groups: usize) -> Result<()> {
        self.counts.resize(groups, 0);
        if self.uses_values() {
            match self.plan.kind {
                Kind::Int => self.ints.resize(groups, 0),
                Kind::Dec(_) => self.decs.resize(groups, 0),
                Kind::Float => self.floats.resize(groups, 0.0),
            }
        }
        Ok(())
    }

    /// Empties `group` (a new or expired group starting afresh).
    pub(super) fn reset(&mut self, group: usize) {
        if let Some(c) = self.counts.get_mut(group) {
            *c = 0;
        }
    }

    /// Keeps the groups where `keep` is true, in order.
    pub(super) fn compact(&mut self, keep: &[bool]) {
        retain_kept(&mut self.counts, keep);
        retain_kept(&mut self.ints, keep);
        retain_kept(&mut self.decs, keep);
        retain_kept(&mut self.floats, keep);
    }

    /// The columns of aggregate number `a` in a checkpoint: `count_<a>` (the
    /// non-NULL values, or rows, counted per group), `value_<a>` (the running
    /// value, unless the aggregate only counts) and `distinct_<a>` (the values
    /// seen, for a DISTINCT aggregate).
    pub(super) fn state_fields(&self, a: usize) -> Vec<Field> {
        let mut fields = vec![Field::new(format!("count_{a}"), DataType::Int64, false)];
        if self.uses_values() {
            fields.push(Field::new(
                format!("value_{a}"),
                self.plan.kind.canonical(),
                false,
            ));
        }
        if let Some(list) = &self.distinct_list {
            fields.push(Field::new(format!("distinct_{a}"), list.clone(), false));
        }
        fields
    }

    /// The state of groups `0..groups` as the columns of
    /// [`AggState::state_fields`], but for a DISTINCT aggregate's values (the
    /// operator adds them).
    pub(super) fn snapshot(&self, groups: usize) -> Result<Vec<ArrayRef>> {
        let short = || {
            EngineError::InvalidGraph("updating aggregate: state shorter than its groups".into())
        };
        let counts = self.counts.get(..groups).ok_or_else(short)?;
        let mut columns: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(counts.to_vec()))];
        if self.uses_values() {
            columns.push(match self.plan.kind {
                Kind::Int => Arc::new(Int64Array::from(
                    self.ints.get(..groups).ok_or_else(short)?.to_vec(),
                )),
                Kind::Dec(s) => Arc::new(
                    Decimal128Array::from(self.decs.get(..groups).ok_or_else(short)?.to_vec())
                        .with_precision_and_scale(38, s)?,
                ),
                Kind::Float => Arc::new(Float64Array::from(
                    self.floats.get(..groups).ok_or_else(short)?.to_vec(),
                )),
            });
        }
        Ok(columns)
    }

    /// Puts back the groups of a [`AggState::snapshot`] into an empty state,
    /// from its columns (of the types [`AggState::state_fields`] names, but
    /// for a DISTINCT aggregate's values).
    pub(super) fn restore(&mut self, columns: &[ArrayRef]) -> Result<()> {
        let mut columns = columns.iter();
        let mut next = |what: &str| {
            columns
                .next()
                .ok_or_else(|| malformed_state(&format!("updating aggregate: no {what} column")))
        };
        let counts = next("count")?;
        let groups = counts.len();
        self.resize(groups)?;
        self.counts = values_of::<Int64Type>(counts, "count")?;
        if self.uses_values() {
            let values = next("value")?;
            match self.plan.kind {
                Kind::Int => self.ints = values_of::<Int64Type>(values, "value")?,
                Kind::Dec(_) => self.decs = values_of::<Decimal128Type>(values, "value")?,
                Kind::Float => self.floats = values_of::<Float64Type>(values, "value")?,
            }
        }
        Ok(())
    }

    /// Approximate bytes held.
    pub(super) fn size(&self) -> usize {
        self.counts.capacity() * 8
            + self.ints.capacity() * 8
            + self.decs.capacity() * 16
            + self.floats.capacity() * 8
    }

    /// Folds one batch's argument column into the groups: the rows passing
    /// `mask` (the FILTER), and of a DISTINCT aggregate only the rows of
    /// `fresh` (those bringing a value their group has not seen, computed by
    /// the operator's shared distinct values).
    pub(super) fn update(
        &mut self,
        args: &[ArrayRef],
        mask: Option<&BooleanArray>,
        groups: &[usize],
        fresh: Option<&[bool]>,
    ) -> Result<()> {
        let passes = |i: usize| match fresh {
            Some(fresh) => fresh.get(i).copied().unwrap_or(false),
            None => passes_filter(mask, i),
        };
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
    pub(super) fn evaluate(&self, groups: &[usize]) -> Result<ArrayRef> {
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

/// The values of a state column of type `T` without NULLs.
fn values_of<T: ArrowPrimitiveType>(column: &ArrayRef, what: &str) -> Result<Vec<T::Native>> {
    column
        .as_primitive_opt::<T>()
        .filter(|c| c.null_count() == 0)
        .map(|c| c.values().to_vec())
        .ok_or_else(|| {
            malformed_state(&format!(
                "updating aggregate: the {what} column is {}, not {} without NULLs",
                column.data_type(),
                T::DATA_TYPE
            ))
        })
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
