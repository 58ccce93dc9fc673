//! The catalog of a SQL session: tables from `CREATE TABLE` and views from
//! `CREATE VIEW`, in definition order, plus `SET` options.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::sql::sqlparser::ast::{Expr, Query};
use watershed_engine::connector::TableSpec;

use crate::error::{Result, SqlError};
use crate::parser::{CreateTable, CreateView};

/// A table's event-time declaration: `WATERMARK FOR column AS expr`.
#[derive(Debug, Clone)]
pub struct TableWatermark {
    /// The time attribute column.
    pub column: String,
    /// The watermark expression, over the table's columns.
    pub expr: Expr,
}

/// The table option that declares a source split idle after a time without
/// rows, as in Flink; the engine handles it, so connectors never see it.
pub const IDLE_TIMEOUT_OPTION: &str = "scan.watermark.idle-timeout";

/// Table options handled by the engine rather than by the connector.
const ENGINE_TABLE_OPTIONS: &[&str] = &[IDLE_TIMEOUT_OPTION];

/// A table declared with `CREATE TABLE`.
#[derive(Debug, Clone)]
pub struct TableDef {
    /// Name as written.
    pub name: String,
    /// Physical columns.
    pub schema: SchemaRef,
    /// Column types as written in SQL, for messages.
    pub sql_types: Vec<String>,
    /// Event-time declaration, if any.
    pub watermark: Option<TableWatermark>,
    /// `PRIMARY KEY (...) NOT ENFORCED` columns.
    pub primary_key: Vec<String>,
    /// `WITH (...)` options.
    pub options: BTreeMap<String, String>,
}

impl TableDef {
    /// Builds a table from its parsed DDL, checking that the watermark and key
    /// columns exist.
    pub fn from_ddl(ddl: &CreateTable) -> Result<Self> {
        let fields: Vec<Field> = ddl
            .columns
            .iter()
            .map(|c| Field::new(&c.name, c.data_type.clone(), c.nullable))
            .collect();
        let schema = Arc::new(Schema::new(fields));
        let mut seen = std::collections::BTreeSet::new();
        for c in &ddl.columns {
            if !seen.insert(c.name.as_str()) {
                return Err(SqlError::Catalog(format!(
                    "table '{}' declares column '{}' twice",
                    ddl.name, c.name
                )));
            }
        }
        if let Some(wm) = &ddl.watermark {
            let field = schema.field_with_name(&wm.column).map_err(|_| {
                SqlError::Catalog(format!(
                    "WATERMARK FOR '{}': table '{}' has no such column",
                    wm.column, ddl.name
                ))
            })?;
            if !matches!(
                field.data_type(),
                datafusion::arrow::datatypes::DataType::Timestamp(_, _)
            ) {
                return Err(SqlError::Catalog(format!(
                    "WATERMARK FOR '{}' in table '{}': the column must be TIMESTAMP(3), not {}",
                    wm.column,
                    ddl.name,
                    crate::types::arrow_to_sql_type(field.data_type())
                )));
            }
        }
        for key in &ddl.primary_key {
            if schema.field_with_name(key).is_err() {
                return Err(SqlError::Catalog(format!(
                    "PRIMARY KEY column '{key}' is not a column of table '{}'",
                    ddl.name
                )));
            }
        }
        Ok(TableDef {
            name: ddl.name.clone(),
            schema,
            sql_types: ddl.columns.iter().map(|c| c.sql_type.clone()).collect(),
            watermark: ddl.watermark.as_ref().map(|w| TableWatermark {
                column: w.column.clone(),
                expr: w.expr.clone(),
            }),
            primary_key: ddl.primary_key.clone(),
            options: ddl.options.iter().cloned().collect(),
        })
    }

    /// The table as a connector sees it: its options without those the engine
    /// handles.
    pub fn spec(&self) -> TableSpec {
        let mut options = self.options.clone();
        options.retain(|key, _| !ENGINE_TABLE_OPTIONS.contains(&key.as_str()));
        TableSpec {
            name: self.name.clone(),
            schema: self.schema.clone(),
            options,
            time_column: self.watermark.as_ref().map(|w| w.column.clone()),
            primary_key: self.primary_key.clone(),
        }
    }
}

/// A view declared with `CREATE VIEW`.
#[derive(Debug, Clone)]
pub struct ViewDef {
    /// Name as written.
    pub name: String,
    /// Column names given after the view name, if any.
    pub columns: Vec<String>,
    /// The view's query.
    pub query: Box<Query>,
}

/// Tables, views and settings of a session.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    tables: BTreeMap<String, TableDef>,
    views: Vec<ViewDef>,
    settings: BTreeMap<String, String>,
}

impl Catalog {
    /// Adds a table; fails if the name is taken, unless `if_not_exists`.
    pub fn add_table(&mut self, table: TableDef, if_not_exists: bool) -> Result<bool> {
        if self.tables.contains_key(&table.name) || self.view(&table.name).is_some() {
            if if_not_exists {
                return Ok(false);
            }
            return Err(SqlError::Catalog(format!(
                "a table or view named '{}' already exists",
                table.name
            )));
        }
        self.tables.insert(table.name.clone(), table);
        Ok(true)
    }

    /// Adds a view; fails if the name is taken, unless `if_not_exists`.
    pub fn add_view(&mut self, view: &CreateView) -> Result<bool> {
        if self.tables.contains_key(&view.name) || self.view(&view.name).is_some() {
            if view.if_not_exists {
                return Ok(false);
            }
            return Err(SqlError::Catalog(format!(
                "a table or view named '{}' already exists",
                view.name
            )));
        }
        self.views.push(ViewDef {
            name: view.name.clone(),
            columns: view.columns.clone(),
            query: view.query.clone(),
        });
        Ok(true)
    }

    /// A table by name.
    pub fn table(&self, name: &str) -> Option<&TableDef> {
        self.tables.get(name)
    }

    /// All tables, by name.
    pub fn tables(&self) -> impl Iterator<Item = &TableDef> {
        self.tables.values()
    }

    /// A view by name.
    pub fn view(&self, name: &str) -> Option<&ViewDef> {
        self.views.iter().find(|v| v.name == name)
    }

    /// Views in definition order.
    pub fn views(&self) -> &[ViewDef] {
        &self.views
    }

    /// Records a `SET 'key' = 'value'`.
    pub fn set(&mut self, key: &str, value: &str) {
        self.settings.insert(key.to_string(), value.to_string());
    }

    /// A setting's value.
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.settings.get(key).map(String::as_str)
    }

    /// All settings, by key.
    pub fn settings(&self) -> &BTreeMap<String, String> {
        &self.settings
    }
}
