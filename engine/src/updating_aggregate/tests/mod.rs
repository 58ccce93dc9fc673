//! Unit tests of the updating aggregate against independent per-key oracles.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};

use datafusion::arrow::array::{Array, Decimal128Array, Float64Array, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::functions_aggregate::average::avg_udaf;
use datafusion::functions_aggregate::count::count_udaf;
use datafusion::functions_aggregate::min_max::{max_udaf, min_udaf};
use datafusion::functions_aggregate::stddev::stddev_udaf;
use datafusion::functions_aggregate::sum::sum_udaf;
use datafusion::logical_expr::{AggregateUDF, Operator as BinaryOp};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::aggregate::AggregateExprBuilder;
use datafusion::physical_expr::expressions::{binary, col, lit};

use super::*;
use crate::aggregate::AggregateCall;
use crate::changelog::{RowKind, is_changelog, row_kinds};
use crate::message::Message;
use crate::metrics::NodeMetrics;
use crate::operator::Output;

mod distinct;

const KEYS: [Option<&str>; 5] = [Some("a"), Some("b"), Some("c"), Some("dd"), None];

#[derive(Debug, Clone, Copy)]
struct Row {
    key: Option<&'static str>,
    v: Option<i64>,
    /// Decimal(10, 2) as its unscaled value.
    d: Option<i128>,
}

fn input_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Utf8, true),
        Field::new("v", DataType::Int64, true),
        Field::new("d", DataType::Decimal128(10, 2), true),
    ]))
}

fn batch(rows: &[Row]) -> RecordBatch {
    let d = rows
        .iter()
        .map(|r| r.d)
        .collect::<Decimal128Array>()
        .with_precision_and_scale(10, 2)
        .unwrap();
    RecordBatch::try_new(
        input_schema(),
        vec![
            Arc::new(rows.iter().map(|r| r.key).collect::<StringArray>()),
            Arc::new(rows.iter().map(|r| r.v).collect::<Int64Array>()),
            Arc::new(d),
        ],
    )
    .unwrap()
}

fn call(
    udaf: Arc<AggregateUDF>,
    arg: Arc<dyn PhysicalExpr>,
    name: &str,
    distinct: bool,
    filter: Option<Arc<dyn PhysicalExpr>>,
) -> AggregateCall {
    let schema = input_schema();
    AggregateCall {
        function: Arc::new(
            AggregateExprBuilder::new(udaf, vec![arg])
                .schema(schema)
                .alias(name)
                .with_distinct(distinct)
                .build()
                .unwrap(),
        ),
        filter,
    }
}

fn spec(keyed: bool, calls: Vec<AggregateCall>) -> AggregateSpec {
    spec_by(keyed.then_some("k"), calls)
}

/// A spec grouping by the column `key` (no grouping for `None`).
fn spec_by(key: Option<&str>, calls: Vec<AggregateCall>) -> AggregateSpec {
    let schema = input_schema();
    let group_exprs = match key {
        Some(key) => vec![(col(key, &schema).unwrap(), key.to_string())],
        None => vec![],
    };
    AggregateSpec::new(group_exprs, calls, &schema, Arc::new(Schema::empty())).unwrap()
}

/// cnt = COUNT(1), cnt_v = COUNT(v), sum_v, sum_d, min_v, max_v, avg_v, avg_d,
/// big = COUNT(v) FILTER (WHERE v > 50).
fn full_calls() -> Vec<AggregateCall> {
    let s = input_schema();
    let v = col("v", &s).unwrap();
    let d = col("d", &s).unwrap();
    let over_50 = binary(v.clone(), BinaryOp::Gt, lit(50i64), &s).unwrap();
    vec![
        call(count_udaf(), lit(1i64), "cnt", false, None),
        call(count_udaf(), v.clone(), "cnt_v", false, None),
        call(sum_udaf(), v.clone(), "sum_v", false, None),
        call(sum_udaf(), d.clone(), "sum_d", false, None),
        call(min_udaf(), v.clone(), "min_v", false, None),
        call(max_udaf(), v.clone(), "max_v", false, None),
        call(avg_udaf(), v.clone(), "avg_v", false, None),
        call(avg_udaf(), d, "avg_d", false, None),
        call(count_udaf(), v, "big", false, Some(over_50)),
    ]
}

fn fmt_dec(value: i128, p: u8, s: i8) -> String {
    let a = Decimal128Array::from(vec![value])
        .with_precision_and_scale(p, s)
        .unwrap();
    array_value_to_string(&a, 0).unwrap()
}

