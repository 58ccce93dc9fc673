//! Tests of [`SlicedWindowAggregate`] against a brute-force oracle: every row
//! enumerates its windows, and plain maps aggregate them.

use std::collections::{BTreeMap, BTreeSet};

use datafusion::arrow::array::{Int64Array, StringArray, TimestampMillisecondArray};

use super::*;
use crate::message::Message;
use crate::window::output::WindowOutputColumn;
use crate::window::output::WindowOutputColumn as C;
use crate::window::test_support::{Rng, input_schema, spec};
use crate::window::window_fired;

const KEYS: [Option<&str>; 5] = [Some("a"), Some("b"), Some("c"), Some("dd"), None];

#[derive(Debug, Clone, Copy)]
struct Row {
    ts: i64,
    key: Option<&'static str>,
    v: Option<i64>,
}

/// `(start, end, time, key, COUNT(v), SUM(v), MAX(v), COUNT(DISTINCT v),
/// COUNT(v) FILTER (WHERE v > 50), emitted at watermark #)`.
type ResultRow = (
    i64,
    i64,
    i64,
    Option<String>,
    i64,
    Option<i64>,
    Option<i64>,
    i64,
    i64,
    usize,
);

/// Marks rows emitted by `on_end`.
const AT_END: usize = usize::MAX;

/// A shuffled layout, to check the planner can put columns anywhere.
fn layout(keyed: bool) -> Vec<WindowOutputColumn> {
    let mut columns = vec![
        C::Aggregate(3),
        C::WindowEnd,
        C::Aggregate(0),
        C::WindowStart,
        C::Aggregate(1),
        C::Aggregate(2),
        C::WindowTime,
        C::Aggregate(4),
    ];
    if keyed {
        columns.insert(2, C::Key(0));
    }
    columns
}

fn batch(rows: &[Row]) -> RecordBatch {
    RecordBatch::try_new(
        input_schema(),
        vec![
            Arc::new(TimestampMillisecondArray::from_iter_values(
                rows.iter().map(|r| r.ts),
            )),
            Arc::new(StringArray::from_iter(rows.iter().map(|r| r.key))),
            Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.v))),
        ],
    )
    .unwrap()
}

/// The batches to feed, each with the watermark (if it advances) sent before it:
/// the maximum event time seen so far minus `bound`.
fn schedule(rows: &[Row], cuts: &[usize], bound: i64) -> Vec<(Option<i64>, Vec<Row>)> {
    let mut out = Vec::new();
    let (mut max_ts, mut last_wm, mut start) = (i64::MIN, i64::MIN, 0);
    for &len in cuts {
        let end = (start + len).min(rows.len());
        if start == end {
            break;
        }
        let wm = (max_ts != i64::MIN && max_ts - bound > last_wm).then(|| max_ts - bound);
        if let Some(wm) = wm {
            last_wm = wm;
        }
        out.push((wm, rows[start..end].to_vec()));
        max_ts = rows[start..end].iter().map(|r| r.ts).fold(max_ts, i64::max);
        start = end;
    }
    out
}

/// Runs the operator; returns its result rows and counters.
fn run(
    slicing: SliceSpec,
    keyed: bool,
    schedule: &[(Option<i64>, Vec<Row>)],
) -> (Vec<ResultRow>, NodeMetrics) {
    run_restoring(slicing, keyed, schedule, None)
}

