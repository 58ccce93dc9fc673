//! End-to-end checks of the filesystem connector through the registry: what the
//! sink writes, the source reads back unchanged, and malformed input is reported
//! or counted.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array, Int8Array,
    Int16Array, Int32Array, Int64Array, StringArray, TimestampMillisecondArray,
};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use watershed_connectors::DefaultConnectors;
use watershed_connectors::payments::{PaymentsConfig, generate_payments, payments_schema};
use watershed_engine::EngineError;
use watershed_engine::connector::{ConnectorRegistry, TableSpec};
use watershed_engine::metrics::NodeMetrics;
use watershed_engine::source::{SourceContext, Split};

fn spec(schema: SchemaRef, options: &[(&str, &str)]) -> TableSpec {
    TableSpec {
        name: "t".into(),
        schema,
        options: options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        time_column: None,
        primary_key: Vec::new(),
    }
}

fn all_types_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("i8", DataType::Int8, true),
        Field::new("i16", DataType::Int16, true),
        Field::new("i32", DataType::Int32, true),
        Field::new("i64", DataType::Int64, true),
        Field::new("f32", DataType::Float32, true),
        Field::new("f64", DataType::Float64, true),
        Field::new("b", DataType::Boolean, true),
        Field::new("s", DataType::Utf8, true),
        Field::new("amount", DataType::Decimal128(18, 2), true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        Field::new("d", DataType::Date32, true),
    ]))
}

/// Every type, with NULLs in every non-string column and awkward strings.
fn all_types_batch(string_nulls: bool) -> RecordBatch {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int8Array::from(vec![Some(-128), None, Some(127)])),
        Arc::new(Int16Array::from(vec![Some(-1), Some(32767), None])),
        Arc::new(Int32Array::from(vec![None, Some(i32::MIN), Some(42)])),
        Arc::new(Int64Array::from(vec![Some(i64::MAX), None, Some(0)])),
        Arc::new(Float32Array::from(vec![Some(0.1), Some(-2.5e10), None])),
        Arc::new(Float64Array::from(vec![
            Some(0.1 + 0.2),
            None,
            Some(1e-300),
        ])),
        Arc::new(BooleanArray::from(vec![Some(true), Some(false), None])),
        Arc::new(StringArray::from(vec![
            Some("plain"),
            if string_nulls { None } else { Some("") },
            Some("a,b \"quoted\"\nnext line"),
        ])),
        Arc::new(
            Decimal128Array::from(vec![Some(1250), Some(-1), None])
                .with_precision_and_scale(18, 2)
                .unwrap(),
        ),
        Arc::new(TimestampMillisecondArray::from(vec![
            Some(1_704_067_200_000),
            None,
            Some(-1),
        ])),
        Arc::new(Date32Array::from(vec![Some(19_723), Some(-1), None])),
    ];
    RecordBatch::try_new(all_types_schema(), columns).unwrap()
}

async fn write(registry: &DefaultConnectors, table: &TableSpec, batches: &[RecordBatch]) {
    let mut sink = registry.sink(table).unwrap().create(Split::SINGLE).unwrap();
    for b in batches {
        sink.write_batch(b.clone()).await.unwrap();
    }
    sink.finish().await.unwrap();
}

async fn read(
    registry: &DefaultConnectors,
    table: &TableSpec,
    batch_size: usize,
) -> Result<(RecordBatch, Arc<NodeMetrics>), EngineError> {
    let factory = registry.source(table)?;
    let ctx = SourceContext {
        metrics: Arc::new(NodeMetrics::default()),
        batch_size,
        idle_timeout: None,
    };
    let mut source = factory.create(Split::SINGLE)?;
    let mut batches = Vec::new();
    while let Some(b) = source.next_batch(&ctx).await? {
        batches.push(b);
    }
    Ok((concat_batches(&factory.schema(), &batches)?, ctx.metrics))
}

fn visible_and_hidden(dir: &Path) -> (Vec<String>, Vec<String>) {
    let names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.into_iter().partition(|n| !n.starts_with('.'))
}

#[tokio::test]
async fn csv_round_trip_of_every_type() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out");
    let table = spec(
        all_types_schema(),
        &[
            ("connector", "filesystem"),
            ("path", path.to_str().unwrap()),
            ("format", "csv"),
        ],
    );
    let registry = DefaultConnectors::new();
    let input = all_types_batch(false);
    write(&registry, &table, std::slice::from_ref(&input)).await;
    let (visible, hidden) = visible_and_hidden(&path);
    assert_eq!(visible.len(), 1);
    assert!(hidden.is_empty(), "{hidden:?}");
    let text = std::fs::read_to_string(path.join(&visible[0])).unwrap();
    assert_eq!(
        text,
        "-128,-1,,9223372036854775807,0.1,0.30000000000000004,true,plain,12.50,2024-01-01 00:00:00.000,2024-01-01\n\
         ,32767,-2147483648,,-25000000000.0,,false,,-0.01,,1969-12-31\n\
         127,,42,0,,1e-300,,\"a,b \"\"quoted\"\"\nnext line\",,1969-12-31 23:59:59.999,\n"
    );
    let (output, metrics) = read(&registry, &table, 2).await.unwrap();
    assert_eq!(output, input);
    assert_eq!(metrics.rows_in.load(Ordering::Relaxed), 3);
}

