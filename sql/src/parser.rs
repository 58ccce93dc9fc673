//! Parsing Flink SQL scripts into Watershed statements.
//!
//! [`parse_script`] turns a script of `;`-separated statements into
//! [`Located`] [`Statement`]s, each with the line and column of its first token.
//!
//! How it works:
//!
//! 1. The whole script is tokenized once with [`WatershedDialect`] (so strings and
//!    comments are understood) and split at semicolons; empty statements are skipped.
//! 2. The leading keywords pick the statement kind:
//!    - `CREATE [TEMPORARY] TABLE` is parsed here, by a small hand-written parser that
//!      drives sqlparser's `Parser` for the pieces it already knows (identifiers,
//!      column types, column options, expressions). sqlparser cannot parse Flink's
//!      `WATERMARK FOR ... AS ...` entries, `PRIMARY KEY (...) NOT ENFORCED` or the
//!      `WITH ('k' = 'v')` option list as Flink means them.
//!    - `SET` and `EXPLAIN [PLAN FOR]` are handled at token level (quoted and dotted
//!      keys; `EXPLAIN` re-enters this dispatch with the rest of the tokens, so
//!      positions stay exact).
//!    - queries, `INSERT INTO` and `CREATE [TEMPORARY] VIEW` go to sqlparser's
//!      `parse_statement` and are converted.
//!    - every other statement kind is [`SqlError::Unsupported`], naming the kind.
//! 3. Anything left after a statement is a [`SqlError::Parse`] at that token.
//!
//! Identifiers are kept exactly as written (Flink is case-sensitive); quotes and
//! backticks are removed. Qualified names are joined with `.`.

use arrow::datatypes::DataType;
use datafusion::sql::sqlparser::ast::{
    self, ColumnOption, ObjectName, Query, TableObject, ViewColumnDef,
};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::{
    Location, Span, Token, TokenWithSpan, Tokenizer, Word,
};

use crate::dialect::WatershedDialect;
use crate::error::{Result, SqlError};
use crate::types::{sql_type_text, sql_type_to_arrow};

/// A parsed node and the position (1-based) of its first token in the script.
#[derive(Debug, Clone, PartialEq)]
pub struct Located<T> {
    /// The parsed node.
    pub node: T,
    /// 1-based line of the node's first token.
    pub line: u64,
    /// 1-based column of the node's first token.
    pub column: u64,
}

impl<T> Located<T> {
    /// Wraps `node` with the position `location`.
    pub fn new(node: T, location: Location) -> Self {
        Self {
            node,
            line: location.line,
            column: location.column,
        }
    }

    /// The position of the node's first token.
    pub fn location(&self) -> Location {
        Location {
            line: self.line,
            column: self.column,
        }
    }
}

/// One statement of a Watershed SQL script.
#[derive(Debug, Clone, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "statements are parsed once per script; matching by value keeps the API plain"
)]
pub enum Statement {
    /// `CREATE [TEMPORARY] TABLE [IF NOT EXISTS] name (...) [WITH (...)]`.
    CreateTable(CreateTable),
    /// `CREATE [TEMPORARY] VIEW [IF NOT EXISTS] name [(cols)] AS query`.
    CreateView(CreateView),
    /// `INSERT INTO name [(cols)] query`.
    Insert(Insert),
    /// A query (`SELECT`, `WITH`, `VALUES`, set operations).
    Query(Box<Query>),
    /// `EXPLAIN [PLAN FOR] <insert or query>`; the inner statement keeps its own
    /// position.
    Explain(Box<Located<Statement>>),
    /// `SET 'key' = 'value'` (also `SET a.b.c = value`, value quoted or bare).
    Set {
        /// The configuration key, without quotes.
        key: String,
        /// The value, without quotes.
        value: String,
    },
}

impl Statement {
    /// A short name of the statement kind, e.g. `CREATE TABLE`, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Statement::CreateTable(_) => "CREATE TABLE",
            Statement::CreateView(_) => "CREATE VIEW",
            Statement::Insert(_) => "INSERT",
            Statement::Query(_) => "query",
            Statement::Explain(_) => "EXPLAIN",
            Statement::Set { .. } => "SET",
        }
    }
}

/// A `CREATE TABLE` statement.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateTable {
    /// The table name as written (parts of a qualified name joined with `.`).
    pub name: String,
    /// Whether `IF NOT EXISTS` was given.
    pub if_not_exists: bool,
    /// The physical columns, in declaration order.
    pub columns: Vec<ColumnSpec>,
    /// The `WATERMARK FOR col AS expr` entry, if any.
    pub watermark: Option<WatermarkSpec>,
    /// The primary key columns (`PRIMARY KEY (...) NOT ENFORCED`), empty if none.
    pub primary_key: Vec<String>,
    /// The `WITH ('k' = 'v', ...)` options, in the order written.
    pub options: Vec<(String, String)>,
}

impl CreateTable {
    /// The value of option `key`, if given.
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A physical column of a `CREATE TABLE`.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnSpec {
    /// The column name as written.
    pub name: String,
    /// The type as written, upper-cased and normalized, e.g. `DECIMAL(18, 2)`.
    pub sql_type: String,
    /// The Arrow type the column is stored as.
    pub data_type: DataType,
    /// `false` for `NOT NULL` columns and primary key columns.
    pub nullable: bool,
}

/// A `WATERMARK FOR column AS expr` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct WatermarkSpec {
    /// The event-time column.
    pub column: String,
    /// The watermark expression, e.g. `event_time - INTERVAL '5' SECOND`.
    pub expr: ast::Expr,
}

/// A `CREATE VIEW` statement.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateView {
    /// The view name as written.
    pub name: String,
    /// Whether `IF NOT EXISTS` was given.
    pub if_not_exists: bool,
    /// Column names given after the view name, empty if none.
    pub columns: Vec<String>,
    /// The view's query.
    pub query: Box<Query>,
}

/// An `INSERT INTO` statement.
#[derive(Debug, Clone, PartialEq)]
pub struct Insert {
    /// The target table name as written.
    pub table: String,
    /// The target columns, empty when not given.
    pub columns: Vec<String>,
    /// The query producing the rows.
    pub query: Box<Query>,
}

/// Parses a script of `;`-separated statements.
///
/// Empty statements (only whitespace and comments) are skipped. The first error stops
/// parsing and is returned with its position.
pub fn parse_script(sql: &str) -> Result<Vec<Located<Statement>>> {
    let dialect = WatershedDialect::new();
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .map_err(SqlError::from_tokenizer_error)?;
    let end_of_script = tokens
        .last()
        .map(|token| token.span.end)
        .unwrap_or(Location { line: 1, column: 1 });

    let mut statements = Vec::new();
    let mut current = Vec::new();
    for token in tokens {
        if token.token == Token::SemiColon {
            let end = token.span.start;
            parse_piece(&dialect, std::mem::take(&mut current), end, &mut statements)?;
        } else {
            current.push(token);
        }
    }
    parse_piece(&dialect, current, end_of_script, &mut statements)?;
    Ok(statements)
}

