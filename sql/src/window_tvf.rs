//! Window table-valued functions in the `FROM` clause.
//!
//! `TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '1' MINUTE))` is not something
//! DataFusion knows. Before a query is handed to DataFusion, each window TVF call
//! is replaced by a reference to a generated table name; the planner registers, under
//! that name, a table with `t`'s columns plus `window_start`, `window_end` and
//! `window_time`, and remembers the window so the streaming planner can put a
//! window assigner right after `t`'s source.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    DateTimeField, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, ObjectName, Query,
    Spanned, TableAlias, TableFactor, Value, VisitMut, VisitorMut,
};

use watershed_engine::window::SliceSpec;

use crate::error::{Result, SqlError};

/// The kinds of window TVF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowKind {
    /// `TUMBLE(TABLE t, DESCRIPTOR(ts), size [, offset])`.
    Tumble {
        /// Window length in milliseconds.
        size_ms: i64,
        /// Alignment offset in milliseconds.
        offset_ms: i64,
    },
    /// `HOP(TABLE t, DESCRIPTOR(ts), slide, size)`: note slide before size.
    Hop {
        /// Distance between window starts in milliseconds.
        slide_ms: i64,
        /// Window length in milliseconds.
        size_ms: i64,
    },
    /// `SESSION(TABLE t PARTITION BY k, DESCRIPTOR(ts), gap)`.
    Session {
        /// Inactivity gap that closes a session, in milliseconds.
        gap_ms: i64,
    },
    /// `CUMULATE(TABLE t, DESCRIPTOR(ts), step, max_size)`.
    Cumulate {
        /// Growth step in milliseconds.
        step_ms: i64,
        /// Length of the largest window in milliseconds.
        max_size_ms: i64,
    },
}

/// A window whose rows cannot be given their window columns before the
/// aggregate: overlapping windows (aggregated by slices) and sessions (whose
/// bounds depend on later rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeferredWindow {
    /// HOP or CUMULATE, aggregated per slice.
    Slices(SliceSpec),
    /// SESSION with this gap.
    Session {
        /// Inactivity gap in milliseconds.
        gap_ms: i64,
    },
}

impl WindowKind {
    /// How windows of this kind are deferred to the aggregate; `None` for
    /// TUMBLE, whose rows each belong to exactly one known window.
    pub fn deferred(&self) -> Option<DeferredWindow> {
        match *self {
            WindowKind::Tumble { .. } => None,
            WindowKind::Hop { slide_ms, size_ms } => {
                Some(DeferredWindow::Slices(SliceSpec::Hop { size_ms, slide_ms }))
            }
            WindowKind::Cumulate {
                step_ms,
                max_size_ms,
            } => Some(DeferredWindow::Slices(SliceSpec::Cumulate {
                step_ms,
                max_size_ms,
            })),
            WindowKind::Session { gap_ms } => Some(DeferredWindow::Session { gap_ms }),
        }
    }

    /// The tumbling grid rows are assigned to before the aggregate, as
    /// `(width_ms, offset_ms)`: the window itself for TUMBLE, the slice for HOP
    /// and CUMULATE, one millisecond for SESSION (so `window_start` holds the
    /// row's own time).
    pub fn assigned_grid(&self) -> Result<(i64, i64)> {
        match self {
            WindowKind::Tumble { size_ms, offset_ms } => Ok((*size_ms, *offset_ms)),
            WindowKind::Hop { .. } | WindowKind::Cumulate { .. } => match self.deferred() {
                Some(DeferredWindow::Slices(slicing)) => {
                    Ok((slicing.validated()?.slice_width(), 0))
                }
                _ => Err(SqlError::Plan(format!("no slicing for {self:?}"))),
            },
            WindowKind::Session { .. } => Ok((1, 0)),
        }
    }
}

/// One window TVF call found in a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowTvf {
    /// What kind of window.
    pub kind: WindowKind,
    /// The input table or view.
    pub table: String,
    /// The time attribute named by `DESCRIPTOR(...)`.
    pub time_column: String,
    /// The name the call was replaced by.
    pub generated_name: String,
    /// Position of the call in the SQL text.
    pub line: u64,
    /// Position of the call in the SQL text.
    pub column: u64,
}

