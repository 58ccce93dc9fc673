//! Flink-compatible replacements for DataFusion built-in functions.
//!
//! DataFusion's `SUM` and `AVG` type and round `DECIMAL` differently from Flink
//! (see "Types and arithmetic" in the Flink semantics notes):
//!
//! - [`FlinkSum`]: `SUM(DECIMAL(p, s))` is `DECIMAL(38, s)` (DataFusion:
//!   `Decimal128(p + 10, s)`).
//! - [`FlinkAvg`]: `AVG(DECIMAL(p, s))` is `DECIMAL(38, max(s, 6))` rounded HALF_UP
//!   (DataFusion: `Decimal128(p + 4, s + 4)`, truncated); `AVG` of an integer type
//!   has that type and truncates (DataFusion: `DOUBLE`).
//!
//! Both are registered under DataFusion's names (`sum`, `avg` and its alias `mean`),
//! so registering them into a `SessionContext` or `SessionState` replaces the
//! built-ins for SQL planned by that session:
//!
//! ```ignore
//! let ctx = SessionContext::new();
//! watershed_sql::functions::register_flink_aggregates(&ctx);
//! ```
//!
//! Expressions built with DataFusion's expression API
//! (`datafusion::functions_aggregate::expr_fn::sum`) still call the built-ins; use
//! [`flink_aggregates`] to build those calls instead.

mod avg;
mod date_format;
mod scalars;
mod sum;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use datafusion::common::Result;
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::AggregateUDF;
use datafusion::prelude::SessionContext;

pub use avg::FlinkAvg;
pub use date_format::DateFormat;
pub use scalars::{FlinkMod, RegexpExtract, SplitIndex, flink_scalars};
pub use sum::FlinkSum;

/// The Flink-compatible aggregate functions: `sum` ([`FlinkSum`]) and `avg`
/// ([`FlinkAvg`], alias `mean`).
pub fn flink_aggregates() -> Vec<Arc<AggregateUDF>> {
    vec![
        Arc::new(AggregateUDF::from(FlinkSum::new())),
        Arc::new(AggregateUDF::from(FlinkAvg::new())),
    ]
}

/// Registers [`flink_aggregates`] into `ctx`, replacing DataFusion's `sum`, `avg`
/// and `mean`, and the Flink scalar functions DataFusion lacks
/// ([`flink_scalars`]: `MOD`, `REGEXP_EXTRACT`, `SPLIT_INDEX`).
pub fn register_flink_aggregates(ctx: &SessionContext) {
    for udaf in flink_aggregates() {
        ctx.register_udaf(udaf.as_ref().clone());
    }
    for udf in flink_scalars() {
        ctx.register_udf(udf);
    }
}

/// Registers [`flink_aggregates`] into any function registry (e.g. a
/// `SessionState`), replacing DataFusion's `sum`, `avg` and `mean`.
pub fn register_flink_aggregates_into(registry: &mut dyn FunctionRegistry) -> Result<()> {
    for udaf in flink_aggregates() {
        registry.register_udaf(udaf)?;
    }
    Ok(())
}
