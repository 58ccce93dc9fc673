//! The Nexmark query files of `benches/nexmark/` as runnable scripts: the
//! shared table DDL with the event count and rate filled in, each query's
//! sink DDL, and its INSERT. Used by `benches/nexmark.rs` and
//! `tests/nexmark.rs`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// One query file.
pub struct Query {
    /// `q0` .. `q22`.
    pub name: String,
    /// `Err(reason)` for a file marked `-- NOT RUNNABLE: reason`.
    pub runnable: Result<(), String>,
    /// Every statement before the INSERT: the Nexmark tables and the query's
    /// own tables.
    pub ddl: String,
    /// The INSERT statement.
    pub insert: String,
}

/// Where the query files are.
pub fn query_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/nexmark")
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

/// q0 .. q22 in order.
pub fn load(settings: &Settings<'_>) -> Vec<Query> {
    let dir = query_dir();
    let fill = |text: &str| {
        text.replace("${EVENTS_NUM}", &settings.events.to_string())
            .replace("${TPS}", &settings.rate.to_string())
            .replace("${OUTPUT_DIR}", &settings.output_dir.display().to_string())
            .replace("${SIDE_INPUT}", &settings.side_input.display().to_string())
    };
    let tables = fill(&std::fs::read_to_string(dir.join("ddl.sql")).expect("ddl.sql"));
    (0..=22)
        .map(|i| {
            let name = format!("q{i}");
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
