//! The SQL front end's error type.
//!
//! Every error a user can cause with SQL text carries the line and column (both
//! 1-based) of the token that caused it, so a message can point at the exact spot in a
//! script. sqlparser reports positions only inside its message text (`... at Line: 3,
//! Column: 5`); [`SqlError::from_parser_error`] moves them into fields.

use datafusion::sql::sqlparser::parser::ParserError;
use datafusion::sql::sqlparser::tokenizer::{Location, TokenizerError};

/// Errors raised while parsing, cataloguing or planning SQL.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// The SQL text is not valid syntax.
    #[error("SQL error at line {line}, column {column}: {message}")]
    Parse {
        /// What was expected and what was found, without the position.
        message: String,
        /// 1-based line of the offending token.
        line: u64,
        /// 1-based column of the offending token.
        column: u64,
    },
    /// The SQL is valid Flink SQL, but Watershed does not support the feature.
    #[error("unsupported at line {line}, column {column}: {feature}")]
    Unsupported {
        /// The feature, e.g. `DROP TABLE statements` or `computed columns`.
        feature: String,
        /// 1-based line where the feature is used.
        line: u64,
        /// 1-based column where the feature is used.
        column: u64,
    },
    /// A statement could not be planned (unknown column, type mismatch, ...).
    #[error("planning error: {0}")]
    Plan(String),
    /// A catalog operation failed (unknown table, table already exists, ...).
    #[error("catalog error: {0}")]
    Catalog(String),
    /// DataFusion failed while planning or optimizing.
    #[error("{0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
    /// The streaming engine rejected the job.
    #[error("{0}")]
    Engine(#[from] watershed_engine::EngineError),
}

/// Result type of the SQL front end.
pub type Result<T> = std::result::Result<T, SqlError>;

impl SqlError {
    /// A [`SqlError::Parse`] at `location`.
    pub fn parse_at(message: impl Into<String>, location: Location) -> Self {
        SqlError::Parse {
            message: message.into(),
            line: location.line,
            column: location.column,
        }
    }

    /// A [`SqlError::Unsupported`] at `location`.
    pub fn unsupported_at(feature: impl Into<String>, location: Location) -> Self {
        SqlError::Unsupported {
            feature: feature.into(),
            line: location.line,
            column: location.column,
        }
    }

    /// Converts a sqlparser error into [`SqlError::Parse`], taking the position out of
    /// the message. `fallback` is used when the message carries no position (for
    /// example when the recursion limit is exceeded).
    pub fn from_parser_error(error: ParserError, fallback: Location) -> Self {
        let message = match error {
            ParserError::TokenizerError(message) | ParserError::ParserError(message) => message,
            ParserError::RecursionLimitExceeded => {
                "the statement nests too deeply (recursion limit exceeded)".to_string()
            }
        };
        let (message, location) = split_location(&message);
        let location = match location {
            Some(location) if location.line > 0 => location,
            _ => fallback,
        };
        SqlError::parse_at(message, location)
    }

    /// Converts a tokenizer error (unterminated string, stray character, ...).
    pub fn from_tokenizer_error(error: TokenizerError) -> Self {
        let (message, _) = split_location(&error.message);
        SqlError::parse_at(message, error.location)
    }

    /// The 1-based (line, column) the error points at, for errors that have one.
    pub fn position(&self) -> Option<(u64, u64)> {
        match self {
            SqlError::Parse { line, column, .. } | SqlError::Unsupported { line, column, .. } => {
                Some((*line, *column))
            }
            _ => None,
        }
    }
}

/// Splits `"<message> at Line: X, Column: Y"` into the message and the position.
fn split_location(message: &str) -> (String, Option<Location>) {
    const MARKER: &str = " at Line: ";
    let Some(at) = message.rfind(MARKER) else {
        return (message.to_string(), None);
    };
    let rest = &message[at + MARKER.len()..];
    let Some((line, column)) = rest.split_once(", Column: ") else {
        return (message.to_string(), None);
    };
    match (line.trim().parse::<u64>(), column.trim().parse::<u64>()) {
        (Ok(line), Ok(column)) => (message[..at].to_string(), Some(Location { line, column })),
        _ => (message.to_string(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_is_taken_out_of_parser_messages() {
        let error =
            ParserError::ParserError("Expected: ), found: foo at Line: 3, Column: 5".to_string());
        let error = SqlError::from_parser_error(error, Location { line: 1, column: 1 });
        match &error {
            SqlError::Parse {
                message,
                line,
                column,
            } => {
                assert_eq!(message, "Expected: ), found: foo");
                assert_eq!((*line, *column), (3, 5));
            }
            other => panic!("unexpected error {other:?}"),
        }
        assert_eq!(
            error.to_string(),
            "SQL error at line 3, column 5: Expected: ), found: foo"
        );
    }

    #[test]
    fn fallback_position_is_used_without_location() {
        let error = SqlError::from_parser_error(
            ParserError::RecursionLimitExceeded,
            Location { line: 7, column: 2 },
        );
        assert_eq!(error.position(), Some((7, 2)));
        let error = SqlError::from_parser_error(
            ParserError::ParserError("Expected: x, found: EOF".to_string()),
            Location { line: 4, column: 9 },
        );
        assert_eq!(error.position(), Some((4, 9)));
        assert_eq!(
            error.to_string(),
            "SQL error at line 4, column 9: Expected: x, found: EOF"
        );
    }

    #[test]
    fn unsupported_display() {
        let error =
            SqlError::unsupported_at("DROP TABLE statements", Location { line: 2, column: 1 });
        assert_eq!(
            error.to_string(),
            "unsupported at line 2, column 1: DROP TABLE statements"
        );
    }

    #[test]
    fn tokenizer_errors_keep_their_location() {
        let error = SqlError::from_tokenizer_error(TokenizerError {
            message: "Unterminated string literal".to_string(),
            location: Location { line: 2, column: 8 },
        });
        assert_eq!(error.position(), Some((2, 8)));
    }
}