/// Runs the operator; with `restore_at`, before that step it takes a snapshot,
/// restores it (through Arrow IPC) into a fresh instance, and runs both: they
/// must emit the same messages (the snapshot left the first one as it was).
fn run_restoring(
    slicing: SliceSpec,
    keyed: bool,
    schedule: &[(Option<i64>, Vec<Row>)],
    restore_at: Option<usize>,
) -> (Vec<ResultRow>, NodeMetrics) {
    let spec = spec(keyed);
    let output = WindowOutput::derived(layout(keyed), &spec).unwrap();
    let factory = SlicedWindowAggregate::new(spec, slicing, 0, output).unwrap();
    let mut op = factory.instance();
    let mut restored: Option<SlicedWindowAggregateOperator> = None;
    let metrics = NodeMetrics::default();
    let mut results = Vec::new();
    let mut epoch = 0;
    for (step, (wm, rows)) in schedule.iter().enumerate() {
        if restore_at == Some(step) {
            let state = op.snapshot().unwrap().unwrap();
            let mut fresh = factory.instance();
            fresh
                .restore(crate::checkpoint::ipc::round_trip(&state))
                .unwrap();
            restored = Some(fresh);
        }
        let running = restored.as_mut().unwrap_or(&mut op);
        let mut messages = Vec::new();
        if let Some(wm) = wm {
            epoch += 1;
            running
                .on_watermark(*wm, &mut Output::new(&mut messages, &metrics))
                .unwrap();
            assert!(matches!(messages.last(), Some(Message::Watermark(w)) if w == wm));
        }
        running
            .on_batch(batch(rows), &mut Output::new(&mut messages, &metrics))
            .unwrap();
        if restored.is_some() {
            // The instance that took the snapshot goes on as the restored one.
            let mut mine = Vec::new();
            let scratch = NodeMetrics::default();
            if let Some(wm) = wm {
                op.on_watermark(*wm, &mut Output::new(&mut mine, &scratch))
                    .unwrap();
            }
            op.on_batch(batch(rows), &mut Output::new(&mut mine, &scratch))
                .unwrap();
            assert_eq!(
                format!("{mine:?}"),
                format!("{messages:?}"),
                "step {step}: the restored instance differs"
            );
        }
        collect(&messages, keyed, epoch, &mut results);
    }
    let op = restored.as_mut().unwrap_or(&mut op);
    let mut messages = Vec::new();
    op.on_end(&mut Output::new(&mut messages, &metrics))
        .unwrap();
    collect(&messages, keyed, AT_END, &mut results);
    assert_eq!(op.num_slices(), 0, "all slices released at the end");
    assert_eq!(op.num_groups(), 0);
    results.sort();
    (results, metrics)
}

fn collect(messages: &[Message], keyed: bool, epoch: usize, out: &mut Vec<ResultRow>) {
    let k = usize::from(keyed);
    for message in messages {
        let Message::Batch(b) = message else { continue };
        let ts = |i: usize| b.column(i).as_primitive::<TimestampMillisecondType>();
        let int = |i: usize| b.column(i).as_primitive::<Int64Type>();
        let keys = keyed.then(|| b.column(2).as_string::<i32>());
        for r in 0..b.num_rows() {
            let opt = |a: &Int64Array| (!a.is_null(r)).then(|| a.value(r));
            out.push((
                ts(2 + k + 1).value(r),
                ts(1).value(r),
                ts(5 + k + 1).value(r),
                keys.and_then(|keys| (!keys.is_null(r)).then(|| keys.value(r).to_string())),
                int(2 + k).value(r),
                opt(int(4 + k)),
                opt(int(5 + k)),
                int(0).value(r),
                int(7 + k).value(r),
                epoch,
            ));
        }
    }
}

/// Every window `[start, end)` holding `ts`, by enumeration.
fn windows_of(slicing: SliceSpec, ts: i64) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    match slicing {
        SliceSpec::Tumble { size_ms } => {
            let s = ts.div_euclid(size_ms) * size_ms;
            out.push((s, s + size_ms));
        }
        SliceSpec::Hop { size_ms, slide_ms } => {
            for k in (ts - size_ms).div_euclid(slide_ms)..=ts.div_euclid(slide_ms) {
                let s = k * slide_ms;
                if s <= ts && ts < s + size_ms {
                    out.push((s, s + size_ms));
                }
            }
        }
        SliceSpec::Cumulate {
            step_ms,
            max_size_ms,
        } => {
            let s = ts.div_euclid(max_size_ms) * max_size_ms;
            for j in 1..=max_size_ms / step_ms {
                if ts < s + j * step_ms {
                    out.push((s, s + j * step_ms));
                }
            }
        }
    }
    out
}