fn opt(v: Option<String>) -> String {
    v.unwrap_or_default()
}

/// The expected output row (aggregates only, formatted) of one key's rows,
/// computed independently of the operator.
fn oracle(rows: &[Row], schema: &Schema) -> Vec<String> {
    let vs: Vec<i64> = rows.iter().filter_map(|r| r.v).collect();
    let ds: Vec<i128> = rows.iter().filter_map(|r| r.d).collect();
    let dec_type = |name: &str| match schema.field_with_name(name).unwrap().data_type() {
        DataType::Decimal128(p, s) => (*p, *s),
        other => panic!("{other}"),
    };
    let (sp, ss) = dec_type("sum_d");
    let (ap, at) = dec_type("avg_d");
    let avg_d = (!ds.is_empty()).then(|| {
        let n = ds.len() as i128;
        let scaled = ds.iter().sum::<i128>() * 10i128.pow((at - 2) as u32);
        // half away from zero: (2x + sign(x) * n) / 2n, truncated
        let x = (2 * scaled + scaled.signum() * n) / (2 * n);
        fmt_dec(x, ap, at)
    });
    let avg_v = (!vs.is_empty()).then(|| {
        let a = Float64Array::from(vec![vs.iter().sum::<i64>() as f64 / vs.len() as f64]);
        array_value_to_string(&a, 0).unwrap()
    });
    vec![
        rows.len().to_string(),
        vs.len().to_string(),
        opt((!vs.is_empty()).then(|| vs.iter().sum::<i64>().to_string())),
        opt((!ds.is_empty()).then(|| fmt_dec(ds.iter().sum(), sp, ss))),
        opt(vs.iter().min().map(|m| m.to_string())),
        opt(vs.iter().max().map(|m| m.to_string())),
        opt(avg_v),
        opt(avg_d),
        vs.iter().filter(|&&v| v > 50).count().to_string(),
    ]
}

fn row_strings(batch: &RecordBatch, i: usize) -> (String, Vec<String>) {
    let cols = batch.num_columns() - 1;
    let key = array_value_to_string(batch.column(0), i).unwrap();
    let key = if batch.column(0).is_null(i) {
        "<null>".to_string()
    } else {
        key
    };
    let vals = (1..cols)
        .map(|c| array_value_to_string(batch.column(c), i).unwrap())
        .collect();
    (key, vals)
}

/// A small deterministic random number generator.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn run_batch(op: &mut dyn Operator, rows: &[Row], metrics: &NodeMetrics) -> Vec<RecordBatch> {
    let mut messages = Vec::new();
    op.on_batch(batch(rows), &mut Output::new(&mut messages, metrics))
        .unwrap();
    messages
        .into_iter()
        .filter_map(|m| match m {
            Message::Batch(b) => Some(b),
            _ => None,
        })
        .collect()
}

/// Random rows, the same kind the first tests used: keys from [`KEYS`],
/// values with NULLs and wide ranges (few repeats).
fn wide_row(rng: &mut Lcg) -> Row {
    Row {
        key: KEYS[rng.next(KEYS.len() as u64) as usize],
        v: (rng.next(5) != 0).then(|| rng.next(120) as i64 - 20),
        d: (rng.next(4) != 0).then(|| rng.next(100_000) as i128 - 20_000),
    }
}

/// The key column `k` as the output shows it.
fn key_k(row: &Row) -> String {
    row.key.map_or("<null>".to_string(), str::to_string)
}