#[tokio::test]
async fn csv_null_literal_round_trips_null_strings() {
    let dir = tempfile::tempdir().unwrap();
    let table = spec(
        all_types_schema(),
        &[
            ("connector", "filesystem"),
            ("path", dir.path().to_str().unwrap()),
            ("format", "csv"),
            ("csv.null-literal", "\\N"),
            ("csv.field-delimiter", ";"),
        ],
    );
    let registry = DefaultConnectors::new();
    let input = all_types_batch(true);
    write(&registry, &table, std::slice::from_ref(&input)).await;
    assert_eq!(read(&registry, &table, 1024).await.unwrap().0, input);
}

#[tokio::test]
async fn json_round_trip_of_every_type() {
    let dir = tempfile::tempdir().unwrap();
    let table = spec(
        all_types_schema(),
        &[
            ("connector", "filesystem"),
            ("path", dir.path().to_str().unwrap()),
            ("format", "json"),
        ],
    );
    let registry = DefaultConnectors::new();
    let input = all_types_batch(true);
    write(&registry, &table, &[input.clone(), input.slice(1, 2)]).await;
    let (visible, _) = visible_and_hidden(dir.path());
    let text = std::fs::read_to_string(dir.path().join(&visible[0])).unwrap();
    let first = text.lines().next().unwrap();
    assert!(first.contains("\"amount\":12.50,"), "{first}");
    assert!(
        first.contains("\"ts\":\"2024-01-01 00:00:00.000\""),
        "{first}"
    );
    let (output, _) = read(&registry, &table, 2).await.unwrap();
    let expected =
        concat_batches(&all_types_schema(), &[input.clone(), input.slice(1, 2)]).unwrap();
    assert_eq!(output, expected);
}

#[tokio::test]
async fn generated_payments_survive_rolling_part_files_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let table = spec(
        payments_schema(),
        &[
            ("connector", "filesystem"),
            ("path", dir.path().to_str().unwrap()),
            ("format", "csv"),
            ("sink.rolling-policy.file-size", "64KB"),
        ],
    );
    let registry = DefaultConnectors::new();
    let batches = generate_payments(PaymentsConfig::default(), 20_000, 1000).unwrap();
    write(&registry, &table, &batches).await;
    let (visible, hidden) = visible_and_hidden(dir.path());
    assert!(visible.len() > 10, "{}", visible.len());
    assert!(hidden.is_empty());
    let (output, _) = read(&registry, &table, 4096).await.unwrap();
    assert_eq!(
        output,
        concat_batches(&payments_schema(), &batches).unwrap()
    );
}

#[tokio::test]
async fn malformed_rows_fail_or_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("payments.csv");
    std::fs::write(
        &file,
        "1,2024-01-01 00:00:00,12.50\n\
         2,2024-01-01T00:00:01,1.00\n\
         3,2024-01-01 00:00:02,123456789012345678.00\n\
         4,2024-01-01 00:00:03\n\
         5,2024-01-01 00:00:04,1e3\n",
    )
    .unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        Field::new("amount", DataType::Decimal128(18, 2), true),
    ]));
    let registry = DefaultConnectors::new();
    let path = file.to_str().unwrap();
    let strict = spec(
        schema.clone(),
        &[
            ("connector", "filesystem"),
            ("path", path),
            ("format", "csv"),
        ],
    );
    let err = read(&registry, &strict, 1024).await.unwrap_err();
    assert!(matches!(err, EngineError::MalformedInput(_)));
    let message = err.to_string();
    assert!(
        message.starts_with(&format!(
            "malformed csv row in {path} line 2: column 'ts' (TIMESTAMP(3)): invalid timestamp"
        )),
        "{message}"
    );
    let lenient = spec(
        schema,
        &[
            ("connector", "filesystem"),
            ("path", path),
            ("format", "csv"),
            ("csv.ignore-parse-errors", "true"),
        ],
    );
    let (output, metrics) = read(&registry, &lenient, 1024).await.unwrap();
    assert_eq!(output.num_rows(), 2);
    let amounts = output
        .column(2)
        .as_any()
        .downcast_ref::<Decimal128Array>()
        .unwrap();
    assert_eq!(amounts.value(1), 100_000);
    assert_eq!(metrics.rows_in.load(Ordering::Relaxed), 5);
    assert_eq!(metrics.rows_rejected.load(Ordering::Relaxed), 3);
}
