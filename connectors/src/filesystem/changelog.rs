//! The filesystem sink's changelog options: whether and how an updating
//! query's changes (`+I`, `-U`, `+U`, `-D`; see `watershed_engine::changelog`)
//! are written.
//!
//! | `'sink.changelog-mode'` | takes updating queries | rows written |
//! |---|---|---|
//! | `'append'` (default) | no: the planner refuses them | the table's columns |
//! | `'all'` | yes | every change: op column, then the table's columns |
//! | `'upsert'` | yes; the table needs `PRIMARY KEY (...) NOT ENFORCED` | `+I`, `+U` and `-D` (no `-U`), compacted |
//!
//! The op column (`'sink.changelog.op-column'`, default `op`) is not one of the
//! table's declared columns: it is written before them and holds `+I`, `-U`,
//! `+U` or `-D`. Replaying an `'all'` directory (add `+I`/`+U`, remove
//! `-U`/`-D`) gives the query's current result; so does keeping the last row
//! per primary key of an `'upsert'` directory and dropping keys whose last row
//! is `-D`. Rows of one key are in the order they changed within one sink
//! instance's part files (`part-<run>-<instance>-<counter>`, by counter); the
//! key must be a unique key of the query's result (as in Flink, `NOT ENFORCED`
//! means the query vouches for it) so that all changes of a key come from the
//! same upstream instance.

use watershed_engine::EngineError;
use watershed_engine::connector::TableSpec;

use crate::options::TableOptions;

/// `'sink.changelog-mode'`: `append`, `all` or `upsert`.
pub const CHANGELOG_MODE: &str = "sink.changelog-mode";
/// `'sink.changelog.op-column'`: the name of the op column.
pub const OP_COLUMN: &str = "sink.changelog.op-column";
/// The op column's name unless `'sink.changelog.op-column'` says otherwise.
pub const DEFAULT_OP_COLUMN: &str = "op";
/// The option keys of this module.
pub const OPTION_KEYS: &[&str] = &[CHANGELOG_MODE, OP_COLUMN];

/// What the filesystem sink writes (`'sink.changelog-mode'`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChangelogMode {
    /// Inserts only; updating queries are refused at planning.
    #[default]
    Append,
    /// Every change, with its op.
    All,
    /// Upserts (`+I`, `+U`) and deletes (`-D`) by primary key.
    Upsert,
}

impl ChangelogMode {
    /// The option value naming this mode.
    pub fn name(self) -> &'static str {
        match self {
            ChangelogMode::Append => "append",
            ChangelogMode::All => "all",
            ChangelogMode::Upsert => "upsert",
        }
    }

    /// True when the sink takes updating queries in this mode.
    pub fn accepts_changelog(self) -> bool {
        self != ChangelogMode::Append
    }
}

/// The parsed changelog options of a filesystem table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangelogConfig {
    /// The mode.
    pub mode: ChangelogMode,
    /// The op column's name (used unless the mode is `append`).
    pub op_column: String,
}

impl Default for ChangelogConfig {
    fn default() -> Self {
        ChangelogConfig {
            mode: ChangelogMode::Append,
            op_column: DEFAULT_OP_COLUMN.to_string(),
        }
    }
}

impl ChangelogConfig {
    /// Reads and checks the option values; errors name the table and option.
    pub fn from_options(options: &TableOptions<'_>) -> Result<Self, EngineError> {
        let mode = match options.get(CHANGELOG_MODE) {
            None => ChangelogMode::Append,
            Some(value) => match value.trim().to_ascii_lowercase().as_str() {
                "append" => ChangelogMode::Append,
                "all" => ChangelogMode::All,
                "upsert" => ChangelogMode::Upsert,
                _ => {
                    return Err(options.error(
                        CHANGELOG_MODE,
                        "expected 'append' (inserts only), 'all' (every change with its op) \
                         or 'upsert' (changes by primary key)",
                    ));
                }
            },
        };
        let op_column = match options.get(OP_COLUMN) {
            None => DEFAULT_OP_COLUMN.to_string(),
            Some(_) if mode == ChangelogMode::Append => {
                return Err(options.error(
                    OP_COLUMN,
                    format!("only applies when '{CHANGELOG_MODE}' is 'all' or 'upsert'"),
                ));
            }
            Some(value) if value.trim().is_empty() => {
                return Err(options.error(OP_COLUMN, "expected a column name"));
            }
            Some(value) => value.trim().to_string(),
        };
        Ok(ChangelogConfig { mode, op_column })
    }