impl WindowTvf {
    /// A short description for EXPLAIN, e.g. `TUMBLE(payments, event_time, 1 min)`.
    pub fn describe(&self) -> String {
        let ms = watershed_engine::window::tumble::format_duration_ms;
        match &self.kind {
            WindowKind::Session { gap_ms } => {
                format!(
                    "SESSION({}, {}, gap {})",
                    self.table,
                    self.time_column,
                    ms(*gap_ms)
                )
            }
            WindowKind::Hop { slide_ms, size_ms } => format!(
                "HOP({}, {}, slide {}, size {})",
                self.table,
                self.time_column,
                ms(*slide_ms),
                ms(*size_ms)
            ),
            WindowKind::Cumulate {
                step_ms,
                max_size_ms,
            } => format!(
                "CUMULATE({}, {}, step {}, max size {})",
                self.table,
                self.time_column,
                ms(*step_ms),
                ms(*max_size_ms)
            ),
            WindowKind::Tumble { size_ms, offset_ms } => {
                let size = watershed_engine::window::tumble::format_duration_ms(*size_ms);
                if *offset_ms == 0 {
                    format!("TUMBLE({}, {}, {size})", self.table, self.time_column)
                } else {
                    let offset = watershed_engine::window::tumble::format_duration_ms(*offset_ms);
                    format!(
                        "TUMBLE({}, {}, {size}, offset {offset})",
                        self.table, self.time_column
                    )
                }
            }
        }
    }
}

/// Replaces every window TVF in `query` by a generated table name and returns
/// the calls found. `counter` numbers generated names across a session.
pub fn rewrite_window_tvfs(query: &mut Query, counter: &mut usize) -> Result<Vec<WindowTvf>> {
    let mut rewriter = Rewriter {
        found: Vec::new(),
        counter,
    };
    match query.visit(&mut rewriter) {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(rewriter.found),
    }
}

struct Rewriter<'a> {
    found: Vec<WindowTvf>,
    counter: &'a mut usize,
}

impl VisitorMut for Rewriter<'_> {
    type Break = SqlError;

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<SqlError> {
        let TableFactor::TableFunction { expr, alias } = factor else {
            return ControlFlow::Continue(());
        };
        let tvf = match parse_window_call(expr, self.counter) {
            Ok(tvf) => tvf,
            Err(e) => return ControlFlow::Break(e),
        };
        // Without an alias, columns are qualified by the input table's name, as
        // if the query read the table itself.
        let alias = alias.take().or_else(|| {
            Some(TableAlias {
                explicit: true,
                name: Ident::with_quote('"', tvf.table.clone()),
                columns: vec![],
                at: None,
            })
        });
        *factor = TableFactor::Table {
            name: ObjectName::from(vec![Ident::with_quote('"', tvf.generated_name.clone())]),
            alias,
            args: None,
            with_hints: vec![],
            version: None,
            with_ordinality: false,
            partitions: vec![],
            json_path: None,
            sample: None,
            index_hints: vec![],
        };
        self.found.push(tvf);
        ControlFlow::Continue(())
    }
}

fn position(expr: &Expr) -> (u64, u64) {
    let start = expr.span().start;
    (start.line, start.column)
}

fn unsupported(expr: &Expr, feature: impl Into<String>) -> SqlError {
    let (line, column) = position(expr);
    SqlError::Unsupported {
        feature: feature.into(),
        line,
        column,
    }
}

fn invalid(expr: &Expr, message: impl Into<String>) -> SqlError {
    let (line, column) = position(expr);
    SqlError::Parse {
        message: message.into(),
        line,
        column,
    }
}

