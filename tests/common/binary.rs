//! Helpers for tests that run the `watershed` binary: start it on a script,
//! read the committed part files of the exactly-once file sink, and watch a
//! checkpoint directory.

use std::path::Path;
use std::process::{Command, Stdio};

/// The `watershed` binary running `script` (with `--restore latest` when
/// `restore`), without progress output; stderr is piped.
pub fn watershed(script: &Path, restore: bool) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_watershed"));
    command.arg("run").arg(script).arg("--progress").arg("0");
    if restore {
        command.arg("--restore").arg("latest");
    }
    command.stdout(Stdio::null()).stderr(Stdio::piped());
    command
}

/// Every row of the visible part files, sorted; fails on leftover hidden files.
pub fn committed_rows(dir: &Path) -> Vec<String> {
    let mut rows = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return rows;
    };
    for entry in entries {
        let entry = entry.expect("entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).expect("read part");
        rows.extend(text.lines().map(str::to_string));
    }
    rows.sort();
    rows
}

/// Fails when `dir` holds hidden (in-progress) part files.
pub fn assert_no_in_progress_files(dir: &Path) {
    let hidden: Vec<String> = std::fs::read_dir(dir)
        .expect("out")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "in-progress files left: {hidden:?}");
}

/// The id of the newest completed checkpoint under `dir` (a
/// `chk-<id>` directory holding its manifest), or 0.
pub fn latest_checkpoint_id(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.path().join("_manifest.json").exists())
        .filter_map(|e| {
            e.file_name()
                .to_string_lossy()
                .strip_prefix("chk-")
                .and_then(|id| id.parse::<u64>().ok())
        })
        .max()
        .unwrap_or(0)
}
