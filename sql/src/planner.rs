//! The streaming planner: SQL → DataFusion logical plan → [`JobGraph`].
//!
//! DataFusion does what it is good at: name resolution, type coercion, the
//! logical optimizer (projection and filter pushdown, constant folding) and
//! physical expressions. This module walks the optimized logical plan and maps
//! each node to a streaming operator: a table scan becomes the table's source,
//! its watermark assigner and (for window TVFs) its window assigner; `Filter` and
//! `Projection` become columnar operators; an `Aggregate` grouped by
//! `window_start, window_end` becomes a window aggregate that emits when the
//! watermark passes the window's end. Anything else is refused with a message
//! that names the feature.

use std::sync::Arc;

use datafusion::arrow::compute::can_cast_types;
use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchemaRef, TableReference};
use datafusion::datasource::source_as_provider;
use datafusion::datasource::view::ViewTable;
use datafusion::execution::SessionState;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, cast};
use datafusion::optimizer::Optimizer;
use datafusion::physical_expr::aggregate::LoweredAggregateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr as SqlExpr, ExprWithAlias, Query, Statement as SqlStatement,
};
use watershed_engine::aggregate::{AggregateCall, AggregateSpec};
use watershed_engine::changelog::{ROW_KIND_COLUMN, schema_with_row_kind};
use watershed_engine::connector::ConnectorRegistry;
use watershed_engine::filter::FilterOperator;
use watershed_engine::graph::{JobGraph, NodeId, Partitioning};
use watershed_engine::late_rows::{DeadLetterTable, dead_letter_schema};
use watershed_engine::operator::OperatorFactory;
use watershed_engine::project::ProjectOperator;
use watershed_engine::sink::SinkFactory;
use watershed_engine::updating_aggregate::UpdatingAggregate;
use watershed_engine::watermark::{WatermarkAssigner, WatermarkStrategy};
use watershed_engine::window::session::SessionWindowAggregate;
use watershed_engine::window::top_n::WindowTopN;
use watershed_engine::window::{
    SlicedWindowAggregate, TumbleAssigner, WINDOW_COLUMNS, WindowAggregate, WindowOutput,
    WindowOutputColumn,
};

use crate::catalog::{Catalog, IDLE_TIMEOUT_OPTION, TableDef};
use crate::error::{Result, SqlError};
use crate::stream_table::StreamTable;
use crate::system_time::{VersionedTable, strip_system_time};
use crate::types::arrow_to_sql_type;
use crate::window_tvf::{DeferredWindow, WindowTvf, interval_ms, rewrite_window_tvfs};
use crate::window_udf::TumbleColumn;

mod joins;

/// Optimizer rules that do not fit streaming: rewriting `COUNT(DISTINCT x)` into
/// two aggregations would make a windowed aggregate emit twice, and rewriting an
/// inner join whose right columns are unused into a semi join (`eliminate_join`)
/// turns a window join Watershed runs into one it does not (Nexmark q5, q7, q8).
const DISABLED_OPTIMIZER_RULES: &[&str] =
    &["single_distinct_aggregation_to_group_by", "eliminate_join"];

/// Where a column of a planned stream comes from, as far as windows care.
#[derive(Debug, Clone, PartialEq)]
enum Origin {
    /// A window column (`window_start`, `window_end`, `window_time`) of a TVF.
    /// For HOP, CUMULATE and SESSION (`deferred`), the column holds the bounds
    /// of the row's slice (for sessions: the row's own time) until the aggregate
    /// assigns windows.
    Window {
        column: usize,
        window: String,
        deferred: Option<DeferredWindow>,
    },
    /// The time attribute (the WATERMARK column) of a table.
    Rowtime,
    /// Anything else.
    Other,
}

/// A planned part of a pipeline: its last node and what its columns are.
struct Planned {
    node: NodeId,
    origins: Vec<Origin>,
    /// The stream is a changelog: its batches carry a trailing `__row_kind` column
    /// that the logical plan does not know about.
    changelog: bool,
    /// The name of the table when this is a bounded table: a scan (through
    /// filters and projections only) of a source that ends by itself and has no
    /// WATERMARK, such as a CSV file of card limits. A join reads it completely
    /// before joining the other input's rows with it.
    bounded_table: Option<String>,
}

/// Plans statements of one session against its catalog.
pub struct Planner<'a> {
    catalog: &'a Catalog,
    connectors: &'a dyn ConnectorRegistry,
    ctx: SessionContext,
    tvf_counter: usize,
    parallelism: usize,
}

/// The `SET` key of the idle state retention of updating aggregates, as in Flink.
pub const STATE_TTL_KEY: &str = "table.exec.state.ttl";

/// The `SET` key of the default idle timeout of source splits, as in Flink; a
/// table's `'scan.watermark.idle-timeout'` option overrides it.
pub const SOURCE_IDLE_TIMEOUT_KEY: &str = "table.exec.source.idle-timeout";

/// The `SET` key naming the dead-letter table that receives late rows (a
/// Watershed setting; Flink has none). The table must have the columns of
/// [`watershed_engine::late_rows::dead_letter_schema`].
pub const LATE_ROWS_TABLE_KEY: &str = "watershed.late-rows.table";

/// The `SET` key of the default parallelism, as in Flink.
pub const PARALLELISM_KEY: &str = "parallelism.default";

/// Builds the DataFusion session Watershed plans with: one partition, identifiers
/// kept as written (Flink is case-sensitive), spans collected for error positions,
/// Flink's SUM/AVG typing.
pub fn planning_context() -> SessionContext {
    let mut config = SessionConfig::new()
        .with_target_partitions(1)
        .with_information_schema(false);
    let options = config.options_mut();
    options.sql_parser.enable_ident_normalization = false;
    options.sql_parser.collect_spans = true;
    let rules = Optimizer::new()
        .rules
        .into_iter()
        .filter(|r| !DISABLED_OPTIMIZER_RULES.contains(&r.name()))
        .collect();
    let state = datafusion::execution::SessionStateBuilder::new()
        .with_config(config)
        .with_default_features()
        .with_optimizer_rules(rules)
        .build();
    let ctx = SessionContext::new_with_state(state);
    crate::functions::register_flink_aggregates(&ctx);
    ctx
}

