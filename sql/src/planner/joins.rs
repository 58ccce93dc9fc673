//! Planning joins. Three kinds run; the first that fits the query is used:
//!
//! 1. An event-time **interval join**: the condition bounds both inputs' time
//!    attributes against each other (`b.ts BETWEEN a.ts AND a.ts + INTERVAL ..`).
//! 2. A **window join** (Flink's): `ON L.window_start = R.window_start AND
//!    L.window_end = R.window_end [AND keys]` over two inputs carrying real
//!    windows (TUMBLE rows, or the results of any window aggregate). It runs as
//!    a `WindowJoinOperator` keyed by all the equi-join pairs: a window's rows
//!    are kept until the watermark reaches `window_end - 1 ms`, then joined,
//!    its pairs and unmatched outer rows emitted, and dropped; rows of fired
//!    windows are late.
//! 3. A join with a **bounded table** (a file without WATERMARK): the table is
//!    read completely, then every stream row is joined with it.
//!
//! Anything else is a regular join of two streams, which would keep every row
//! forever; it is refused with a message naming the three alternatives.

use std::sync::Arc;

use datafusion::common::DFSchemaRef;
use datafusion::logical_expr::{Expr, Join, JoinType};
use datafusion::physical_expr::PhysicalExpr;
use watershed_engine::graph::{JobGraph, NodeId, Partitioning};
use watershed_engine::join::{
    BoundedTableJoin, IntervalJoin, JoinInput, JoinKind, KeyedInput, TableSide,
};
use watershed_engine::operator::OperatorFactory;

use super::{Origin, Planned, Planner, arrow_schema, unalias, unsupported};
use crate::error::Result;
use crate::interval_join::interval_bound;

/// The equi-join key columns of both inputs, paired by position.
struct EquiKeys {
    left: Vec<usize>,
    right: Vec<usize>,
}

impl EquiKeys {
    /// The pairs of `join.on`; only plain columns are supported.
    fn of(join: &Join) -> Result<Self> {
        let (left_schema, right_schema) = (join.left.schema(), join.right.schema());
        let mut keys = EquiKeys {
            left: Vec::new(),
            right: Vec::new(),
        };
        for (l, r) in &join.on {
            match (unalias(l), unalias(r)) {
                (Expr::Column(l), Expr::Column(r)) => {
                    keys.left.push(left_schema.index_of_column(l)?);
                    keys.right.push(right_schema.index_of_column(r)?);
                }
                _ => return Err(unsupported("join keys that are expressions")),
            }
        }
        Ok(keys)
    }
}

/// The names of `keys` in `schema`, for a hash exchange.
fn key_names(schema: &DFSchemaRef, keys: &[usize]) -> Vec<String> {
    keys.iter()
        .map(|&k| schema.field(k).name().clone())
        .collect()
}

/// The origins of one input's columns in the join's output: columns of a side
/// the join pads with NULLs no longer hold windows.
fn output_origins(origins: Vec<Origin>, padded: bool) -> Vec<Origin> {
    if !padded {
        return origins;
    }
    origins
        .into_iter()
        .map(|o| match o {
            Origin::Window { .. } => Origin::Other,
            other => other,
        })
        .collect()
}

/// Which window columns a window join condition pairs: the indexes of the
/// left and right `window_end` columns.
struct WindowEnds {
    left: usize,
    right: usize,
}

/// The `window_end` columns when `join.on` pairs `window_start` with
/// `window_start` and `window_end` with `window_end` of two windowed inputs.
/// Refuses raw rows of HOP, CUMULATE and SESSION, whose window columns are
/// placeholders until the rows are aggregated.
fn window_join_ends(join: &Join, left: &Planned, right: &Planned) -> Result<Option<WindowEnds>> {
    let (left_schema, right_schema) = (join.left.schema(), join.right.schema());
    let mut start = false;
    let mut end = None;
    let mut deferred = None;
    for (l, r) in &join.on {
        let (Expr::Column(l), Expr::Column(r)) = (unalias(l), unalias(r)) else {
            continue;
        };
        let (Ok(li), Ok(ri)) = (
            left_schema.index_of_column(l),
            right_schema.index_of_column(r),
        ) else {
            continue;
        };
        let (
            Some(Origin::Window {
                column: lc,
                window: lw,
                deferred: ld,
            }),
            Some(Origin::Window {
                column: rc,
                window: rw,
                deferred: rd,
            }),
        ) = (left.origins.get(li), right.origins.get(ri))
        else {
            continue;
        };
        if lc != rc {
            continue;
        }
        if ld.is_some() {
            deferred = Some(lw.clone());
        } else if rd.is_some() {
            deferred = Some(rw.clone());
        }
        match lc {
            0 => start = true,
            1 => {
                end = Some(WindowEnds {
                    left: li,
                    right: ri,
                })
            }
            _ => {}
        }
    }
    let (true, Some(ends)) = (start, end) else {
        return Ok(None);
    };
    if let Some(window) = deferred {
        return Err(unsupported(format!(
            "a window join over the rows of {window}: a row of HOP, CUMULATE or SESSION \
             belongs to windows that are known only when rows are aggregated. Aggregate \
             each side first (SELECT window_start, window_end, ... GROUP BY window_start, \
             window_end, ...) and join the aggregates ON L.window_start = R.window_start \
             AND L.window_end = R.window_end, or join the rows of TUMBLE windows"
        )));
    }
    Ok(Some(ends))
}

