//! Watershed's SQL dialect: sqlparser's generic dialect plus the Flink SQL syntax it
//! lacks.
//!
//! [`WatershedDialect`] behaves like sqlparser's `GenericDialect` (the dialect
//! DataFusion itself parses with), so the ASTs it produces are the ones DataFusion's
//! SQL planner expects. It adds one thing: the table argument of Flink's window
//! table-valued functions,
//!
//! ```sql
//! TABLE(TUMBLE(TABLE payments, DESCRIPTOR(event_time), INTERVAL '1' MINUTE))
//! TABLE(SESSION(TABLE payments PARTITION BY card_id, DESCRIPTOR(event_time), INTERVAL '5' MINUTE))
//! ```
//!
//! sqlparser rejects `TABLE payments` as a function argument. The dialect's
//! `parse_prefix` hook turns it into an ordinary expression: a call of a function
//! named [`TABLE_ARGUMENT_FUNCTION`] whose arguments are the table name (an
//! `Expr::Identifier`, or `Expr::CompoundIdentifier` when qualified) followed by the
//! `PARTITION BY` keys, if any. `PARTITION BY k` and `PARTITION BY (k1, k2)` are both
//! accepted. The planner recognizes the marker function when it plans a window TVF.
//!
//! Plural interval units (`INTERVAL '1' MINUTES`) need no help: sqlparser 0.62 parses
//! them as `DateTimeField::Minutes` etc., and DataFusion accepts the plural unit.
//!
//! A few generic-dialect extensions from other databases that could swallow Flink
//! identifiers or change how Flink text reads (ClickHouse `SETTINGS`/`PREWHERE`/
//! `LIMIT BY`, `FROM`-first selects, pipe operators, `LIMIT a, b`, Oracle `q'...'`
//! strings) are switched off.

use std::any::TypeId;

use datafusion::sql::sqlparser::ast::{
    Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList, FunctionArguments, Ident,
    ObjectName, ObjectNamePart,
};
use datafusion::sql::sqlparser::dialect::{Dialect, GenericDialect};
use datafusion::sql::sqlparser::keywords::{Keyword, RESERVED_FOR_COLUMN_ALIAS};
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::Token;

/// Name of the function that stands for a `TABLE t [PARTITION BY ...]` argument of a
/// window TVF in the parsed AST.
pub const TABLE_ARGUMENT_FUNCTION: &str = "TABLE";

/// The Flink SQL dialect Watershed parses. See the module documentation.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WatershedDialect {
    generic: GenericDialect,
    table_versioning: bool,
}

impl WatershedDialect {
    /// A new dialect value.
    pub fn new() -> Self {
        Self::default()
    }

    /// The dialect that also parses `FOR SYSTEM_TIME AS OF <expr>` after a table
    /// name (Flink's lookup-join syntax). It is used only for statements that
    /// contain those words: sqlparser's table-versioning switch also turns on
    /// other databases' forms (`AT(...)`, `BEFORE(...)`, `CHANGES(...)`), which
    /// would take table aliases named `at` or `before` for version clauses.
    pub fn with_table_versioning(mut self) -> Self {
        self.table_versioning = true;
        self
    }
}

/// Forwards `fn name(&self) -> bool` to the wrapped generic dialect.
macro_rules! like_generic {
    ($($name:ident),* $(,)?) => {
        $(
            fn $name(&self) -> bool {
                self.generic.$name()
            }
        )*
    };
}

impl Dialect for WatershedDialect {
    /// Report the generic dialect's type, so that sqlparser's `dialect_of!(... |
    /// GenericDialect)` checks treat Watershed like the generic dialect.
    fn dialect(&self) -> TypeId {
        TypeId::of::<GenericDialect>()
    }

    /// Flink quotes identifiers with backticks; double quotes are accepted too.
    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        ch == '`' || ch == '"'
    }

    fn identifier_quote_style(&self, _identifier: &str) -> Option<char> {
        Some('`')
    }

    fn is_identifier_start(&self, ch: char) -> bool {
        ch.is_alphabetic() || ch == '_'
    }

    fn is_identifier_part(&self, ch: char) -> bool {
        ch.is_alphanumeric() || ch == '_' || ch == '$'
    }

    fn supports_table_versioning(&self) -> bool {
        self.table_versioning
    }

    fn parse_prefix(&self, parser: &mut Parser) -> Option<Result<Expr, ParserError>> {
        let [first, second] = parser.peek_tokens_ref::<2>();
        let is_table_keyword = matches!(
            &first.token,
            Token::Word(word) if word.keyword == Keyword::TABLE && word.quote_style.is_none()
        );
        let names_a_table = matches!(
            &second.token,
            Token::Word(word)
                if word.quote_style.is_some() || !RESERVED_FOR_COLUMN_ALIAS.contains(&word.keyword)
        );
        if is_table_keyword && names_a_table {
            Some(parse_table_argument(parser))
        } else {
            None
        }
    }

    like_generic!(
        supports_unicode_string_literal,
        supports_partition_by_after_order_by,
        supports_group_by_expr,
        supports_group_by_with_modifier,
        supports_left_associative_joins_without_parens,
        supports_match_recognize,
        supports_start_transaction_modifier,
        supports_window_function_null_treatment_arg,
        supports_window_clause_named_window_reference,
        supports_parenthesized_set_variables,
        allow_extract_custom,
        allow_extract_single_quotes,
        supports_extract_comma_syntax,
        supports_create_view_comment_syntax,
        supports_parens_around_table_factor,
        supports_values_as_table_factor,
        supports_explain_with_utility_options,
        supports_try_convert,
        supports_named_fn_args_with_assignment_operator,
        supports_filter_during_aggregation,
        supports_interval_options,
        supports_constraint_keyword_without_name,
    );
}