    /// Checks the options against the table written: the op column must not
    /// share a name with a declared column, and `upsert` needs a primary key.
    /// Returns the positions of the primary key columns in the table's schema
    /// (empty unless the mode is `upsert`).
    pub fn key_columns(&self, table: &TableSpec) -> Result<Vec<usize>, EngineError> {
        let options = TableOptions::from_spec(table);
        if self.mode == ChangelogMode::Append {
            return Ok(Vec::new());
        }
        if let Some(clash) = table
            .schema
            .fields()
            .iter()
            .find(|f| f.name().eq_ignore_ascii_case(&self.op_column))
        {
            return Err(options.error(
                OP_COLUMN,
                format!(
                    "the op column would be named like the table's column '{}'; set \
                     '{OP_COLUMN}' to another name",
                    clash.name()
                ),
            ));
        }
        if self.mode != ChangelogMode::Upsert {
            return Ok(Vec::new());
        }
        if table.primary_key.is_empty() {
            return Err(options.error(
                CHANGELOG_MODE,
                "an upsert sink needs a primary key: declare PRIMARY KEY (...) NOT ENFORCED \
                 with the columns that identify a result row (e.g. the GROUP BY keys), or use \
                 'all' to write every change",
            ));
        }
        table
            .primary_key
            .iter()
            .map(|key| {
                table.schema.index_of(key).map_err(|_| {
                    options.error(
                        CHANGELOG_MODE,
                        format!("PRIMARY KEY column '{key}' is not a column of the table"),
                    )
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::collections::BTreeMap;
    use std::sync::Arc;

    fn spec(pairs: &[(&str, &str)], primary_key: &[&str]) -> TableSpec {
        TableSpec {
            name: "balances".into(),
            schema: Arc::new(Schema::new(vec![
                Field::new("account_id", DataType::Int64, true),
                Field::new("balance", DataType::Decimal128(38, 2), true),
            ])),
            options: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            time_column: None,
            primary_key: primary_key.iter().map(|k| k.to_string()).collect(),
        }
    }

    fn config(spec: &TableSpec) -> Result<ChangelogConfig, EngineError> {
        ChangelogConfig::from_options(&TableOptions::from_spec(spec))
    }

    #[test]
    fn parses_modes_and_op_column() {
        assert_eq!(config(&spec(&[], &[])).unwrap(), ChangelogConfig::default());
        let all = config(&spec(&[(CHANGELOG_MODE, " ALL ")], &[])).unwrap();
        assert_eq!(all.mode, ChangelogMode::All);
        assert_eq!(all.op_column, "op");
        let upsert = config(&spec(
            &[(CHANGELOG_MODE, "upsert"), (OP_COLUMN, "change")],
            &[],
        ))
        .unwrap();
        assert_eq!(upsert.mode, ChangelogMode::Upsert);
        assert_eq!(upsert.op_column, "change");
        assert!(!ChangelogMode::Append.accepts_changelog());
        assert!(ChangelogMode::All.accepts_changelog());
        assert_eq!(ChangelogMode::Upsert.name(), "upsert");
    }

    #[test]
    fn bad_values_name_the_table_and_option() {
        let err = config(&spec(&[(CHANGELOG_MODE, "retract")], &[]))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("table 'balances': option 'sink.changelog-mode' = 'retract': expected"),
            "{err}"
        );
        let err = config(&spec(&[(OP_COLUMN, "kind")], &[]))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("table 'balances': option 'sink.changelog.op-column' = 'kind'"),
            "{err}"
        );
        assert!(err.contains("only applies"), "{err}");
        let err = config(&spec(&[(CHANGELOG_MODE, "all"), (OP_COLUMN, " ")], &[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("expected a column name"), "{err}");
    }

    #[test]
    fn upsert_needs_a_primary_key() {
        let table = spec(&[(CHANGELOG_MODE, "upsert")], &[]);
        let err = config(&table)
            .unwrap()
            .key_columns(&table)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("table 'balances': option 'sink.changelog-mode' = 'upsert'"),
            "{err}"
        );
        assert!(err.contains("PRIMARY KEY (...) NOT ENFORCED"), "{err}");
        let keyed = spec(&[(CHANGELOG_MODE, "upsert")], &["account_id"]);
        assert_eq!(config(&keyed).unwrap().key_columns(&keyed).unwrap(), [0]);
        let unknown = spec(&[(CHANGELOG_MODE, "upsert")], &["card_id"]);
        let err = config(&unknown)
            .unwrap()
            .key_columns(&unknown)
            .unwrap_err()
            .to_string();
        assert!(err.contains("'card_id' is not a column"), "{err}");
        // 'all' does not need a key.
        let all = spec(&[(CHANGELOG_MODE, "all")], &[]);
        assert!(config(&all).unwrap().key_columns(&all).unwrap().is_empty());
    }

    #[test]
    fn op_column_must_not_clash_with_a_column() {
        let table = spec(
            &[(CHANGELOG_MODE, "all"), (OP_COLUMN, "Balance")],
            &["account_id"],
        );
        let err = config(&table)
            .unwrap()
            .key_columns(&table)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("'sink.changelog.op-column' = 'Balance'"),
            "{err}"
        );
        assert!(err.contains("column 'balance'"), "{err}");
    }
}
