//! The filesystem source: reads one file, or every visible file of a directory
//! in name order, as a bounded stream of batches.
//!
//! Files are read in natural name order (digit runs compare by value, so
//! `part-x-0-2` comes before `part-x-0-10`, i.e. the order the sink wrote them).
//! Files are read through a buffered reader and decoded incrementally, so memory
//! stays bounded by the batch size whatever the file size. Hidden files (names
//! starting with `.` or `_`, such as in-progress part files) and subdirectories
//! are skipped.
//!
//! With parallel instances, files are the unit of work: split `index` of `count`
//! reads the files at positions `p` of the sorted list with `p % count == index`
//! ([`Split::owns`]). A single file is read entirely by split 0; a split owning
//! no file ends immediately.

use std::cmp::Ordering;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use watershed_engine::EngineError;
use watershed_engine::checkpoint::OperatorState;
use watershed_engine::connector::TableSpec;
use watershed_engine::metrics::NodeMetrics;
use watershed_engine::source::{Source, SourceContext, SourceFactory, Split};

use super::changelog::{CHANGELOG_MODE, ChangelogMode};
use super::{FileSystemConfig, IDENTIFIER};
use crate::explain::explain_options;
use crate::format::types::ColumnType;
use crate::format::{BatchDecoder, FormatConfig};
use crate::options::TableOptions;

/// Read buffer per open file.
const READ_BUFFER: usize = 256 * 1024;

/// Builds readers of a filesystem table.
#[derive(Debug, Clone)]
pub struct FileSourceFactory {
    table: String,
    schema: SchemaRef,
    config: FileSystemConfig,
    explain: Vec<String>,
}

impl FileSourceFactory {
    /// Validates the table's options and column types. The path itself is only
    /// looked at when a reader is created, so EXPLAIN works without the data.
    pub fn new(table: &TableSpec) -> Result<Self, EngineError> {
        let options = TableOptions::from_spec(table);
        let config = FileSystemConfig::from_options(&options)?;
        if config.changelog.mode != ChangelogMode::Append {
            return Err(options.error(
                CHANGELOG_MODE,
                format!(
                    "the filesystem source reads plain rows, not changelog files; to read \
                     them, declare another table over the same path with the op column \
                     first ('{} STRING') and without '{CHANGELOG_MODE}'",
                    config.changelog.op_column
                ),
            ));
        }
        ColumnType::for_schema(&table.name, &table.schema)?;
        Ok(FileSourceFactory {
            table: table.name.clone(),
            schema: table.schema.clone(),
            config,
            explain: explain_options(IDENTIFIER, &table.options),
        })
    }

    /// The parsed options.
    pub fn config(&self) -> &FileSystemConfig {
        &self.config
    }
}

impl SourceFactory for FileSourceFactory {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn explain(&self) -> Vec<String> {
        self.explain.clone()
    }

    fn is_bounded(&self) -> bool {
        true
    }

    /// Lists the input files and reads those `split` owns (round-robin by
    /// position in name order).
    fn create(&self, split: Split) -> Result<Box<dyn Source>, EngineError> {
        let files = list_input_files(&self.table, &self.config.path)?;
        Ok(Box::new(FileSource {
            table: self.table.clone(),
            schema: self.schema.clone(),
            format: self.config.format.clone(),
            files: files
                .into_iter()
                .enumerate()
                .filter(|(position, _)| split.owns(*position))
                .map(|(_, file)| file)
                .collect(),
            next_file: 0,
            rows_in_file: 0,
            skip_rows: 0,
            current: None,
        }))
    }
}

/// True for names the source skips: hidden (`.x`) and marker/in-progress (`_x`) files.
fn is_hidden(name: &str) -> bool {
    name.starts_with('.') || name.starts_with('_')
}

/// Compares names with digit runs ordered by numeric value (`a2` < `a10`);
/// names equal in that order fall back to plain byte order.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    loop {
        match (x.first(), y.first()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let (nx, rx) = x.split_at(x.iter().take_while(|b| b.is_ascii_digit()).count());
                let (ny, ry) = y.split_at(y.iter().take_while(|b| b.is_ascii_digit()).count());
                let trim = |n: &'_ [u8]| -> usize { n.iter().take_while(|b| **b == b'0').count() };
                let (nx, ny) = (&nx[trim(nx)..], &ny[trim(ny)..]);
                let order = nx.len().cmp(&ny.len()).then_with(|| nx.cmp(ny));
                if order != Ordering::Equal {
                    return order;
                }
                (x, y) = (rx, ry);
            }
            (Some(c), Some(d)) => {
                if c != d {
                    return c.cmp(d);
                }
                (x, y) = (&x[1..], &y[1..]);
            }
        }
    }
}