fn parse_window_call(expr: &Expr, counter: &mut usize) -> Result<WindowTvf> {
    let Expr::Function(call) = expr else {
        return Err(unsupported(
            expr,
            "TABLE(...) around something other than a window function call",
        ));
    };
    let name = call.name.to_string().to_uppercase();
    let args = function_args(expr, &call.args)?;
    let (line, column) = position(expr);
    match name.as_str() {
        "TUMBLE" => {
            if !(3..=4).contains(&args.len()) {
                return Err(invalid(
                    expr,
                    "TUMBLE takes (TABLE t, DESCRIPTOR(time_col), size [, offset])",
                ));
            }
            let table = table_arg(args[0])?;
            let time_column = descriptor_arg(args[1])?;
            let size_ms = interval_ms(args[2])?;
            let offset_ms = match args.get(3) {
                Some(e) => interval_ms(e)?,
                None => 0,
            };
            if size_ms <= 0 {
                return Err(invalid(args[2], "TUMBLE size must be positive"));
            }
            *counter += 1;
            Ok(WindowTvf {
                generated_name: format!("TUMBLE#{}({table})", counter),
                kind: WindowKind::Tumble { size_ms, offset_ms },
                table,
                time_column,
                line,
                column,
            })
        }
        "HOP" | "CUMULATE" => {
            if args.len() != 4 {
                return Err(invalid(
                    expr,
                    format!(
                        "{name} takes (TABLE t, DESCRIPTOR(time_col), {})",
                        if name == "HOP" {
                            "slide, size"
                        } else {
                            "step, max_size"
                        }
                    ),
                ));
            }
            let table = table_arg(args[0])?;
            let time_column = descriptor_arg(args[1])?;
            let first = interval_ms(args[2])?;
            let second = interval_ms(args[3])?;
            if first <= 0 || second <= 0 {
                return Err(invalid(expr, format!("{name} intervals must be positive")));
            }
            // Flink's rules: HOP size must be a multiple of the slide, CUMULATE
            // max size a multiple of the step.
            if second % first != 0 {
                let (a, b) = if name == "HOP" {
                    ("size", "slide")
                } else {
                    ("max size", "step")
                };
                return Err(invalid(
                    expr,
                    format!("{name} {a} must be an integral multiple of the {b}"),
                ));
            }
            let kind = if name == "HOP" {
                WindowKind::Hop {
                    slide_ms: first,
                    size_ms: second,
                }
            } else {
                WindowKind::Cumulate {
                    step_ms: first,
                    max_size_ms: second,
                }
            };
            *counter += 1;
            Ok(WindowTvf {
                generated_name: format!("{name}#{}({table})", counter),
                kind,
                table,
                time_column,
                line,
                column,
            })
        }
        "SESSION" => {
            if args.len() != 3 {
                return Err(invalid(
                    expr,
                    "SESSION takes (TABLE t [PARTITION BY k], DESCRIPTOR(time_col), gap)",
                ));
            }
            let table = table_arg_with_partition(args[0])?;
            let time_column = descriptor_arg(args[1])?;
            let gap_ms = interval_ms(args[2])?;
            if gap_ms <= 0 {
                return Err(invalid(args[2], "SESSION gap must be positive"));
            }
            *counter += 1;
            Ok(WindowTvf {
                generated_name: format!("SESSION#{}({table})", counter),
                kind: WindowKind::Session { gap_ms },
                table,
                time_column,
                line,
                column,
            })
        }
        other => Err(unsupported(expr, format!("table function {other}"))),
    }
}

fn function_args<'a>(expr: &Expr, args: &'a FunctionArguments) -> Result<Vec<&'a Expr>> {
    let FunctionArguments::List(list) = args else {
        return Err(invalid(expr, "a window TVF needs an argument list"));
    };
    list.args
        .iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Ok(e),
            _ => Err(unsupported(
                expr,
                "named or wildcard arguments of a window TVF",
            )),
        })
        .collect()
}

fn single_identifier(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Identifier(id) => Some(id.value.clone()),
        Expr::CompoundIdentifier(parts) => parts.last().map(|id| id.value.clone()),
        _ => None,
    }
}