#[derive(Default)]
struct Group {
    count: i64,
    sum: Option<i64>,
    max: Option<i64>,
    distinct: BTreeSet<i64>,
    big: i64,
}

struct Expected {
    rows: Vec<ResultRow>,
    late: u64,
    aggregated: u64,
    partially_late: u64,
}

fn oracle(slicing: SliceSpec, keyed: bool, schedule: &[(Option<i64>, Vec<Row>)]) -> Expected {
    let mut groups: BTreeMap<(i64, i64, Option<String>), Group> = BTreeMap::new();
    let mut watermarks = Vec::new();
    let (mut wm, mut late, mut aggregated, mut partially_late) = (i64::MIN, 0, 0, 0);
    for (next_wm, rows) in schedule {
        if let Some(next) = next_wm {
            wm = *next;
            watermarks.push(wm);
        }
        for row in rows {
            let all = windows_of(slicing, row.ts);
            let open: Vec<_> = all.iter().filter(|(_, e)| !window_fired(*e, wm)).collect();
            if open.is_empty() {
                late += 1;
                continue;
            }
            aggregated += 1;
            if open.len() < all.len() {
                partially_late += 1;
            }
            for &&(s, e) in &open {
                let key = if keyed {
                    row.key.map(str::to_string)
                } else {
                    None
                };
                let g = groups.entry((s, e, key)).or_default();
                if let Some(v) = row.v {
                    g.count += 1;
                    g.sum = Some(g.sum.unwrap_or(0) + v);
                    g.max = Some(g.max.map_or(v, |m| m.max(v)));
                    g.distinct.insert(v);
                    g.big += i64::from(v > 50);
                }
            }
        }
    }
    let emitted_at = |e: i64| {
        watermarks
            .iter()
            .position(|&w| window_fired(e, w))
            .map_or(AT_END, |i| i + 1)
    };
    let mut rows: Vec<ResultRow> = groups
        .into_iter()
        .map(|((s, e, key), g)| {
            (
                s,
                e,
                e - 1,
                key,
                g.count,
                g.sum,
                g.max,
                g.distinct.len() as i64,
                g.big,
                emitted_at(e),
            )
        })
        .collect();
    rows.sort();
    Expected {
        rows,
        late,
        aggregated,
        partially_late,
    }
}

/// Out-of-order rows around the epoch (negative timestamps included), some far
/// behind the watermark, cut into random batches.
fn random_input(seed: u64, bound: i64, max_lag: i64) -> (Vec<Row>, Vec<usize>) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let n = 200 + rng.below(300) as usize;
    let mut base = -20_000 - rng.below(5_000);
    let rows = (0..n)
        .map(|_| {
            base += rng.below(120);
            let lag = if rng.below(100) < 85 {
                rng.below(bound as u64 + 1)
            } else {
                rng.below(max_lag as u64)
            };
            Row {
                ts: base - lag,
                key: KEYS[rng.below(KEYS.len() as u64) as usize],
                v: (rng.below(10) > 0).then(|| rng.below(100)),
            }
        })
        .collect();
    let cuts = (0..n).map(|_| 1 + rng.below(25) as usize).collect();
    (rows, cuts)
}

fn check_against_oracle(slicing: SliceSpec, keyed: bool, seeds: u64) -> u64 {
    let bound = 1_000;
    let mut partially_late = 0;
    let mut late = 0;
    for seed in 0..seeds {
        let (rows, cuts) = random_input(seed, bound, 12_000);
        let schedule = schedule(&rows, &cuts, bound);
        let expected = oracle(slicing, keyed, &schedule);
        let (actual, metrics) = run(slicing, keyed, &schedule);
        let counts = metrics.snapshot();
        assert_eq!(actual, expected.rows, "{slicing} keyed={keyed} seed={seed}");
        assert_eq!(counts.rows_late, expected.late, "{slicing} seed={seed}");
        assert_eq!(counts.rows_aggregated, expected.aggregated);
        assert_eq!(counts.rows_late + counts.rows_aggregated, rows.len() as u64);
        assert_eq!(counts.rows_out, actual.len() as u64);
        partially_late += expected.partially_late;
        late += expected.late;
    }
    assert!(late > 0, "the input exercises late rows");
    partially_late
}

