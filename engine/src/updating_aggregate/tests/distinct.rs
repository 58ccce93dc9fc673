//! DISTINCT aggregates: the changelog against per-key oracles over sets of
//! values, NULLs, FILTER, TTL restarts, state size, and the keying of value
//! types.

use std::collections::BTreeSet;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Float64Array, ListArray, UInt64Array,
};
use datafusion::arrow::datatypes::Int32Type;
use datafusion::common::ScalarValue;

use super::*;
use crate::updating_aggregate::distinct::DistinctValues;

/// Random rows over narrow ranges, so values repeat within a key.
fn narrow_row(rng: &mut Lcg) -> Row {
    Row {
        key: KEYS[rng.next(KEYS.len() as u64) as usize],
        v: (rng.next(6) != 0).then(|| rng.next(30) as i64 - 5),
        d: (rng.next(4) != 0).then(|| (rng.next(40) as i128 - 10) * 25),
    }
}

fn dec_type(schema: &Schema, name: &str) -> (u8, i8) {
    match schema.field_with_name(name).unwrap().data_type() {
        DataType::Decimal128(p, s) => (*p, *s),
        other => panic!("{name}: {other}"),
    }
}

#[test]
fn distinct_by_string_key_matches_oracle() {
    let s = input_schema();
    let v = col("v", &s).unwrap();
    let d = col("d", &s).unwrap();
    let over_10 = binary(v.clone(), BinaryOp::Gt, lit(10i64), &s).unwrap();
    let calls = vec![
        call(count_udaf(), v.clone(), "n_v", true, None),
        call(count_udaf(), d.clone(), "n_d", true, None),
        call(sum_udaf(), v.clone(), "sum_dv", true, None),
        call(sum_udaf(), d.clone(), "sum_dd", true, None),
        call(avg_udaf(), v.clone(), "avg_dv", true, None),
        call(count_udaf(), v.clone(), "big", true, Some(over_10)),
        call(count_udaf(), lit(1i64), "cnt", false, None),
        call(sum_udaf(), v.clone(), "sum_v", false, None),
        call(max_udaf(), v, "max_dv", true, None),
    ];
    let factory = UpdatingAggregate::new(spec(true, calls), &s, None).unwrap();
    let oracle = |rows: &[Row], schema: &Schema| -> Vec<String> {
        let vs: BTreeSet<i64> = rows.iter().filter_map(|r| r.v).collect();
        let ds: BTreeSet<i128> = rows.iter().filter_map(|r| r.d).collect();
        let (p, sc) = dec_type(schema, "sum_dd");
        let avg = (!vs.is_empty()).then(|| {
            let a = Float64Array::from(vec![vs.iter().sum::<i64>() as f64 / vs.len() as f64]);
            array_value_to_string(&a, 0).unwrap()
        });
        vec![
            vs.len().to_string(),
            ds.len().to_string(),
            opt((!vs.is_empty()).then(|| vs.iter().sum::<i64>().to_string())),
            opt((!ds.is_empty()).then(|| fmt_dec(ds.iter().sum(), p, sc))),
            opt(avg),
            vs.iter().filter(|&&v| v > 10).count().to_string(),
            rows.len().to_string(),
            opt(rows
                .iter()
                .filter_map(|r| r.v)
                .reduce(|a, b| a + b)
                .map(|t| t.to_string())),
            opt(vs.last().map(|m| m.to_string())),
        ]
    };
    check_changelog(&factory, 7, &narrow_row, &key_k, &oracle);
}