/// Parses the tokens of one statement (without the `;`), unless they are empty.
fn parse_piece(
    dialect: &WatershedDialect,
    mut tokens: Vec<TokenWithSpan>,
    end: Location,
    out: &mut Vec<Located<Statement>>,
) -> Result<()> {
    if tokens.iter().all(|t| is_whitespace(&t.token)) {
        return Ok(());
    }
    tokens.push(TokenWithSpan::new(Token::EOF, Span::new(end, end)));
    out.push(parse_statement(dialect, tokens)?);
    Ok(())
}

fn is_whitespace(token: &Token) -> bool {
    matches!(token, Token::Whitespace(_))
}

/// The tokens of one statement, ending with `Token::EOF`, and the indexes of the
/// tokens that are not whitespace or comments.
struct StatementTokens {
    tokens: Vec<TokenWithSpan>,
    significant: Vec<usize>,
}

impl StatementTokens {
    fn new(tokens: Vec<TokenWithSpan>) -> Self {
        let significant = tokens
            .iter()
            .enumerate()
            .filter(|(_, t)| !is_whitespace(&t.token))
            .map(|(i, _)| i)
            .collect();
        Self {
            tokens,
            significant,
        }
    }

    /// The `n`th significant token (EOF past the end).
    fn nth(&self, n: usize) -> &TokenWithSpan {
        static EOF: TokenWithSpan = TokenWithSpan {
            token: Token::EOF,
            span: Span {
                start: Location { line: 0, column: 0 },
                end: Location { line: 0, column: 0 },
            },
        };
        self.significant
            .get(n)
            .and_then(|&i| self.tokens.get(i))
            .unwrap_or(&EOF)
    }

    /// The `n`th significant token as an unquoted word.
    fn word(&self, n: usize) -> Option<&Word> {
        match &self.nth(n).token {
            Token::Word(word) if word.quote_style.is_none() => Some(word),
            _ => None,
        }
    }

    /// The keyword of the `n`th significant token (`NoKeyword` if it is none).
    fn keyword(&self, n: usize) -> Keyword {
        self.word(n).map_or(Keyword::NoKeyword, |w| w.keyword)
    }

    /// The upper-cased text of the `n`th significant token if it is an unquoted word.
    fn upper(&self, n: usize) -> Option<String> {
        self.word(n).map(|w| w.value.to_uppercase())
    }

    fn location(&self, n: usize) -> Location {
        self.nth(n).span.start
    }

    /// True when the statement contains `FOR SYSTEM_TIME AS OF` (a lookup join).
    fn has_system_time(&self) -> bool {
        const WORDS: [Keyword; 4] = [Keyword::FOR, Keyword::SYSTEM_TIME, Keyword::AS, Keyword::OF];
        (0..self.significant.len()).any(|n| {
            WORDS
                .iter()
                .enumerate()
                .all(|(i, &k)| self.keyword(n + i) == k)
        })
    }

    /// The tokens from the `n`th significant token to the end (including EOF).
    fn tail(&self, n: usize) -> Vec<TokenWithSpan> {
        match self.significant.get(n) {
            Some(&i) => self.tokens[i..].to_vec(),
            None => Vec::new(),
        }
    }
}

/// Statement keywords Watershed recognizes but does not support.
const UNSUPPORTED_STATEMENTS: &[Keyword] = &[
    Keyword::DROP,
    Keyword::ALTER,
    Keyword::SHOW,
    Keyword::DESCRIBE,
    Keyword::DESC,
    Keyword::USE,
    Keyword::LOAD,
    Keyword::UNLOAD,
    Keyword::RESET,
    Keyword::ADD,
    Keyword::REMOVE,
    Keyword::EXECUTE,
    Keyword::BEGIN,
    Keyword::END,
    Keyword::DELETE,
    Keyword::UPDATE,
    Keyword::TRUNCATE,
    Keyword::ANALYZE,
    Keyword::CALL,
    Keyword::MERGE,
    Keyword::GRANT,
    Keyword::REVOKE,
    Keyword::COMMIT,
    Keyword::ROLLBACK,
    Keyword::START,
    Keyword::COPY,
    Keyword::REPLACE,
];

/// Words between `CREATE`/`DROP`/`ALTER` and the object kind.
const OBJECT_KIND_MODIFIERS: &[&str] = &[
    "OR",
    "REPLACE",
    "TEMPORARY",
    "TEMP",
    "SYSTEM",
    "MATERIALIZED",
];

/// Explain details Flink accepts after `EXPLAIN`, which Watershed does not support.
const EXPLAIN_DETAILS: &[&str] = &[
    "ESTIMATED_COST",
    "CHANGELOG_MODE",
    "PLAN_ADVICE",
    "JSON_EXECUTION_PLAN",
];

/// Parses one statement; `tokens` ends with EOF and has a significant token before it.
fn parse_statement(
    dialect: &WatershedDialect,
    tokens: Vec<TokenWithSpan>,
) -> Result<Located<Statement>> {
    let st = StatementTokens::new(tokens);
    let start = st.location(0);
    let node = match st.keyword(0) {
        Keyword::CREATE => {
            let mut i = 1;
            if st.keyword(i) == Keyword::TEMPORARY {
                i += 1;
            }
            match st.keyword(i) {
                Keyword::TABLE => Statement::CreateTable(parse_create_table(dialect, st.tokens)?),
                Keyword::VIEW => parse_with_sqlparser(dialect, &st)?,
                _ => return Err(unsupported_statement(&st)),
            }
        }
        Keyword::INSERT | Keyword::SELECT | Keyword::WITH | Keyword::VALUES => {
            parse_with_sqlparser(dialect, &st)?
        }
        Keyword::EXPLAIN => parse_explain(dialect, &st)?,
        Keyword::SET => parse_set(&st)?,
        keyword if UNSUPPORTED_STATEMENTS.contains(&keyword) => {
            return Err(unsupported_statement(&st));
        }
        _ if st.nth(0).token == Token::LParen => parse_with_sqlparser(dialect, &st)?,
        _ => {
            return Err(SqlError::parse_at(
                format!(
                    "Expected: a statement (CREATE TABLE, CREATE VIEW, INSERT INTO, SELECT, \
                     EXPLAIN or SET), found: {}",
                    st.nth(0).token
                ),
                start,
            ));
        }
    };
    Ok(Located::new(node, start))
}