/// The files to read for `path`: itself if it is a file, else the visible
/// regular files directly inside it, in natural name order.
pub fn list_input_files(table: &str, path: &Path) -> Result<Vec<PathBuf>, EngineError> {
    let io_error = |what: &str, p: &Path, e| {
        EngineError::io(
            format!("table '{table}': cannot {what} '{}'", p.display()),
            e,
        )
    };
    let metadata = std::fs::metadata(path).map_err(|e| io_error("read path", path, e))?;
    if metadata.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(|e| io_error("list directory", path, e))? {
        let entry = entry.map_err(|e| io_error("list directory", path, e))?;
        let name = entry.file_name();
        if is_hidden(&name.to_string_lossy()) {
            continue;
        }
        let entry_path = entry.path();
        let is_file = std::fs::metadata(&entry_path)
            .map_err(|e| io_error("read path", &entry_path, e))?
            .is_file();
        if is_file {
            files.push(entry_path);
        }
    }
    files.sort_by(|a, b| {
        let name = |p: &PathBuf| {
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        natural_cmp(&name(a), &name(b))
    });
    Ok(files)
}

/// Reads the listed files one after the other.
///
/// Its checkpoint position is the file being read (an index into the split's
/// files in name order) and the rows emitted from it; a restore skips those
/// rows by decoding them again (without counting them twice).
struct FileSource {
    table: String,
    schema: SchemaRef,
    format: FormatConfig,
    files: Vec<PathBuf>,
    /// Index of the next file to open.
    next_file: usize,
    /// Rows emitted from the open file.
    rows_in_file: u64,
    /// Rows to skip when the next file opens (after a restore).
    skip_rows: u64,
    current: Option<Box<dyn BatchDecoder>>,
}

impl FileSource {
    fn open(&self, path: &Path) -> Result<Box<dyn BatchDecoder>, EngineError> {
        let file = File::open(path).map_err(|e| {
            EngineError::io(
                format!("table '{}': cannot open '{}'", self.table, path.display()),
                e,
            )
        })?;
        self.format.decoder(
            &self.table,
            self.schema.clone(),
            path.display().to_string(),
            Box::new(BufReader::with_capacity(READ_BUFFER, file)),
        )
    }
}

#[async_trait]
impl Source for FileSource {
    async fn next_batch(
        &mut self,
        ctx: &SourceContext,
    ) -> Result<Option<RecordBatch>, EngineError> {
        loop {
            if self.current.is_none() {
                let Some(path) = self.files.get(self.next_file).cloned() else {
                    return Ok(None);
                };
                self.next_file += 1;
                self.rows_in_file = 0;
                let mut decoder = self.open(&path)?;
                // Rows read before the restored checkpoint: decoded again and
                // dropped, counted in scratch metrics only.
                let scratch = NodeMetrics::default();
                while self.skip_rows > 0 {
                    let want = usize::try_from(self.skip_rows).unwrap_or(usize::MAX);
                    match decoder.next_batch(want.min(ctx.batch_size.max(1)), &scratch)? {
                        Some(batch) => {
                            self.skip_rows = self.skip_rows.saturating_sub(batch.num_rows() as u64);
                            self.rows_in_file += batch.num_rows() as u64;
                        }
                        None => {
                            return Err(EngineError::Config(format!(
                                "table '{}': '{}' is shorter than at the checkpoint being \
                                 restored (the input changed)",
                                self.table,
                                path.display()
                            )));
                        }
                    }
                }
                self.current = Some(decoder);
            }
            let Some(decoder) = self.current.as_mut() else {
                continue;
            };
            match decoder.next_batch(ctx.batch_size, &ctx.metrics)? {
                Some(batch) => {
                    self.rows_in_file += batch.num_rows() as u64;
                    return Ok(Some(batch));
                }
                None => self.current = None,
            }
        }
    }

    fn snapshot(&self) -> Result<OperatorState, EngineError> {
        let (file, rows) = match self.current {
            Some(_) => (self.next_file.saturating_sub(1), self.rows_in_file),
            None => (self.next_file, 0),
        };
        let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        OperatorState::counters(&[
            ("file", as_i64(file as u64)),
            ("rows", as_i64(rows)),
            ("files", as_i64(self.files.len() as u64)),
        ])
    }

    fn restore(&mut self, state: OperatorState) -> Result<(), EngineError> {
        let files = usize::try_from(state.counter("files")?).unwrap_or(usize::MAX);
        if files != self.files.len() {
            return Err(EngineError::Config(format!(
                "table '{}': the checkpoint was taken over {files} input files of this split, \
                 there are {} now (the input changed)",
                self.table,
                self.files.len()
            )));
        }
        self.next_file = usize::try_from(state.counter("file")?).unwrap_or(usize::MAX);
        self.skip_rows = u64::try_from(state.counter("rows")?).unwrap_or(0);
        self.rows_in_file = 0;
        self.current = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    use watershed_engine::metrics::NodeMetrics;

    fn spec(path: &Path, format: &str) -> TableSpec {
        let options: BTreeMap<String, String> = [
            ("connector", "filesystem"),
            ("path", path.to_str().unwrap()),
            ("format", format),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        TableSpec {
            name: "t".into(),
            schema: Arc::new(Schema::new(vec![
                Field::new("id", DataType::Int64, true),
                Field::new("name", DataType::Utf8, true),
            ])),
            options,
            time_column: None,
            primary_key: Vec::new(),
        }
    }

    async fn read_ids(factory: &FileSourceFactory, batch_size: usize) -> (Vec<i64>, usize) {
        read_split(factory, Split::SINGLE, batch_size).await
    }

    async fn read_split(
        factory: &FileSourceFactory,
        split: Split,
        batch_size: usize,
    ) -> (Vec<i64>, usize) {
        let ctx = SourceContext {
            metrics: Arc::new(NodeMetrics::default()),
            batch_size,
            idle_timeout: None,
        };
        let mut source = factory.create(split).unwrap();
        let mut ids = Vec::new();
        let mut batches = 0;
        while let Some(b) = source.next_batch(&ctx).await.unwrap() {
            assert!(b.num_rows() <= batch_size);
            batches += 1;
            ids.extend(b.column(0).as_primitive::<Int64Type>().values().iter());
        }
        assert_eq!(
            ctx.metrics.rows_in.load(Ordering::Relaxed),
            ids.len() as u64
        );
        (ids, batches)
    }

    #[tokio::test]
    async fn a_split_restored_from_its_snapshot_reads_the_rest_exactly_once() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.csv"), "1,a\n2,b\n3,c\n").unwrap();
        std::fs::write(dir.path().join("b.csv"), "4,d\nbad\n5,e\n6,f\n").unwrap();
        let mut spec = spec(dir.path(), "csv");
        spec.options
            .insert("csv.ignore-parse-errors".into(), "true".into());
        let factory = FileSourceFactory::new(&spec).unwrap();
        let metrics = Arc::new(NodeMetrics::default());
        let ctx = SourceContext {
            metrics: metrics.clone(),
            batch_size: 2,
            idle_timeout: None,
        };
        let ids = |b: RecordBatch| b.column(0).as_primitive::<Int64Type>().values().to_vec();
        // Positions after each batch, then what a restored split reads from each.
        let mut first = factory.create(Split::SINGLE).unwrap();
        let mut read = Vec::new();
        let mut positions = vec![(first.snapshot().unwrap(), Vec::new())];
        while let Some(b) = first.next_batch(&ctx).await.unwrap() {
            read.extend(ids(b));
            positions.push((first.snapshot().unwrap(), read.clone()));
        }
        assert_eq!(read, vec![1, 2, 3, 4, 5, 6]);
        for (position, before) in positions {
            let mut resumed = factory.create(Split::SINGLE).unwrap();
            resumed.restore(position).unwrap();
            let mut all = before.clone();
            while let Some(b) = resumed.next_batch(&ctx).await.unwrap() {
                all.extend(ids(b));
            }
            assert_eq!(all, vec![1, 2, 3, 4, 5, 6], "resumed after {before:?}");
        }
        // A changed input is refused.
        std::fs::write(dir.path().join("c.csv"), "7,g\n").unwrap();
        let mut changed = factory.create(Split::SINGLE).unwrap();
        let err = changed.restore(first.snapshot().unwrap()).unwrap_err();
        assert!(err.to_string().contains("the input changed"), "{err}");
    }

    #[tokio::test]
    async fn reads_visible_files_of_a_directory_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.csv"), "3,c\n4,d\n5,e\n").unwrap();
        std::fs::write(dir.path().join("a.csv"), "1,a\n2,b\n").unwrap();
        std::fs::write(dir.path().join(".hidden.csv"), "99,x\n").unwrap();
        std::fs::write(dir.path().join("_SUCCESS"), "").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub").join("c.csv"), "98,y\n").unwrap();
        let factory = FileSourceFactory::new(&spec(dir.path(), "csv")).unwrap();
        assert!(factory.is_bounded());
        let (ids, batches) = read_ids(&factory, 2).await;
        assert_eq!(ids, vec![1, 2, 3, 4, 5]);
        assert_eq!(batches, 3);
        let single = FileSourceFactory::new(&spec(&dir.path().join("b.csv"), "csv")).unwrap();
        assert_eq!(read_ids(&single, 1024).await.0, vec![3, 4, 5]);
    }

    #[tokio::test]
    async fn parallel_splits_read_every_file_once() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f1.csv"), "1,a\n2,b\n").unwrap();
        std::fs::write(dir.path().join("f2.csv"), "3,c\n").unwrap();
        std::fs::write(dir.path().join("f10.csv"), "4,d\n5,e\n6,f\n").unwrap();
        let factory = FileSourceFactory::new(&spec(dir.path(), "csv")).unwrap();
        let split = |index| Split { index, count: 2 };
        // Natural order is f1, f2, f10: split 0 reads f1 and f10, split 1 reads f2.
        let (first, _) = read_split(&factory, split(0), 1024).await;
        let (second, _) = read_split(&factory, split(1), 1024).await;
        assert_eq!(first, vec![1, 2, 4, 5, 6]);
        assert_eq!(second, vec![3]);
        let mut all = [first, second].concat();
        all.sort_unstable();
        assert_eq!(all, read_ids(&factory, 1024).await.0);
        assert_eq!(all, vec![1, 2, 3, 4, 5, 6]);
        // A single file is read entirely by split 0; other splits end at once.
        let file = FileSourceFactory::new(&spec(&dir.path().join("f10.csv"), "csv")).unwrap();
        assert_eq!(read_split(&file, split(0), 1024).await, (vec![4, 5, 6], 1));
        assert_eq!(read_split(&file, split(1), 1024).await, (vec![], 0));
    }

    #[tokio::test]
    async fn reads_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.json");
        std::fs::write(&path, "{\"id\": 7, \"name\": \"x\"}\n\n{\"id\": 8}\n").unwrap();
        let factory = FileSourceFactory::new(&spec(&path, "json")).unwrap();
        assert_eq!(read_ids(&factory, 1024).await.0, vec![7, 8]);
    }

    #[test]
    fn natural_order_compares_numbers_by_value() {
        let mut names = vec![
            "part-a-0-10",
            "part-a-0-2",
            "part-a-0-1",
            "b",
            "a10",
            "a9",
            "a09",
        ];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            names,
            vec![
                "a09",
                "a9",
                "a10",
                "b",
                "part-a-0-1",
                "part-a-0-2",
                "part-a-0-10"
            ]
        );
    }

    #[test]
    fn missing_path_names_table_and_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.csv");
        let factory = FileSourceFactory::new(&spec(&missing, "csv")).unwrap();
        let err = factory.create(Split::SINGLE).err().unwrap().to_string();
        assert!(err.starts_with("table 't': cannot read path '"), "{err}");
        assert!(err.contains("nope.csv"), "{err}");
    }

    #[test]
    fn changelog_tables_are_not_read_as_plain_rows() {
        let mut table = spec(Path::new("out/balances"), "csv");
        table
            .options
            .insert("sink.changelog-mode".into(), "all".into());
        let err = FileSourceFactory::new(&table).unwrap_err().to_string();
        assert!(
            err.starts_with("table 't': option 'sink.changelog-mode' = 'all'"),
            "{err}"
        );
        assert!(err.contains("'op STRING'"), "{err}");
        table
            .options
            .insert("sink.changelog-mode".into(), "append".into());
        assert!(FileSourceFactory::new(&table).is_ok());
    }

    #[test]
    fn explain_is_sorted_options() {
        let factory = FileSourceFactory::new(&spec(Path::new("data/p.csv"), "csv")).unwrap();
        assert_eq!(
            factory.explain(),
            vec!["connector=filesystem", "format=csv", "path=data/p.csv"]
        );
    }
}
