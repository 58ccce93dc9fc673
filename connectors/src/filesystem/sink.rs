//! The filesystem sink: writes a directory of part files.
//!
//! A part file is written under a hidden in-progress name and renamed to its
//! visible name when it is closed: when it grows past
//! `'sink.rolling-policy.file-size'` or when the sink finishes. Readers of the
//! directory (including this connector's source) therefore never see a partial
//! file.
//!
//! Without checkpoints a rolled part is committed (renamed) as soon as it is
//! closed. With checkpoints the sink is exactly-once, as Flink's file sink: at a
//! barrier the open part is closed and every closed part is staged under the
//! checkpoint; staged parts stay hidden until that checkpoint completes, and
//! they travel in the checkpoint's state, so a restore commits the parts of the
//! checkpoint it restores (if the completion notice never arrived) and deletes
//! this instance's other in-progress files (written after the checkpoint).
//! Readers of the directory never see a partial or duplicate row.
//!
//! Parallel instances write into the same directory: each has its own run id,
//! in-progress file and part counter, and its part names carry its instance
//! index (`part-<run id>-<instance>-<counter>`), so instances never collide.
//!
//! With `'sink.changelog-mode'` = `'all'` or `'upsert'` ([`super::changelog`]) the
//! sink takes updating queries: every row is written with an op column first
//! ([`OpColumnEncoder`]); in `upsert` mode `-U` rows are dropped and the rest
//! pass through an [`UpsertCompactor`], so runs of up to
//! [`COMPACTION_ROWS`] buffered changes are written as one row per primary key.
//! Buffered changes are written before the part is committed. The `__row_kind`
//! column of a changelog is never written as data; an `append` sink refuses a
//! changelog batch.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use std::sync::Arc;