#[test]
fn hop_with_size_a_multiple_of_slide_matches_oracle() {
    let slicing = SliceSpec::Hop {
        size_ms: 3_000,
        slide_ms: 1_000,
    };
    assert!(check_against_oracle(slicing, true, 30) > 0);
    check_against_oracle(slicing, false, 10);
}

#[test]
fn hop_with_gcd_slices_matches_oracle() {
    let slicing = SliceSpec::Hop {
        size_ms: 5_000,
        slide_ms: 2_000,
    };
    assert!(check_against_oracle(slicing, true, 30) > 0);
    check_against_oracle(slicing, false, 10);
}

#[test]
fn cumulate_matches_oracle() {
    let slicing = SliceSpec::Cumulate {
        step_ms: 1_000,
        max_size_ms: 4_000,
    };
    assert!(check_against_oracle(slicing, true, 30) > 0);
    check_against_oracle(slicing, false, 10);
    let slicing = SliceSpec::Cumulate {
        step_ms: 500,
        max_size_ms: 3_000,
    };
    check_against_oracle(slicing, true, 10);
}

#[test]
fn tumble_matches_oracle() {
    check_against_oracle(SliceSpec::Tumble { size_ms: 2_000 }, true, 10);
}

fn one(ts: i64, key: &'static str) -> Row {
    Row {
        ts,
        key: Some(key),
        v: Some(1),
    }
}

#[test]
fn hop_row_late_for_some_windows_counts_only_in_the_open_ones() {
    let slicing = SliceSpec::Hop {
        size_ms: 3_000,
        slide_ms: 1_000,
    };
    let schedule = vec![
        (None, vec![one(500, "a")]),
        // Fires [-2000, 1000); [-1000, 2000) and [0, 3000) stay open.
        (
            Some(1_500),
            vec![one(200, "b"), one(-1_500, "c"), one(2_500, "a")],
        ),
    ];
    let (rows, metrics) = run(slicing, true, &schedule);
    let summary: Vec<_> = rows
        .iter()
        .map(|r| (r.0, r.1, r.3.as_deref(), r.4, r.9))
        .collect();
    assert_eq!(
        summary,
        vec![
            (-2_000, 1_000, Some("a"), 1, 1),
            (-1_000, 2_000, Some("a"), 1, AT_END),
            (-1_000, 2_000, Some("b"), 1, AT_END),
            (0, 3_000, Some("a"), 2, AT_END),
            (0, 3_000, Some("b"), 1, AT_END),
            (1_000, 4_000, Some("a"), 1, AT_END),
            (2_000, 5_000, Some("a"), 1, AT_END),
        ]
    );
    let counts = metrics.snapshot();
    assert_eq!((counts.rows_late, counts.rows_aggregated), (1, 3));
}

#[test]
fn cumulate_windows_emit_in_order_once_each() {
    let slicing = SliceSpec::Cumulate {
        step_ms: 1_000,
        max_size_ms: 3_000,
    };
    let schedule = vec![
        (None, vec![one(100, "a"), one(1_100, "b")]),
        // Fires [0, 1000) and [0, 2000); a late row for the first slice still
        // counts towards [0, 3000).
        (Some(1_999), vec![one(900, "c")]),
    ];
    let (rows, _) = run(slicing, true, &schedule);
    let summary: Vec<_> = rows
        .iter()
        .map(|r| (r.0, r.1, r.3.as_deref(), r.4))
        .collect();
    assert_eq!(
        summary,
        vec![
            (0, 1_000, Some("a"), 1),
            (0, 2_000, Some("a"), 1),
            (0, 2_000, Some("b"), 1),
            (0, 3_000, Some("a"), 1),
            (0, 3_000, Some("b"), 1),
            (0, 3_000, Some("c"), 1),
        ]
    );
}