/// Feeds 200 random batches of `row` into `factory`'s operator and checks,
/// after each, that the changelog applied so far holds, per key, `oracle` of
/// all that key's rows; that `-U` retracts the last row and `+U` follows it;
/// and that exactly the touched keys whose values changed were emitted, in
/// order of their first row. `key_of` is a row's key as the output shows it.
fn check_changelog(
    factory: &UpdatingAggregate,
    seed: u64,
    row: &dyn Fn(&mut Lcg) -> Row,
    key_of: &dyn Fn(&Row) -> String,
    oracle: &dyn Fn(&[Row], &Schema) -> Vec<String>,
) {
    let schema = factory.output_schema();
    assert!(is_changelog(&schema));
    let mut op = factory.create().unwrap();
    let metrics = NodeMetrics::default();
    let mut rng = Lcg(seed);
    let mut all: HashMap<String, Vec<Row>> = HashMap::new();
    let mut view: HashMap<String, Vec<String>> = HashMap::new();
    let mut total = 0;
    for _ in 0..200 {
        let n = 1 + rng.next(12) as usize;
        let rows: Vec<Row> = (0..n).map(|_| row(&mut rng)).collect();
        total += n;
        let before: HashMap<String, Vec<String>> = view.clone();
        let mut touched: Vec<String> = Vec::new();
        for r in &rows {
            let key = key_of(r);
            if !touched.contains(&key) {
                touched.push(key.clone());
            }
            all.entry(key).or_default().push(*r);
        }
        let mut emitted: Vec<String> = Vec::new();
        for out in run_batch(op.as_mut(), &rows, &metrics) {
            assert_eq!(out.schema(), schema);
            let kinds = row_kinds(&out).unwrap();
            for (i, kind) in kinds.iter().enumerate() {
                let (key, vals) = row_strings(&out, i);
                match kind {
                    RowKind::Insert => {
                        assert!(!before.contains_key(&key), "+I for known {key}");
                        assert!(view.insert(key.clone(), vals).is_none());
                        emitted.push(key);
                    }
                    RowKind::UpdateBefore => {
                        assert_eq!(view.remove(&key), Some(vals), "-U of {key}");
                        // its +U follows immediately
                        assert_eq!(kinds.get(i + 1), Some(&RowKind::UpdateAfter));
                        assert_eq!(row_strings(&out, i + 1).0, key);
                    }
                    RowKind::UpdateAfter => {
                        assert_eq!(kinds[i - 1], RowKind::UpdateBefore);
                        assert_ne!(before.get(&key), Some(&vals), "unchanged {key}");
                        assert!(view.insert(key.clone(), vals).is_none());
                        emitted.push(key);
                    }
                    RowKind::Delete => panic!("no deletes expected"),
                }
            }
        }
        // every touched key whose values changed was emitted once, in order
        let changed: Vec<String> = touched
            .iter()
            .filter(|k| before.get(*k) != Some(&oracle(&all[*k], &schema)))
            .cloned()
            .collect();
        assert_eq!(emitted, changed);
        assert_eq!(view.len(), all.len());
        for (key, rows) in &all {
            assert_eq!(view[key], oracle(rows, &schema), "key {key}");
        }
    }
    assert_eq!(
        metrics.rows_aggregated.load(Ordering::Relaxed),
        total as u64
    );
}

#[test]
fn updating_changelog_matches_oracle() {
    let factory = UpdatingAggregate::new(spec(true, full_calls()), &input_schema(), None).unwrap();
    check_changelog(&factory, 42, &wide_row, &key_k, &oracle);
}

#[test]
fn updating_unchanged_group_emits_nothing() {
    let s = input_schema();
    let v = col("v", &s).unwrap();
    let calls = vec![
        call(max_udaf(), v.clone(), "max_v", false, None),
        call(sum_udaf(), v, "sum_v", false, None),
    ];
    let mut op = UpdatingAggregate::new(spec(true, calls), &s, None)
        .unwrap()
        .create()
        .unwrap();
    let metrics = NodeMetrics::default();
    let row = |key, v| Row { key, v, d: None };
    let out = run_batch(
        op.as_mut(),
        &[row(Some("a"), Some(5)), row(None, None)],
        &metrics,
    );
    assert_eq!(row_kinds(&out[0]).unwrap(), [RowKind::Insert; 2]);
    // NULL value: neither MAX nor SUM changes; 0 leaves both unchanged too.
    let out = run_batch(
        op.as_mut(),
        &[
            row(Some("a"), None),
            row(Some("a"), Some(0)),
            row(None, None),
        ],
        &metrics,
    );
    assert!(out.is_empty());
    let out = run_batch(op.as_mut(), &[row(Some("a"), Some(7))], &metrics);
    assert_eq!(
        row_kinds(&out[0]).unwrap(),
        [RowKind::UpdateBefore, RowKind::UpdateAfter]
    );
    assert_eq!(row_strings(&out[0], 0).1, ["5", "5"]);
    assert_eq!(row_strings(&out[0], 1).1, ["7", "12"]);
}