impl<'a> Planner<'a> {
    /// A planner over `catalog`; views are planned up front, in definition order.
    pub async fn new(catalog: &'a Catalog, connectors: &'a dyn ConnectorRegistry) -> Result<Self> {
        let mut planner = Planner {
            catalog,
            connectors,
            ctx: planning_context(),
            tvf_counter: 0,
            parallelism: match catalog.setting(PARALLELISM_KEY) {
                Some(value) => value
                    .trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| {
                        SqlError::Plan(format!(
                            "SET '{PARALLELISM_KEY}' = '{value}': expected a positive number"
                        ))
                    })?,
                None => 1,
            },
        };
        for table in catalog.tables() {
            let provider = StreamTable::plain(Arc::new(table.clone()));
            planner.ctx.register_table(
                TableReference::bare(table.name.as_str()),
                Arc::new(provider),
            )?;
        }
        for view in catalog.views() {
            let mut plan = planner.logical_plan(&view.query).await?;
            if !view.columns.is_empty() {
                let fields = plan.schema().fields().len();
                if fields != view.columns.len() {
                    return Err(SqlError::Plan(format!(
                        "view '{}' names {} columns but its query has {fields}",
                        view.name,
                        view.columns.len()
                    )));
                }
                let exprs = plan
                    .schema()
                    .columns()
                    .into_iter()
                    .zip(&view.columns)
                    .map(|(c, name)| Expr::Column(c).alias(name))
                    .collect::<Vec<_>>();
                plan = LogicalPlanBuilder::from(plan).project(exprs)?.build()?;
            }
            planner.ctx.register_table(
                TableReference::bare(view.name.as_str()),
                Arc::new(ViewTable::new(plan, None)),
            )?;
        }
        Ok(planner)
    }

    fn state(&self) -> SessionState {
        self.ctx.state()
    }

    /// Plans a query to an optimized DataFusion logical plan, registering the
    /// window TVFs it uses.
    async fn logical_plan(&mut self, query: &Query) -> Result<LogicalPlan> {
        let mut query = query.clone();
        for table in strip_system_time(&mut query)? {
            self.check_lookup_table(&table)?;
        }
        for tvf in rewrite_window_tvfs(&mut query, &mut self.tvf_counter)? {
            if self.catalog.view(&tvf.table).is_some() {
                self.register_window_over_view(tvf).await?;
            } else {
                self.register_window(tvf)?;
            }
        }
        let statement = DfStatement::Statement(Box::new(SqlStatement::Query(Box::new(query))));
        let plan = self.state().statement_to_plan(statement).await?;
        Ok(plan)
    }

    /// `FOR SYSTEM_TIME AS OF` is accepted on bounded tables only (files without
    /// WATERMARK): they are read once, completely, before the stream is joined.
    fn check_lookup_table(&self, versioned: &VersionedTable) -> Result<()> {
        let at = |feature: String| SqlError::Unsupported {
            feature,
            line: versioned.line,
            column: versioned.column,
        };
        let Some(table) = self.catalog.table(&versioned.name) else {
            return Err(at(format!(
                "FOR SYSTEM_TIME AS OF on '{}', which is not a table (a lookup join reads                  a bounded table)",
                versioned.name
            )));
        };
        if table.watermark.is_some() || !self.connectors.source(&table.spec())?.is_bounded() {
            return Err(at(format!(
                "FOR SYSTEM_TIME AS OF on '{}', a stream: temporal joins with versioned                  tables are not supported. A lookup join reads a bounded table (a file                  without WATERMARK); to join two streams, write an interval or window join",
                table.name
            )));
        }
        Ok(())
    }

    /// A window TVF over a view (a view that filters a table, or cascading
    /// windows over a view of windowed results): the view's plan with window
    /// columns computed from its time column by [`TumbleColumn`] functions. For
    /// HOP, CUMULATE and SESSION they hold the row's slice, as the table path's
    /// slice assigner does, and the aggregate computes the windows. Whether the
    /// time column is a time attribute is checked when the plan is translated
    /// (`window_function_origin`), where the origins of columns are known.
    async fn register_window_over_view(&mut self, tvf: WindowTvf) -> Result<()> {
        let at = |message: String| SqlError::Unsupported {
            feature: message,
            line: tvf.line,
            column: tvf.column,
        };
        let provider = self
            .ctx
            .table_provider(TableReference::bare(tvf.table.as_str()))
            .await?;
        let plan = provider
            .get_logical_plan()
            .ok_or_else(|| at(format!("'{}' is not a view", tvf.table)))?
            .into_owned();
        if let Some(clash) = WINDOW_COLUMNS
            .iter()
            .find(|name| plan.schema().fields().iter().any(|f| f.name() == *name))
        {
            return Err(SqlError::Parse {
                message: format!(
                    "view '{}' already has a column named {clash}; rename it in the view \
                     (e.g. {clash} AS first_{clash}) before applying {}",
                    tvf.table,
                    tvf.describe()
                ),
                line: tvf.line,
                column: tvf.column,
            });
        }
        let (qualifier, field) = plan
            .schema()
            .qualified_field_with_unqualified_name(&tvf.time_column)?;
        if !matches!(
            field.data_type(),
            datafusion::arrow::datatypes::DataType::Timestamp(_, _)
        ) {
            return Err(at(format!(
                "DESCRIPTOR({}) of view '{}' is not a TIMESTAMP(3) column",
                tvf.time_column, tvf.table
            )));
        }
        let time = Expr::Column(datafusion::common::Column::new(
            qualifier.cloned(),
            field.name(),
        ));
        let mut exprs: Vec<Expr> = plan
            .schema()
            .columns()
            .into_iter()
            .map(Expr::Column)
            .collect();
        for (column, name) in WINDOW_COLUMNS.iter().enumerate() {
            let function = TumbleColumn::for_tvf(column, &tvf)?;
            exprs.push(function.call(time.clone()).alias(*name));
        }
        let windowed = LogicalPlanBuilder::from(plan).project(exprs)?.build()?;
        self.ctx.register_table(
            TableReference::bare(tvf.generated_name.as_str()),
            Arc::new(ViewTable::new(windowed, None)),
        )?;
        Ok(())
    }

    fn register_window(&mut self, tvf: WindowTvf) -> Result<()> {
        let at = |message: String| SqlError::Parse {
            message,
            line: tvf.line,
            column: tvf.column,
        };
        let Some(table) = self.catalog.table(&tvf.table) else {
            return Err(at(format!("table '{}' does not exist", tvf.table)));
        };
        match &table.watermark {
            Some(wm) if wm.column == tvf.time_column => {}
            Some(wm) => {
                return Err(at(format!(
                    "DESCRIPTOR({}) must name the time attribute of '{}', which is '{}' \
                     (WATERMARK FOR {})",
                    tvf.time_column, table.name, wm.column, wm.column
                )));
            }
            None => {
                return Err(at(format!(
                    "{} needs a time attribute, but table '{}' declares no WATERMARK; add \
                     WATERMARK FOR {} AS {} - INTERVAL '5' SECOND to its CREATE TABLE",
                    tvf.describe(),
                    table.name,
                    tvf.time_column,
                    tvf.time_column
                )));
            }
        }
        let name = tvf.generated_name.clone();
        let provider = StreamTable::windowed(Arc::new(table.clone()), tvf);
        self.ctx
            .register_table(TableReference::bare(name), Arc::new(provider))?;
        Ok(())
    }

    /// Plans `INSERT INTO table query` into a job.
    pub async fn plan_insert(&mut self, table: &str, query: &Query) -> Result<JobGraph> {
        let target = self
            .catalog
            .table(table)
            .ok_or_else(|| SqlError::Plan(format!("INSERT INTO '{table}': no such table")))?;
        let plan = self.logical_plan(query).await?;
        let plan = conform_to_table(plan, target)?;
        let sink = self.connectors.sink(&target.spec())?;
        self.plan_job(format!("INSERT INTO {table}"), plan, &target.name, sink)
    }

    /// Plans a bare `SELECT` whose results go to `sink`.
    pub async fn plan_select(
        &mut self,
        query: &Query,
        sink_name: &str,
        sink: Arc<dyn SinkFactory>,
    ) -> Result<(JobGraph, SchemaRef)> {
        let plan = self.logical_plan(query).await?;
        let schema = Arc::new(plan.schema().as_arrow().clone());
        let graph = self.plan_job("SELECT".to_string(), plan, sink_name, sink)?;
        Ok((graph, schema))
    }

    fn plan_job(
        &self,
        name: String,
        plan: LogicalPlan,
        sink_name: &str,
        sink: Arc<dyn SinkFactory>,
    ) -> Result<JobGraph> {
        let plan = self.state().optimize(&plan)?;
        let mut graph = JobGraph::new(name);
        let planned = self.translate(&plan, &mut graph)?;
        if let Some(Origin::Window { window, .. }) = planned.origins.iter().find(|o| {
            matches!(
                o,
                Origin::Window {
                    deferred: Some(_),
                    ..
                }
            )
        }) {
            return Err(unsupported(format!(
                "selecting rows of {window} without aggregating them; group by \
                 window_start, window_end"
            )));
        }
        if planned.changelog && !sink.accepts_changelog() {
            let hint = sink
                .changelog_hint()
                .map(|h| format!("{h}, "))
                .unwrap_or_default();
            return Err(SqlError::Plan(format!(
                "'{sink_name}' is an append-only sink, but the query produces updates \
                 (a GROUP BY without window_start, window_end changes earlier results); \
                 {hint}write it to a sink that takes a changelog (print, blackhole, or the API), \
                 or aggregate over a window TVF"
            )));
        }
        graph.add_sink(sink_name, sink, planned.node);
        graph.set_parallelism(self.parallelism);
        graph.dead_letter = self.dead_letter_table()?;
        Ok(graph)
    }

    /// The dead-letter table named by `SET 'watershed.late-rows.table'`, checked
    /// against the columns late rows are written as.
    fn dead_letter_table(&self) -> Result<Option<DeadLetterTable>> {
        let Some(name) = self.catalog.setting(LATE_ROWS_TABLE_KEY) else {
            return Ok(None);
        };
        let expected = dead_letter_schema();
        let expected_ddl = expected
            .fields()
            .iter()
            .map(|f| {
                format!(
                    "{} {}",
                    f.name(),
                    crate::types::arrow_to_sql_type(f.data_type())
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let table = self.catalog.table(name).ok_or_else(|| {
            SqlError::Plan(format!(
                "SET '{LATE_ROWS_TABLE_KEY}' = '{name}': no such table; declare it with \
                 CREATE TABLE {name} ({expected_ddl}) WITH (...)"
            ))
        })?;
        let types = |schema: &Schema| -> Vec<DataType> {
            schema
                .fields()
                .iter()
                .map(|f| f.data_type().clone())
                .collect()
        };
        if types(&table.schema) != types(&expected) {
            return Err(SqlError::Plan(format!(
                "dead-letter table '{name}' must have the columns ({expected_ddl}), in this \
                 order; it has ({})",
                table
                    .schema
                    .fields()
                    .iter()
                    .zip(&table.sql_types)
                    .map(|(f, t)| format!("{} {t}", f.name()))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let sink = self.connectors.sink(&table.spec())?;
        Ok(Some(DeadLetterTable {
            table: table.name.clone(),
            sink,
            sink_schema: table.schema.clone(),
        }))
    }

    fn translate(&self, plan: &LogicalPlan, graph: &mut JobGraph) -> Result<Planned> {
        match plan {
            LogicalPlan::TableScan(scan) => {
                if scan.fetch.is_some() {
                    return Err(unsupported("LIMIT on a streaming table"));
                }
                if !scan.filters.is_empty() {
                    return Err(SqlError::Plan(
                        "unexpected filter pushed into a scan".into(),
                    ));
                }
                let provider = source_as_provider(&scan.source)?;
                let table = StreamTable::downcast(provider.as_ref()).ok_or_else(|| {
                    SqlError::Plan(format!("'{}' is not a Watershed table", scan.table_name))
                })?;
                self.translate_scan(
                    table,
                    scan.projection.as_deref(),
                    &scan.projected_schema,
                    graph,
                )
            }
            LogicalPlan::Filter(filter) => {
                // `WHERE rownum <= N` over ROW_NUMBER(): the ranking keeps N rows per
                // partition itself; the filter stays as a cheap safeguard.
                let input = match filter.input.as_ref() {
                    LogicalPlan::Window(window) => {
                        match row_number_limit(&filter.predicate, window) {
                            Some(limit) => {
                                self.translate_window_ranking(window, Some(limit), graph)?
                            }
                            None => self.translate(&filter.input, graph)?,
                        }
                    }
                    _ => self.translate(&filter.input, graph)?,
                };
                refuse_slice_expression(&filter.predicate, filter.input.schema(), &input.origins)?;
                let predicate = self
                    .state()
                    .create_physical_expr(filter.predicate.clone(), filter.input.schema())?;
                let mut schema = arrow_schema(filter.input.schema());
                if input.changelog {
                    schema = schema_with_row_kind(&schema);
                }
                let op = FilterOperator::new(predicate, schema);
                Ok(Planned {
                    node: graph.add_operator(Arc::new(op), input.node),
                    origins: input.origins,
                    changelog: input.changelog,
                    bounded_table: input.bounded_table,
                })
            }
            LogicalPlan::Projection(projection) => {
                let input = self.translate(&projection.input, graph)?;
                let input_schema = projection.input.schema();
                let mut exprs = Vec::with_capacity(projection.expr.len());
                let mut origins = Vec::with_capacity(projection.expr.len());
                for (expr, field) in projection.expr.iter().zip(projection.schema.fields()) {
                    let window = window_function_origin(expr, input_schema, &input.origins)?;
                    if window.is_none() && !matches!(unalias(expr), Expr::Column(_)) {
                        refuse_slice_expression(expr, input_schema, &input.origins)?;
                    }
                    origins.push(match (window, unalias(expr)) {
                        (Some(window), _) => window,
                        (None, Expr::Column(c)) => input_schema
                            .index_of_column(c)
                            .ok()
                            .and_then(|i| input.origins.get(i).cloned())
                            .unwrap_or(Origin::Other),
                        (None, _) => Origin::Other,
                    });
                    let physical = self
                        .state()
                        .create_physical_expr(unalias(expr).clone(), input_schema)?;
                    exprs.push((physical, field.name().clone()));
                }
                let mut schema = arrow_schema(&projection.schema);
                if input.changelog {
                    // Carry the row kinds along, still as the last column.
                    let row_kind: Arc<dyn datafusion::physical_expr::PhysicalExpr> =
                        Arc::new(datafusion::physical_expr::expressions::Column::new(
                            ROW_KIND_COLUMN,
                            input_schema.fields().len(),
                        ));
                    exprs.push((row_kind, ROW_KIND_COLUMN.to_string()));
                    schema = schema_with_row_kind(&schema);
                }
                let op = ProjectOperator::new(exprs, schema);
                Ok(Planned {
                    node: graph.add_operator(Arc::new(op), input.node),
                    origins,
                    changelog: input.changelog,
                    bounded_table: input.bounded_table,
                })
            }
            LogicalPlan::Aggregate(aggregate) => {
                let input = self.translate(&aggregate.input, graph)?;
                let input_schema = aggregate.input.schema();
                // Aggregate arguments see HOP/CUMULATE/SESSION window columns as
                // slice bounds, not windows: refuse rather than aggregate them.
                for expr in &aggregate.aggr_expr {
                    refuse_slice_expression(expr, input_schema, &input.origins)?;
                }
                let input_arrow = arrow_schema(input_schema);
                let mut group_exprs = Vec::new();
                let mut origins = Vec::new();
                for (expr, field) in aggregate.group_expr.iter().zip(aggregate.schema.fields()) {
                    let origin = match unalias(expr) {
                        Expr::Column(c) => input_schema
                            .index_of_column(c)
                            .ok()
                            .and_then(|i| input.origins.get(i).cloned())
                            .unwrap_or(Origin::Other),
                        Expr::GroupingSet(_) => {
                            return Err(unsupported("GROUPING SETS, ROLLUP and CUBE"));
                        }
                        other => window_function_origin(other, input_schema, &input.origins)?
                            .unwrap_or(Origin::Other),
                    };
                    origins.push(origin);
                    let physical = self
                        .state()
                        .create_physical_expr(unalias(expr).clone(), input_schema)?;
                    group_exprs.push((physical, field.name().clone()));
                }
                // Rows of one group must meet in one instance: hash by the
                // non-window keys when they are plain columns; otherwise (computed
                // keys) send everything to one instance.
                let key_columns: Option<Vec<String>> = aggregate
                    .group_expr
                    .iter()
                    .zip(&origins)
                    .filter(|(_, origin)| !matches!(origin, Origin::Window { .. }))
                    .map(|(expr, _)| match unalias(expr) {
                        Expr::Column(c) => input_schema
                            .index_of_column(c)
                            .ok()
                            .map(|i| input_schema.field(i).name().clone()),
                        _ => None,
                    })
                    .collect();
                let hash_keys = key_columns.unwrap_or_default();
                let window_key = |column: usize| {
                    origins
                        .iter()
                        .position(|o| matches!(o, Origin::Window { column: c, .. } if *c == column))
                };
                if input.changelog {
                    return Err(unsupported(
                        "aggregating the updates of an updating query (a GROUP BY over a \
                         non-windowed GROUP BY)",
                    ));
                }
                let (Some(start), Some(end)) = (window_key(0), window_key(1)) else {
                    // No window: an updating aggregate whose results change with
                    // every row, emitted as a changelog.
                    return self.translate_updating_aggregate(
                        aggregate,
                        input,
                        group_exprs,
                        hash_keys,
                        graph,
                    );
                };
                let (window, deferred) = match &origins[end] {
                    Origin::Window {
                        window, deferred, ..
                    } => (window.clone(), *deferred),
                    Origin::Other | Origin::Rowtime => (String::new(), None),
                };
                let calls = self.aggregate_calls(aggregate)?;
                let output_schema = arrow_schema(&aggregate.schema);
                let op: Arc<dyn OperatorFactory> = match deferred {
                    None => {
                        let spec =
                            AggregateSpec::new(group_exprs, calls, &input_arrow, output_schema)?;
                        Arc::new(WindowAggregate::new(spec, end, window))
                    }
                    Some(deferred) => {
                        // Group by the non-window keys; the window columns are
                        // produced by the operator as it turns slices into windows.
                        let mut layout = Vec::with_capacity(output_schema.fields().len());
                        let mut keys = Vec::new();
                        for (origin, expr) in origins.iter().zip(group_exprs) {
                            layout.push(match origin {
                                Origin::Window { column: 0, .. } => WindowOutputColumn::WindowStart,
                                Origin::Window { column: 1, .. } => WindowOutputColumn::WindowEnd,
                                Origin::Window { .. } => WindowOutputColumn::WindowTime,
                                Origin::Other | Origin::Rowtime => {
                                    keys.push(expr);
                                    WindowOutputColumn::Key(keys.len() - 1)
                                }
                            });
                        }
                        layout.extend((0..calls.len()).map(WindowOutputColumn::Aggregate));
                        // Any value inside a row's slice locates it; the slice start
                        // (the placeholder window_start) is one, and so is the time
                        // a window function over a view computes it from.
                        let start_expr = unalias(&aggregate.group_expr[start]);
                        let time_column = match TumbleColumn::time_argument(start_expr)
                            .map(unalias)
                            .unwrap_or(start_expr)
                        {
                            Expr::Column(c) => input_schema.index_of_column(c)?,
                            _ => return Err(SqlError::Plan("window_start is not a column".into())),
                        };
                        let spec =
                            AggregateSpec::new(keys, calls, &input_arrow, output_schema.clone())?;
                        let output = WindowOutput::new(layout, output_schema, &spec)?;
                        match deferred {
                            DeferredWindow::Slices(slicing) => Arc::new(
                                SlicedWindowAggregate::new(spec, slicing, time_column, output)?,
                            ),
                            DeferredWindow::Session { gap_ms } => Arc::new(
                                SessionWindowAggregate::new(spec, gap_ms, time_column, output)?,
                            ),
                        }
                    }
                };
                // After aggregation the window columns hold real windows.
                for origin in origins.iter_mut() {
                    if let Origin::Window { deferred, .. } = origin {
                        *deferred = None;
                    }
                }
                origins.extend((0..aggregate.aggr_expr.len()).map(|_| Origin::Other));
                Ok(Planned {
                    node: graph.add_operator_with_inputs(
                        op,
                        &[(input.node, self.key_exchange(hash_keys))],
                    ),
                    origins,
                    changelog: false,
                    bounded_table: None,
                })
            }
            LogicalPlan::Join(join) => self.translate_join(join, graph),
            LogicalPlan::Window(window) => self.translate_window_ranking(window, None, graph),
            LogicalPlan::SubqueryAlias(alias) => self.translate(&alias.input, graph),
            other => Err(unsupported(unsupported_node(other))),
        }
    }

    /// DataFusion's aggregate functions (with their FILTER clauses) for the
    /// aggregate expressions of `aggregate`.
    fn aggregate_calls(
        &self,
        aggregate: &datafusion::logical_expr::Aggregate,
    ) -> Result<Vec<AggregateCall>> {
        let input_schema = aggregate.input.schema();
        let input_arrow = arrow_schema(input_schema);
        let state = self.state();
        let planning = PhysicalPlanningContext::default();
        let mut calls = Vec::new();
        for expr in &aggregate.aggr_expr {
            let lowered = LoweredAggregateBuilder::new(
                expr,
                input_schema,
                &input_arrow,
                state.execution_props(),
                &planning,
            )
            .build()?;
            if !lowered.order_bys.is_empty() {
                return Err(unsupported("ORDER BY inside an aggregate function"));
            }
            calls.push(AggregateCall {
                function: lowered.aggregate,
                filter: lowered.filter,
            });
        }
        Ok(calls)
    }

    /// `GROUP BY` without window columns: results change with every row and go out
    /// as a changelog (`+I`, then `-U`/`+U` pairs), as Flink's are.
    fn translate_updating_aggregate(
        &self,
        aggregate: &datafusion::logical_expr::Aggregate,
        input: Planned,
        group_exprs: Vec<(Arc<dyn datafusion::physical_expr::PhysicalExpr>, String)>,
        hash_keys: Vec<String>,
        graph: &mut JobGraph,
    ) -> Result<Planned> {
        let input_schema = aggregate.input.schema();
        let input_arrow = arrow_schema(input_schema);
        let calls = self.aggregate_calls(aggregate)?;
        let spec = AggregateSpec::new(
            group_exprs,
            calls,
            &input_arrow,
            arrow_schema(&aggregate.schema),
        )?;
        let ttl_ms = match self.catalog.setting(STATE_TTL_KEY) {
            Some(text) => Some(parse_duration_ms(text).ok_or_else(|| {
                SqlError::Plan(format!(
                    "SET '{STATE_TTL_KEY}' = '{text}': expected a duration like '1 h' or '30 min'"
                ))
            })?)
            .filter(|ms| *ms > 0),
            None => None,
        };
        let op = UpdatingAggregate::new(spec, &input_arrow, ttl_ms)?;
        let node = graph
            .add_operator_with_inputs(Arc::new(op), &[(input.node, self.key_exchange(hash_keys))]);
        Ok(Planned {
            node,
            origins: vec![Origin::Other; aggregate.schema.fields().len()],
            changelog: true,
            bounded_table: None,
        })
    }

    /// `ROW_NUMBER() OVER (PARTITION BY window_start, window_end, ... ORDER BY ...)`
    /// over windowed rows: each window's rows are numbered once it fires (Flink's
    /// Window Top-N; the `WHERE rownum <= N` above becomes an ordinary filter).
    fn translate_window_ranking(
        &self,
        window: &datafusion::logical_expr::Window,
        limit: Option<usize>,
        graph: &mut JobGraph,
    ) -> Result<Planned> {
        let input = self.translate(&window.input, graph)?;
        if input.changelog {
            return Err(unsupported(
                "ROW_NUMBER() over the results of an updating query",
            ));
        }
        let input_schema = window.input.schema();
        let [Expr::WindowFunction(function)] = window.window_expr.as_slice() else {
            return Err(unsupported(
                "OVER windows other than a single ROW_NUMBER() for Window Top-N",
            ));
        };
        if !function.fun.name().eq_ignore_ascii_case("row_number") {
            return Err(unsupported(format!(
                "{} OVER (...); only ROW_NUMBER() (Window Top-N) is supported",
                function.fun.name()
            )));
        }
        let column_of = |expr: &Expr| match unalias(expr) {
            Expr::Column(c) => input_schema.index_of_column(c).ok(),
            _ => None,
        };
        let mut window_end = None;
        let mut has_start = false;
        let mut partition_columns = Vec::new();
        for expr in &function.params.partition_by {
            let index = column_of(expr)
                .ok_or_else(|| unsupported("PARTITION BY expressions in ROW_NUMBER() OVER"))?;
            match input.origins.get(index) {
                Some(Origin::Window {
                    column: 0,
                    deferred: None,
                    ..
                }) => has_start = true,
                Some(Origin::Window {
                    column: 1,
                    deferred: None,
                    ..
                }) => window_end = Some(index),
                _ => partition_columns.push(index),
            }
        }
        let (Some(window_end), true) = (window_end, has_start) else {
            return Err(unsupported(
                "ROW_NUMBER() OVER without PARTITION BY window_start, window_end of a window \
                 (an unbounded Top-N); rank the rows of a window TVF or window aggregate",
            ));
        };
        let order_by = function
            .params
            .order_by
            .iter()
            .map(|sort| {
                let index = column_of(&sort.expr)
                    .ok_or_else(|| unsupported("ORDER BY expressions in ROW_NUMBER() OVER"))?;
                Ok((
                    index,
                    datafusion::arrow::compute::SortOptions {
                        descending: !sort.asc,
                        nulls_first: sort.nulls_first,
                    },
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let row_number = window
            .schema
            .fields()
            .last()
            .map(|f| f.name().clone())
            .ok_or_else(|| SqlError::Plan("ROW_NUMBER() has no output column".into()))?;
        let op = WindowTopN::new(
            arrow_schema(input_schema),
            window_end,
            partition_columns.clone(),
            order_by,
            limit.unwrap_or(usize::MAX),
            Some(row_number),
        )?;
        let keys = partition_columns
            .iter()
            .map(|&i| input_schema.field(i).name().clone())
            .collect();
        let node =
            graph.add_operator_with_inputs(Arc::new(op), &[(input.node, self.key_exchange(keys))]);
        let mut origins = input.origins;
        origins.push(Origin::Other);
        Ok(Planned {
            node,
            origins,
            changelog: false,
            bounded_table: None,
        })
    }

    /// The edge in front of a keyed operator: a hash exchange on `keys`, at
    /// every parallelism (at parallelism 1 the runtime chains it like a forward
    /// edge), so the graph, and its checkpoints, are the same at every
    /// parallelism and a checkpoint can be restored at another one.
    fn key_exchange(&self, keys: Vec<String>) -> Partitioning {
        Partitioning::Hash(keys)
    }

    /// The idle timeout of a table's source splits: its own option, else the
    /// session's default; zero disables it, as in Flink.
    fn idle_timeout(&self, def: &TableDef) -> Result<Option<std::time::Duration>> {
        let (text, origin) = match def.options.get(IDLE_TIMEOUT_OPTION) {
            Some(text) => (
                text.as_str(),
                format!("table '{}': option '{IDLE_TIMEOUT_OPTION}'", def.name),
            ),
            None => match self.catalog.setting(SOURCE_IDLE_TIMEOUT_KEY) {
                Some(text) => (text, format!("SET '{SOURCE_IDLE_TIMEOUT_KEY}'")),
                None => return Ok(None),
            },
        };
        let ms = parse_duration_ms(text)
            .filter(|ms| *ms >= 0)
            .ok_or_else(|| {
                SqlError::Plan(format!(
                    "{origin} = '{text}': expected a duration like '5 s' or '500 ms'"
                ))
            })?;
        Ok((ms > 0).then(|| std::time::Duration::from_millis(ms.unsigned_abs())))
    }

    /// The table's columns a scan with `projection` (indexes into the table's
    /// columns, then its window columns) reads, ascending: the projected ones,
    /// the watermark's and the window's time column; `None` when it reads
    /// them all.
    fn columns_read(
        &self,
        table: &StreamTable,
        projection: &[usize],
    ) -> Result<Option<Vec<usize>>> {
        let def: &TableDef = &table.table;
        let schema = &def.schema;
        let width = schema.fields().len();
        let mut read: Vec<usize> = projection.iter().copied().filter(|&i| i < width).collect();
        let index = |name: &str| {
            schema
                .index_of(name)
                .map_err(|e| SqlError::from(datafusion::error::DataFusionError::from(e)))
        };
        if let Some(wm) = &def.watermark {
            read.push(index(&wm.column)?);
            let df_schema = datafusion::common::DFSchema::try_from(schema.as_ref().clone())?;
            let logical = self.state().create_logical_expr_from_sql_expr(
                ExprWithAlias {
                    expr: wm.expr.clone(),
                    alias: None,
                },
                &df_schema,
            )?;
            for column in logical.column_refs() {
                read.push(index(&column.name)?);
            }
        }
        if let Some(tvf) = &table.window {
            read.push(index(&tvf.time_column)?);
        }
        read.sort_unstable();
        read.dedup();
        Ok((read.len() < width).then_some(read))
    }

    fn translate_scan(
        &self,
        table: &StreamTable,
        projection: Option<&[usize]>,
        projected: &DFSchemaRef,
        graph: &mut JobGraph,
    ) -> Result<Planned> {
        let def: &TableDef = &table.table;
        let idle_timeout = self.idle_timeout(def)?;
        let mut source = self.connectors.source(&def.spec())?;
        let bounded_table =
            (source.is_bounded() && def.watermark.is_none() && table.window.is_none())
                .then(|| def.name.clone());
        let mut schema = def.schema.clone();
        let mut projection = projection.map(<[usize]>::to_vec);
        if let Some(indices) = projection.as_mut()
            && let Some(read) = self.columns_read(table, indices)?
            && let Some(narrow) = source.with_columns(&read)?
        {
            // Projection pushdown: the source yields only the columns read;
            // the scan's indices (the table's columns, then window columns)
            // are renumbered to match.
            let width = schema.fields().len();
            for i in indices.iter_mut() {
                *i = if *i < width {
                    read.binary_search(i).map_err(|_| {
                        SqlError::Plan(format!(
                            "'{}': projected column {i} not among the columns read",
                            def.name
                        ))
                    })?
                } else {
                    read.len() + (*i - width)
                };
            }
            schema = narrow.schema();
            source = narrow;
        }
        let mut node = graph.add_source(&def.name, source);
        if let Some(timeout) = idle_timeout {
            graph.set_idle_timeout(node, timeout)?;
        }
        if let Some(wm) = &def.watermark {
            let df_schema = datafusion::common::DFSchema::try_from(schema.as_ref().clone())?;
            let state = self.state();
            let logical = state.create_logical_expr_from_sql_expr(
                ExprWithAlias {
                    expr: wm.expr.clone(),
                    alias: None,
                },
                &df_schema,
            )?;
            let time_column = schema
                .index_of(&wm.column)
                .map_err(datafusion::error::DataFusionError::from)?;
            let strategy = match bounded_out_of_orderness(&wm.expr, &wm.column) {
                Some(bound) => WatermarkStrategy::BoundedOutOfOrderness(bound),
                None => {
                    WatermarkStrategy::Expression(state.create_physical_expr(logical, &df_schema)?)
                }
            };
            let op =
                WatermarkAssigner::new(schema.clone(), time_column, strategy, wm.expr.to_string());
            node = graph.add_operator(Arc::new(op), node);
        }
        let mut origins = vec![Origin::Other; schema.fields().len()];
        if let Some(wm) = &def.watermark
            && let Ok(i) = schema.index_of(&wm.column)
        {
            origins[i] = Origin::Rowtime;
        }
        if let Some(tvf) = &table.window {
            let time_column = schema
                .index_of(&tvf.time_column)
                .map_err(datafusion::error::DataFusionError::from)?;
            let deferred = tvf.kind.deferred();
            // TUMBLE: the window; HOP/CUMULATE: the slice; SESSION: one-millisecond
            // "slices", so window_start holds the row's own time.
            let (width_ms, offset_ms) = tvf.kind.assigned_grid()?;
            let mut op = TumbleAssigner::new(schema.clone(), time_column, width_ms, offset_ms)?;
            if deferred.is_some() {
                op = op.for_slices(tvf.describe());
            }
            schema = op.schema();
            node = graph.add_operator(Arc::new(op), node);
            origins.extend((0..WINDOW_COLUMNS.len()).map(|column| Origin::Window {
                column,
                window: tvf.describe(),
                deferred,
            }));
        }
        let all: Vec<usize> = (0..schema.fields().len()).collect();
        match projection {
            Some(indices) if indices != all => {
                let exprs = indices
                    .iter()
                    .map(|&i| {
                        let field = schema.field(i);
                        let column: Arc<dyn datafusion::physical_expr::PhysicalExpr> = Arc::new(
                            datafusion::physical_expr::expressions::Column::new(field.name(), i),
                        );
                        (column, field.name().clone())
                    })
                    .collect();
                let op = ProjectOperator::new(exprs, arrow_schema(projected));
                node = graph.add_operator(Arc::new(op), node);
                origins = indices.iter().map(|&i| origins[i].clone()).collect();
            }
            _ => {}
        }
        Ok(Planned {
            node,
            origins,
            changelog: false,
            bounded_table,
        })
    }
}

/// Casts and renames a query's columns to a sink table's columns, as Flink does
/// for `INSERT INTO`; refuses when the column counts differ or a type cannot be
/// converted.
fn conform_to_table(plan: LogicalPlan, target: &TableDef) -> Result<LogicalPlan> {
    let source = plan.schema().clone();
    if source.fields().len() != target.schema.fields().len() {
        return Err(SqlError::Plan(format!(
            "INSERT INTO {}: the query has {} columns but the table has {} ({})",
            target.name,
            source.fields().len(),
            target.schema.fields().len(),
            target
                .schema
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let mut exprs = Vec::with_capacity(source.fields().len());
    for (i, (column, field)) in source
        .columns()
        .into_iter()
        .zip(target.schema.fields())
        .enumerate()
    {
        let from = source.field(i).data_type();
        if !can_cast_types(from, field.data_type()) {
            return Err(SqlError::Plan(format!(
                "INSERT INTO {}: column {} '{}' is {} but the query gives {}",
                target.name,
                i + 1,
                field.name(),
                arrow_to_sql_type(field.data_type()),
                arrow_to_sql_type(from)
            )));
        }
        let expr = if from == field.data_type() {
            Expr::Column(column)
        } else {
            cast(Expr::Column(column), field.data_type().clone())
        };
        exprs.push(expr.alias(field.name()));
    }
    Ok(LogicalPlanBuilder::from(plan).project(exprs)?.build()?)
}

/// The bound of the common `WATERMARK FOR ts AS ts - INTERVAL '5' SECOND` (or
/// `AS ts`), which the assigner computes inline instead of evaluating an
/// interval expression per row.
fn bounded_out_of_orderness(expr: &SqlExpr, column: &str) -> Option<i64> {
    let is_column = |e: &SqlExpr| matches!(e, SqlExpr::Identifier(id) if id.value == column);
    match expr {
        e if is_column(e) => Some(0),
        SqlExpr::Nested(inner) => bounded_out_of_orderness(inner, column),
        SqlExpr::BinaryOp {
            left,
            op: BinaryOperator::Minus,
            right,
        } if is_column(left) => interval_ms(right).ok().filter(|ms| *ms >= 0),
        _ => None,
    }
}

/// The origin of a window column computed by a window TVF over a view, once its
/// time column is known to be a time attribute: the WATERMARK column of a table
/// (through the view's filters and projections), or `window_time` of a window
/// (a TUMBLE row or any window aggregate's result). `None` when `expr` is not
/// such a window column.
fn window_function_origin(
    expr: &Expr,
    schema: &DFSchemaRef,
    origins: &[Origin],
) -> Result<Option<Origin>> {
    let Some(function) = TumbleColumn::of(expr) else {
        return Ok(None);
    };
    let time_origin = match TumbleColumn::time_argument(expr).map(unalias) {
        Some(Expr::Column(c)) => schema.index_of_column(c).ok().and_then(|i| origins.get(i)),
        _ => None,
    };
    let is_time_attribute = matches!(
        time_origin,
        Some(Origin::Rowtime)
            | Some(Origin::Window {
                column: 2,
                deferred: None,
                ..
            })
    );
    if !is_time_attribute {
        let (line, column) = function.position;
        return Err(SqlError::Unsupported {
            line,
            column,
            feature: format!(
                "{} over a view whose DESCRIPTOR column is not a time attribute; a window \
             over a view needs its table's WATERMARK column passed through the view, or \
             the window_time of a window TVF or window aggregate (window_start and \
             window_end are not time attributes, nor is a computed timestamp)",
                function.window
            ),
        });
    }
    Ok(Some(Origin::Window {
        column: function.column,
        window: function.window.clone(),
        deferred: function.deferred,
    }))
}

/// A Flink duration such as `1 h`, `30 min`, `10 s`, `500 ms` or plain
/// milliseconds, in milliseconds.
fn parse_duration_ms(text: &str) -> Option<i64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: i64 = number.parse().ok()?;
    let unit_ms = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => 1,
        "s" | "sec" | "secs" | "second" | "seconds" => 1000,
        "min" | "mins" | "minute" | "minutes" => 60_000,
        "h" | "hour" | "hours" => 3_600_000,
        "d" | "day" | "days" => 86_400_000,
        _ => return None,
    };
    number.checked_mul(unit_ms)
}

/// `N` of `rownum <= N` (or `rownum < N + 1`) over the row number of `window`.
fn row_number_limit(predicate: &Expr, window: &datafusion::logical_expr::Window) -> Option<usize> {
    let row_number = window.schema.columns().pop()?;
    let Expr::BinaryExpr(datafusion::logical_expr::BinaryExpr { left, op, right }) = predicate
    else {
        return None;
    };
    let Expr::Column(column) = unalias(left) else {
        return None;
    };
    if column.name != row_number.name {
        return None;
    }
    let Expr::Literal(value, _) = unalias(right) else {
        return None;
    };
    let n = match value {
        datafusion::common::ScalarValue::UInt64(Some(n)) => *n as i128,
        datafusion::common::ScalarValue::Int64(Some(n)) => *n as i128,
        datafusion::common::ScalarValue::Int32(Some(n)) => *n as i128,
        _ => return None,
    };
    let limit = match op {
        datafusion::logical_expr::Operator::LtEq => n,
        datafusion::logical_expr::Operator::Lt => n - 1,
        _ => return None,
    };
    usize::try_from(limit.max(0)).ok()
}

/// Refuses an expression that computes with the window columns of HOP,
/// CUMULATE or SESSION before aggregation: there they hold slice bounds, not
/// windows. Over a view, those columns are function calls the optimizer may have
/// moved into the expression (a filter pushed below the window projection).
fn refuse_slice_expression(expr: &Expr, schema: &DFSchemaRef, origins: &[Origin]) -> Result<()> {
    let mut slice_function = None;
    expr.apply(|e| {
        Ok(match TumbleColumn::of(e) {
            Some(f) if f.deferred.is_some() => {
                let column = WINDOW_COLUMNS
                    .get(f.column)
                    .copied()
                    .unwrap_or("window_time");
                slice_function = Some((column, f.window.clone()));
                TreeNodeRecursion::Stop
            }
            _ => TreeNodeRecursion::Continue,
        })
    })?;
    if let Some((column, window)) = slice_function {
        return Err(unsupported(format!(
            "using {column} of {window} before GROUP BY window_start, window_end"
        )));
    }
    for column in expr.column_refs() {
        let origin = schema
            .index_of_column(column)
            .ok()
            .and_then(|i| origins.get(i));
        if let Some(Origin::Window {
            window,
            deferred: Some(_),
            ..
        }) = origin
        {
            return Err(unsupported(format!(
                "using {} of {window} before GROUP BY window_start, window_end",
                column.name
            )));
        }
    }
    Ok(())
}

fn unalias(expr: &Expr) -> &Expr {
    match expr {
        Expr::Alias(alias) => unalias(&alias.expr),
        e => e,
    }
}

fn arrow_schema(schema: &DFSchemaRef) -> SchemaRef {
    Arc::new(Schema::new(schema.as_arrow().fields().clone()))
}

fn unsupported(feature: impl Into<String>) -> SqlError {
    SqlError::Plan(format!("unsupported: {}", feature.into()))
}

fn unsupported_node(plan: &LogicalPlan) -> String {
    match plan {
        LogicalPlan::Join(_) => "this join".into(),
        LogicalPlan::Sort(_) => "ORDER BY on a streaming query".into(),
        LogicalPlan::Limit(_) => "LIMIT on a streaming query".into(),
        LogicalPlan::Union(_) => "UNION".into(),
        LogicalPlan::Distinct(_) => "SELECT DISTINCT".into(),
        LogicalPlan::EmptyRelation(_) | LogicalPlan::Values(_) => {
            "queries without a streaming table in FROM".into()
        }
        LogicalPlan::Subquery(_) => "subqueries in expressions".into(),
        other => format!("the {} operator", other.display()),
    }
}
