//! Flink's lookup-join syntax, `JOIN card_limits FOR SYSTEM_TIME AS OF p.proc_time
//! AS l`.
//!
//! In Flink it looks each stream row up in an external table as of the row's
//! processing time. Watershed joins streams with *bounded* tables (files without
//! a WATERMARK) that are read once, completely, before the stream is joined, so
//! the version clause has nothing to choose between: it is removed before the
//! query reaches DataFusion, and the join is planned as the plain `JOIN` it then
//! is. The tables it named are returned so the planner can check that each is a
//! bounded table.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Expr, ObjectName, Query, Spanned, TableFactor, TableVersion, VisitMut, VisitorMut,
};

use crate::error::{Result, SqlError};

/// A table that a query named with `FOR SYSTEM_TIME AS OF`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionedTable {
    /// The table's name as written.
    pub name: String,
    /// Position of the table name in the SQL text.
    pub line: u64,
    /// Position of the table name in the SQL text.
    pub column: u64,
}

/// Removes `FOR SYSTEM_TIME AS OF <column>` from every table in `query` and
/// returns those tables. Other version clauses, and an `AS OF` that is not a
/// column reference, are refused.
pub fn strip_system_time(query: &mut Query) -> Result<Vec<VersionedTable>> {
    let mut stripper = Stripper { found: Vec::new() };
    match query.visit(&mut stripper) {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(stripper.found),
    }
}

struct Stripper {
    found: Vec<VersionedTable>,
}

fn table_name(name: &ObjectName) -> String {
    name.0
        .iter()
        .map(|part| match part.as_ident() {
            Some(ident) => ident.value.clone(),
            None => part.to_string(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

impl VisitorMut for Stripper {
    type Break = SqlError;

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<SqlError> {
        let TableFactor::Table { name, version, .. } = factor else {
            return ControlFlow::Continue(());
        };
        let Some(clause) = version.take() else {
            return ControlFlow::Continue(());
        };
        let start = name.span().start;
        let refuse = |feature: String| ControlFlow::Break(SqlError::unsupported_at(feature, start));
        match &clause {
            TableVersion::ForSystemTimeAsOf(Expr::Identifier(_) | Expr::CompoundIdentifier(_)) => {
                self.found.push(VersionedTable {
                    name: table_name(name),
                    line: start.line,
                    column: start.column,
                });
                ControlFlow::Continue(())
            }
            TableVersion::ForSystemTimeAsOf(expr) => refuse(format!(
                "FOR SYSTEM_TIME AS OF {expr}: name the stream's time column \
                 (`FOR SYSTEM_TIME AS OF p.proc_time`), or write a plain JOIN; the table is \
                 read once, completely, so the time does not select anything"
            )),
            other => refuse(format!(
                "the table version clause `{other}` on '{}'; for a lookup join write \
                 `FOR SYSTEM_TIME AS OF <stream>.<time column>` or a plain JOIN",
                table_name(name)
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::ast::Statement;
    use datafusion::sql::sqlparser::parser::Parser;

    use super::*;
    use crate::dialect::WatershedDialect;

    fn query(sql: &str) -> Box<Query> {
        let dialect = WatershedDialect::new().with_table_versioning();
        match Parser::parse_sql(&dialect, sql).expect("parses").remove(0) {
            Statement::Query(q) => q,
            other => panic!("not a query: {other}"),
        }
    }

    #[test]
    fn strips_for_system_time_and_names_the_table() {
        let mut q = query(
            "SELECT p.amount, l.max_amount FROM payments AS p \
             JOIN card_limits FOR SYSTEM_TIME AS OF p.proc_time AS l ON p.card_id = l.card_id",
        );
        let found = strip_system_time(&mut q).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].name, "card_limits");
        assert_eq!((found[0].line, found[0].column), (1, 55));
        let text = q.to_string();
        assert!(!text.contains("SYSTEM_TIME"), "{text}");
        assert!(text.contains("JOIN card_limits AS l ON"), "{text}");
    }

    #[test]
    fn leaves_queries_without_versions_alone() {
        let mut q = query("SELECT * FROM payments p JOIN card_limits l ON p.card_id = l.card_id");
        let before = q.to_string();
        assert!(strip_system_time(&mut q).unwrap().is_empty());
        assert_eq!(q.to_string(), before);
    }

    #[test]
    fn refuses_other_versions_and_expressions() {
        let mut q = query(
            "SELECT * FROM payments p JOIN card_limits FOR SYSTEM_TIME AS OF \
             CURRENT_TIMESTAMP - INTERVAL '1' HOUR AS l ON p.card_id = l.card_id",
        );
        let err = strip_system_time(&mut q).unwrap_err().to_string();
        assert!(err.contains("plain JOIN"), "{err}");
        let mut q = query("SELECT * FROM card_limits TIMESTAMP AS OF '2024-01-01'");
        let err = strip_system_time(&mut q).unwrap_err().to_string();
        assert!(err.contains("TIMESTAMP AS OF"), "{err}");
        assert!(err.contains("card_limits"), "{err}");
    }
}