/// Which input is the bounded table, if one is and the join type allows it.
fn bounded_table_side(
    kind: JoinKind,
    left: &Planned,
    right: &Planned,
) -> Result<Option<TableSide>> {
    let (l, r) = (&left.bounded_table, &right.bounded_table);
    let keeps_table_rows = |name: &str, side: &str| {
        unsupported(format!(
            "a {kind} join that keeps the unmatched rows of bounded table '{name}' (the \
             {side} input): which table rows match nothing is known only when the stream \
             ends. Keep the stream's rows instead (`<stream> LEFT JOIN {name}`), or use an \
             inner JOIN"
        ))
    };
    match kind {
        JoinKind::Inner => Ok(if r.is_some() {
            Some(TableSide::Right)
        } else if l.is_some() {
            Some(TableSide::Left)
        } else {
            None
        }),
        JoinKind::Left => match (l, r) {
            (_, Some(_)) => Ok(Some(TableSide::Right)),
            (Some(name), None) => Err(keeps_table_rows(name, "left")),
            (None, None) => Ok(None),
        },
        JoinKind::Right => match (l, r) {
            (Some(_), _) => Ok(Some(TableSide::Left)),
            (None, Some(name)) => Err(keeps_table_rows(name, "right")),
            (None, None) => Ok(None),
        },
        JoinKind::Full => match l.as_ref().or(r.as_ref()) {
            Some(name) => Err(unsupported(format!(
                "a FULL OUTER join with bounded table '{name}': which table rows match \
                 nothing is known only when the stream ends. Use `stream LEFT JOIN {name}` \
                 to keep every stream row"
            ))),
            None => Ok(None),
        },
    }
}