/// Parses `TABLE <name> [PARTITION BY <key> | PARTITION BY (<key>, ...)]` into the
/// marker function call. The caller has checked that `TABLE <name>` comes next.
fn parse_table_argument(parser: &mut Parser) -> Result<Expr, ParserError> {
    let table_token = parser.next_token();
    let name = parser.parse_object_name(false)?;
    let mut idents = Vec::with_capacity(name.0.len());
    for part in name.0 {
        match part {
            ObjectNamePart::Identifier(ident) => idents.push(ident),
            ObjectNamePart::Function(function) => {
                return Err(ParserError::ParserError(format!(
                    "Expected: a table name after TABLE, found: {}{}",
                    function.name, table_token.span.start
                )));
            }
        }
    }
    let table = match idents.len() {
        1 => idents.pop().map(Expr::Identifier),
        _ => Some(Expr::CompoundIdentifier(idents)),
    };
    let mut args: Vec<Expr> = table.into_iter().collect();
    if parser.parse_keywords(&[Keyword::PARTITION, Keyword::BY]) {
        if parser.consume_token(&Token::LParen) {
            args.extend(parser.parse_comma_separated(Parser::parse_expr)?);
            parser.expect_token(&Token::RParen)?;
        } else {
            args.push(parser.parse_expr()?);
        }
    }
    let mut function_name = Ident::new(TABLE_ARGUMENT_FUNCTION);
    function_name.span = table_token.span;
    Ok(Expr::Function(Function {
        name: ObjectName::from(vec![function_name]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|expr| FunctionArg::Unnamed(FunctionArgExpr::Expr(expr)))
                .collect(),
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::ast::{
        DateTimeField, Interval, SetExpr, Statement, TableFactor, Value,
    };

    fn parse_one(sql: &str) -> Statement {
        let dialect = WatershedDialect::new();
        let mut statements = Parser::parse_sql(&dialect, sql).expect("parses");
        assert_eq!(statements.len(), 1);
        statements.remove(0)
    }

    /// The `TABLE(<call>)` table factor of a `SELECT * FROM TABLE(...)` query.
    fn table_function(sql: &str) -> Function {
        let Statement::Query(query) = parse_one(sql) else {
            panic!("not a query: {sql}");
        };
        let SetExpr::Select(select) = *query.body else {
            panic!("not a select: {sql}");
        };
        let relation = &select.from[0].relation;
        let TableFactor::TableFunction { expr, .. } = relation else {
            panic!("not a table function: {relation:?}");
        };
        let Expr::Function(function) = expr else {
            panic!("not a function call: {expr:?}");
        };
        function.clone()
    }

    fn call_args(function: &Function) -> Vec<Expr> {
        let FunctionArguments::List(list) = &function.args else {
            panic!("no argument list: {function:?}");
        };
        list.args
            .iter()
            .map(|arg| match arg {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(expr)) => expr.clone(),
                other => panic!("unexpected argument {other:?}"),
            })
            .collect()
    }

    /// The table name and partition keys of a `TABLE t [PARTITION BY ...]` argument.
    fn table_argument(expr: &Expr) -> (String, Vec<String>) {
        let Expr::Function(function) = expr else {
            panic!("not the TABLE marker: {expr:?}");
        };
        assert_eq!(function.name.to_string(), TABLE_ARGUMENT_FUNCTION);
        let mut args = call_args(function).into_iter().map(|e| e.to_string());
        let table = args.next().expect("table name");
        (table, args.collect())
    }

    fn interval(expr: &Expr) -> (String, Option<DateTimeField>) {
        let Expr::Interval(Interval {
            value,
            leading_field,
            ..
        }) = expr
        else {
            panic!("not an interval: {expr:?}");
        };
        let Expr::Value(value) = value.as_ref() else {
            panic!("not a literal: {value:?}");
        };
        let Value::SingleQuotedString(text) = &value.value else {
            panic!("not a string: {value:?}");
        };
        (text.clone(), leading_field.clone())
    }

    #[test]
    fn tumble_with_table_argument() {
        let function = table_function(
            "SELECT * FROM TABLE(TUMBLE(TABLE payments, DESCRIPTOR(event_time), INTERVAL '1' MINUTES))",
        );
        assert_eq!(function.name.to_string(), "TUMBLE");
        let args = call_args(&function);
        assert_eq!(args.len(), 3);
        assert_eq!(table_argument(&args[0]), ("payments".to_string(), vec![]));
        assert!(matches!(&args[0], Expr::Function(f)
            if matches!(&f.args, FunctionArguments::List(l)
                if matches!(&l.args[0], FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Identifier(i))) if i.value == "payments"))));
        assert_eq!(args[1].to_string(), "DESCRIPTOR(event_time)");
        assert_eq!(
            interval(&args[2]),
            ("1".to_string(), Some(DateTimeField::Minutes))
        );
    }

    #[test]
    fn hop_has_four_arguments() {
        let function = table_function(
            "SELECT window_start, COUNT(*) FROM TABLE(HOP(TABLE payments, DESCRIPTOR(event_time), \
             INTERVAL '10' SECOND, INTERVAL '1' HOUR)) GROUP BY window_start",
        );
        assert_eq!(function.name.to_string(), "HOP");
        let args = call_args(&function);
        assert_eq!(args.len(), 4);
        assert_eq!(table_argument(&args[0]).0, "payments");
        assert_eq!(
            interval(&args[2]),
            ("10".to_string(), Some(DateTimeField::Second))
        );
        assert_eq!(
            interval(&args[3]),
            ("1".to_string(), Some(DateTimeField::Hour))
        );
    }

    #[test]
    fn cumulate_with_qualified_table() {
        let function = table_function(
            "SELECT * FROM TABLE(CUMULATE(TABLE db.payments, DESCRIPTOR(event_time), \
             INTERVAL '1' HOUR, INTERVAL '1' DAY)) AS w",
        );
        assert_eq!(function.name.to_string(), "CUMULATE");
        let args = call_args(&function);
        assert_eq!(args.len(), 4);
        let Expr::Function(table) = &args[0] else {
            panic!("no TABLE marker");
        };
        let table_args = call_args(table);
        assert!(matches!(&table_args[0], Expr::CompoundIdentifier(parts) if parts.len() == 2));
        assert_eq!(
            interval(&args[3]),
            ("1".to_string(), Some(DateTimeField::Day))
        );
    }

    #[test]
    fn session_with_partition_by() {
        let function = table_function(
            "SELECT * FROM TABLE(SESSION(TABLE payments PARTITION BY card_id, \
             DESCRIPTOR(event_time), INTERVAL '5' MINUTE))",
        );
        assert_eq!(function.name.to_string(), "SESSION");
        let args = call_args(&function);
        assert_eq!(args.len(), 3);
        assert_eq!(
            table_argument(&args[0]),
            ("payments".to_string(), vec!["card_id".to_string()])
        );
        assert_eq!(args[1].to_string(), "DESCRIPTOR(event_time)");

        let function = table_function(
            "SELECT * FROM TABLE(SESSION(TABLE `payments` PARTITION BY (card_id, `country`), \
             DESCRIPTOR(event_time), INTERVAL '5' MINUTES))",
        );
        let args = call_args(&function);
        let (table, keys) = table_argument(&args[0]);
        assert_eq!(table, "`payments`");
        assert_eq!(keys, vec!["card_id".to_string(), "`country`".to_string()]);
    }

    #[test]
    fn table_keyword_elsewhere_is_untouched() {
        // `FROM TABLE(...)` and a column named like a keyword still parse normally.
        parse_one("SELECT * FROM TABLE(my_udtf(1))");
        parse_one("SELECT `table` FROM t");
        // `TABLE` followed by a reserved word is not a table argument.
        let Statement::Query(query) = parse_one("SELECT TABLE FROM t") else {
            panic!("not a query");
        };
        assert_eq!(query.to_string(), "SELECT TABLE FROM t");
    }

    #[test]
    fn backticks_quote_identifiers() {
        let Statement::Query(query) = parse_one("SELECT `select`, `my col` FROM `my table`") else {
            panic!("not a query");
        };
        let SetExpr::Select(select) = *query.body else {
            panic!("not a select");
        };
        let TableFactor::Table { name, .. } = &select.from[0].relation else {
            panic!("not a table");
        };
        let ident = name.0[0].as_ident().expect("ident");
        assert_eq!(ident.value, "my table");
        assert_eq!(ident.quote_style, Some('`'));
    }

    #[test]
    fn plural_interval_units_parse() {
        for (sql, field) in [
            ("SELECT INTERVAL '1' MINUTES", DateTimeField::Minutes),
            ("SELECT INTERVAL '2' SECONDS", DateTimeField::Seconds),
            ("SELECT INTERVAL '3' HOURS", DateTimeField::Hours),
            ("SELECT INTERVAL '4' DAYS", DateTimeField::Days),
            ("SELECT INTERVAL '10' SECOND", DateTimeField::Second),
            ("SELECT INTERVAL '1' DAY", DateTimeField::Day),
        ] {
            let Statement::Query(query) = parse_one(sql) else {
                panic!("not a query");
            };
            let SetExpr::Select(select) = *query.body else {
                panic!("not a select");
            };
            let datafusion::sql::sqlparser::ast::SelectItem::UnnamedExpr(expr) =
                &select.projection[0]
            else {
                panic!("not an expression");
            };
            assert_eq!(interval(expr).1, Some(field), "{sql}");
        }
    }
}
