//! `StreamContext`: the embedded entry point, shaped like DataFusion's
//! `SessionContext`. It owns a catalog (tables, views, settings), the connector
//! registry and the runtime settings, and turns SQL text into [`StreamFrame`]s.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use watershed_connectors::DefaultConnectors;
use watershed_connectors::units::parse_duration;
use watershed_engine::checkpoint::{CheckpointManifest, ObjectStoreBackend, StateBackend};
use watershed_engine::runtime::checkpointing::{CheckpointSettings, RestoredCheckpoint};
use watershed_engine::runtime::restart::{RestartEvent, RestartStrategy};
use watershed_engine::runtime::{RestartListener, RuntimeConfig};
use watershed_sql::catalog::{Catalog, TableDef};
use watershed_sql::error::SqlError;
use watershed_sql::parser::{Located, Statement, parse_script};
use watershed_sql::planner::Planner;

use crate::error::{Result, WatershedError};
use crate::frame::{ClientSink, StreamFrame};

/// Settings Watershed reads from `SET 'key' = 'value'`.
pub mod settings {
    /// Rows per batch read by sources.
    pub const BATCH_SIZE: &str = "execution.batch-size";
    /// Flink's runtime mode; only `streaming` is supported.
    pub const RUNTIME_MODE: &str = "execution.runtime-mode";
    /// Flink's default parallelism: parallel instances of every node.
    pub const PARALLELISM: &str = "parallelism.default";
    /// Time between checkpoints (Flink's key); unset means no checkpoints.
    pub const CHECKPOINT_INTERVAL: &str = "execution.checkpointing.interval";
    /// Where checkpoints go: `file:///dir`, a directory path, or
    /// `s3://bucket/prefix` with the `s3.*` options (Flink 2's key).
    pub const CHECKPOINT_DIR: &str = "execution.checkpointing.dir";
    /// How many completed checkpoints to keep (Flink's key; default 1).
    pub const CHECKPOINT_RETAINED: &str = "execution.checkpointing.num-retained";
    /// `none`, `fixed-delay` or `exponential-delay` (Flink's key). With
    /// checkpoints the default is `exponential-delay`, as in Flink; without,
    /// `none` (a restart without checkpoints would write rows twice).
    pub const RESTART_STRATEGY: &str = "restart-strategy.type";
    /// Restarts of `fixed-delay` (default 1).
    pub const FIXED_DELAY_ATTEMPTS: &str = "restart-strategy.fixed-delay.attempts";
    /// Wait before each `fixed-delay` restart (default 1 s).
    pub const FIXED_DELAY_DELAY: &str = "restart-strategy.fixed-delay.delay";
    /// First wait of `exponential-delay` (default 1 s).
    pub const EXPONENTIAL_INITIAL: &str = "restart-strategy.exponential-delay.initial-backoff";
    /// Longest wait of `exponential-delay` (default 1 min).
    pub const EXPONENTIAL_MAX: &str = "restart-strategy.exponential-delay.max-backoff";
    /// Growth of the wait of `exponential-delay` (default 1.5).
    pub const EXPONENTIAL_MULTIPLIER: &str =
        "restart-strategy.exponential-delay.backoff-multiplier";
    /// Restarts of `exponential-delay`. Flink's default is unbounded; ours is
    /// 10, so a job that fails the same way every time ends with an error.
    pub const EXPONENTIAL_ATTEMPTS: &str =
        "restart-strategy.exponential-delay.attempts-before-reset-backoff";
}

/// A session: catalog, connectors and runtime settings.
pub struct StreamContext {
    catalog: RwLock<Catalog>,
    connectors: Arc<DefaultConnectors>,
    /// The checkpoint the next job starts from (see [`StreamContext::restore_latest`]).
    restore: RwLock<Option<Arc<RestoredCheckpoint>>>,
    /// Told of restarts (see [`StreamContext::on_restart`]).
    on_restart: RwLock<Option<RestartListener>>,
}

impl Default for StreamContext {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamContext {
    /// A context with the built-in connectors and an empty catalog.
    pub fn new() -> Self {
        StreamContext {
            catalog: RwLock::new(Catalog::default()),
            connectors: Arc::new(DefaultConnectors::new()),
            restore: RwLock::new(None),
            on_restart: RwLock::new(None),
        }
    }

    /// The connector registry, e.g. to register in-memory tables.
    pub fn connectors(&self) -> &Arc<DefaultConnectors> {
        &self.connectors
    }