use datafusion::arrow::array::{AsArray, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use watershed_engine::EngineError;
use watershed_engine::changelog::is_changelog;
use watershed_engine::checkpoint::{OperatorState, Rescaled};
use watershed_engine::connector::TableSpec;
use watershed_engine::sink::{Sink, SinkFactory};
use watershed_engine::source::Split;

use super::changelog::{CHANGELOG_MODE, ChangelogMode};
use super::part_file::PartFileNames;
use super::upsert_compaction::{COMPACTION_ROWS, UpsertCompactor};
use super::{FileSystemConfig, IDENTIFIER};
use crate::explain::explain_options;
use crate::format::BatchEncoder;
use crate::format::changelog::OpColumnEncoder;
use crate::options::TableOptions;

/// Write buffer per open part file.
const WRITE_BUFFER: usize = 256 * 1024;

/// Builds writers of a filesystem table.
#[derive(Debug, Clone)]
pub struct FileSinkFactory {
    table: String,
    schema: SchemaRef,
    config: FileSystemConfig,
    /// Positions of the primary key columns (upsert mode only).
    key_columns: Vec<usize>,
    explain: Vec<String>,
}

impl FileSinkFactory {
    /// Validates the table's options, and for a changelog mode the op column's
    /// name and (upsert) the primary key.
    pub fn new(table: &TableSpec) -> Result<Self, EngineError> {
        let options = TableOptions::from_spec(table);
        let config = FileSystemConfig::from_options(&options)?;
        let key_columns = config.changelog.key_columns(table)?;
        Ok(FileSinkFactory {
            table: table.name.clone(),
            schema: table.schema.clone(),
            config,
            key_columns,
            explain: explain_options(IDENTIFIER, &table.options),
        })
    }

    fn encoder(&self) -> Result<Box<dyn BatchEncoder>, EngineError> {
        let changelog = &self.config.changelog;
        Ok(match changelog.mode {
            ChangelogMode::Append => self.config.format.encoder(&self.schema)?,
            mode => Box::new(OpColumnEncoder::new(
                &self.config.format,
                &self.schema,
                &changelog.op_column,
                mode == ChangelogMode::Upsert,
            )?),
        })
    }

    /// The parsed options.
    pub fn config(&self) -> &FileSystemConfig {
        &self.config
    }
}

impl SinkFactory for FileSinkFactory {
    fn explain(&self) -> Vec<String> {
        self.explain.clone()
    }

    fn accepts_changelog(&self) -> bool {
        self.config.changelog.mode.accepts_changelog()
    }

    fn changelog_hint(&self) -> Option<String> {
        Some(format!(
            "set '{CHANGELOG_MODE}' = 'all' (every change, with an op column) or 'upsert' \
             (changes by PRIMARY KEY) in the WITH options of filesystem table '{}'",
            self.table
        ))
    }

    /// Creates the output directory if needed and a writer with a fresh run id,
    /// whose part files carry `split.index`.
    fn create(&self, split: Split) -> Result<Box<dyn Sink>, EngineError> {
        let dir = &self.config.path;
        if dir.is_file() {
            return Err(EngineError::Config(format!(
                "table '{}': sink path '{}' is a file; the filesystem sink writes a directory",
                self.table,
                dir.display()
            )));
        }
        std::fs::create_dir_all(dir).map_err(|e| {
            EngineError::io(
                format!(
                    "table '{}': cannot create directory '{}'",
                    self.table,
                    dir.display()
                ),
                e,
            )
        })?;
        let compactor = match self.config.changelog.mode {
            ChangelogMode::Upsert => Some(UpsertCompactor::new(
                &self.table,
                &self.schema,
                self.key_columns.clone(),
                COMPACTION_ROWS,
            )?),
            _ => None,
        };
        Ok(Box::new(FileSink {
            table: self.table.clone(),
            dir: dir.clone(),
            names: PartFileNames::new(split.index),
            encoder: self.encoder()?,
            mode: self.config.changelog.mode,
            compactor,
            buffer: Vec::new(),
            current: None,
            next_part: 0,
            rolling_file_size: self.config.rolling_file_size,
            subtask: split.index,
            staging: None,
        }))
    }
}

/// The part file being written.
struct OpenPart {
    counter: u64,
    hidden: PathBuf,
    writer: BufWriter<File>,
    bytes: u64,
}

struct FileSink {
    table: String,
    dir: PathBuf,
    names: PartFileNames,
    encoder: Box<dyn BatchEncoder>,
    mode: ChangelogMode,
    /// Upsert mode: changes held until a compacted run is written.
    compactor: Option<UpsertCompactor>,
    buffer: Vec<u8>,
    current: Option<OpenPart>,
    next_part: u64,
    rolling_file_size: u64,
    /// Instance index (the `subtask` in part names).
    subtask: usize,
    /// `Some` once the job runs with checkpoints (set by `restore`).
    staging: Option<Staging>,
}

/// Parts of an exactly-once sink that are closed but not yet visible.
#[derive(Default)]
struct Staging {
    /// Closed since the last barrier.
    closed: Vec<StagedPart>,
    /// Staged per checkpoint, waiting for its completion.
    pending: BTreeMap<u64, Vec<StagedPart>>,
}

/// A closed part file under its hidden name, and the name it gets when committed.
#[derive(Debug, Clone)]
struct StagedPart {
    hidden: PathBuf,
    visible: PathBuf,
}

impl FileSink {
    fn io_error(&self, what: &str, path: &Path, e: std::io::Error) -> EngineError {
        EngineError::io(
            format!("table '{}': cannot {what} '{}'", self.table, path.display()),
            e,
        )
    }

    fn open_part(&mut self) -> Result<OpenPart, EngineError> {
        let counter = self.next_part;
        self.next_part += 1;
        let hidden = self.dir.join(self.names.in_progress(counter));
        let file = File::create(&hidden).map_err(|e| self.io_error("create", &hidden, e))?;
        Ok(OpenPart {
            counter,
            hidden,
            writer: BufWriter::with_capacity(WRITE_BUFFER, file),
            bytes: 0,
        })
    }

    /// Flushes and syncs the current part and renames it to its visible name,
    /// or, with checkpoints, stages it until its checkpoint completes.
    fn commit_current(&mut self) -> Result<(), EngineError> {
        let Some(part) = self.current.take() else {
            return Ok(());
        };
        let file = part
            .writer
            .into_inner()
            .map_err(|e| self.io_error("write", &part.hidden, e.into_error()))?;
        file.sync_all()
            .map_err(|e| self.io_error("sync", &part.hidden, e))?;
        drop(file);
        let staged = StagedPart {
            visible: self.dir.join(self.names.visible(part.counter)),
            hidden: part.hidden,
        };
        match self.staging.as_mut() {
            Some(staging) => {
                staging.closed.push(staged);
                Ok(())
            }
            None => self.publish(&staged),
        }
    }

    /// Renames a closed part to its visible name. A part that is already
    /// visible (committed before a restart) is left alone.
    fn publish(&self, part: &StagedPart) -> Result<(), EngineError> {
        if !part.hidden.exists() && part.visible.exists() {
            return Ok(());
        }
        std::fs::rename(&part.hidden, &part.visible)
            .map_err(|e| self.io_error("commit part file", &part.hidden, e))
    }

    /// Deletes this instance's in-progress files left by earlier attempts
    /// (written after the checkpoint being restored, or never committed).
    /// Publishes the parts listed in a restored state of this sink.
    fn publish_restored(&self, state: &OperatorState) -> Result<(), EngineError> {
        for batch in &state.batches {
            let column = |name: &str| {
                batch
                    .column_by_name(name)
                    .and_then(|c| c.as_string_opt::<i32>())
                    .ok_or_else(|| {
                        EngineError::Config(format!(
                            "table '{}': checkpoint state of the file sink has no '{name}' column",
                            self.table
                        ))
                    })
            };
            let (hidden, visible) = (column("hidden")?, column("visible")?);
            for row in 0..batch.num_rows() {
                self.publish(&StagedPart {
                    hidden: PathBuf::from(hidden.value(row)),
                    visible: PathBuf::from(visible.value(row)),
                })?;
            }
        }
        Ok(())
    }

    /// Deletes the in-progress parts instance `subtask` left (of any run).
    fn discard_leftovers_of(&self, subtask: usize) -> Result<(), EngineError> {
        let entries =
            std::fs::read_dir(&self.dir).map_err(|e| self.io_error("list", &self.dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| self.io_error("list", &self.dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if PartFileNames::is_in_progress_of(&name, subtask) {
                let path = entry.path();
                std::fs::remove_file(&path)
                    .map_err(|e| self.io_error("delete stale part file", &path, e))?;
            }
        }
        Ok(())
    }

    /// Encodes `batch` and appends it to the current part, rolling to a new
    /// part first when it would grow past the size limit.
    fn write_rows(&mut self, batch: &RecordBatch) -> Result<(), EngineError> {
        self.buffer.clear();
        self.encoder.encode(batch, &mut self.buffer)?;
        if self.buffer.is_empty() {
            return Ok(());
        }
        let len = self.buffer.len() as u64;
        let full = self
            .current
            .as_ref()
            .is_some_and(|p| p.bytes > 0 && p.bytes + len > self.rolling_file_size);
        if full {
            self.commit_current()?;
        }
        let mut part = match self.current.take() {
            Some(part) => part,
            None => self.open_part()?,
        };
        let written = part.writer.write_all(&self.buffer);
        part.bytes += len;
        let hidden = part.hidden.clone();
        self.current = Some(part);
        written.map_err(|e| self.io_error("write", &hidden, e))
    }

    /// Writes what the compactor holds, if anything.
    fn drain_compactor(&mut self) -> Result<(), EngineError> {
        let run = match self.compactor.as_mut() {
            Some(compactor) => compactor.drain()?,
            None => None,
        };
        match run {
            Some(run) => self.write_rows(&run),
            None => Ok(()),
        }
    }
}

#[async_trait]
impl Sink for FileSink {
    async fn write_batch(&mut self, batch: RecordBatch) -> Result<(), EngineError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if self.mode == ChangelogMode::Append && is_changelog(batch.schema_ref()) {
            return Err(EngineError::Config(format!(
                "table '{}': the filesystem sink is append-only but received a changelog; \
                 set '{CHANGELOG_MODE}' = 'all' or 'upsert'",
                self.table
            )));
        }
        let Some(compactor) = self.compactor.as_mut() else {
            return self.write_rows(&batch);
        };
        compactor.push(&batch)?;
        if compactor.is_full() {
            self.drain_compactor()?;
        }
        Ok(())
    }

    async fn finish(&mut self) -> Result<(), EngineError> {
        self.drain_compactor()?;
        // The end of a bounded input commits everything, staged or not.
        let staging = self.staging.take();
        self.commit_current()?;
        if let Some(staging) = staging {
            for part in staging
                .pending
                .into_values()
                .flatten()
                .chain(staging.closed)
            {
                self.publish(&part)?;
            }
        }
        Ok(())
    }

    async fn prepare_checkpoint(
        &mut self,
        checkpoint_id: u64,
    ) -> Result<Option<OperatorState>, EngineError> {
        // Everything before the barrier goes into closed, synced parts.
        self.drain_compactor()?;
        self.commit_current()?;
        let Some(staging) = self.staging.as_mut() else {
            return Err(EngineError::Config(format!(
                "table '{}': checkpoint barrier before the sink was restored",
                self.table
            )));
        };
        let closed = std::mem::take(&mut staging.closed);
        if !closed.is_empty() {
            staging.pending.insert(checkpoint_id, closed);
        }
        // Every part not yet committed: an earlier checkpoint's completion
        // notice may not have been handled yet, and a restore of this
        // checkpoint must still commit its parts.
        let parts: Vec<StagedPart> = staging.pending.values().flatten().cloned().collect();
        if parts.is_empty() {
            return Ok(None);
        }
        let path = |p: &Path| p.to_string_lossy().into_owned();
        let hidden: Vec<String> = parts.iter().map(|p| path(&p.hidden)).collect();
        let visible: Vec<String> = parts.iter().map(|p| path(&p.visible)).collect();
        let schema = Arc::new(Schema::new(vec![
            Field::new("hidden", DataType::Utf8, false),
            Field::new("visible", DataType::Utf8, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(hidden)),
                Arc::new(StringArray::from(visible)),
            ],
        )?;
        Ok(Some(OperatorState {
            schema,
            batches: vec![batch],
        }))
    }

    async fn commit_checkpoint(&mut self, checkpoint_id: u64) -> Result<(), EngineError> {
        let due = match self.staging.as_mut() {
            Some(staging) => {
                watershed_engine::checkpoint::take_through(&mut staging.pending, checkpoint_id)
            }
            None => return Ok(()),
        };
        for part in due.into_values().flatten() {
            self.publish(&part)?;
        }
        Ok(())
    }

    async fn restore(&mut self, state: Option<OperatorState>) -> Result<(), EngineError> {
        // Parts the restored checkpoint covers become visible (if the notice of
        // its completion never arrived); everything else in progress goes.
        if let Some(state) = &state {
            self.publish_restored(state)?;
        }
        self.discard_leftovers_of(self.subtask)?;
        self.staging = Some(Staging::default());
        Ok(())
    }

    /// Takes over the old instances this one inherits: their covered parts
    /// become visible, their later in-progress parts go.
    async fn restore_rescaled(&mut self, rescaled: Rescaled) -> Result<(), EngineError> {
        for (_, state) in rescaled.inherited() {
            self.publish_restored(state)?;
        }
        for old in rescaled.inherited_instances() {
            self.discard_leftovers_of(old)?;
        }
        self.discard_leftovers_of(self.subtask)?;
        self.staging = Some(Staging::default());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use watershed_engine::changelog::{RowKind, append_row_kind};

    fn spec(path: &Path, extra: &[(&str, &str)]) -> TableSpec {
        let mut options: BTreeMap<String, String> = [
            ("connector", "filesystem"),
            ("path", path.to_str().unwrap()),
            ("format", "csv"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in extra {
            options.insert(k.to_string(), v.to_string());
        }
        TableSpec {
            name: "out".into(),
            schema: Arc::new(Schema::new(vec![
                Field::new("id", DataType::Int64, true),
                Field::new("name", DataType::Utf8, true),
            ])),
            options,
            time_column: None,
            primary_key: Vec::new(),
        }
    }

    fn batch(from: i64, n: i64) -> RecordBatch {
        let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(from..from + n));
        let names: ArrayRef = Arc::new(StringArray::from_iter_values(
            (from..from + n).map(|i| format!("name-{i}")),
        ));
        RecordBatch::try_from_iter([("id", ids), ("name", names)]).unwrap()
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// The ids in the visible part files of `dir`, sorted.
    fn visible_ids(dir: &Path) -> Vec<i64> {
        let mut ids: Vec<i64> = listing(dir)
            .iter()
            .filter(|n| !n.starts_with('.'))
            .flat_map(|n| {
                std::fs::read_to_string(dir.join(n))
                    .unwrap()
                    .lines()
                    .filter_map(|l| l.split(',').next()?.parse().ok())
                    .collect::<Vec<i64>>()
            })
            .collect();
        ids.sort();
        ids
    }

    #[tokio::test]
    async fn with_checkpoints_parts_appear_only_when_their_checkpoint_completes() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let factory = FileSinkFactory::new(&spec(&out, &[])).unwrap();

        let mut sink = factory.create(Split::SINGLE).unwrap();
        sink.restore(None).await.unwrap();
        sink.write_batch(batch(0, 3)).await.unwrap();
        let state_1 = sink.prepare_checkpoint(1).await.unwrap();
        assert!(state_1.is_some());
        assert_eq!(visible_ids(&out), Vec::<i64>::new(), "staged, not visible");
        sink.commit_checkpoint(1).await.unwrap();
        assert_eq!(visible_ids(&out), vec![0, 1, 2]);

        // Checkpoints 2 and 3 are prepared and complete, but the sink dies
        // before it hears so; rows after the last barrier are in progress when
        // it dies. Restoring 3 must commit 2's parts too.
        sink.write_batch(batch(3, 1)).await.unwrap();
        let _ = sink.prepare_checkpoint(2).await.unwrap();
        sink.write_batch(batch(4, 1)).await.unwrap();
        let state_2 = sink.prepare_checkpoint(3).await.unwrap();
        sink.write_batch(batch(5, 4)).await.unwrap();
        let _ = sink.prepare_checkpoint(4).await.unwrap(); // never completes
        sink.write_batch(batch(9, 1)).await.unwrap();
        drop(sink);
        assert_eq!(visible_ids(&out), vec![0, 1, 2]);

        // The restored instance commits checkpoint 2's and 3's parts and drops
        // the rest.
        let mut restored = factory.create(Split::SINGLE).unwrap();
        restored.restore(state_2).await.unwrap();
        assert_eq!(visible_ids(&out), vec![0, 1, 2, 3, 4]);
        assert!(
            listing(&out).iter().all(|n| !n.starts_with('.')),
            "{:?}",
            listing(&out)
        );
        // Restoring the same state again (a second crash) changes nothing.
        let mut again = factory.create(Split::SINGLE).unwrap();
        again.restore(state_1).await.unwrap();
        assert_eq!(visible_ids(&out), vec![0, 1, 2, 3, 4]);

        // The end of the input commits what is left.
        again.write_batch(batch(5, 2)).await.unwrap();
        again.finish().await.unwrap();
        assert_eq!(visible_ids(&out), vec![0, 1, 2, 3, 4, 5, 6]);
    }

    #[tokio::test]
    async fn restore_discards_only_its_own_instance_in_progress_files() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let factory = FileSinkFactory::new(&spec(&out, &[])).unwrap();
        let mut other = factory.create(Split { index: 1, count: 2 }).unwrap();
        other.restore(None).await.unwrap();
        other.write_batch(batch(0, 1)).await.unwrap(); // in progress, instance 1
        let mut mine = factory.create(Split { index: 0, count: 2 }).unwrap();
        mine.restore(None).await.unwrap();
        let hidden: Vec<String> = listing(&out);
        assert_eq!(hidden.len(), 1, "{hidden:?}");
        assert!(PartFileNames::is_in_progress_of(&hidden[0], 1));
        assert!(!PartFileNames::is_in_progress_of(&hidden[0], 0));
        assert!(!PartFileNames::is_in_progress_of("part-x-1-0", 1));
    }

    #[tokio::test]
    async fn part_is_hidden_until_finish() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let factory = FileSinkFactory::new(&spec(&out, &[])).unwrap();
        let mut sink = factory.create(Split::SINGLE).unwrap();
        sink.write_batch(batch(0, 2)).await.unwrap();
        let during = listing(&out);
        assert_eq!(during.len(), 1);
        assert!(during[0].starts_with(".part-") && during[0].ends_with("-0-0.inprogress"));
        sink.finish().await.unwrap();
        sink.finish().await.unwrap();
        let after = listing(&out);
        assert_eq!(after.len(), 1);
        assert!(
            after[0].starts_with("part-") && after[0].ends_with("-0-0"),
            "{after:?}"
        );
        let text = std::fs::read_to_string(out.join(&after[0])).unwrap();
        assert_eq!(text, "0,name-0\n1,name-1\n");
    }

    #[tokio::test]
    async fn rolls_part_files_by_size() {
        let dir = tempfile::tempdir().unwrap();
        let factory = FileSinkFactory::new(&spec(
            dir.path(),
            &[("sink.rolling-policy.file-size", "100b")],
        ))
        .unwrap();
        let mut sink = factory.create(Split::SINGLE).unwrap();
        for i in 0..10 {
            // 5 rows of about 10 bytes each per batch.
            sink.write_batch(batch(i * 5, 5)).await.unwrap();
        }
        sink.write_batch(batch(0, 0)).await.unwrap();
        sink.finish().await.unwrap();
        let files = listing(dir.path());
        assert!(files.len() >= 5, "{files:?}");
        assert!(files.iter().all(|f| f.starts_with("part-")), "{files:?}");
        let mut total = 0;
        for f in &files {
            let text = std::fs::read_to_string(dir.path().join(f)).unwrap();
            assert!(text.len() <= 100, "{f}: {}", text.len());
            total += text.lines().count();
        }
        assert_eq!(total, 50);
    }

    #[tokio::test]
    async fn parallel_instances_write_their_own_parts() {
        let dir = tempfile::tempdir().unwrap();
        let factory = FileSinkFactory::new(&spec(dir.path(), &[])).unwrap();
        let split = |index| Split { index, count: 3 };
        let mut sinks: Vec<_> = (0..3).map(|i| factory.create(split(i)).unwrap()).collect();
        for (i, sink) in sinks.iter_mut().enumerate() {
            sink.write_batch(batch(i as i64 * 10, 2)).await.unwrap();
        }
        let during = listing(dir.path());
        assert_eq!(during.len(), 3, "{during:?}");
        for i in 0..3 {
            let suffix = format!("-{i}-0.inprogress");
            assert_eq!(during.iter().filter(|f| f.ends_with(&suffix)).count(), 1);
        }
        for sink in &mut sinks {
            sink.finish().await.unwrap();
        }
        let after = listing(dir.path());
        assert_eq!(after.len(), 3, "{after:?}");
        for i in 0..3 {
            let part = after
                .iter()
                .find(|f| f.starts_with("part-") && f.ends_with(&format!("-{i}-0")))
                .unwrap();
            let text = std::fs::read_to_string(dir.path().join(part)).unwrap();
            let from = i * 10;
            assert_eq!(
                text,
                format!("{from},name-{from}\n{},name-{}\n", from + 1, from + 1)
            );
        }
    }

    #[tokio::test]
    async fn nothing_written_means_no_files() {
        let dir = tempfile::tempdir().unwrap();
        let factory = FileSinkFactory::new(&spec(dir.path(), &[])).unwrap();
        let mut sink = factory.create(Split::SINGLE).unwrap();
        sink.finish().await.unwrap();
        assert!(listing(dir.path()).is_empty());
    }

    /// Rows `(id, name)` with their row kinds, as an updating query emits them.
    fn changes(rows: &[(i64, &str, RowKind)]) -> RecordBatch {
        let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0)));
        let names: ArrayRef = Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1)));
        let data = RecordBatch::try_from_iter([("id", ids), ("name", names)]).unwrap();
        let kinds: Vec<RowKind> = rows.iter().map(|r| r.2).collect();
        append_row_kind(&data, &kinds).unwrap()
    }

    /// The text of every committed part file, in name order.
    fn written(dir: &Path) -> String {
        listing(dir)
            .iter()
            .map(|f| {
                assert!(f.starts_with("part-"), "{f}");
                std::fs::read_to_string(dir.join(f)).unwrap()
            })
            .collect()
    }

    async fn write_all(factory: &FileSinkFactory, batches: Vec<RecordBatch>) {
        let mut sink = factory.create(Split::SINGLE).unwrap();
        for b in batches {
            sink.write_batch(b).await.unwrap();
        }
        sink.finish().await.unwrap();
    }

    #[tokio::test]
    async fn mode_all_writes_every_change_with_its_op_first() {
        use RowKind::*;
        let dir = tempfile::tempdir().unwrap();
        let factory =
            FileSinkFactory::new(&spec(dir.path(), &[("sink.changelog-mode", "all")])).unwrap();
        assert!(factory.accepts_changelog());
        let batches = vec![
            changes(&[(1, "a", Insert), (2, "b", Insert)]),
            changes(&[
                (1, "a", UpdateBefore),
                (1, "c", UpdateAfter),
                (2, "b", Delete),
            ]),
            // Append-only rows are inserts.
            batch(7, 1),
        ];
        write_all(&factory, batches).await;
        assert_eq!(
            written(dir.path()),
            "+I,1,a\n+I,2,b\n-U,1,a\n+U,1,c\n-D,2,b\n+I,7,name-7\n"
        );
    }

    #[tokio::test]
    async fn mode_all_json_has_the_op_as_first_field() {
        let dir = tempfile::tempdir().unwrap();
        let mut table = spec(
            dir.path(),
            &[
                ("sink.changelog-mode", "all"),
                ("sink.changelog.op-column", "kind"),
            ],
        );
        table.options.insert("format".into(), "json".into());
        let factory = FileSinkFactory::new(&table).unwrap();
        write_all(&factory, vec![changes(&[(1, "a", RowKind::UpdateBefore)])]).await;
        assert_eq!(
            written(dir.path()),
            "{\"kind\":\"-U\",\"id\":1,\"name\":\"a\"}\n"
        );
    }

    #[tokio::test]
    async fn mode_upsert_writes_the_last_change_per_key() {
        use RowKind::*;
        let dir = tempfile::tempdir().unwrap();
        let mut table = spec(dir.path(), &[("sink.changelog-mode", "upsert")]);
        table.primary_key = vec!["id".into()];
        let factory = FileSinkFactory::new(&table).unwrap();
        assert!(factory.accepts_changelog());
        let batches = vec![
            changes(&[(1, "a", Insert), (2, "b", Insert), (3, "x", Insert)]),
            changes(&[
                (1, "a", UpdateBefore),
                (1, "c", UpdateAfter),
                (2, "b", Delete),
            ]),
            changes(&[(1, "c", UpdateBefore), (1, "d", UpdateAfter)]),
        ];
        let mut sink = factory.create(Split::SINGLE).unwrap();
        for b in batches {
            sink.write_batch(b).await.unwrap();
        }
        // Changes are held for compaction; nothing is visible before the end.
        assert!(listing(dir.path()).iter().all(|f| f.starts_with('.')));
        sink.finish().await.unwrap();
        assert_eq!(written(dir.path()), "+I,3,x\n-D,2,b\n+U,1,d\n");
    }

    #[test]
    fn upsert_without_primary_key_is_refused_at_creation() {
        let dir = tempfile::tempdir().unwrap();
        let err = FileSinkFactory::new(&spec(dir.path(), &[("sink.changelog-mode", "upsert")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("table 'out': option 'sink.changelog-mode' = 'upsert'"),
            "{err}"
        );
        assert!(err.contains("PRIMARY KEY"), "{err}");
        let err = FileSinkFactory::new(&spec(dir.path(), &[("sink.changelog-mode", "yes")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("expected 'append'"), "{err}");
    }

    #[tokio::test]
    async fn append_mode_refuses_changelogs_and_names_the_option() {
        let dir = tempfile::tempdir().unwrap();
        let factory = FileSinkFactory::new(&spec(dir.path(), &[])).unwrap();
        assert!(!factory.accepts_changelog());
        let hint = factory.changelog_hint().unwrap();
        assert!(
            hint.contains("'sink.changelog-mode' = 'all'") && hint.contains("'out'"),
            "{hint}"
        );
        let mut sink = factory.create(Split::SINGLE).unwrap();
        let err = sink
            .write_batch(changes(&[(1, "a", RowKind::Insert)]))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("append-only") && err.contains("sink.changelog-mode"),
            "{err}"
        );
        sink.finish().await.unwrap();
        assert!(listing(dir.path()).is_empty());
    }

    #[test]
    fn a_file_path_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f.csv");
        std::fs::write(&file, "").unwrap();
        let factory = FileSinkFactory::new(&spec(&file, &[])).unwrap();
        let err = factory.create(Split::SINGLE).err().unwrap().to_string();
        assert!(err.contains("is a file"), "{err}");
    }
}