impl Planner<'_> {
    /// A join of two planned inputs; see the module documentation.
    pub(super) fn translate_join(&self, join: &Join, graph: &mut JobGraph) -> Result<Planned> {
        let kind = match join.join_type {
            JoinType::Inner => JoinKind::Inner,
            JoinType::Left => JoinKind::Left,
            JoinType::Right => JoinKind::Right,
            JoinType::Full => JoinKind::Full,
            other => return Err(unsupported(format!("{other} joins"))),
        };
        let left = self.translate(&join.left, graph)?;
        let right = self.translate(&join.right, graph)?;
        if left.changelog || right.changelog {
            return Err(unsupported("joining the results of an updating query"));
        }
        if let Some(planned) = self.interval_join(join, kind, &left, &right, graph)? {
            return Ok(planned);
        }
        if let Some(ends) = window_join_ends(join, &left, &right)? {
            return self.window_join(join, kind, left, right, ends, graph);
        }
        if let Some(table) = bounded_table_side(kind, &left, &right)? {
            return self.bounded_table_join(join, kind, left, right, table, graph);
        }
        Err(unsupported(
            "a regular join of two streams: it would keep every row of both inputs \
             forever. Write an interval join, bounding the time attributes of both sides \
             (e.g. `AND b.ts BETWEEN a.ts AND a.ts + INTERVAL '15' MINUTE`); a window join \
             of two window TVFs or window aggregates (`ON L.window_start = R.window_start \
             AND L.window_end = R.window_end AND ...`); or join a bounded table (a table \
             over a file without WATERMARK, read completely before the stream is joined)",
        ))
    }

    /// The residual predicate over the join's output, if any.
    fn join_residual(
        &self,
        join: &Join,
        conjuncts: Vec<Expr>,
    ) -> Result<Option<Arc<dyn PhysicalExpr>>> {
        match datafusion::logical_expr::utils::conjunction(conjuncts) {
            Some(expr) => Ok(Some(self.state().create_physical_expr(expr, &join.schema)?)),
            None => Ok(None),
        }
    }

    /// An event-time interval join, when the condition bounds both time
    /// attributes.
    fn interval_join(
        &self,
        join: &Join,
        kind: JoinKind,
        left: &Planned,
        right: &Planned,
        graph: &mut JobGraph,
    ) -> Result<Option<Planned>> {
        let (left_schema, right_schema) = (join.left.schema(), join.right.schema());
        let is_time = |is_right: bool, index: usize| {
            let origins = if is_right {
                &right.origins
            } else {
                &left.origins
            };
            matches!(origins.get(index), Some(Origin::Rowtime))
        };
        let Some(bound) = join
            .filter
            .as_ref()
            .and_then(|f| interval_bound(f, left_schema, right_schema, &is_time))
        else {
            return Ok(None);
        };
        let keys = EquiKeys::of(join)?;
        let residual = self.join_residual(join, bound.residual.clone())?;
        let op = IntervalJoin::new(
            JoinInput::new(
                arrow_schema(left_schema),
                keys.left.clone(),
                bound.left_time,
            ),
            JoinInput::new(
                arrow_schema(right_schema),
                keys.right.clone(),
                bound.right_time,
            ),
            bound.lower_ms,
            bound.upper_ms,
            kind,
            residual,
        )?;
        let node = self.add_keyed_join(Arc::new(op), join, &keys, (left.node, right.node), graph);
        let mut origins = left.origins.clone();
        origins.extend(right.origins.iter().cloned());
        Ok(Some(Planned {
            node,
            origins,
            changelog: false,
            bounded_table: None,
        }))
    }

    /// Adds a two-input join whose inputs meet by hash of their equi-join keys
    /// (forward at parallelism 1).
    fn add_keyed_join(
        &self,
        op: Arc<dyn OperatorFactory>,
        join: &Join,
        keys: &EquiKeys,
        (left, right): (NodeId, NodeId),
        graph: &mut JobGraph,
    ) -> NodeId {
        let (left_schema, right_schema) = (join.left.schema(), join.right.schema());
        graph.add_operator_with_inputs(
            op,
            &[
                (left, self.key_exchange(key_names(left_schema, &keys.left))),
                (
                    right,
                    self.key_exchange(key_names(right_schema, &keys.right)),
                ),
            ],
        )
    }

    /// A window join on `window_end - 1 ms`, keyed by every equi-join pair
    /// (window columns included); see `IntervalJoin::window_join`.
    fn window_join(
        &self,
        join: &Join,
        kind: JoinKind,
        left: Planned,
        right: Planned,
        ends: WindowEnds,
        graph: &mut JobGraph,
    ) -> Result<Planned> {
        let (left_schema, right_schema) = (join.left.schema(), join.right.schema());
        let keys = EquiKeys::of(join)?;
        let residual = self.join_residual(join, join.filter.iter().cloned().collect())?;
        let op = IntervalJoin::window_join(
            JoinInput::new(arrow_schema(left_schema), keys.left.clone(), ends.left),
            JoinInput::new(arrow_schema(right_schema), keys.right.clone(), ends.right),
            kind,
            residual,
        )?;
        let node = self.add_keyed_join(Arc::new(op), join, &keys, (left.node, right.node), graph);
        // The output keeps the windows of the sides it never pads, so it can be
        // aggregated by window again.
        let mut origins = output_origins(left.origins, kind.keeps_unmatched_right());
        origins.extend(output_origins(right.origins, kind.keeps_unmatched_left()));
        Ok(Planned {
            node,
            origins,
            changelog: false,
            bounded_table: None,
        })
    }

    /// A stream joined with a bounded table: the table is broadcast to every
    /// instance of the join and read to its end; the stream stays where it is.
    fn bounded_table_join(
        &self,
        join: &Join,
        kind: JoinKind,
        left: Planned,
        right: Planned,
        table: TableSide,
        graph: &mut JobGraph,
    ) -> Result<Planned> {
        let (left_schema, right_schema) = (join.left.schema(), join.right.schema());
        let keys = EquiKeys::of(join)?;
        let residual = self.join_residual(join, join.filter.iter().cloned().collect())?;
        let op = BoundedTableJoin::new(
            KeyedInput::new(arrow_schema(left_schema), keys.left),
            KeyedInput::new(arrow_schema(right_schema), keys.right),
            table,
            kind,
            residual,
        )?;
        let (left_edge, right_edge) = match table {
            TableSide::Left => (Partitioning::Broadcast, Partitioning::Forward),
            TableSide::Right => (Partitioning::Forward, Partitioning::Broadcast),
        };
        let node = graph.add_operator_with_inputs(
            Arc::new(op),
            &[(left.node, left_edge), (right.node, right_edge)],
        );
        let mut origins = left.origins;
        origins.extend(right.origins);
        Ok(Planned {
            node,
            origins,
            changelog: false,
            bounded_table: None,
        })
    }
}
