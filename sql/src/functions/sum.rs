//! Flink's `SUM`: DataFusion's `SUM` with Flink's result type for `DECIMAL`.
//!
//! Flink types `SUM(DECIMAL(p, s))` as `DECIMAL(38, s)`; DataFusion types it as
//! `Decimal128(min(38, p + 10), s)`. Everything else about the two functions is the
//! same, so [`FlinkSum`] wraps DataFusion's [`Sum`] and overrides only
//! [`AggregateUDFImpl::return_type`] for `Decimal128`.
//!
//! This is sound because every accumulator DataFusion's `Sum` creates (row, groups,
//! sliding and distinct) takes its output type from `AccumulatorArgs::return_field`,
//! and its state fields from `StateFieldsArgs::return_field`, and never from the
//! input type. The sum is kept in an `i128` either way, so widening the declared
//! precision to 38 changes only the type stamped on the result.
//!
//! Integer inputs keep DataFusion's typing (`TINYINT`..`BIGINT` sum to `BIGINT`),
//! floating point inputs sum to `DOUBLE`.

use std::fmt::Debug;
use std::sync::LazyLock;

use datafusion::arrow::datatypes::{DECIMAL128_MAX_PRECISION, DataType, FieldRef};
use datafusion::common::{Result, ScalarValue};
use datafusion::functions_aggregate::sum::Sum;
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::function::{
    AccumulatorArgs, AggregateFunctionSimplification, StateFieldsArgs,
};
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, Expr, GroupsAccumulator, Operator, ReversedUDAF,
    SetMonotonicity, Signature, StatisticsArgs, aggregate_doc_sections,
};

/// Flink-compatible `SUM` aggregate: `SUM(DECIMAL(p, s))` is `DECIMAL(38, s)`.
///
/// Register it under the name `sum` (see [`super::register_flink_aggregates`]) to
/// replace DataFusion's built-in `SUM`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct FlinkSum {
    /// DataFusion's `SUM`, to which everything except the decimal result type is
    /// delegated.
    inner: Sum,
}

impl FlinkSum {
    /// Creates the Flink `SUM` aggregate.
    pub fn new() -> Self {
        Self { inner: Sum::new() }
    }
}

impl Default for FlinkSum {
    fn default() -> Self {
        Self::new()
    }
}

/// Documentation shown for `SUM` (e.g. by `SHOW FUNCTIONS`-style tooling).
static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        aggregate_doc_sections::DOC_SECTION_GENERAL,
        "Returns the sum of the non-NULL values, or NULL if there are none. Follows \
         Flink: SUM(DECIMAL(p, s)) is DECIMAL(38, s); integer types sum to BIGINT; \
         floating point types sum to DOUBLE.",
        "sum(expression)",
    )
    .with_standard_argument("expression", None)
    .build()
});

impl AggregateUDFImpl for FlinkSum {
    fn name(&self) -> &str {
        "sum"
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [DataType::Decimal128(_, scale)] => {
                Ok(DataType::Decimal128(DECIMAL128_MAX_PRECISION, *scale))
            }
            _ => self.inner.return_type(arg_types),
        }
    }

    fn is_nullable(&self) -> bool {
        self.inner.is_nullable()
    }

    fn accumulator(&self, acc_args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        self.inner.accumulator(acc_args)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        self.inner.state_fields(args)
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        self.inner.groups_accumulator_supported(args)
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        self.inner.create_groups_accumulator(args)
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        self.inner.create_sliding_accumulator(args)
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        self.inner.order_sensitivity()
    }

    fn simplify(&self) -> Option<AggregateFunctionSimplification> {
        self.inner.simplify()
    }

    fn simplify_expr_op_literal(
        &self,
        _agg_function: &AggregateFunction,
        _arg: &Expr,
        _op: Operator,
        _lit: &Expr,
        _arg_is_left: bool,
    ) -> Result<Option<Expr>> {
        // Deliberately not delegated. DataFusion's `Sum` rewrites `SUM(x + c)`
        // (when several aggregates share `x`) to `SUM(x) + c * CAST(COUNT(x) AS
        // <type of c>)`. For a DECIMAL literal that cast overflows (`0.5` is
        // DECIMAL(1, 1), so any count above 0 fails the query) and the result type
        // can differ from `SUM(x + c)`'s; for DOUBLE it changes the rounding. The
        // rewrite only saves work in batch queries with many such aggregates.
        Ok(None)
    }

    fn reverse_expr(&self) -> ReversedUDAF {
        self.inner.reverse_expr()
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn is_descending(&self) -> Option<bool> {
        self.inner.is_descending()
    }

    fn value_from_stats(&self, statistics_args: &StatisticsArgs) -> Option<ScalarValue> {
        // `Sum` casts the statistics value to `statistics_args.return_type`, which
        // is this function's (Flink) return type.
        self.inner.value_from_stats(statistics_args)
    }

    fn default_value(&self, data_type: &DataType) -> Result<ScalarValue> {
        self.inner.default_value(data_type)
    }

    fn supports_null_handling_clause(&self) -> bool {
        self.inner.supports_null_handling_clause()
    }

    fn supports_within_group_clause(&self) -> bool {
        self.inner.supports_within_group_clause()
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }

    fn set_monotonicity(&self, data_type: &DataType) -> SetMonotonicity {
        self.inner.set_monotonicity(data_type)
    }
}