#[test]
fn slices_are_released_when_their_last_window_fires() {
    let spec = spec(true);
    let output = WindowOutput::derived(layout(true), &spec).unwrap();
    let slicing = SliceSpec::Hop {
        size_ms: 3_000,
        slide_ms: 1_000,
    };
    let mut op = SlicedWindowAggregate::new(spec, slicing, 0, output)
        .unwrap()
        .instance();
    let metrics = NodeMetrics::default();
    let mut messages = Vec::new();
    let mut out = Output::new(&mut messages, &metrics);
    op.on_batch(
        batch(&[one(100, "a"), one(1_100, "a"), one(2_100, "a")]),
        &mut out,
    )
    .unwrap();
    assert_eq!(op.num_slices(), 3);
    assert!(op.state_size() > 0);
    // Window [-1000, 2000) fires: slice [0, 1000) is still needed by [0, 3000).
    op.on_watermark(1_999, &mut out).unwrap();
    assert_eq!(op.num_slices(), 3);
    // [0, 3000) fires: the first slice's last window.
    op.on_watermark(2_999, &mut out).unwrap();
    assert_eq!(op.num_slices(), 2);
    op.on_watermark(10_000, &mut out).unwrap();
    assert_eq!(op.num_slices(), 0);
}

#[test]
fn layout_is_validated_and_explained() {
    let spec = spec(true);
    assert!(WindowOutput::derived(vec![C::Key(1)], &spec).is_err());
    assert!(WindowOutput::derived(vec![C::Aggregate(5)], &spec).is_err());
    let output = WindowOutput::derived(C::default_layout(1, 5, true), &spec).unwrap();
    let names: Vec<_> = output
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(
        names,
        [
            "window_start",
            "window_end",
            "window_time",
            "k",
            "cnt",
            "total",
            "biggest",
            "distinct_v",
            "big"
        ]
    );
    let bad = SliceSpec::Cumulate {
        step_ms: 7,
        max_size_ms: 20,
    };
    assert!(SlicedWindowAggregate::new(spec.clone(), bad, 0, output.clone()).is_err());
    let op = SlicedWindowAggregate::new(
        spec,
        SliceSpec::Hop {
            size_ms: 5_000,
            slide_ms: 2_000,
        },
        0,
        output,
    )
    .unwrap();
    assert_eq!(
        op.explain(),
        vec![
            "window: HOP(slide 2 s, size 5 s)",
            "slice: 1 s",
            "group by: [k]",
            "aggregates: [cnt, total, biggest, distinct_v, big]",
            "emit: once, when the watermark passes window_end",
        ]
    );
}

#[test]
fn cumulate_replaces_fired_slices_by_their_window_state() {
    let spec = spec(false);
    let output = WindowOutput::derived(layout(false), &spec).unwrap();
    let slicing = SliceSpec::Cumulate {
        step_ms: 1_000,
        max_size_ms: 4_000,
    };
    let mut op = SlicedWindowAggregate::new(spec, slicing, 0, output)
        .unwrap()
        .instance();
    let metrics = NodeMetrics::default();
    let mut messages = Vec::new();
    let mut out = Output::new(&mut messages, &metrics);
    op.on_batch(
        batch(&[one(100, "a"), one(1_100, "a"), one(2_100, "a")]),
        &mut out,
    )
    .unwrap();
    assert_eq!(op.num_slices(), 3);
    // [0, 1000) and [0, 2000) fire: one state for [0, 2000) plus slice [2000, 3000).
    op.on_watermark(1_999, &mut out).unwrap();
    assert_eq!(op.num_slices(), 2);
    // [0, 4000) fires: the cycle is over.
    op.on_watermark(3_999, &mut out).unwrap();
    assert_eq!(op.num_slices(), 0);
    let counts: Vec<i64> = messages
        .iter()
        .filter_map(|m| match m {
            Message::Batch(b) => Some(b.column(2).as_primitive::<Int64Type>().value(0)),
            _ => None,
        })
        .collect();
    assert_eq!(counts, [1, 2, 3, 3]);
}