/// The error for a statement kind Watershed does not support, e.g. `DROP TABLE
/// statements`. A misspelled object kind (`CREATE TABL`) is a parse error instead.
fn unsupported_statement(st: &StatementTokens) -> SqlError {
    let start = st.location(0);
    let first = st.upper(0).unwrap_or_default();
    if matches!(first.as_str(), "EXECUTE" | "BEGIN")
        && st.keyword(1) == Keyword::STATEMENT
        && st.keyword(2) == Keyword::SET
    {
        return SqlError::unsupported_at(
            "STATEMENT SET blocks (write each INSERT INTO as its own statement)",
            start,
        );
    }
    let mut kind = first.clone();
    if matches!(first.as_str(), "CREATE" | "DROP" | "ALTER" | "SHOW") {
        let mut n = 1;
        loop {
            let Some(word) = st.word(n) else {
                return SqlError::parse_at(
                    format!(
                        "Expected: an object kind after {first}, found: {}",
                        st.nth(n).token
                    ),
                    st.location(n),
                );
            };
            let upper = word.value.to_uppercase();
            if !OBJECT_KIND_MODIFIERS.contains(&upper.as_str())
                && word.keyword == Keyword::NoKeyword
            {
                return SqlError::parse_at(
                    format!(
                        "Expected: an object kind after {first}, found: {}",
                        word.value
                    ),
                    st.location(n),
                );
            }
            kind.push(' ');
            kind.push_str(&upper);
            if !OBJECT_KIND_MODIFIERS.contains(&upper.as_str()) {
                break;
            }
            n += 1;
        }
    }
    SqlError::unsupported_at(format!("{kind} statements"), start)
}

/// Runs sqlparser on the statement and converts the result.
fn parse_with_sqlparser(dialect: &WatershedDialect, st: &StatementTokens) -> Result<Statement> {
    let start = st.location(0);
    let dialect = if st.has_system_time() {
        dialect.with_table_versioning()
    } else {
        *dialect
    };
    let mut parser = Parser::new(&dialect).with_tokens_with_locations(st.tokens.clone());
    let statement = parser
        .parse_statement()
        .map_err(|e| parser_error(e, &parser))?;
    expect_end(&parser)?;
    match statement {
        ast::Statement::Query(query) => Ok(Statement::Query(query)),
        ast::Statement::Insert(insert) => convert_insert(insert, start),
        ast::Statement::CreateView(view) => convert_view(view, start),
        _ => Err(unsupported_statement(st)),
    }
}

/// Converts a parse error, using the parser's current token as the fallback position.
fn parser_error(error: ParserError, parser: &Parser) -> SqlError {
    SqlError::from_parser_error(error, parser.peek_token_ref().span.start)
}

/// Fails unless the parser has consumed the whole statement.
fn expect_end(parser: &Parser) -> Result<()> {
    let next = parser.peek_token_ref();
    if next.token == Token::EOF {
        Ok(())
    } else {
        Err(SqlError::parse_at(
            format!("Expected: end of statement, found: {}", next.token),
            next.span.start,
        ))
    }
}

fn convert_insert(insert: ast::Insert, start: Location) -> Result<Statement> {
    let unsupported = |feature: &str| Err(SqlError::unsupported_at(feature, start));
    if insert.overwrite {
        return unsupported("INSERT OVERWRITE");
    }
    if insert.partitioned.is_some() || !insert.after_columns.is_empty() {
        return unsupported("INSERT with a PARTITION clause");
    }
    if insert.on.is_some() {
        return unsupported("INSERT ... ON CONFLICT / ON DUPLICATE KEY");
    }
    if insert.returning.is_some() || insert.output.is_some() {
        return unsupported("INSERT ... RETURNING");
    }
    if insert.or.is_some()
        || insert.ignore
        || insert.replace_into
        || insert.priority.is_some()
        || insert.table_alias.is_some()
        || insert.insert_alias.is_some()
        || insert.settings.is_some()
        || insert.format_clause.is_some()
        || !insert.assignments.is_empty()
        || insert.multi_table_insert_type.is_some()
    {
        return unsupported("this form of INSERT (use INSERT INTO table [(columns)] query)");
    }
    let table = match &insert.table {
        TableObject::TableName(name) => object_name(name),
        _ => return unsupported("INSERT INTO a table function"),
    };
    let Some(query) = insert.source else {
        return unsupported("INSERT without a query");
    };
    Ok(Statement::Insert(Insert {
        table,
        columns: insert.columns.iter().map(object_name).collect(),
        query,
    }))
}

fn convert_view(view: ast::CreateView, start: Location) -> Result<Statement> {
    let unsupported = |feature: &str| Err(SqlError::unsupported_at(feature, start));
    if view.or_replace || view.or_alter {
        return unsupported("CREATE OR REPLACE VIEW");
    }
    if view.materialized {
        return unsupported("CREATE MATERIALIZED VIEW");
    }
    if view.to.is_some() || view.params.is_some() || view.secure {
        return unsupported("this form of CREATE VIEW");
    }
    let mut columns = Vec::with_capacity(view.columns.len());
    for ViewColumnDef {
        name, data_type, ..
    } in view.columns
    {
        if data_type.is_some() {
            return Err(SqlError::unsupported_at(
                "column types in a CREATE VIEW column list",
                name.span.start,
            ));
        }
        columns.push(name.value);
    }
    Ok(Statement::CreateView(CreateView {
        name: object_name(&view.name),
        if_not_exists: view.if_not_exists,
        columns,
        query: view.query,
    }))
}

/// `EXPLAIN [PLAN FOR] <statement>`: the inner statement is parsed on its own tokens.
fn parse_explain(dialect: &WatershedDialect, st: &StatementTokens) -> Result<Statement> {
    let mut n = 1;
    if st.keyword(1) == Keyword::PLAN && st.keyword(2) == Keyword::FOR {
        n = 3;
    } else if let Some(detail) = st.upper(1)
        && EXPLAIN_DETAILS.contains(&detail.as_str())
    {
        return Err(SqlError::unsupported_at(
            format!("EXPLAIN {detail}"),
            st.location(1),
        ));
    }
    if st.nth(n).token == Token::EOF {
        return Err(SqlError::parse_at(
            "Expected: a query or INSERT after EXPLAIN, found: EOF",
            st.location(n),
        ));
    }
    let inner = parse_statement(dialect, st.tail(n))?;
    match inner.node {
        Statement::Query(_) | Statement::Insert(_) => Ok(Statement::Explain(Box::new(inner))),
        ref other => Err(SqlError::unsupported_at(
            format!("EXPLAIN of {} statements", other.kind()),
            inner.location(),
        )),
    }
}