#[test]
fn updating_global_aggregate_without_keys() {
    let s = input_schema();
    let calls = vec![call(count_udaf(), lit(1i64), "cnt", false, None)];
    let mut op = UpdatingAggregate::new(spec(false, calls), &s, None)
        .unwrap()
        .create()
        .unwrap();
    let metrics = NodeMetrics::default();
    let row = Row {
        key: None,
        v: None,
        d: None,
    };
    let out = run_batch(op.as_mut(), &[row, row], &metrics);
    assert_eq!(row_kinds(&out[0]).unwrap(), [RowKind::Insert]);
    assert_eq!(array_value_to_string(out[0].column(0), 0).unwrap(), "2");
    let out = run_batch(op.as_mut(), &[row], &metrics);
    assert_eq!(
        row_kinds(&out[0]).unwrap(),
        [RowKind::UpdateBefore, RowKind::UpdateAfter]
    );
    assert_eq!(array_value_to_string(out[0].column(0), 1).unwrap(), "3");
}

#[test]
fn updating_refuses_unsupported_aggregates() {
    let s = input_schema();
    let v = col("v", &s).unwrap();
    let calls = vec![call(stddev_udaf(), v.clone(), "sd", false, None)];
    let err = UpdatingAggregate::new(spec(true, calls), &s, None).unwrap_err();
    assert!(
        err.to_string().contains("STDDEV: function not implemented"),
        "{err}"
    );
    let calls = vec![call(stddev_udaf(), v, "sd", true, None)];
    let err = UpdatingAggregate::new(spec(true, calls), &s, None).unwrap_err();
    assert!(err.to_string().contains("STDDEV DISTINCT"), "{err}");
}

#[test]
fn updating_state_ttl_drops_idle_groups() {
    let s = input_schema();
    let calls = vec![call(count_udaf(), lit(1i64), "cnt", false, None)];
    let now = Arc::new(AtomicI64::new(0));
    let clock_now = now.clone();
    let factory = UpdatingAggregate::new(spec(true, calls), &s, Some(100))
        .unwrap()
        .with_clock(Arc::new(move || clock_now.load(Ordering::SeqCst)));
    let mut op = factory.create_operator().unwrap();
    let metrics = NodeMetrics::default();
    let row = |key| Row {
        key,
        v: None,
        d: None,
    };
    let kinds_of = |out: &[RecordBatch]| -> Vec<(String, RowKind, String)> {
        out.iter()
            .flat_map(|b| {
                let kinds = row_kinds(b).unwrap();
                (0..b.num_rows())
                    .map(|i| {
                        let (k, v) = row_strings(b, i);
                        (k, kinds[i], v[0].clone())
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let ins = |k: &str, n: &str| (k.to_string(), RowKind::Insert, n.to_string());
    let out = run_batch(&mut op, &[row(Some("a")), row(Some("b"))], &metrics);
    assert_eq!(kinds_of(&out), [ins("a", "1"), ins("b", "1")]);
    now.store(60, Ordering::SeqCst);
    let out = run_batch(&mut op, &[row(Some("b")), row(Some("e"))], &metrics);
    assert_eq!(out[0].num_rows(), 3);
    assert_eq!(op.num_groups(), 3);
    // at 120: a idle 120 ms (expired, dropped), b idle 60 ms (kept)
    now.store(120, Ordering::SeqCst);
    let out = run_batch(&mut op, &[row(Some("c"))], &metrics);
    assert_eq!(kinds_of(&out), [ins("c", "1")]);
    assert_eq!(op.num_groups(), 3);
    // a starts afresh: +I, no retraction; b still counts on
    let out = run_batch(&mut op, &[row(Some("a")), row(Some("b"))], &metrics);
    let rows = kinds_of(&out);
    assert_eq!(rows[0], ins("a", "1"));
    assert_eq!(
        rows[1],
        ("b".to_string(), RowKind::UpdateBefore, "2".to_string())
    );
    assert_eq!(
        rows[2],
        ("b".to_string(), RowKind::UpdateAfter, "3".to_string())
    );
    assert_eq!(op.num_groups(), 4);
    // e expired at 160 but is not cleaned up before 220: still absent
    now.store(165, Ordering::SeqCst);
    let out = run_batch(&mut op, &[row(Some("e"))], &metrics);
    assert_eq!(kinds_of(&out), [ins("e", "1")]);
    assert_eq!(op.num_groups(), 4);
    // at 230 the cleanup drops a, b, c (idle 110 ms), keeps e
    now.store(230, Ordering::SeqCst);
    let out = run_batch(&mut op, &[row(Some("e"))], &metrics);
    assert_eq!(
        kinds_of(&out)[1],
        ("e".to_string(), RowKind::UpdateAfter, "2".to_string())
    );
    assert_eq!(op.num_groups(), 1);
    let out = run_batch(&mut op, &[row(Some("b"))], &metrics);
    assert_eq!(kinds_of(&out), [ins("b", "1")]);
}