#[test]
fn a_restored_snapshot_gives_the_uninterrupted_results() {
    let slicings = [
        SliceSpec::Hop {
            size_ms: 5_000,
            slide_ms: 2_000,
        },
        SliceSpec::Cumulate {
            step_ms: 1_000,
            max_size_ms: 4_000,
        },
    ];
    let bound = 1_000;
    for slicing in slicings {
        for seed in 0..6 {
            let (rows, cuts) = random_input(seed, bound, 12_000);
            let schedule = schedule(&rows, &cuts, bound);
            let expected = oracle(slicing, true, &schedule);
            for restore_at in [1, schedule.len() / 3, schedule.len() / 2] {
                let (actual, metrics) = run_restoring(slicing, true, &schedule, Some(restore_at));
                assert_eq!(
                    actual, expected.rows,
                    "{slicing} seed={seed} restored at step {restore_at}"
                );
                assert_eq!(metrics.snapshot().rows_late, expected.late);
            }
        }
    }
}

#[test]
fn malformed_slice_state_is_an_error() {
    let spec = spec(true);
    let output = WindowOutput::derived(layout(true), &spec).unwrap();
    let slicing = SliceSpec::Hop {
        size_ms: 3_000,
        slide_ms: 1_000,
    };
    let factory = SlicedWindowAggregate::new(spec, slicing, 0, output).unwrap();
    let mut op = factory.instance();
    let metrics = NodeMetrics::default();
    let mut messages = Vec::new();
    op.on_batch(
        batch(&[one(100, "a"), one(1_100, "b")]),
        &mut Output::new(&mut messages, &metrics),
    )
    .unwrap();
    let state = op.snapshot().unwrap().unwrap();
    assert_eq!(state.num_rows(), 2);

    // Without its watermark.
    let unmarked = OperatorState {
        schema: Arc::new(
            state
                .schema
                .as_ref()
                .clone()
                .with_metadata(Default::default()),
        ),
        batches: state
            .batches
            .iter()
            .map(|b| {
                RecordBatch::try_new(
                    Arc::new(
                        state
                            .schema
                            .as_ref()
                            .clone()
                            .with_metadata(Default::default()),
                    ),
                    b.columns().to_vec(),
                )
                .unwrap()
            })
            .collect(),
    };
    let err = factory
        .instance()
        .restore(unmarked)
        .unwrap_err()
        .to_string();
    assert!(err.contains("watermark"), "{err}");

    // The error of restoring one batch (with a watermark).
    let restore_batch = |batch: RecordBatch| {
        let state = OperatorState {
            schema: batch.schema(),
            batches: vec![batch],
        };
        let state = state.with_watermark(0).unwrap();
        factory.instance().restore(state).unwrap_err().to_string()
    };

    // Missing a state column of an aggregate.
    let batch = &state.batches[0];
    let mut kept: Vec<usize> = (0..batch.num_columns()).collect();
    kept.pop();
    let err = restore_batch(batch.project(&kept).unwrap());
    assert!(err.contains("malformed checkpoint state"), "{err}");

    // A key of another type.
    let mut columns = batch.columns().to_vec();
    columns[1] = Arc::new(Int64Array::from(vec![7; batch.num_rows()]));
    let names = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect::<Vec<_>>();
    let err = restore_batch(RecordBatch::try_from_iter(names.into_iter().zip(columns)).unwrap());
    assert!(err.contains("key column k0"), "{err}");
}
