//! The query files of a bench suite (`benches/nexmark/`: Nexmark q0 to q22;
//! `benches/payments/`: the payments risk rules) as runnable scripts: the
//! suite's table DDL (`ddl.sql`) with the event count and rate filled in, each
//! query's own DDL, and its INSERT. Used by `benches/nexmark.rs` and
//! `tests/nexmark.rs`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// One query file.
pub struct Query {
    /// The file's name without `.sql` (`q0` .. `q22` for Nexmark).
    pub name: String,
    /// `Err(reason)` for a file marked `-- NOT RUNNABLE: reason`.
    pub runnable: Result<(), String>,
    /// Every statement before the INSERT: the Nexmark tables and the query's
    /// own tables.
    pub ddl: String,
    /// The INSERT statement.
    pub insert: String,
}

impl Query {
    /// The table its INSERT writes to.
    pub fn sink_table(&self) -> String {
        self.insert["INSERT INTO ".len()..]
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string()
    }

    /// Its DDL with the `blackhole` sink made a `memory` sink, for a sink
    /// registered under [`Query::sink_table`].
    pub fn ddl_with_memory_sink(&self) -> String {
        self.ddl
            .replace("'connector' = 'blackhole'", "'connector' = 'memory'")
    }
}

/// Where suite `suite` (`nexmark` or `payments`) keeps its files.
pub fn query_dir(suite: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("benches")
        .join(suite)
}

/// The query names of `suite`: q0 .. q22 in order for Nexmark, else the
/// `.sql` files besides `ddl.sql`, sorted.
fn query_names(suite: &str) -> Vec<String> {
    if suite == "nexmark" {
        return (0..=22).map(|i| format!("q{i}")).collect();
    }
    let mut names: Vec<String> = std::fs::read_dir(query_dir(suite))
        .unwrap_or_else(|e| panic!("benches/{suite}: {e}"))
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".sql").map(str::to_string))
        .filter(|n| n != "ddl")
        .collect();
    names.sort();
    names
}

/// Placeholders filled in every file.
pub struct Settings<'a> {
    /// `${EVENTS_NUM}`: events of all kinds.
    pub events: u64,
    /// `${TPS}`: events per second of event time.
    pub rate: u64,
    /// `${OUTPUT_DIR}`: where file sinks write.
    pub output_dir: &'a Path,
    /// `${SIDE_INPUT}`: q13's side table, written by [`write_side_input`].
    pub side_input: &'a Path,
}

/// The queries of `suite`.
pub fn load(suite: &str, settings: &Settings<'_>) -> Vec<Query> {
    let dir = query_dir(suite);
    let fill = |text: &str| {
        text.replace("${EVENTS_NUM}", &settings.events.to_string())
            .replace("${TPS}", &settings.rate.to_string())
            .replace("${OUTPUT_DIR}", &settings.output_dir.display().to_string())
            .replace("${SIDE_INPUT}", &settings.side_input.display().to_string())
    };
    let tables = fill(&std::fs::read_to_string(dir.join("ddl.sql")).expect("ddl.sql"));
    query_names(suite)
        .into_iter()
        .map(|name| {
            let text = std::fs::read_to_string(dir.join(format!("{name}.sql")))
                .unwrap_or_else(|e| panic!("{name}.sql: {e}"));
            let runnable = match text
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("-- NOT RUNNABLE: "))
            {
                Some(reason) => Err(reason.to_string()),
                None => Ok(()),
            };
            let text = fill(&text);
            let at = text
                .find("INSERT INTO")
                .unwrap_or_else(|| panic!("{name}: no INSERT"));
            Query {
                name,
                runnable,
                ddl: format!("{tables}\n{}", &text[..at]),
                insert: text[at..].to_string(),
            }
        })
        .collect()
}

/// q13's side input: lines `i,i` for `i` in `0..10000`.
pub fn write_side_input(path: &Path) {
    let text: String = (0..10_000).map(|i| format!("{i},{i}\n")).collect();
    std::fs::write(path, text).expect("side input");
}
