//! The CSV format (`'format' = 'csv'`): its options, reader and writer.
//!
//! Matches Flink: no header line, `,` delimiter, `"` quote, and the `csv.*`
//! options below. A row whose field count differs from the schema is malformed.

mod reader;
mod writer;

pub use reader::CsvDecoder;
pub use writer::CsvEncoder;

use watershed_engine::EngineError;

use crate::options::TableOptions;

/// `csv.field-delimiter`: one ASCII character, default `,` (`\t` accepted).
pub const FIELD_DELIMITER: &str = "csv.field-delimiter";
/// `csv.quote-character`: one ASCII character, default `"`.
pub const QUOTE_CHARACTER: &str = "csv.quote-character";
/// `csv.disable-quote-character`: `true` turns quoting off on read and write.
pub const DISABLE_QUOTE_CHARACTER: &str = "csv.disable-quote-character";
/// `csv.allow-comments`: `true` skips lines starting with `#`.
pub const ALLOW_COMMENTS: &str = "csv.allow-comments";
/// `csv.ignore-parse-errors`: `true` skips and counts malformed rows.
pub const IGNORE_PARSE_ERRORS: &str = "csv.ignore-parse-errors";
/// `csv.null-literal`: a field equal to this text is NULL (and NULL is written as it).
pub const NULL_LITERAL: &str = "csv.null-literal";
/// `csv.escape-character`: one ASCII character escaping quotes inside quoted fields.
pub const ESCAPE_CHARACTER: &str = "csv.escape-character";

/// Every `csv.*` option key.
pub const OPTION_KEYS: &[&str] = &[
    FIELD_DELIMITER,
    QUOTE_CHARACTER,
    DISABLE_QUOTE_CHARACTER,
    ALLOW_COMMENTS,
    IGNORE_PARSE_ERRORS,
    NULL_LITERAL,
    ESCAPE_CHARACTER,
];

/// Parsed `csv.*` options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvOptions {
    /// Field delimiter byte.
    pub delimiter: u8,
    /// Quote byte, or `None` when quoting is disabled.
    pub quote: Option<u8>,
    /// Escape byte inside quoted fields, if any.
    pub escape: Option<u8>,
    /// Skip lines starting with `#`.
    pub allow_comments: bool,
    /// Skip and count malformed rows instead of failing.
    pub ignore_parse_errors: bool,
    /// Text that stands for NULL.
    pub null_literal: Option<String>,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            delimiter: b',',
            quote: Some(b'"'),
            escape: None,
            allow_comments: false,
            ignore_parse_errors: false,
            null_literal: None,
        }
    }
}

impl CsvOptions {
    /// Reads the `csv.*` options of a table.
    pub fn from_options(options: &TableOptions<'_>) -> Result<Self, EngineError> {
        let defaults = CsvOptions::default();
        let disable_quote = options.bool_or(DISABLE_QUOTE_CHARACTER, false)?;
        if disable_quote && options.get(QUOTE_CHARACTER).is_some() {
            return Err(options.error(
                QUOTE_CHARACTER,
                format!("cannot be set together with '{DISABLE_QUOTE_CHARACTER}' = 'true'"),
            ));
        }
        let quote = if disable_quote {
            None
        } else {
            Some(options.ascii_char_opt(QUOTE_CHARACTER)?.unwrap_or(b'"'))
        };
        Ok(CsvOptions {
            delimiter: options
                .ascii_char_opt(FIELD_DELIMITER)?
                .unwrap_or(defaults.delimiter),
            quote,
            escape: options.ascii_char_opt(ESCAPE_CHARACTER)?,
            allow_comments: options.bool_or(ALLOW_COMMENTS, false)?,
            ignore_parse_errors: options.bool_or(IGNORE_PARSE_ERRORS, false)?,
            null_literal: options.get(NULL_LITERAL).map(str::to_string),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn reads_options() {
        let map: BTreeMap<String, String> = [
            (FIELD_DELIMITER, "\\t"),
            (DISABLE_QUOTE_CHARACTER, "true"),
            (NULL_LITERAL, "N/A"),
            (IGNORE_PARSE_ERRORS, "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let o = CsvOptions::from_options(&TableOptions::new("t", &map)).unwrap();
        assert_eq!(o.delimiter, b'\t');
        assert_eq!(o.quote, None);
        assert_eq!(o.null_literal.as_deref(), Some("N/A"));
        assert!(o.ignore_parse_errors);
        let map: BTreeMap<String, String> =
            [(FIELD_DELIMITER.to_string(), ";;".to_string())].into();
        assert!(CsvOptions::from_options(&TableOptions::new("t", &map)).is_err());
    }
}