    /// A copy of the catalog as it stands.
    pub fn catalog(&self) -> Catalog {
        match self.catalog.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn update_catalog<T>(&self, f: impl FnOnce(&mut Catalog) -> T) -> T {
        match self.catalog.write() {
            Ok(mut c) => f(&mut c),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// The runtime settings derived from `SET` statements.
    pub fn runtime_config(&self) -> Result<RuntimeConfig> {
        let catalog = self.catalog();
        let mut config = RuntimeConfig::default();
        if let Some(size) = catalog.setting(settings::BATCH_SIZE) {
            config.batch_size = size.trim().parse().map_err(|_| {
                WatershedError::Usage(format!(
                    "SET '{}' = '{size}': expected a positive number of rows",
                    settings::BATCH_SIZE
                ))
            })?;
        }
        if let Some(interval) = catalog.setting(settings::CHECKPOINT_INTERVAL) {
            let interval = parse_duration(interval).map_err(|e| {
                WatershedError::Usage(format!("SET '{}': {e}", settings::CHECKPOINT_INTERVAL))
            })?;
            if interval.is_zero() {
                return Err(WatershedError::Usage(format!(
                    "SET '{}': the interval must be positive",
                    settings::CHECKPOINT_INTERVAL
                )));
            }
            let num_retained = match catalog.setting(settings::CHECKPOINT_RETAINED) {
                None => 1,
                Some(n) => n.trim().parse().ok().filter(|&n| n > 0).ok_or_else(|| {
                    WatershedError::Usage(format!(
                        "SET '{}' = '{n}': expected a positive number",
                        settings::CHECKPOINT_RETAINED
                    ))
                })?,
            };
            config.checkpointing = Some(CheckpointSettings {
                interval,
                backend: self.checkpoint_backend()?,
                num_retained,
                restore: self.restore.read().ok().and_then(|r| r.clone()),
            });
        }
        config.restart = restart_strategy(&catalog, config.checkpointing.is_some())?;
        config.on_restart = self.on_restart.read().ok().and_then(|l| l.clone());
        Ok(config)
    }

    /// Calls `listener` on every restart of jobs started from now on.
    pub fn on_restart(&self, listener: impl Fn(&RestartEvent) + Send + Sync + 'static) {
        if let Ok(mut slot) = self.on_restart.write() {
            *slot = Some(RestartListener(Arc::new(listener)));
        }
    }

    /// True when `execution.checkpointing.interval` is set.
    pub fn checkpointing_enabled(&self) -> bool {
        self.catalog()
            .setting(settings::CHECKPOINT_INTERVAL)
            .is_some()
    }

    /// The store `execution.checkpointing.dir` names.
    fn checkpoint_backend(&self) -> Result<Arc<dyn StateBackend>> {
        let catalog = self.catalog();
        let dir = catalog.setting(settings::CHECKPOINT_DIR).ok_or_else(|| {
            WatershedError::Usage(format!(
                "checkpoints need a place: SET '{}' = 'file:///some/dir'",
                settings::CHECKPOINT_DIR
            ))
        })?;
        Ok(Arc::new(ObjectStoreBackend::open_with_options(
            dir,
            catalog.settings(),
        )?))
    }

    /// Makes the next job start from the newest completed checkpoint in
    /// `execution.checkpointing.dir` and returns its id, or `None` (and a fresh
    /// start) when there is none. The job must be the same query; its
    /// checkpoints go on from the restored id.
    pub async fn restore_latest(&self) -> Result<Option<u64>> {
        let backend = self.checkpoint_backend()?;
        let Some(manifest) = backend.latest_completed().await? else {
            return Ok(None);
        };
        self.restore_manifest(backend.as_ref(), manifest)
            .await
            .map(Some)
    }

    /// Like [`StreamContext::restore_latest`], from completed checkpoint `id`.
    pub async fn restore_checkpoint(&self, id: u64) -> Result<u64> {
        let backend = self.checkpoint_backend()?;
        let manifest = backend.manifest(id).await?;
        self.restore_manifest(backend.as_ref(), manifest).await
    }

    async fn restore_manifest(
        &self,
        backend: &dyn StateBackend,
        manifest: CheckpointManifest,
    ) -> Result<u64> {
        let id = manifest.checkpoint_id;
        let restored = RestoredCheckpoint::load(backend, manifest).await?;
        if let Ok(mut slot) = self.restore.write() {
            *slot = Some(Arc::new(restored));
        }
        Ok(id)
    }

    /// Registers an in-memory table from record batches and declares it in the
    /// catalog. With `watermark = Some((column, bound_ms))` the table gets
    /// `WATERMARK FOR column AS column - INTERVAL 'bound_ms' MILLISECOND`.
    pub fn register_batches(
        &self,
        name: &str,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
        watermark: Option<(&str, i64)>,
    ) -> Result<()> {
        self.connectors
            .register_memory_table(name, schema.clone(), batches)?;
        self.declare_memory_table(name, &schema, watermark, &[])
    }

    /// Registers a live, unbounded table fed by the program through `receiver`
    /// and declares it in the catalog (watermark as in
    /// [`StreamContext::register_batches`]). The stream ends when every sender
    /// is dropped; one job can read it. `options` are extra table options, e.g.
    /// `("scan.watermark.idle-timeout", "1 s")` so that the other splits of a
    /// parallel job, which have no data, do not hold the watermark back.
    pub fn register_stream(
        &self,
        name: &str,
        schema: SchemaRef,
        receiver: tokio::sync::mpsc::Receiver<RecordBatch>,
        watermark: Option<(&str, i64)>,
        options: &[(&str, &str)],
    ) -> Result<()> {
        self.connectors
            .register_memory_stream(name, schema.clone(), receiver);
        self.declare_memory_table(name, &schema, watermark, options)
    }

    fn declare_memory_table(
        &self,
        name: &str,
        schema: &SchemaRef,
        watermark: Option<(&str, i64)>,
        options: &[(&str, &str)],
    ) -> Result<()> {
        let columns = schema
            .fields()
            .iter()
            .map(|f| {
                format!(
                    "`{}` {}{}",
                    f.name(),
                    watershed_sql::types::arrow_to_sql_type(f.data_type()),
                    if f.is_nullable() { "" } else { " NOT NULL" }
                )
            })
            .collect::<Vec<_>>();
        let mut elements = columns;
        if let Some((column, bound_ms)) = watermark {
            elements.push(format!(
                "WATERMARK FOR `{column}` AS `{column}` - INTERVAL '{bound_ms}' MILLISECOND"
            ));
        }
        let mut with = vec!["'connector' = 'memory'".to_string()];
        with.extend(
            options
                .iter()
                .map(|(k, v)| format!("'{}' = '{}'", k.replace('\'', "''"), v.replace('\'', "''"))),
        );
        let ddl = format!(
            "CREATE TABLE `{name}` ({}) WITH ({})",
            elements.join(", "),
            with.join(", ")
        );
        for statement in parse_script(&ddl)? {
            if let Statement::CreateTable(table) = statement.node {
                let def = TableDef::from_ddl(&table)?;
                self.update_catalog(|c| c.add_table(def, false))?;
            }
        }
        Ok(())
    }

    /// Runs SQL text: DDL and `SET` take effect at once; the frame of the last
    /// statement is returned (a query or `INSERT` to execute, or an EXPLAIN).
    pub async fn sql(&self, sql: &str) -> Result<StreamFrame> {
        let statements = parse_script(sql)?;
        if statements.is_empty() {
            return Err(WatershedError::Usage("no SQL statement given".into()));
        }
        let mut frame = StreamFrame::done("no statement");
        for statement in statements {
            frame = self.statement(statement).await?;
        }
        Ok(frame)
    }

    /// Executes one parsed statement.
    pub async fn statement(&self, statement: Located<Statement>) -> Result<StreamFrame> {
        let (line, column) = (statement.line, statement.column);
        self.plan_statement(statement.node)
            .await
            .map_err(|e| locate(e, line, column))
    }

    async fn plan_statement(&self, statement: Statement) -> Result<StreamFrame> {
        match statement {
            Statement::CreateTable(ddl) => {
                let def = TableDef::from_ddl(&ddl)?;
                let name = def.name.clone();
                let created = self.update_catalog(|c| c.add_table(def, ddl.if_not_exists))?;
                Ok(StreamFrame::done(if created {
                    format!("created table {name}")
                } else {
                    format!("table {name} exists")
                }))
            }
            Statement::CreateView(view) => {
                let created = self.update_catalog(|c| c.add_view(&view))?;
                // Plan once now so a broken view fails where it is declared.
                let catalog = self.catalog();
                Planner::new(&catalog, self.connectors.as_ref()).await?;
                Ok(StreamFrame::done(if created {
                    format!("created view {}", view.name)
                } else {
                    format!("view {} exists", view.name)
                }))
            }
            Statement::Set { key, value } => {
                check_setting(&key, &value)?;
                self.update_catalog(|c| c.set(&key, &value));
                Ok(StreamFrame::done(format!("set {key} = {value}")))
            }
            Statement::Insert(insert) => {
                if !insert.columns.is_empty() {
                    return Err(SqlError::Plan(
                        "unsupported: INSERT INTO with a column list; select all columns of the table in order".into(),
                    )
                    .into());
                }
                let catalog = self.catalog();
                let mut planner = Planner::new(&catalog, self.connectors.as_ref()).await?;
                let graph = planner.plan_insert(&insert.table, &insert.query).await?;
                Ok(StreamFrame::insert(graph, self.runtime_config()?))
            }
            Statement::Query(query) => {
                let catalog = self.catalog();
                let mut planner = Planner::new(&catalog, self.connectors.as_ref()).await?;
                let (graph, schema) = planner
                    .plan_select(&query, "client", Arc::new(ClientSink))
                    .await?;
                Ok(StreamFrame::select(graph, schema, self.runtime_config()?))
            }
            Statement::Explain(inner) => {
                let planned = Box::pin(self.statement(*inner)).await?;
                match planned.graph() {
                    Some(graph) => Ok(StreamFrame::explain(graph.to_string())),
                    None => Err(WatershedError::Usage(
                        "EXPLAIN takes a query or an INSERT INTO statement".into(),
                    )),
                }
            }
        }
    }
}

fn check_setting(key: &str, value: &str) -> Result<()> {
    match key {
        settings::RUNTIME_MODE if !value.eq_ignore_ascii_case("streaming") => {
            Err(WatershedError::Usage(format!(
                "SET '{key}' = '{value}': Watershed runs in streaming mode only; \
                 bounded sources still end and fire their windows"
            )))
        }
        settings::PARALLELISM if value.trim().parse::<usize>().map_or(true, |p| p == 0) => {
            Err(WatershedError::Usage(format!(
                "SET '{key}' = '{value}': expected a positive number of parallel instances"
            )))
        }
        _ => Ok(()),
    }
}

/// Adds the statement's position to errors that do not carry one.
fn locate(error: WatershedError, line: u64, column: u64) -> WatershedError {
    match error {
        WatershedError::Sql(SqlError::Parse { .. } | SqlError::Unsupported { .. }) => error,
        WatershedError::Sql(SqlError::DataFusion(e)) => {
            let position = e
                .diagnostic()
                .and_then(|d| d.span)
                .map(|s| (s.start.line, s.start.column))
                .unwrap_or((line, column));
            WatershedError::Sql(SqlError::Plan(format!(
                "at line {}, column {}: {}",
                position.0,
                position.1,
                e.strip_backtrace()
            )))
        }
        other => WatershedError::Sql(SqlError::Plan(format!(
            "in the statement at line {line}, column {column}: {other}"
        ))),
    }
}

/// The restart strategy the `restart-strategy.*` settings describe.
fn restart_strategy(catalog: &Catalog, checkpointing: bool) -> Result<RestartStrategy> {
    let usage = |key: &str, value: &str, expected: &str| {
        WatershedError::Usage(format!("SET '{key}' = '{value}': expected {expected}"))
    };
    let duration = |key: &str, default: Duration| -> Result<Duration> {
        match catalog.setting(key) {
            None => Ok(default),
            Some(v) => {
                parse_duration(v).map_err(|e| WatershedError::Usage(format!("SET '{key}': {e}")))
            }
        }
    };
    let count = |key: &str, default: u32| -> Result<u32> {
        match catalog.setting(key) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| usage(key, v, "a number of restarts")),
        }
    };
    let kind = match catalog.setting(settings::RESTART_STRATEGY) {
        Some(kind) => kind.trim().to_ascii_lowercase(),
        None if checkpointing => "exponential-delay".to_string(),
        None => "none".to_string(),
    };
    Ok(match kind.as_str() {
        "none" | "off" | "disable" => RestartStrategy::None,
        "fixed-delay" | "fixeddelay" => RestartStrategy::FixedDelay {
            attempts: count(settings::FIXED_DELAY_ATTEMPTS, 1)?,
            delay: duration(settings::FIXED_DELAY_DELAY, Duration::from_secs(1))?,
        },
        "exponential-delay" | "exponentialdelay" => {
            let multiplier = match catalog.setting(settings::EXPONENTIAL_MULTIPLIER) {
                None => 1.5,
                Some(v) => v
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|m| *m >= 1.0)
                    .ok_or_else(|| usage(settings::EXPONENTIAL_MULTIPLIER, v, "a number >= 1"))?,
            };
            RestartStrategy::ExponentialDelay {
                attempts: count(settings::EXPONENTIAL_ATTEMPTS, 10)?,
                initial: duration(settings::EXPONENTIAL_INITIAL, Duration::from_secs(1))?,
                max: duration(settings::EXPONENTIAL_MAX, Duration::from_secs(60))?,
                multiplier,
            }
        }
        other => {
            return Err(usage(
                settings::RESTART_STRATEGY,
                other,
                "'none', 'fixed-delay' or 'exponential-delay'",
            ));
        }
    })
}
