//! The `filesystem` connector (`'connector' = 'filesystem'`): a bounded source
//! reading a file or a directory of files, and a sink writing a directory of
//! rolling part files, both in a [`FormatConfig`] format.
//!
//! Options: `'path'` (required), `'format'` (required: `csv` | `json`), the
//! format's `csv.*` / `json.*` options, `'sink.rolling-policy.file-size'`, and
//! the sink's changelog options `'sink.changelog-mode'` and
//! `'sink.changelog.op-column'` ([`changelog`]).

pub mod changelog;
mod part_file;
mod sink;
mod source;
mod upsert_compaction;

pub use changelog::{ChangelogConfig, ChangelogMode};
pub use sink::FileSinkFactory;
pub use source::FileSourceFactory;

use std::path::PathBuf;

use watershed_engine::EngineError;

use crate::format::{FORMAT, FormatConfig};
use crate::options::{CONNECTOR, TableOptions};

/// The connector's name in `'connector' = '...'`.
pub const IDENTIFIER: &str = "filesystem";
/// `'path'`: a file or directory to read, or a directory to write.
pub const PATH: &str = "path";
/// `'sink.rolling-policy.file-size'`: roll to a new part file beyond this size.
pub const ROLLING_FILE_SIZE: &str = "sink.rolling-policy.file-size";
/// Default part file size: 128 MB, as in Flink.
pub const DEFAULT_ROLLING_FILE_SIZE: u64 = 128 << 20;

/// The parsed options of a filesystem table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSystemConfig {
    /// The table's path.
    pub path: PathBuf,
    /// Format and format options.
    pub format: FormatConfig,
    /// Part file size limit in bytes for the sink.
    pub rolling_file_size: u64,
    /// What the sink writes of an updating query.
    pub changelog: ChangelogConfig,
}

impl FileSystemConfig {
    /// Parses and validates a filesystem table's options; unknown keys are errors.
    pub fn from_options(options: &TableOptions<'_>) -> Result<Self, EngineError> {
        let path = options.required(PATH)?;
        let format = FormatConfig::from_options(options)?;
        let mut known = vec![CONNECTOR, PATH, FORMAT, ROLLING_FILE_SIZE];
        known.extend_from_slice(format.option_keys());
        known.extend_from_slice(changelog::OPTION_KEYS);
        options.check_known(IDENTIFIER, &known)?;
        let rolling_file_size =
            options.memory_size_or(ROLLING_FILE_SIZE, DEFAULT_ROLLING_FILE_SIZE)?;
        if rolling_file_size == 0 {
            return Err(options.error(ROLLING_FILE_SIZE, "must be greater than 0"));
        }
        let changelog = ChangelogConfig::from_options(options)?;
        Ok(FileSystemConfig {
            path: PathBuf::from(path),
            format,
            rolling_file_size,
            changelog,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn options(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_options() {
        let map = options(&[
            ("connector", "filesystem"),
            ("path", "out"),
            ("format", "json"),
            ("json.ignore-parse-errors", "true"),
            ("sink.rolling-policy.file-size", "1KB"),
        ]);
        let c = FileSystemConfig::from_options(&TableOptions::new("t", &map)).unwrap();
        assert_eq!(c.path, PathBuf::from("out"));
        assert_eq!(c.format.name(), "json");
        assert_eq!(c.rolling_file_size, 1024);
    }

    #[test]
    fn rejects_options_of_another_format_and_missing_ones() {
        let map = options(&[
            ("connector", "filesystem"),
            ("path", "out"),
            ("format", "csv"),
            ("json.ignore-parse-errors", "true"),
        ]);
        let err = FileSystemConfig::from_options(&TableOptions::new("t", &map))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "unsupported option 'json.ignore-parse-errors' for connector 'filesystem'"
            ),
            "{err}"
        );
        assert!(err.contains("csv.field-delimiter"), "{err}");
        let map = options(&[("connector", "filesystem"), ("path", "out")]);
        let err = FileSystemConfig::from_options(&TableOptions::new("t", &map))
            .unwrap_err()
            .to_string();
        assert_eq!(err, "table 't': required option 'format' is missing");
        let map = options(&[
            ("connector", "filesystem"),
            ("path", "o"),
            ("format", "avro"),
        ]);
        let err = FileSystemConfig::from_options(&TableOptions::new("t", &map))
            .unwrap_err()
            .to_string();
        assert!(err.contains("supported: csv, json"), "{err}");
    }
}