/// `SET 'key' = 'value'`, `SET a.b.c = value`. Keys and values may be quoted or bare.
fn parse_set(st: &StatementTokens) -> Result<Statement> {
    if st.nth(1).token == Token::EOF {
        return Err(SqlError::unsupported_at(
            "SET without a key (listing all properties)",
            st.location(0),
        ));
    }
    // The key is one quoted string, or bare tokens written without whitespace
    // between them (table.exec.mini-batch.enabled); `=` must follow it.
    let (key, eq) = if let Some(text) = quoted_string(&st.nth(1).token) {
        (text, 2)
    } else {
        let mut n = 1;
        while !matches!(st.nth(n).token, Token::Eq | Token::EOF) {
            n += 1;
            let adjacent = st
                .significant
                .get(n)
                .is_some_and(|&i| i == st.significant[n - 1] + 1);
            if !adjacent {
                break;
            }
        }
        if n == 1 {
            return Err(SqlError::parse_at(
                format!("Expected: a configuration key, found: {}", st.nth(1).token),
                st.location(1),
            ));
        }
        let from = st.significant[1];
        let to = st.significant[n - 1] + 1;
        let key = st.tokens[from..to]
            .iter()
            .map(|t| bare_text(&t.token))
            .collect();
        (key, n)
    };
    if st.nth(eq).token != Token::Eq {
        return Err(SqlError::parse_at(
            format!("Expected: =, found: {}", st.nth(eq).token),
            st.location(eq),
        ));
    }

    let value_start = eq + 1;
    let end = st.significant.len().saturating_sub(1); // index of EOF
    if value_start >= end {
        return Err(SqlError::parse_at(
            "Expected: a value after =, found: EOF",
            st.location(value_start),
        ));
    }
    let value = if let Some(text) = quoted_string(&st.nth(value_start).token) {
        if value_start + 1 != end {
            return Err(SqlError::parse_at(
                format!(
                    "Expected: end of statement, found: {}",
                    st.nth(value_start + 1).token
                ),
                st.location(value_start + 1),
            ));
        }
        text
    } else {
        let from = st.significant[value_start];
        let to = st.significant[end];
        let mut text = String::new();
        for token in &st.tokens[from..to] {
            match &token.token {
                Token::Whitespace(ws) => {
                    if matches!(
                        ws,
                        datafusion::sql::sqlparser::tokenizer::Whitespace::Space
                            | datafusion::sql::sqlparser::tokenizer::Whitespace::Tab
                            | datafusion::sql::sqlparser::tokenizer::Whitespace::Newline
                    ) && !text.ends_with(' ')
                    {
                        text.push(' ');
                    }
                }
                other => text.push_str(&bare_text(other)),
            }
        }
        text.trim().to_string()
    };
    Ok(Statement::Set { key, value })
}

/// The text of a single- or double-quoted string token.
fn quoted_string(token: &Token) -> Option<String> {
    match token {
        Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) => Some(s.clone()),
        Token::Word(w) if w.quote_style.is_some() => Some(w.value.clone()),
        _ => None,
    }
}

/// A token's text in a bare `SET` key or value (words without their quotes).
fn bare_text(token: &Token) -> String {
    match token {
        Token::Word(w) => w.value.clone(),
        other => other.to_string(),
    }
}

