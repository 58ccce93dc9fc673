//! The JSON lines format (`'format' = 'json'`): one JSON object per line, keys
//! are column names. Its options, reader and writer.

mod reader;
mod writer;

pub use reader::JsonDecoder;
pub use writer::JsonEncoder;

use watershed_engine::EngineError;

use crate::format::datetime::TimestampStandard;
use crate::options::TableOptions;

/// `json.ignore-parse-errors`: `true` skips and counts malformed rows.
pub const IGNORE_PARSE_ERRORS: &str = "json.ignore-parse-errors";
/// `json.fail-on-missing-field`: `true` makes a missing key malformed (default: NULL).
pub const FAIL_ON_MISSING_FIELD: &str = "json.fail-on-missing-field";
/// `json.timestamp-format.standard`: `'SQL'` (default) or `'ISO-8601'`.
pub const TIMESTAMP_FORMAT_STANDARD: &str = "json.timestamp-format.standard";
/// `json.encode.ignore-null-fields`: `true` omits NULL fields when writing.
pub const ENCODE_IGNORE_NULL_FIELDS: &str = "json.encode.ignore-null-fields";
/// `json.encode.decimal-as-plain-number`: accepted for Flink compatibility;
/// decimals are always written in plain notation.
pub const ENCODE_DECIMAL_AS_PLAIN_NUMBER: &str = "json.encode.decimal-as-plain-number";

/// Every `json.*` option key.
pub const OPTION_KEYS: &[&str] = &[
    IGNORE_PARSE_ERRORS,
    FAIL_ON_MISSING_FIELD,
    TIMESTAMP_FORMAT_STANDARD,
    ENCODE_IGNORE_NULL_FIELDS,
    ENCODE_DECIMAL_AS_PLAIN_NUMBER,
];

/// Parsed `json.*` options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JsonOptions {
    /// Skip and count malformed rows instead of failing.
    pub ignore_parse_errors: bool,
    /// Treat a missing key as malformed instead of NULL.
    pub fail_on_missing_field: bool,
    /// Textual timestamp standard, on read and write.
    pub timestamp_standard: TimestampStandard,
    /// Omit NULL fields when writing.
    pub ignore_null_fields: bool,
}

impl JsonOptions {
    /// Reads the `json.*` options of a table.
    pub fn from_options(options: &TableOptions<'_>) -> Result<Self, EngineError> {
        let timestamp_standard = match options.get(TIMESTAMP_FORMAT_STANDARD) {
            None => TimestampStandard::Sql,
            Some(v) if v.eq_ignore_ascii_case("SQL") => TimestampStandard::Sql,
            Some(v) if v.eq_ignore_ascii_case("ISO-8601") => TimestampStandard::Iso8601,
            Some(_) => {
                return Err(
                    options.error(TIMESTAMP_FORMAT_STANDARD, "expected 'SQL' or 'ISO-8601'")
                );
            }
        };
        options.bool_or(ENCODE_DECIMAL_AS_PLAIN_NUMBER, true)?;
        Ok(JsonOptions {
            ignore_parse_errors: options.bool_or(IGNORE_PARSE_ERRORS, false)?,
            fail_on_missing_field: options.bool_or(FAIL_ON_MISSING_FIELD, false)?,
            timestamp_standard,
            ignore_null_fields: options.bool_or(ENCODE_IGNORE_NULL_FIELDS, false)?,
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
            (
                TIMESTAMP_FORMAT_STANDARD.to_string(),
                "ISO-8601".to_string(),
            ),
            (FAIL_ON_MISSING_FIELD.to_string(), "true".to_string()),
        ]
        .into();
        let o = JsonOptions::from_options(&TableOptions::new("t", &map)).unwrap();
        assert_eq!(o.timestamp_standard, TimestampStandard::Iso8601);
        assert!(o.fail_on_missing_field);
        assert!(!o.ignore_parse_errors);
        let map: BTreeMap<String, String> =
            [(TIMESTAMP_FORMAT_STANDARD.to_string(), "RFC".to_string())].into();
        assert!(JsonOptions::from_options(&TableOptions::new("t", &map)).is_err());
    }
}