/// `TABLE t PARTITION BY k`: sessions are kept per group key of the aggregate,
/// so the partition keys only need to be among the GROUP BY keys.
fn table_arg_with_partition(expr: &Expr) -> Result<String> {
    if let Expr::Function(f) = expr
        && f.name.to_string().eq_ignore_ascii_case("TABLE")
        && let FunctionArguments::List(list) = &f.args
        && let Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(e))) = list.args.first()
        && let Some(name) = single_identifier(e)
    {
        return Ok(name);
    }
    table_arg(expr)
}

fn table_arg(expr: &Expr) -> Result<String> {
    if let Expr::Function(f) = expr
        && f.name.to_string().eq_ignore_ascii_case("TABLE")
        && let FunctionArguments::List(list) = &f.args
    {
        if list.args.len() > 1 {
            return Err(unsupported(expr, "PARTITION BY outside a SESSION window"));
        }
        if let Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(e))) = list.args.first()
            && let Some(name) = single_identifier(e)
        {
            return Ok(name);
        }
    }
    Err(invalid(
        expr,
        "the first argument of a window TVF must be TABLE <name>",
    ))
}

fn descriptor_arg(expr: &Expr) -> Result<String> {
    if let Expr::Function(f) = expr
        && f.name.to_string().eq_ignore_ascii_case("DESCRIPTOR")
        && let FunctionArguments::List(list) = &f.args
        && let [FunctionArg::Unnamed(FunctionArgExpr::Expr(e))] = list.args.as_slice()
        && let Some(name) = single_identifier(e)
    {
        return Ok(name);
    }
    Err(invalid(
        expr,
        "the time argument of a window TVF must be DESCRIPTOR(<column>)",
    ))
}

/// The length of an `INTERVAL` literal in milliseconds: `INTERVAL '5' SECOND`,
/// `INTERVAL '1' MINUTES`, `INTERVAL '1.5' SECOND`, `INTERVAL '2 hours'`.
pub fn interval_ms(expr: &Expr) -> Result<i64> {
    let Expr::Interval(interval) = expr else {
        return Err(invalid(expr, "expected an INTERVAL literal"));
    };
    let text = match interval.value.as_ref() {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::Number(s, _) => s.clone(),
            _ => return Err(invalid(expr, "expected INTERVAL '<number>' <unit>")),
        },
        _ => return Err(invalid(expr, "expected INTERVAL '<number>' <unit>")),
    };
    let (number, unit_ms) = match &interval.leading_field {
        Some(field) => (
            text.trim().to_string(),
            field_ms(field).ok_or_else(|| unsupported(expr, format!("INTERVAL unit {field}")))?,
        ),
        None => {
            let mut parts = text.split_whitespace();
            let number = parts.next().unwrap_or("").to_string();
            let unit = parts.next().unwrap_or("");
            (
                number,
                unit_name_ms(unit)
                    .ok_or_else(|| invalid(expr, format!("unknown INTERVAL unit '{unit}'")))?,
            )
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| invalid(expr, format!("invalid INTERVAL value '{number}'")))?;
    Ok((value * unit_ms as f64).round() as i64)
}

fn field_ms(field: &DateTimeField) -> Option<i64> {
    Some(match field {
        DateTimeField::Millisecond | DateTimeField::Milliseconds => 1,
        DateTimeField::Second | DateTimeField::Seconds => 1000,
        DateTimeField::Minute | DateTimeField::Minutes => 60_000,
        DateTimeField::Hour | DateTimeField::Hours => 3_600_000,
        DateTimeField::Day | DateTimeField::Days => 86_400_000,
        _ => return None,
    })
}

fn unit_name_ms(unit: &str) -> Option<i64> {
    Some(match unit.to_ascii_lowercase().as_str() {
        "ms" | "millisecond" | "milliseconds" => 1,
        "s" | "second" | "seconds" => 1000,
        "min" | "minute" | "minutes" => 60_000,
        "h" | "hour" | "hours" => 3_600_000,
        "d" | "day" | "days" => 86_400_000,
        _ => return None,
    })
}
