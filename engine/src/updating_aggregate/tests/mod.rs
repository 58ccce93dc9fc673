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
    check_changelog_restoring(factory, seed, row, key_of, oracle, None);
}

/// [`check_changelog`]; with `restore_at`, before that batch the operator
/// takes a snapshot and a fresh instance restored from it (through Arrow IPC)
/// goes on, while the instance that took it must keep emitting the same.
fn check_changelog_restoring(
    factory: &UpdatingAggregate,
    seed: u64,
    row: &dyn Fn(&mut Lcg) -> Row,
    key_of: &dyn Fn(&Row) -> String,
    oracle: &dyn Fn(&[Row], &Schema) -> Vec<String>,
    restore_at: Option<usize>,
) {
    let schema = factory.output_schema();
    assert!(is_changelog(&schema));
    let mut op = factory.create().unwrap();
    let mut original: Option<Box<dyn Operator>> = None;
    let metrics = NodeMetrics::default();
    let mut rng = Lcg(seed);
    let mut all: HashMap<String, Vec<Row>> = HashMap::new();
    let mut view: HashMap<String, Vec<String>> = HashMap::new();
    let mut total = 0;
    for step in 0..200 {
        if restore_at == Some(step) {
            let state = op.snapshot().unwrap().unwrap();
            let mut fresh = factory.create().unwrap();
            fresh
                .restore(crate::checkpoint::ipc::round_trip(&state))
                .unwrap();
            original = Some(std::mem::replace(&mut op, fresh));
        }
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
        let outs = run_batch(op.as_mut(), &rows, &metrics);
        if let Some(original) = original.as_mut() {
            let theirs = run_batch(original.as_mut(), &rows, &NodeMetrics::default());
            assert_eq!(outs, theirs, "batch {step}: the restored instance differs");
        }
        for out in outs {
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
fn a_restored_snapshot_continues_the_changelog() {
    let factory = UpdatingAggregate::new(spec(true, full_calls()), &input_schema(), None).unwrap();
    for restore_at in [0, 1, 60] {
        check_changelog_restoring(&factory, 43, &wide_row, &key_k, &oracle, Some(restore_at));
    }
    // Without GROUP BY: one group.
    let global = UpdatingAggregate::new(spec(false, full_calls()), &input_schema(), None).unwrap();
    let mut op = global.create_operator().unwrap();
    let metrics = NodeMetrics::default();
    let mut rng = Lcg(5);
    let rows: Vec<Row> = (0..20).map(|_| wide_row(&mut rng)).collect();
    run_batch(&mut op, &rows[..10], &metrics);
    let state = op.snapshot().unwrap().unwrap();
    let mut restored = global.create_operator().unwrap();
    restored
        .restore(crate::checkpoint::ipc::round_trip(&state))
        .unwrap();
    let theirs = run_batch(&mut restored, &rows[10..], &metrics);
    assert_eq!(run_batch(&mut op, &rows[10..], &metrics), theirs);
    assert_eq!(
        row_kinds(&theirs[0]).unwrap(),
        [RowKind::UpdateBefore, RowKind::UpdateAfter]
    );
}

#[test]
fn a_restored_snapshot_keeps_how_long_groups_were_idle() {
    let s = input_schema();
    let calls = vec![call(count_udaf(), lit(1i64), "cnt", false, None)];
    let clock = |now: &Arc<AtomicI64>| -> ProcessingClock {
        let now = now.clone();
        Arc::new(move || now.load(Ordering::SeqCst))
    };
    let before = Arc::new(AtomicI64::new(0));
    let factory = UpdatingAggregate::new(spec(true, calls), &s, Some(100)).unwrap();
    let mut op = factory
        .clone()
        .with_clock(clock(&before))
        .create_operator()
        .unwrap();
    let metrics = NodeMetrics::default();
    let row = |key| Row {
        key: Some(key),
        v: None,
        d: None,
    };
    let kinds = |out: &[RecordBatch]| -> Vec<RowKind> {
        out.iter().flat_map(|b| row_kinds(b).unwrap()).collect()
    };
    run_batch(&mut op, &[row("a"), row("b")], &metrics);
    before.store(60, Ordering::SeqCst);
    run_batch(&mut op, &[row("b")], &metrics);
    // a has been idle 60 ms, b 0 ms; the restored instance's clock is elsewhere.
    let state = op.snapshot().unwrap().unwrap();
    let after = Arc::new(AtomicI64::new(1_000));
    let mut restored = factory.with_clock(clock(&after)).create_operator().unwrap();
    restored
        .restore(crate::checkpoint::ipc::round_trip(&state))
        .unwrap();
    assert_eq!(restored.num_groups(), 2);
    after.store(1_030, Ordering::SeqCst);
    let out = run_batch(&mut restored, &[row("a")], &metrics);
    assert_eq!(kinds(&out), [RowKind::UpdateBefore, RowKind::UpdateAfter]);
    assert_eq!(row_strings(&out[0], 1).1, ["2"]);
    // b: idle since 1000, expired at 1100.
    after.store(1_100, Ordering::SeqCst);
    let out = run_batch(&mut restored, &[row("b")], &metrics);
    assert_eq!(kinds(&out), [RowKind::Insert]);
}

#[test]
fn malformed_updating_state_is_an_error() {
    let s = input_schema();
    let factory = UpdatingAggregate::new(spec(true, full_calls()), &s, None).unwrap();
    let mut op = factory.create_operator().unwrap();
    let metrics = NodeMetrics::default();
    let row = |key, v| Row { key, v, d: Some(5) };
    run_batch(
        &mut op,
        &[
            row(Some("a"), Some(1)),
            row(Some("b"), Some(2)),
            row(None, None),
        ],
        &metrics,
    );
    let state = op.snapshot().unwrap().unwrap();
    assert_eq!(state.num_rows(), 3);

    // Into an aggregate of other calls.
    let other = UpdatingAggregate::new(
        spec(
            true,
            vec![call(count_udaf(), lit(1i64), "cnt", false, None)],
        ),
        &s,
        None,
    )
    .unwrap();
    let err = other
        .create_operator()
        .unwrap()
        .restore(state.clone())
        .unwrap_err()
        .to_string();
    assert!(err.contains("malformed checkpoint state"), "{err}");

    // The same group twice.
    let twice = crate::checkpoint::OperatorState {
        schema: state.schema.clone(),
        batches: vec![state.batches[0].clone(), state.batches[0].slice(0, 1)],
    };
    let err = factory
        .create_operator()
        .unwrap()
        .restore(twice)
        .unwrap_err()
        .to_string();
    assert!(err.contains("duplicate keys"), "{err}");

    // A count with NULLs.
    let batch = &state.batches[0];
    let position = batch.schema().index_of("count_0").unwrap();
    let mut columns = batch.columns().to_vec();
    columns[position] = Arc::new(Int64Array::from(vec![None; batch.num_rows()]));
    let mut fields: Vec<Field> = state
        .schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields[position] = fields[position].clone().with_nullable(true);
    let schema = Arc::new(Schema::new(fields));
    let nulls = crate::checkpoint::OperatorState {
        schema: schema.clone(),
        batches: vec![RecordBatch::try_new(schema, columns).unwrap()],
    };
    let err = factory
        .create_operator()
        .unwrap()
        .restore(nulls)
        .unwrap_err()
        .to_string();
    assert!(err.contains("count column"), "{err}");
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
