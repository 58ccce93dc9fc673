//! Typed access to a table's `WITH (...)` options.
//!
//! Every error names the table and the option, so a user can find the offending
//! line of DDL. Like Flink, connectors reject option keys they do not know
//! ([`TableOptions::check_known`]) instead of silently ignoring a typo.

use std::collections::BTreeMap;
use std::time::Duration;

use watershed_engine::EngineError;
use watershed_engine::connector::TableSpec;

use crate::units::{parse_duration, parse_memory_size};

/// The key that selects a table's connector.
pub const CONNECTOR: &str = "connector";

/// A read-only view of one table's options with typed getters.
#[derive(Debug, Clone, Copy)]
pub struct TableOptions<'a> {
    table: &'a str,
    options: &'a BTreeMap<String, String>,
}

impl<'a> TableOptions<'a> {
    /// Wraps the options of the table called `table`.
    pub fn new(table: &'a str, options: &'a BTreeMap<String, String>) -> Self {
        TableOptions { table, options }
    }

    /// Wraps the options of a table spec.
    pub fn from_spec(spec: &'a TableSpec) -> Self {
        TableOptions::new(&spec.name, &spec.options)
    }

    /// The table's name.
    pub fn table(&self) -> &'a str {
        self.table
    }

    /// All options, sorted by key.
    pub fn all(&self) -> &'a BTreeMap<String, String> {
        self.options
    }

    /// The raw value of an option, if set.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.options.get(key).map(String::as_str)
    }

    /// A configuration error about the table as a whole.
    pub fn table_error(&self, message: impl std::fmt::Display) -> EngineError {
        EngineError::Config(format!("table '{}': {message}", self.table))
    }

    /// A configuration error about one option.
    pub fn error(&self, key: &str, message: impl std::fmt::Display) -> EngineError {
        match self.get(key) {
            Some(value) => EngineError::Config(format!(
                "table '{}': option '{key}' = '{value}': {message}",
                self.table
            )),
            None => {
                EngineError::Config(format!("table '{}': option '{key}': {message}", self.table))
            }
        }
    }

    /// The value of an option that must be set.
    pub fn required(&self, key: &str) -> Result<&'a str, EngineError> {
        self.get(key).ok_or_else(|| {
            EngineError::Config(format!(
                "table '{}': required option '{key}' is missing",
                self.table
            ))
        })
    }

    /// The value of an option, or `default` when it is not set.
    pub fn string_or(&self, key: &str, default: &'a str) -> &'a str {
        self.get(key).unwrap_or(default)
    }

    /// A boolean option: `'true'` or `'false'` (case-insensitive), or `default`.
    pub fn bool_or(&self, key: &str, default: bool) -> Result<bool, EngineError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) if v.trim().eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.trim().eq_ignore_ascii_case("false") => Ok(false),
            Some(_) => Err(self.error(key, "expected 'true' or 'false'")),
        }
    }

    /// An unsigned integer option, if set.
    pub fn u64_opt(&self, key: &str) -> Result<Option<u64>, EngineError> {
        self.get(key)
            .map(|v| {
                v.trim()
                    .parse::<u64>()
                    .map_err(|_| self.error(key, "expected a non-negative integer"))
            })
            .transpose()
    }

    /// An unsigned integer option, or `default`.
    pub fn u64_or(&self, key: &str, default: u64) -> Result<u64, EngineError> {
        Ok(self.u64_opt(key)?.unwrap_or(default))
    }

    /// A `usize` option, if set.
    pub fn usize_opt(&self, key: &str) -> Result<Option<usize>, EngineError> {
        self.u64_opt(key)?
            .map(|v| usize::try_from(v).map_err(|_| self.error(key, "value is too large")))
            .transpose()
    }

    /// A `usize` option, or `default`.
    pub fn usize_or(&self, key: &str, default: usize) -> Result<usize, EngineError> {
        Ok(self.usize_opt(key)?.unwrap_or(default))
    }

    /// A finite floating-point option, or `default`.
    pub fn f64_or(&self, key: &str, default: f64) -> Result<f64, EngineError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => match v.trim().parse::<f64>() {
                Ok(x) if x.is_finite() => Ok(x),
                _ => Err(self.error(key, "expected a number")),
            },
        }
    }

    /// A single-character option (e.g. a delimiter), if set. Only ASCII characters
    /// are accepted, as the CSV reader works on bytes.
    pub fn ascii_char_opt(&self, key: &str) -> Result<Option<u8>, EngineError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => {
                let v = match v {
                    "\\t" => "\t",
                    other => other,
                };
                match v.as_bytes() {
                    [b] if b.is_ascii() => Ok(Some(*b)),
                    _ => Err(self.error(key, "expected a single ASCII character")),
                }
            }
        }
    }

    /// A duration option such as `'4s'`, `'4000ms'` or `'4 s'`, or `default`.
    pub fn duration_or(&self, key: &str, default: Duration) -> Result<Duration, EngineError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => parse_duration(v).map_err(|reason| self.error(key, reason)),
        }
    }

    /// A memory-size option such as `'128MB'` or `'1KB'` in bytes, or `default`.
    pub fn memory_size_or(&self, key: &str, default: u64) -> Result<u64, EngineError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => parse_memory_size(v).map_err(|reason| self.error(key, reason)),
        }
    }

    /// Fails on the first option key that is not in `known`, listing the known
    /// ones (sorted) in the message.
    pub fn check_known(&self, connector: &str, known: &[&str]) -> Result<(), EngineError> {
        for key in self.options.keys() {
            if !known.contains(&key.as_str()) {
                let mut sorted: Vec<&str> = known.to_vec();
                sorted.sort_unstable();
                sorted.dedup();
                return Err(EngineError::Config(format!(
                    "table '{}': unsupported option '{key}' for connector '{connector}'; \
                     supported options: {}",
                    self.table,
                    sorted.join(", ")
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn typed_getters_and_errors_name_table_and_option() {
        let map = opts(&[
            ("csv.ignore-parse-errors", "TRUE"),
            ("n", "12"),
            ("bad", "x"),
            ("d", ";"),
        ]);
        let o = TableOptions::new("payments", &map);
        assert!(o.bool_or("csv.ignore-parse-errors", false).unwrap());
        assert!(!o.bool_or("missing", false).unwrap());
        assert_eq!(o.u64_or("n", 0).unwrap(), 12);
        assert_eq!(o.usize_or("absent", 7).unwrap(), 7);
        assert_eq!(o.ascii_char_opt("d").unwrap(), Some(b';'));
        let err = o.u64_opt("bad").unwrap_err().to_string();
        assert_eq!(
            err,
            "table 'payments': option 'bad' = 'x': expected a non-negative integer"
        );
        let err = o.bool_or("bad", false).unwrap_err().to_string();
        assert!(err.contains("'true' or 'false'"), "{err}");
        let err = o.required("path").unwrap_err().to_string();
        assert_eq!(err, "table 'payments': required option 'path' is missing");
    }

    #[test]
    fn rejects_unknown_keys_listing_known_ones() {
        let map = opts(&[("connector", "filesystem"), ("pth", "x")]);
        let o = TableOptions::new("t", &map);
        let err = o
            .check_known("filesystem", &["path", "connector", "format"])
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "table 't': unsupported option 'pth' for connector 'filesystem'; \
             supported options: connector, format, path"
        );
        assert!(o.check_known("x", &["connector", "pth"]).is_ok());
    }

    #[test]
    fn duration_and_size_options() {
        let map = opts(&[("b", "4 s"), ("s", "1KB"), ("bad", "soon")]);
        let o = TableOptions::new("t", &map);
        assert_eq!(
            o.duration_or("b", Duration::ZERO).unwrap(),
            Duration::from_secs(4)
        );
        assert_eq!(o.memory_size_or("s", 0).unwrap(), 1024);
        assert!(o.duration_or("bad", Duration::ZERO).is_err());
    }
}