#[test]
fn distinct_values_survive_a_restore() {
    let s = input_schema();
    let v = col("v", &s).unwrap();
    let d = col("d", &s).unwrap();
    let k = col("k", &s).unwrap();
    let over_10 = binary(v.clone(), BinaryOp::Gt, lit(10i64), &s).unwrap();
    // sum_dd and d_big share one map of d's values (a bit each): restored
    // together, each keeps its own values.
    let calls = vec![
        call(count_udaf(), v.clone(), "n_v", true, None),
        call(sum_udaf(), d.clone(), "sum_dd", true, None),
        call(count_udaf(), lit(1i64), "cnt", false, None),
        call(count_udaf(), d.clone(), "d_big", true, Some(over_10)),
    ];
    let factory = UpdatingAggregate::new(spec(true, calls), &s, None).unwrap();
    let oracle = |rows: &[Row], schema: &Schema| -> Vec<String> {
        let vs: BTreeSet<i64> = rows.iter().filter_map(|r| r.v).collect();
        let ds: BTreeSet<i128> = rows.iter().filter_map(|r| r.d).collect();
        let (p, sc) = dec_type(schema, "sum_dd");
        vec![
            vs.len().to_string(),
            opt((!ds.is_empty()).then(|| fmt_dec(ds.iter().sum(), p, sc))),
            rows.len().to_string(),
            rows.iter()
                .filter(|r| r.v.is_some_and(|v| v > 10))
                .filter_map(|r| r.d)
                .collect::<BTreeSet<i128>>()
                .len()
                .to_string(),
        ]
    };
    check_changelog_restoring(&factory, 8, &narrow_row, &key_k, &oracle, Some(70));
    // Strings as DISTINCT values (byte keys), grouped by an integer.
    let calls = vec![call(count_udaf(), k, "n_k", true, None)];
    let factory = UpdatingAggregate::new(spec_by(Some("v"), calls), &s, None).unwrap();
    let oracle = |rows: &[Row], _: &Schema| -> Vec<String> {
        let ks: BTreeSet<&str> = rows.iter().filter_map(|r| r.key).collect();
        vec![ks.len().to_string()]
    };
    let key_v = |r: &Row| r.v.map_or("<null>".to_string(), |v| v.to_string());
    check_changelog_restoring(&factory, 12, &narrow_row, &key_v, &oracle, Some(90));
}

#[test]
fn distinct_by_integer_key_counts_strings_and_decimals() {
    let s = input_schema();
    let k = col("k", &s).unwrap();
    let d = col("d", &s).unwrap();
    let zero = lit(ScalarValue::Decimal128(Some(0), 10, 2));
    let positive = binary(d.clone(), BinaryOp::Gt, zero, &s).unwrap();
    let calls = vec![
        call(count_udaf(), k.clone(), "n_k", true, None),
        call(count_udaf(), d.clone(), "n_d", true, None),
        call(sum_udaf(), d, "sum_dd", true, None),
        call(count_udaf(), lit(1i64), "cnt", false, None),
        call(count_udaf(), k, "n_k_pos", true, Some(positive)),
    ];
    let factory = UpdatingAggregate::new(spec_by(Some("v"), calls), &s, None).unwrap();
    let oracle = |rows: &[Row], schema: &Schema| -> Vec<String> {
        let ks: BTreeSet<&str> = rows.iter().filter_map(|r| r.key).collect();
        let ds: BTreeSet<i128> = rows.iter().filter_map(|r| r.d).collect();
        let ks_pos: BTreeSet<&str> = rows
            .iter()
            .filter(|r| r.d.is_some_and(|d| d > 0))
            .filter_map(|r| r.key)
            .collect();
        let (p, sc) = dec_type(schema, "sum_dd");
        vec![
            ks.len().to_string(),
            ds.len().to_string(),
            opt((!ds.is_empty()).then(|| fmt_dec(ds.iter().sum(), p, sc))),
            rows.len().to_string(),
            ks_pos.len().to_string(),
        ]
    };
    let key_v = |r: &Row| r.v.map_or("<null>".to_string(), |v| v.to_string());
    check_changelog(&factory, 11, &narrow_row, &key_v, &oracle);
}

