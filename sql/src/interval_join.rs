//! Recognising interval joins: `a JOIN b ON a.k = b.k AND b.ts BETWEEN a.ts AND
//! a.ts + INTERVAL '15' MINUTE`. The join condition's conjuncts that bound one
//! input's time attribute by the other's (`>=`, `>`, `<=`, `<`, `BETWEEN`, with
//! constant interval offsets) become the join's interval; the rest stays a
//! residual predicate.

use datafusion::common::{Column, DFSchemaRef, ScalarValue};
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator};

/// The time bound of an interval join: `right.time - left.time` lies in
/// `[lower_ms, upper_ms]`.
#[derive(Debug, Clone, PartialEq)]
pub struct IntervalBound {
    /// Index of the left input's time column.
    pub left_time: usize,
    /// Index of the right input's time column.
    pub right_time: usize,
    /// Smallest allowed `right.time - left.time`, in milliseconds.
    pub lower_ms: i64,
    /// Largest allowed `right.time - left.time`, in milliseconds.
    pub upper_ms: i64,
    /// Conjuncts of the condition that are not part of the bound.
    pub residual: Vec<Expr>,
}

/// A column plus a constant offset in milliseconds.
fn column_plus_offset(expr: &Expr) -> Option<(&Column, i64)> {
    match expr {
        Expr::Column(c) => Some((c, 0)),
        Expr::Cast(cast) => column_plus_offset(&cast.expr),
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let (column, offset) = column_plus_offset(left)?;
            let constant = interval_literal_ms(right)?;
            match op {
                Operator::Plus => Some((column, offset + constant)),
                Operator::Minus => Some((column, offset - constant)),
                _ => None,
            }
        }
        _ => None,
    }
}

/// The length of an interval literal without months, in milliseconds.
fn interval_literal_ms(expr: &Expr) -> Option<i64> {
    match expr {
        Expr::Literal(ScalarValue::IntervalMonthDayNano(Some(v)), _) if v.months == 0 => {
            Some(i64::from(v.days) * 86_400_000 + v.nanoseconds / 1_000_000)
        }
        Expr::Literal(ScalarValue::IntervalDayTime(Some(v)), _) => {
            Some(i64::from(v.days) * 86_400_000 + i64::from(v.milliseconds))
        }
        Expr::Literal(ScalarValue::DurationMillisecond(Some(ms)), _) => Some(*ms),
        _ => None,
    }
}

/// Splits a join condition into an interval bound between a time column of
/// each input (`is_time(side, index)` says which columns are time attributes)
/// and the residual conjuncts. `None` when no two-sided bound is present.
pub fn interval_bound(
    filter: &Expr,
    left: &DFSchemaRef,
    right: &DFSchemaRef,
    is_time: &dyn Fn(bool, usize) -> bool,
) -> Option<IntervalBound> {
    let mut conjuncts = Vec::new();
    for conjunct in split_conjunction(filter) {
        match conjunct {
            Expr::Between(Between {
                expr,
                negated: false,
                low,
                high,
            }) => {
                conjuncts.push(Expr::BinaryExpr(BinaryExpr::new(
                    expr.clone(),
                    Operator::GtEq,
                    low.clone(),
                )));
                conjuncts.push(Expr::BinaryExpr(BinaryExpr::new(
                    expr.clone(),
                    Operator::LtEq,
                    high.clone(),
                )));
            }
            other => conjuncts.push(other.clone()),
        }
    }
    let mut pair: Option<(usize, usize)> = None;
    let mut lower = i64::MIN;
    let mut upper = i64::MAX;
    let mut residual = Vec::new();
    for conjunct in conjuncts {
        let bound = time_comparison(&conjunct, left, right, is_time);
        match bound {
            Some((times, op, constant)) if pair.is_none() || pair == Some(times) => {
                pair = Some(times);
                match op {
                    Operator::GtEq => lower = lower.max(constant),
                    Operator::Gt => lower = lower.max(constant.saturating_add(1)),
                    Operator::LtEq => upper = upper.min(constant),
                    Operator::Lt => upper = upper.min(constant.saturating_sub(1)),
                    _ => residual.push(conjunct),
                }
            }
            _ => residual.push(conjunct),
        }
    }
    let (left_time, right_time) = pair?;
    if lower == i64::MIN || upper == i64::MAX {
        return None;
    }
    Some(IntervalBound {
        left_time,
        right_time,
        lower_ms: lower,
        upper_ms: upper,
        residual,
    })
}

/// Reads `x OP y` as `right.time - left.time OP constant`.
fn time_comparison(
    expr: &Expr,
    left: &DFSchemaRef,
    right: &DFSchemaRef,
    is_time: &dyn Fn(bool, usize) -> bool,
) -> Option<((usize, usize), Operator, i64)> {
    let Expr::BinaryExpr(BinaryExpr {
        left: a,
        op,
        right: b,
    }) = expr
    else {
        return None;
    };
    let (a_col, a_off) = column_plus_offset(a)?;
    let (b_col, b_off) = column_plus_offset(b)?;
    let side_of = |c: &Column| {
        if let Ok(i) = right.index_of_column(c) {
            Some((true, i))
        } else {
            left.index_of_column(c).ok().map(|i| (false, i))
        }
    };
    let (a_right, a_idx) = side_of(a_col)?;
    let (b_right, b_idx) = side_of(b_col)?;
    if a_right == b_right || !is_time(a_right, a_idx) || !is_time(b_right, b_idx) {
        return None;
    }
    // a + a_off OP b + b_off  ⇔  a - b OP b_off - a_off
    let constant = b_off - a_off;
    if a_right {
        Some(((b_idx, a_idx), *op, constant))
    } else {
        // left - right OP c  ⇔  right - left OP' -c
        let flipped = match op {
            Operator::GtEq => Operator::LtEq,
            Operator::Gt => Operator::Lt,
            Operator::LtEq => Operator::GtEq,
            Operator::Lt => Operator::Gt,
            other => *other,
        };
        Some(((a_idx, b_idx), flipped, -constant))
    }
}
