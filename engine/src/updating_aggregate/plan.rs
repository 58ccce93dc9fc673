//! Which aggregate calls an updating aggregate computes itself, and how it
//! holds their running values.

use datafusion::arrow::datatypes::{DataType, Schema};

use crate::error::{EngineError, Result};

/// The aggregate functions this operator computes itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Func {
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
pub(super) enum Kind {
    /// Integers and temporal values, as `i64`.
    Int,
    /// `Decimal128(_, scale)`, as `i128` at the input's scale.
    Dec(i8),
    /// Floating point, as `f64`.
    Float,
}

impl Kind {
    pub(super) fn of(data_type: &DataType) -> Option<Kind> {
        use DataType::*;
        match data_type {
            Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64 => Some(Kind::Int),
            Float16 | Float32 | Float64 => Some(Kind::Float),
            Decimal128(_, s) => Some(Kind::Dec(*s)),
            _ => None,
        }
    }

    pub(super) fn of_min_max(data_type: &DataType) -> Option<Kind> {
        use DataType::*;
        match data_type {
            Timestamp(_, _) | Date32 | Date64 | Time32(_) | Time64(_) | Duration(_) => {
                Some(Kind::Int)
            }
            other => Kind::of(other),
        }
    }

    pub(super) fn canonical(self) -> DataType {
        match self {
            Kind::Int => DataType::Int64,
            Kind::Dec(s) => DataType::Decimal128(38, s),
            Kind::Float => DataType::Float64,
        }
    }
}

/// One aggregate call as this operator computes it.
#[derive(Debug, Clone)]
pub(super) struct AggPlan {
    pub(super) func: Func,
    pub(super) kind: Kind,
    pub(super) input_type: DataType,
    pub(super) output_type: DataType,
    /// Only values the group has not seen count (`COUNT`/`SUM`/`AVG`
    /// `DISTINCT`; MIN/MAX DISTINCT are plain MIN/MAX and leave this false).
    pub(super) distinct: bool,
}

impl AggPlan {
    pub(super) fn try_new(
        function: &datafusion::physical_expr::aggregate::AggregateFunctionExpr,
        input_schema: &Schema,
    ) -> Result<AggPlan> {
        let name = function.fun().name().to_ascii_lowercase();
        let unsupported = |why: &str| {
            EngineError::Config(format!(
                "updating (non-windowed) GROUP BY does not support {}{}: {why}; supported are \
                 COUNT, SUM, MIN, MAX and AVG over integer, floating point and decimal values \
                 (MIN/MAX also over temporal values), each also with DISTINCT, and \
                 COUNT(DISTINCT x) over values of any type",
                name.to_ascii_uppercase(),
                if function.is_distinct() {
                    " DISTINCT"
                } else {
                    ""
                },
            ))
        };
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
        // MIN and MAX of the distinct values are MIN and MAX of all values.
        let distinct = function.is_distinct() && !matches!(func, Func::Min | Func::Max);
        if distinct && func == Func::CountStar {
            return Err(unsupported("DISTINCT needs an argument"));
        }
        Ok(AggPlan {
            func,
            kind,
            input_type,
            output_type,
            distinct,
        })
    }
}