/// `(key, kind, values)` of every output row.
fn changes(out: &[RecordBatch]) -> Vec<(String, RowKind, Vec<String>)> {
    out.iter()
        .flat_map(|b| {
            let kinds = row_kinds(b).unwrap();
            (0..b.num_rows())
                .map(|i| {
                    let (k, v) = row_strings(b, i);
                    (k, kinds[i], v)
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

fn change(key: &str, kind: RowKind, values: &[&str]) -> (String, RowKind, Vec<String>) {
    (
        key.to_string(),
        kind,
        values.iter().map(|v| v.to_string()).collect(),
    )
}

fn row(key: &'static str, v: Option<i64>) -> Row {
    Row {
        key: Some(key),
        v,
        d: None,
    }
}

#[test]
fn distinct_count_changes_only_on_new_values() {
    let s = input_schema();
    let v = col("v", &s).unwrap();
    let calls = vec![
        call(count_udaf(), v.clone(), "n", true, None),
        call(sum_udaf(), v, "s", true, None),
    ];
    let mut op = UpdatingAggregate::new(spec(true, calls), &s, None)
        .unwrap()
        .create()
        .unwrap();
    let m = NodeMetrics::default();
    let out = run_batch(
        op.as_mut(),
        &[row("a", Some(1)), row("a", Some(1)), row("a", None)],
        &m,
    );
    assert_eq!(changes(&out), [change("a", RowKind::Insert, &["1", "1"])]);
    // repeats and NULLs change nothing, so nothing is emitted
    let out = run_batch(op.as_mut(), &[row("a", None), row("a", Some(1))], &m);
    assert!(changes(&out).is_empty());
    // a NULL-only group counts 0 (and its SUM is NULL)
    let out = run_batch(
        op.as_mut(),
        &[row("b", None), row("a", Some(3)), row("a", Some(3))],
        &m,
    );
    assert_eq!(
        changes(&out),
        [
            change("b", RowKind::Insert, &["0", ""]),
            change("a", RowKind::UpdateBefore, &["1", "1"]),
            change("a", RowKind::UpdateAfter, &["2", "4"]),
        ]
    );
}

#[test]
fn distinct_values_restart_after_ttl_expiry() {
    let s = input_schema();
    let v = col("v", &s).unwrap();
    let calls = vec![call(count_udaf(), v, "n", true, None)];
    let now = Arc::new(AtomicI64::new(0));
    let clock_now = now.clone();
    let mut op = UpdatingAggregate::new(spec(true, calls), &s, Some(100))
        .unwrap()
        .with_clock(Arc::new(move || clock_now.load(Ordering::SeqCst)))
        .create_operator()
        .unwrap();
    let m = NodeMetrics::default();
    let out = run_batch(&mut op, &[row("a", Some(1)), row("a", Some(2))], &m);
    assert_eq!(changes(&out), [change("a", RowKind::Insert, &["2"])]);
    now.store(50, Ordering::SeqCst);
    let out = run_batch(&mut op, &[row("b", Some(1)), row("c", Some(1))], &m);
    assert_eq!(
        changes(&out),
        [
            change("b", RowKind::Insert, &["1"]),
            change("c", RowKind::Insert, &["1"]),
        ]
    );
    // At 100 the sweep drops a (idle 100 ms): it starts from zero.
    now.store(100, Ordering::SeqCst);
    let out = run_batch(&mut op, &[row("a", Some(1))], &m);
    assert_eq!(changes(&out), [change("a", RowKind::Insert, &["1"])]);
    assert_eq!(op.num_groups(), 3);
    // At 160 c has expired but is not swept before 200: it restarts anyway,
    // without its old values.
    now.store(160, Ordering::SeqCst);
    let out = run_batch(&mut op, &[row("c", Some(1)), row("c", Some(1))], &m);
    assert_eq!(changes(&out), [change("c", RowKind::Insert, &["1"])]);
    assert_eq!(op.num_groups(), 3);
    // At 200 the sweep drops b and a; c (renumbered) keeps the values it has
    // seen since 160.
    now.store(200, Ordering::SeqCst);
    let out = run_batch(&mut op, &[row("c", Some(1))], &m);
    assert!(changes(&out).is_empty());
    assert_eq!(op.num_groups(), 1);
    let out = run_batch(&mut op, &[row("c", Some(7))], &m);
    assert_eq!(
        changes(&out),
        [
            change("c", RowKind::UpdateBefore, &["1"]),
            change("c", RowKind::UpdateAfter, &["2"]),
        ]
    );
    let out = run_batch(&mut op, &[row("a", Some(2)), row("b", Some(2))], &m);
    assert_eq!(
        changes(&out),
        [
            change("a", RowKind::Insert, &["1"]),
            change("b", RowKind::Insert, &["1"]),
        ]
    );
}

#[test]
fn distinct_values_count_in_the_state_size() {
    let s = input_schema();
    let rows: Vec<Row> = (0..5_000).map(|v| row("a", Some(v))).collect();
    let size_with = |distinct: bool| {
        let calls = vec![call(
            count_udaf(),
            col("v", &s).unwrap(),
            "n",
            distinct,
            None,
        )];
        let mut op = UpdatingAggregate::new(spec(true, calls), &s, None)
            .unwrap()
            .create_operator()
            .unwrap();
        run_batch(&mut op, &rows, &NodeMetrics::default());
        op.state_size()
    };
    // one (group, epoch, i64) entry of 16 bytes per distinct value, at least
    assert!(size_with(true) >= size_with(false) + 5_000 * 16);
}

/// Which rows of `values` bring a new value to group 0.
fn fresh_in_one_group(values: ArrayRef) -> Vec<bool> {
    let mut set = DistinctValues::try_new(values.data_type()).unwrap();
    set.resize(1).unwrap();
    let groups = vec![0; values.len()];
    let all = |_: usize| true;
    set.insert(&values, &groups, &[&all]).unwrap().remove(0)
}

#[test]
fn distinct_keys_every_value_type_apart() {
    let other_nan = f64::from_bits(f64::NAN.to_bits() | 1);
    let floats = Float64Array::from(vec![
        Some(0.0),
        Some(-0.0),
        Some(f64::NAN),
        Some(other_nan),
        Some(1.5),
        None,
        Some(1.5),
    ]);
    assert_eq!(
        fresh_in_one_group(Arc::new(floats)),
        [true, true, true, false, true, false, false]
    );
    let big = UInt64Array::from(vec![u64::MAX, 1 << 63, u64::MAX, 0]);
    assert_eq!(fresh_in_one_group(Arc::new(big)), [true, true, false, true]);
    let dates = Date32Array::from(vec![Some(19_000), None, Some(19_001), Some(19_000)]);
    assert_eq!(
        fresh_in_one_group(Arc::new(dates)),
        [true, false, true, false]
    );
    let bools = BooleanArray::from(vec![Some(true), Some(false), Some(true), None]);
    assert_eq!(
        fresh_in_one_group(Arc::new(bools)),
        [true, true, false, false]
    );
    // lists go through the Arrow row encoding
    let lists = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
        Some(vec![Some(1), Some(2)]),
        Some(vec![Some(1), Some(2)]),
        Some(vec![Some(2), Some(1)]),
        None,
        Some(vec![Some(1), None]),
        Some(vec![]),
    ]);
    assert_eq!(
        fresh_in_one_group(Arc::new(lists)),
        [true, false, true, false, true, true]
    );
}

#[test]
fn distinct_sets_follow_group_renumbering_and_resets() {
    let values: ArrayRef = Arc::new(StringArray::from(vec!["x", "y", "x", "z"]));
    let mut set = DistinctValues::try_new(&DataType::Utf8).unwrap();
    set.resize(3).unwrap();
    let all = |_: usize| true;
    assert_eq!(
        set.insert(&values, &[0, 1, 2, 2], &[&all]).unwrap()[0],
        [true, true, true, true]
    );
    // drop group 1: group 2 becomes 1
    set.compact(&[true, false, true]);
    set.resize(2).unwrap();
    assert_eq!(
        set.insert(&values, &[1, 0, 0, 1], &[&all]).unwrap()[0],
        [false, true, false, false]
    );
    // a reset group forgets its values; the other keeps them
    set.reset(0);
    assert_eq!(
        set.insert(&values, &[0, 1, 0, 1], &[&all]).unwrap()[0],
        [true, true, false, false]
    );
    // rows that do not pass are not recorded
    let only_first = |i: usize| i == 0;
    set.reset(1);
    assert_eq!(
        set.insert(&values, &[1, 1, 1, 1], &[&only_first]).unwrap()[0],
        [true, false, false, false]
    );
    assert_eq!(
        set.insert(&values, &[1, 1, 1, 1], &[&all]).unwrap()[0],
        [false, true, false, true]
    );
    // Values of earlier epochs linger until the sweep: g0 had {x, y} then {x},
    // g1 {x, z, y} then {x, y, z}.
    assert_eq!(set.len(), 9);
    set.compact(&[true, true]);
    assert_eq!(set.len(), 4);
    assert_eq!(
        set.insert(&values, &[0, 0, 1, 1], &[&all]).unwrap()[0],
        [false, true, false, false]
    );
}

/// Calls over one argument share a map (a bit per call): each call's fresh
/// rows are those of a set of its own (an oracle of `BTreeSet`s per call and
/// group, emptied by a reset), for integers and strings, with different
/// FILTERs, NULLs, several groups and a reset; its checkpoint lists hold the
/// call's own values; and a value counted by several calls is held once.
#[test]
fn shared_maps_count_each_call_as_its_own_set() {
    let mut rng = Lcg(11);
    let ints: ArrayRef = Arc::new(datafusion::arrow::array::Int64Array::from_iter(
        (0..3_000).map(|_| (rng.next(10) != 0).then(|| rng.next(200) as i64)),
    ));
    let strings: ArrayRef =
        Arc::new(StringArray::from_iter((0..3_000).map(|_| {
            (rng.next(10) != 0).then(|| format!("s{}", rng.next(200)))
        })));
    let groups: Vec<usize> = (0..3_000).map(|_| rng.next(4) as usize).collect();
    let filters: [&dyn Fn(usize) -> bool; 4] =
        [&|_| true, &|i| i % 3 == 0, &|i| i % 3 == 1, &|i| i % 7 < 2];
    for values in [ints, strings] {
        let text =
            |i: usize| datafusion::arrow::util::display::array_value_to_string(&values, i).unwrap();
        let mut shared = DistinctValues::try_new(values.data_type()).unwrap();
        shared.resize(4).unwrap();
        // Per call and group: the values counted.
        let mut oracle: Vec<Vec<BTreeSet<String>>> = vec![vec![BTreeSet::new(); 4]; 4];
        // Two batches, with group 2 reset between them.
        for (range, reset) in [(0..1_500, false), (1_500..3_000, true)] {
            if reset {
                shared.reset(2);
                for sets in &mut oracle {
                    sets[2].clear();
                }
            }
            let batch = values.slice(range.start, range.len());
            let batch_groups = &groups[range.clone()];
            let start = range.start;
            let passes: Vec<Box<dyn Fn(usize) -> bool>> = filters
                .iter()
                .map(|f| Box::new(move |i: usize| f(start + i)) as Box<dyn Fn(usize) -> bool>)
                .collect();
            let refs: Vec<&dyn Fn(usize) -> bool> = passes.iter().map(|p| p.as_ref()).collect();
            let together = shared.insert(&batch, batch_groups, &refs).unwrap();
            for (m, sets) in oracle.iter_mut().enumerate() {
                let expected: Vec<bool> = range
                    .clone()
                    .map(|i| values.is_valid(i) && filters[m](i) && sets[groups[i]].insert(text(i)))
                    .collect();
                assert_eq!(together[m], expected, "{} member {m}", values.data_type());
            }
        }
        for (m, sets) in oracle.iter().enumerate() {
            let lists = shared.snapshot(4, m).unwrap();
            let lists = datafusion::arrow::array::AsArray::as_list::<i32>(&lists);
            for (g, set) in sets.iter().enumerate() {
                assert_eq!(lists.value(g).len(), set.len(), "member {m} group {g}");
            }
        }
        // Member 0 (no FILTER) counts every value: one entry per value, the
        // other calls' bits ride along (2 epochs of group 2 included).
        let all_values: usize = (0..3_000)
            .filter(|&i| values.is_valid(i))
            .map(|i| (groups[i], i >= 1_500 && groups[i] == 2, text(i)))
            .collect::<BTreeSet<_>>()
            .len();
        assert_eq!(shared.len(), all_values);
    }
}