/// Joins the parts of a possibly qualified name with `.`, without quotes.
fn object_name(name: &ObjectName) -> String {
    name.0
        .iter()
        .map(|part| match part.as_ident() {
            Some(ident) => ident.value.clone(),
            None => part.to_string(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

fn parse_create_table(
    dialect: &WatershedDialect,
    tokens: Vec<TokenWithSpan>,
) -> Result<CreateTable> {
    let parser = Parser::new(dialect).with_tokens_with_locations(tokens);
    TableParser { parser }.parse()
}

/// The hand-written `CREATE TABLE` parser, driving sqlparser's [`Parser`].
struct TableParser<'a> {
    parser: Parser<'a>,
}

impl TableParser<'_> {
    /// Runs a sqlparser step, converting its error.
    fn run<T>(
        &mut self,
        step: impl FnOnce(&mut Parser) -> std::result::Result<T, ParserError>,
    ) -> Result<T> {
        match step(&mut self.parser) {
            Ok(value) => Ok(value),
            Err(error) => Err(parser_error(error, &self.parser)),
        }
    }

    fn location(&self) -> Location {
        self.parser.peek_token_ref().span.start
    }

    /// Whether the next token is the unquoted word `word` (case-insensitive).
    fn peek_word(&self, n: usize, word: &str) -> bool {
        matches!(
            &self.parser.peek_nth_token_ref(n).token,
            Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word)
        )
    }

    fn expected<T>(&self, what: &str) -> Result<T> {
        let next = self.parser.peek_token_ref();
        Err(SqlError::parse_at(
            format!("Expected: {what}, found: {}", next.token),
            next.span.start,
        ))
    }

    fn parse(mut self) -> Result<CreateTable> {
        self.run(|p| p.expect_keyword_is(Keyword::CREATE))?;
        // Temporary tables are ordinary tables: the catalog lives as long as the session.
        let _temporary = self.parser.parse_keyword(Keyword::TEMPORARY);
        self.run(|p| p.expect_keyword_is(Keyword::TABLE))?;
        let if_not_exists =
            self.parser
                .parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
        let name = self.run(|p| p.parse_object_name(false))?;
        let name = object_name(&name);
        if self.parser.peek_keyword(Keyword::AS) {
            return Err(SqlError::unsupported_at(
                "CREATE TABLE ... AS SELECT",
                self.location(),
            ));
        }
        if self.parser.peek_keyword(Keyword::LIKE) {
            return Err(SqlError::unsupported_at(
                "CREATE TABLE ... LIKE",
                self.location(),
            ));
        }
        self.run(|p| p.expect_token(&Token::LParen))?;

        let mut table = CreateTable {
            name,
            if_not_exists,
            columns: Vec::new(),
            watermark: None,
            primary_key: Vec::new(),
            options: Vec::new(),
        };
        // Where each named column was declared, for error positions.
        let mut watermark_at = None;
        let mut primary_key_at = Vec::new();
        loop {
            let element_at = self.location();
            if self.peek_word(0, "WATERMARK") && self.peek_word(1, "FOR") {
                self.parser.next_token();
                self.parser.next_token();
                if table.watermark.is_some() {
                    return Err(SqlError::unsupported_at(
                        "more than one WATERMARK definition",
                        element_at,
                    ));
                }
                let column_at = self.location();
                let column = self.run(|p| p.parse_identifier())?;
                self.run(|p| p.expect_keyword_is(Keyword::AS))?;
                let expr = self.run(|p| p.parse_expr())?;
                watermark_at = Some(column_at);
                table.watermark = Some(WatermarkSpec {
                    column: column.value,
                    expr,
                });
            } else if self.parser.peek_keyword(Keyword::CONSTRAINT)
                || (self.parser.peek_keyword(Keyword::PRIMARY) && self.peek_word(1, "KEY"))
            {
                if self.parser.parse_keyword(Keyword::CONSTRAINT) {
                    self.run(|p| p.parse_identifier())?;
                }
                if !self.parser.peek_keyword(Keyword::PRIMARY) {
                    let what = self
                        .parser
                        .peek_token_ref()
                        .token
                        .to_string()
                        .to_uppercase();
                    return Err(SqlError::unsupported_at(
                        format!("{what} constraints (only PRIMARY KEY ... NOT ENFORCED)"),
                        self.location(),
                    ));
                }
                self.run(|p| p.expect_keywords(&[Keyword::PRIMARY, Keyword::KEY]))?;
                if !table.primary_key.is_empty() {
                    return Err(SqlError::parse_at(
                        "a table can have only one PRIMARY KEY",
                        element_at,
                    ));
                }
                self.run(|p| p.expect_token(&Token::LParen))?;
                let columns = self.run(|p| p.parse_comma_separated(Parser::parse_identifier))?;
                self.run(|p| p.expect_token(&Token::RParen))?;
                self.parse_not_enforced()?;
                for column in columns {
                    primary_key_at.push(column.span.start);
                    table.primary_key.push(column.value);
                }
            } else if (self.parser.peek_keyword(Keyword::UNIQUE)
                || self.parser.peek_keyword(Keyword::CHECK)
                || self.parser.peek_keyword(Keyword::FOREIGN))
                && (self.parser.peek_nth_token_ref(1).token == Token::LParen
                    || self.peek_word(1, "KEY"))
            {
                let what = self
                    .parser
                    .peek_token_ref()
                    .token
                    .to_string()
                    .to_uppercase();
                return Err(SqlError::unsupported_at(
                    format!("{what} constraints (only PRIMARY KEY ... NOT ENFORCED)"),
                    element_at,
                ));
            } else {
                let column = self.parse_column(&mut table.primary_key, &mut primary_key_at)?;
                if table.columns.iter().any(|c| c.name == column.name) {
                    return Err(SqlError::parse_at(
                        format!("duplicate column name `{}`", column.name),
                        element_at,
                    ));
                }
                table.columns.push(column);
            }

            if self.parser.consume_token(&Token::Comma) {
                continue;
            }
            if self.parser.consume_token(&Token::RParen) {
                break;
            }
            return self.expected(", or )");
        }

        if self.parser.parse_keyword(Keyword::COMMENT) {
            self.run(|p| p.parse_literal_string())?;
        }
        if self.parser.peek_keyword(Keyword::PARTITIONED) {
            return Err(SqlError::unsupported_at(
                "PARTITIONED BY tables",
                self.location(),
            ));
        }
        if self.peek_word(0, "DISTRIBUTED") {
            return Err(SqlError::unsupported_at(
                "DISTRIBUTED BY tables",
                self.location(),
            ));
        }
        if self.parser.parse_keyword(Keyword::WITH) {
            table.options = self.parse_options()?;
        }
        if self.parser.peek_keyword(Keyword::LIKE) {
            return Err(SqlError::unsupported_at(
                "CREATE TABLE ... LIKE",
                self.location(),
            ));
        }
        if self.parser.peek_keyword(Keyword::AS) {
            return Err(SqlError::unsupported_at(
                "CREATE TABLE ... AS SELECT",
                self.location(),
            ));
        }
        expect_end(&self.parser)?;

        check_columns(&mut table, watermark_at, &primary_key_at)?;
        Ok(table)
    }

    /// A physical column: `name type [NOT NULL | NULL | COMMENT '...' | PRIMARY KEY
    /// NOT ENFORCED]...`.
    fn parse_column(
        &mut self,
        primary_key: &mut Vec<String>,
        primary_key_at: &mut Vec<Location>,
    ) -> Result<ColumnSpec> {
        let name_at = self.location();
        let name = self.run(|p| p.parse_identifier())?;
        if self.parser.peek_keyword(Keyword::AS) {
            return Err(SqlError::unsupported_at(
                format!("computed columns (`{} AS <expression>`)", name.value),
                name_at,
            ));
        }
        let type_at = self.location();
        let sql_type = self.parse_column_type()?;
        let data_type = sql_type_to_arrow(&sql_type)
            .map_err(|reason| SqlError::unsupported_at(reason, type_at))?;
        let mut nullable = true;
        loop {
            let option_at = self.location();
            if self.peek_word(0, "METADATA") {
                return Err(SqlError::unsupported_at(
                    format!("metadata columns (`{} ... METADATA`)", name.value),
                    option_at,
                ));
            }
            let Some(option) = self.run(|p| p.parse_optional_column_option())? else {
                break;
            };
            match option {
                ColumnOption::NotNull => nullable = false,
                ColumnOption::Null => nullable = true,
                ColumnOption::Comment(_) => {}
                ColumnOption::PrimaryKey(constraint) => {
                    check_not_enforced(
                        constraint.characteristics.and_then(|c| c.enforced),
                        option_at,
                    )?;
                    if !primary_key.is_empty() {
                        return Err(SqlError::parse_at(
                            "a table can have only one PRIMARY KEY",
                            option_at,
                        ));
                    }
                    primary_key.push(name.value.clone());
                    primary_key_at.push(name_at);
                }
                other => {
                    return Err(SqlError::unsupported_at(
                        format!("column option {other}"),
                        option_at,
                    ));
                }
            }
        }
        Ok(ColumnSpec {
            name: name.value,
            sql_type: sql_type_text(&sql_type),
            data_type,
            nullable,
        })
    }

    /// A column type. Adds Flink's `TIMESTAMP[(p)] WITH LOCAL TIME ZONE`, which
    /// sqlparser does not know, as `TIMESTAMP_LTZ[(p)]`.
    fn parse_column_type(&mut self) -> Result<ast::DataType> {
        if self.parser.peek_keyword(Keyword::TIMESTAMP) {
            let after_precision = if self.parser.peek_nth_token_ref(1).token == Token::LParen {
                4
            } else {
                1
            };
            if self.peek_word(after_precision, "WITH")
                && self.peek_word(after_precision + 1, "LOCAL")
            {
                self.parser.next_token();
                let precision = self.run(|p| p.parse_optional_precision())?;
                self.run(|p| {
                    p.expect_keywords(&[
                        Keyword::WITH,
                        Keyword::LOCAL,
                        Keyword::TIME,
                        Keyword::ZONE,
                    ])
                })?;
                return Ok(ast::DataType::Custom(
                    ObjectName::from(vec![ast::Ident::new("TIMESTAMP_LTZ")]),
                    precision.map(|p| p.to_string()).into_iter().collect(),
                ));
            }
        }
        self.run(|p| p.parse_data_type())
    }

    /// The optional `NOT ENFORCED` after a table-level primary key.
    fn parse_not_enforced(&mut self) -> Result<()> {
        let at = self.location();
        let enforced = if self
            .parser
            .parse_keywords(&[Keyword::NOT, Keyword::ENFORCED])
        {
            Some(false)
        } else if self.parser.parse_keyword(Keyword::ENFORCED) {
            Some(true)
        } else {
            None
        };
        check_not_enforced(enforced, at)
    }

    /// `('key' = 'value', ...)` after `WITH`, in order, keys unique.
    fn parse_options(&mut self) -> Result<Vec<(String, String)>> {
        self.run(|p| p.expect_token(&Token::LParen))?;
        let mut options: Vec<(String, String)> = Vec::new();
        if self.parser.consume_token(&Token::RParen) {
            return Ok(options);
        }
        loop {
            let key_at = self.location();
            let Some(key) = self.string_literal() else {
                return self.expected("a quoted option key such as 'connector'");
            };
            self.run(|p| p.expect_token(&Token::Eq))?;
            let Some(value) = self.string_literal() else {
                return self.expected("a quoted option value");
            };
            if options.iter().any(|(k, _)| *k == key) {
                return Err(SqlError::parse_at(
                    format!("option '{key}' is given twice"),
                    key_at,
                ));
            }
            options.push((key, value));
            if self.parser.consume_token(&Token::Comma) {
                continue;
            }
            if self.parser.consume_token(&Token::RParen) {
                return Ok(options);
            }
            return self.expected(", or )");
        }
    }

    /// Consumes a single-quoted string literal, if one comes next.
    fn string_literal(&mut self) -> Option<String> {
        match &self.parser.peek_token_ref().token {
            Token::SingleQuotedString(text) => {
                let text = text.clone();
                self.parser.next_token();
                Some(text)
            }
            _ => None,
        }
    }
}

/// Flink requires `NOT ENFORCED` semantics for primary keys; `ENFORCED` is rejected.
fn check_not_enforced(enforced: Option<bool>, at: Location) -> Result<()> {
    if enforced == Some(true) {
        Err(SqlError::unsupported_at(
            "ENFORCED primary keys (write PRIMARY KEY (...) NOT ENFORCED)",
            at,
        ))
    } else {
        Ok(())
    }
}

/// Checks that the watermark and primary key name existing columns, that the
/// watermark column is a timestamp, and makes primary key columns NOT NULL (as Flink
/// does).
fn check_columns(
    table: &mut CreateTable,
    watermark_at: Option<Location>,
    primary_key_at: &[Location],
) -> Result<()> {
    if let (Some(watermark), Some(at)) = (&table.watermark, watermark_at) {
        let Some(column) = table.columns.iter().find(|c| c.name == watermark.column) else {
            return Err(SqlError::parse_at(
                format!(
                    "WATERMARK column `{}` is not a column of table `{}`",
                    watermark.column, table.name
                ),
                at,
            ));
        };
        if !matches!(column.data_type, DataType::Timestamp(..)) {
            return Err(SqlError::parse_at(
                format!(
                    "WATERMARK column `{}` must be TIMESTAMP(3) or TIMESTAMP_LTZ(3), not {}",
                    column.name, column.sql_type
                ),
                at,
            ));
        }
    }
    for (key, at) in table.primary_key.iter().zip(primary_key_at) {
        match table.columns.iter_mut().find(|c| c.name == *key) {
            Some(column) => column.nullable = false,
            None => {
                return Err(SqlError::parse_at(
                    format!(
                        "PRIMARY KEY column `{key}` is not a column of table `{}`",
                        table.name
                    ),
                    *at,
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::TimeUnit;
    use datafusion::sql::sqlparser::ast::{Expr, SetExpr, TableFactor};

    const SCRIPT: &str = "\
CREATE TABLE payments (
  txn_id BIGINT, event_time TIMESTAMP(3), card_id BIGINT, account_id BIGINT,
  merchant_id BIGINT, mcc STRING, country STRING, amount DECIMAL(18, 2),
  currency STRING, status STRING,
  WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND
) WITH ('connector' = 'filesystem', 'path' = 'data/payments.csv', 'format' = 'csv');

CREATE TABLE card_minute (
  window_start TIMESTAMP(3), window_end TIMESTAMP(3), card_id BIGINT,
  txns BIGINT, total DECIMAL(38, 2), max_amount DECIMAL(18, 2)
) WITH ('connector' = 'filesystem', 'path' = 'out/card_minute', 'format' = 'csv');

INSERT INTO card_minute
SELECT window_start, window_end, card_id, COUNT(*), SUM(amount), MAX(amount)
FROM TABLE(TUMBLE(TABLE payments, DESCRIPTOR(event_time), INTERVAL '1' MINUTES))
GROUP BY window_start, window_end, card_id;
";

    fn parse_one(sql: &str) -> Located<Statement> {
        let mut statements = parse_script(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        assert_eq!(statements.len(), 1, "{sql}");
        statements.remove(0)
    }

    fn parse_error(sql: &str) -> SqlError {
        match parse_script(sql) {
            Ok(statements) => panic!("expected an error for {sql}, got {statements:?}"),
            Err(error) => error,
        }
    }

    fn create_table(sql: &str) -> CreateTable {
        match parse_one(sql).node {
            Statement::CreateTable(table) => table,
            other => panic!("not CREATE TABLE: {other:?}"),
        }
    }

    fn assert_parse_error(error: &SqlError, line: u64, column: u64, contains: &str) {
        match error {
            SqlError::Parse {
                message,
                line: l,
                column: c,
            } => {
                assert_eq!((*l, *c), (line, column), "{error}");
                assert!(message.contains(contains), "{error}");
            }
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    fn assert_unsupported(error: &SqlError, line: u64, column: u64, contains: &str) {
        match error {
            SqlError::Unsupported {
                feature,
                line: l,
                column: c,
            } => {
                assert_eq!((*l, *c), (line, column), "{error}");
                assert!(feature.contains(contains), "{error}");
            }
            other => panic!("expected an unsupported error, got {other:?}"),
        }
    }

    #[test]
    fn payments_script() {
        let statements = parse_script(SCRIPT).expect("parses");
        assert_eq!(statements.len(), 3);
        assert_eq!((statements[0].line, statements[0].column), (1, 1));
        assert_eq!((statements[1].line, statements[1].column), (8, 1));
        assert_eq!((statements[2].line, statements[2].column), (13, 1));

        let Statement::CreateTable(payments) = &statements[0].node else {
            panic!("not CREATE TABLE");
        };
        assert_eq!(payments.name, "payments");
        assert!(!payments.if_not_exists);
        let names: Vec<&str> = payments.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "txn_id",
                "event_time",
                "card_id",
                "account_id",
                "merchant_id",
                "mcc",
                "country",
                "amount",
                "currency",
                "status"
            ]
        );
        let column = |name: &str| {
            payments
                .columns
                .iter()
                .find(|c| c.name == name)
                .unwrap_or_else(|| panic!("no column {name}"))
        };
        assert_eq!(column("txn_id").data_type, DataType::Int64);
        assert_eq!(column("txn_id").sql_type, "BIGINT");
        assert_eq!(
            column("event_time").data_type,
            DataType::Timestamp(TimeUnit::Millisecond, None)
        );
        assert_eq!(column("event_time").sql_type, "TIMESTAMP(3)");
        assert_eq!(column("mcc").data_type, DataType::Utf8);
        assert_eq!(column("amount").data_type, DataType::Decimal128(18, 2));
        assert_eq!(column("amount").sql_type, "DECIMAL(18, 2)");
        assert!(payments.columns.iter().all(|c| c.nullable));
        let watermark = payments.watermark.as_ref().expect("watermark");
        assert_eq!(watermark.column, "event_time");
        assert_eq!(
            watermark.expr.to_string(),
            "event_time - INTERVAL '5' SECOND"
        );
        assert!(payments.primary_key.is_empty());
        assert_eq!(
            payments.options,
            [
                ("connector".to_string(), "filesystem".to_string()),
                ("path".to_string(), "data/payments.csv".to_string()),
                ("format".to_string(), "csv".to_string()),
            ]
        );
        assert_eq!(payments.option("path"), Some("data/payments.csv"));

        let Statement::CreateTable(sink) = &statements[1].node else {
            panic!("not CREATE TABLE");
        };
        assert_eq!(sink.name, "card_minute");
        assert_eq!(sink.columns.len(), 6);
        assert_eq!(sink.columns[4].data_type, DataType::Decimal128(38, 2));
        assert!(sink.watermark.is_none());

        let Statement::Insert(insert) = &statements[2].node else {
            panic!("not INSERT");
        };
        assert_eq!(insert.table, "card_minute");
        assert!(insert.columns.is_empty());
        let SetExpr::Select(select) = insert.query.body.as_ref() else {
            panic!("not a select");
        };
        assert_eq!(select.projection.len(), 6);
        let TableFactor::TableFunction { expr, .. } = &select.from[0].relation else {
            panic!("not a table function");
        };
        assert_eq!(
            expr.to_string(),
            "TUMBLE(TABLE(payments), DESCRIPTOR(event_time), INTERVAL '1' MINUTES)"
        );
    }

    #[test]
    fn comments_and_several_statements_on_a_line() {
        let statements = parse_script(
            "-- settings first\nSET 'a' = 'b'; SET 'c' = 'd';;\n  /* the query */ SELECT 1; -- done\n",
        )
        .expect("parses");
        assert_eq!(statements.len(), 3);
        assert_eq!((statements[1].line, statements[1].column), (2, 16));
        assert_eq!((statements[2].line, statements[2].column), (3, 19));
        assert!(matches!(statements[2].node, Statement::Query(_)));
        assert!(
            parse_script("  -- nothing here\n;;")
                .expect("parses")
                .is_empty()
        );
    }

    #[test]
    fn set_statements() {
        for (sql, key, value) in [
            (
                "SET 'table.exec.state.ttl' = '1 h'",
                "table.exec.state.ttl",
                "1 h",
            ),
            (
                "SET 'parallelism.default' = '2'",
                "parallelism.default",
                "2",
            ),
            ("SET parallelism.default = 2", "parallelism.default", "2"),
            (
                "SET table.exec.state.ttl = '1 h'",
                "table.exec.state.ttl",
                "1 h",
            ),
            (
                "set execution.runtime-mode = streaming",
                "execution.runtime-mode",
                "streaming",
            ),
            (
                "SET 'pipeline.name'='it''s mine'",
                "pipeline.name",
                "it's mine",
            ),
            (
                "SET table.exec.state.ttl = 1 h",
                "table.exec.state.ttl",
                "1 h",
            ),
        ] {
            match parse_one(sql).node {
                Statement::Set { key: k, value: v } => {
                    assert_eq!((k.as_str(), v.as_str()), (key, value), "{sql}");
                }
                other => panic!("{sql}: {other:?}"),
            }
        }
        assert_parse_error(&parse_error("SET 'a' 'b'"), 1, 9, "Expected: =");
        assert_parse_error(&parse_error("SET 'a' ="), 1, 10, "a value");
        assert_parse_error(&parse_error("SET 'a' = 'b' 'c'"), 1, 15, "end of statement");
        assert_unsupported(&parse_error("SET"), 1, 1, "SET without a key");
        assert_parse_error(&parse_error("SET a b = c"), 1, 7, "Expected: =, found: b");
        assert_parse_error(&parse_error("SET = c"), 1, 5, "configuration key");
    }

    #[test]
    fn explain_insert() {
        let sql = "EXPLAIN PLAN FOR\n  INSERT INTO sink SELECT a, b FROM src WHERE a > 1";
        let explain = parse_one(sql);
        assert_eq!((explain.line, explain.column), (1, 1));
        let Statement::Explain(inner) = explain.node else {
            panic!("not EXPLAIN");
        };
        assert_eq!((inner.line, inner.column), (2, 3));
        let Statement::Insert(insert) = inner.node else {
            panic!("not INSERT");
        };
        assert_eq!(insert.table, "sink");

        let Statement::Explain(inner) = parse_one("EXPLAIN SELECT 1").node else {
            panic!("not EXPLAIN");
        };
        assert!(matches!(inner.node, Statement::Query(_)));

        let error = parse_error("EXPLAIN\nCREATE TABLE t (a INT)");
        assert_unsupported(&error, 2, 1, "EXPLAIN of CREATE TABLE statements");
        let error = parse_error("EXPLAIN CHANGELOG_MODE SELECT 1");
        assert_unsupported(&error, 1, 9, "EXPLAIN CHANGELOG_MODE");
        // Errors inside the explained statement keep their real position.
        let error = parse_error("EXPLAIN\n  SELECT a FROM t WHERE");
        assert_parse_error(&error, 2, 24, "Expected: an expression, found: EOF");
    }

    #[test]
    fn insert_with_columns_and_backticks() {
        let Statement::Insert(insert) =
            parse_one("INSERT INTO `My Sink` (`a`, B) SELECT x, y FROM `src`").node
        else {
            panic!("not INSERT");
        };
        assert_eq!(insert.table, "My Sink");
        assert_eq!(insert.columns, ["a", "B"]);
        assert_unsupported(
            &parse_error("INSERT OVERWRITE t SELECT 1"),
            1,
            1,
            "INSERT OVERWRITE",
        );
    }

    #[test]
    fn create_view() {
        let Statement::CreateView(view) = parse_one(
            "CREATE TEMPORARY VIEW IF NOT EXISTS big_payments (id, amt) AS\n\
             SELECT txn_id, amount FROM payments WHERE amount > 1000",
        )
        .node
        else {
            panic!("not CREATE VIEW");
        };
        assert_eq!(view.name, "big_payments");
        assert!(view.if_not_exists);
        assert_eq!(view.columns, ["id", "amt"]);
        assert_eq!(
            view.query.to_string(),
            "SELECT txn_id, amount FROM payments WHERE amount > 1000"
        );

        let Statement::CreateView(view) = parse_one("CREATE VIEW v AS SELECT * FROM t").node else {
            panic!("not CREATE VIEW");
        };
        assert!(!view.if_not_exists);
        assert!(view.columns.is_empty());
        assert_unsupported(
            &parse_error("CREATE OR REPLACE VIEW v AS SELECT 1"),
            1,
            1,
            "CREATE OR REPLACE VIEW",
        );
    }

    #[test]
    fn queries() {
        for sql in [
            "SELECT * FROM payments",
            "WITH x AS (SELECT 1 AS a) SELECT a FROM x",
            "(SELECT 1) UNION ALL (SELECT 2)",
            "VALUES (1, 'a')",
            "SELECT * FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY card_id ORDER BY amount DESC) AS rn FROM payments) WHERE rn <= 3",
        ] {
            assert!(matches!(parse_one(sql).node, Statement::Query(_)), "{sql}");
        }
    }

    #[test]
    fn for_system_time_as_of_only_where_written() {
        let lookup = parse_one(
            "SELECT * FROM payments AS p JOIN card_limits FOR SYSTEM_TIME AS OF p.proc_time AS l \
             ON p.card_id = l.card_id",
        );
        let Statement::Query(query) = lookup.node else {
            panic!("not a query");
        };
        assert!(
            query
                .to_string()
                .contains("FOR SYSTEM_TIME AS OF p.proc_time")
        );
        // Without those words, other databases' version clauses stay off: `before`
        // and `at` are table aliases, as in Flink.
        let aliases = parse_one(
            "SELECT before.card_id FROM payments before JOIN payments at ON before.card_id = at.card_id",
        );
        assert!(matches!(aliases.node, Statement::Query(_)));
    }

    #[test]
    fn misspelled_keyword_position() {
        let error = parse_error("SELECT a, COUNT(*)\nFROM src WHERE a > 1\n    GROUPP BY a");
        assert_parse_error(&error, 3, 5, "GROUPP");
        let error = parse_error("INSERT INTO sink\nSELECT a\nFROM src\nWHERE a > 1\n  ORDR BY a");
        assert_parse_error(&error, 5, 3, "ORDR");

        let error = parse_error("SELECT 1;\nSELEC * FROM t");
        assert_parse_error(&error, 2, 1, "SELEC");

        let error = parse_error("CREATE TABLE t (\n  a BIGINT,\n    b BIGNT\n)");
        assert_unsupported(&error, 3, 7, "unknown data type BIGNT");

        let error = parse_error("CREATE TABLE t (\n  a BIGINT,\n    b BIGINT\n) WTH ('a' = 'b')");
        assert_parse_error(&error, 4, 3, "end of statement");

        let error = parse_error("CREATE TABLE t (\n  a BIGINT\n  b INT)");
        assert_parse_error(&error, 3, 3, "Expected: , or )");

        let error = parse_error("CREATE TABL t (a INT)");
        assert_parse_error(&error, 1, 8, "TABL");
    }

    #[test]
    fn unterminated_string_is_a_parse_error() {
        let error = parse_error("SELECT 1;\nSELECT 'abc");
        assert!(matches!(error, SqlError::Parse { line: 2, .. }), "{error}");
    }

    #[test]
    fn unsupported_statements() {
        let error = parse_error("SELECT 1;\n  DROP TABLE x");
        assert_unsupported(&error, 2, 3, "DROP TABLE statements");
        assert_eq!(
            error.to_string(),
            "unsupported at line 2, column 3: DROP TABLE statements"
        );
        assert_unsupported(
            &parse_error("ALTER TABLE t RENAME TO u"),
            1,
            1,
            "ALTER TABLE statements",
        );
        assert_unsupported(
            &parse_error("CREATE TEMPORARY FUNCTION f AS 'com.x.F'"),
            1,
            1,
            "CREATE TEMPORARY FUNCTION statements",
        );
        assert_unsupported(&parse_error("SHOW TABLES"), 1, 1, "SHOW TABLES statements");
        assert_unsupported(&parse_error("USE CATALOG c"), 1, 1, "USE statements");
        assert_unsupported(
            &parse_error("EXECUTE STATEMENT SET BEGIN INSERT INTO a SELECT 1; END;"),
            1,
            1,
            "STATEMENT SET blocks",
        );
    }

    #[test]
    fn unsupported_table_features() {
        let error = parse_error("CREATE TABLE t (\n  a BIGINT,\n  b AS a + 1\n)");
        assert_unsupported(&error, 3, 3, "computed columns");
        let error = parse_error(
            "CREATE TABLE t (\n  a BIGINT,\n  ts TIMESTAMP(3) METADATA FROM 'timestamp'\n)",
        );
        assert_unsupported(&error, 3, 19, "metadata columns");
        let error =
            parse_error("CREATE TABLE t (a BIGINT) PARTITIONED BY (a) WITH ('connector' = 'x')");
        assert_unsupported(&error, 1, 27, "PARTITIONED BY");
        let error = parse_error("CREATE TABLE t (a TIMESTAMP(6))");
        assert_unsupported(&error, 1, 19, "only millisecond precision");
        let error = parse_error("CREATE TABLE t (a INT, UNIQUE (a))");
        assert_unsupported(&error, 1, 24, "UNIQUE constraints");
        let error = parse_error("CREATE TABLE t (a INT, PRIMARY KEY (a) ENFORCED)");
        assert_unsupported(&error, 1, 40, "ENFORCED primary keys");
        let error = parse_error("CREATE TABLE t AS SELECT 1");
        assert_unsupported(&error, 1, 16, "AS SELECT");
    }

    #[test]
    fn primary_keys_and_nullability() {
        let table = create_table(
            "CREATE TABLE IF NOT EXISTS accounts (\n\
               account_id BIGINT,\n\
               `owner` STRING NOT NULL COMMENT 'who',\n\
               note STRING NULL,\n\
               opened TIMESTAMP_LTZ(3),\n\
               closed TIMESTAMP(3) WITH LOCAL TIME ZONE,\n\
               PRIMARY KEY (account_id) NOT ENFORCED\n\
             ) COMMENT 'accounts' WITH ('connector' = 'filesystem')",
        );
        assert!(table.if_not_exists);
        assert_eq!(table.primary_key, ["account_id"]);
        let nullable: Vec<bool> = table.columns.iter().map(|c| c.nullable).collect();
        assert_eq!(nullable, [false, false, true, true, true]);
        assert_eq!(table.columns[1].name, "owner");
        let ltz = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
        assert_eq!(table.columns[3].data_type, ltz);
        assert_eq!(table.columns[4].data_type, ltz);
        assert_eq!(table.columns[4].sql_type, "TIMESTAMP_LTZ(3)");

        let table = create_table("CREATE TABLE t (id BIGINT PRIMARY KEY NOT ENFORCED, v INT)");
        assert_eq!(table.primary_key, ["id"]);
        assert!(!table.columns[0].nullable);

        let table =
            create_table("CREATE TABLE t (id BIGINT, CONSTRAINT pk PRIMARY KEY (id) NOT ENFORCED)");
        assert_eq!(table.primary_key, ["id"]);

        let error = parse_error("CREATE TABLE t (id BIGINT, PRIMARY KEY (idx) NOT ENFORCED)");
        assert_parse_error(&error, 1, 41, "PRIMARY KEY column `idx`");
    }

    #[test]
    fn watermark_checks() {
        let error = parse_error("CREATE TABLE t (ts TIMESTAMP(3), WATERMARK FOR tss AS tss)");
        assert_parse_error(&error, 1, 48, "WATERMARK column `tss`");
        let error = parse_error("CREATE TABLE t (ts BIGINT, WATERMARK FOR ts AS ts)");
        assert_parse_error(&error, 1, 42, "must be TIMESTAMP(3)");
        // A column may be called `watermark`.
        let table = create_table(
            "CREATE TABLE t (watermark TIMESTAMP(3), WATERMARK FOR watermark AS watermark)",
        );
        assert_eq!(table.columns[0].name, "watermark");
        assert_eq!(
            table.watermark.map(|w| w.expr),
            Some(Expr::Identifier("watermark".into()))
        );
    }

    #[test]
    fn table_options_errors() {
        let error = parse_error("CREATE TABLE t (a INT) WITH (connector = 'x')");
        assert_parse_error(&error, 1, 30, "quoted option key");
        let error = parse_error("CREATE TABLE t (a INT) WITH ('a' = 'x', 'a' = 'y')");
        assert_parse_error(&error, 1, 41, "given twice");
        let table = create_table("CREATE TABLE t (a INT) WITH ()");
        assert!(table.options.is_empty());
        let table = create_table("CREATE TABLE cat.db.t (a INT)");
        assert_eq!(table.name, "cat.db.t");
    }
}
