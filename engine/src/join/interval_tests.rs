//! Tests of [`IntervalJoin`] against a brute-force oracle: nested loops over all
//! accepted rows give the pairs, and a walk over the input gives when each pair
//! and each unmatched row must be emitted.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use datafusion::arrow::datatypes::{
    DataType, Field, Int64Type, Schema, SchemaRef, TimestampMillisecondType,
};
use datafusion::logical_expr::Operator as BinaryOp;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{binary, col, lit};

use super::{IntervalJoin, IntervalJoinOperator, JoinInput, JoinKind};
use crate::message::Message;
use crate::metrics::{NodeCounts, NodeMetrics};
use crate::operator::{Operator, OperatorFactory, Output};
use crate::time::{MAX_WATERMARK, MIN_WATERMARK, event_time_type};
use crate::window::test_support::Rng;

#[derive(Debug, Clone, Copy)]
pub(super) struct Row {
    pub id: i64,
    pub ts: i64,
    pub k: Option<i64>,
    pub g: &'static str,
    pub amt: i64,
}

#[derive(Debug, Clone)]
pub(super) enum Event {
    Left(Vec<Row>),
    Right(Vec<Row>),
    Watermark(i64),
}

/// Columns: `{p}_ts, {p}_k, {p}_g, {p}_id, {p}_amt`.
pub(super) fn schema(prefix: &str) -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(format!("{prefix}_ts"), event_time_type(), false),
        Field::new(format!("{prefix}_k"), DataType::Int64, true),
        Field::new(format!("{prefix}_g"), DataType::Utf8, false),
        Field::new(format!("{prefix}_id"), DataType::Int64, false),
        Field::new(format!("{prefix}_amt"), DataType::Int64, false),
    ]))
}

pub(super) fn batch(schema: &SchemaRef, rows: &[Row]) -> RecordBatch {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(TimestampMillisecondArray::from_iter_values(
            rows.iter().map(|r| r.ts),
        )),
        Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.k))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.g))),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.id))),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.amt))),
    ];
    RecordBatch::try_new(schema.clone(), columns).unwrap()
}

#[derive(Debug, Clone, Copy)]
struct Case {
    kind: JoinKind,
    lower: i64,
    upper: i64,
    residual: bool,
    two_keys: bool,
    final_watermark: bool,
}

/// `r_amt >= l_amt` over the joined schema.
pub(super) fn residual_expr(left: &SchemaRef, right: &SchemaRef) -> Arc<dyn PhysicalExpr> {
    let joined = Schema::new(
        left.fields()
            .iter()
            .chain(right.fields().iter())
            .cloned()
            .collect::<Vec<_>>(),
    );
    binary(
        col("r_amt", &joined).unwrap(),
        BinaryOp::GtEq,
        col("l_amt", &joined).unwrap(),
        &joined,
    )
    .unwrap()
}

fn join(case: &Case) -> IntervalJoin {
    let (left, right) = (schema("l"), schema("r"));
    let keys = if case.two_keys { vec![1, 2] } else { vec![1] };
    let residual = case.residual.then(|| residual_expr(&left, &right));
    IntervalJoin::new(
        JoinInput::new(left, keys.clone(), 0),
        JoinInput::new(right, keys, 0),
        case.lower,
        case.upper,
        case.kind,
        residual,
    )
    .unwrap()
}

/// An output row: left id, right id, and the event index that emitted it
/// (`events.len()` for `on_end`).
type OutRow = (Option<i64>, Option<i64>, usize);

struct Run {
    rows: Vec<OutRow>,
    counts: NodeCounts,
    /// `state_rows()` after each event.
    state: Vec<usize>,
    state_at_end: usize,
}

/// Runs the join over `events`; with `restore_at`, before that event it takes
/// a snapshot and goes on with a fresh instance restored from it (through
/// Arrow IPC), checking that the instance that took the snapshot emits the
/// same rows alongside.
fn run(
    join: &IntervalJoin,
    events: &[Event],
    rebuild_min_rows: Option<usize>,
    restore_at: Option<usize>,
    left: &HashMap<i64, Row>,
    right: &HashMap<i64, Row>,
) -> Run {
    let mut op: IntervalJoinOperator = join.operator().unwrap();
    if let Some(n) = rebuild_min_rows {
        op.set_rebuild_min_rows(n);
    }
    let (ls, rs) = (schema("l"), schema("r"));
    let metrics = NodeMetrics::default();
    let mut rows = Vec::new();
    let mut state = Vec::new();
    let collect = |messages: Vec<Message>, step: usize, rows: &mut Vec<OutRow>| {
        for m in messages {
            if let Message::Batch(b) = m {
                assert_eq!(b.schema(), join.output_schema());
                rows.extend(
                    decode(&b, left, right)
                        .into_iter()
                        .map(|(l, r)| (l, r, step)),
                );
            }
        }
    };
    let feed = |op: &mut IntervalJoinOperator, event: &Event, metrics: &NodeMetrics| {
        let mut messages = Vec::new();
        let mut out = Output::new(&mut messages, metrics);
        match event {
            Event::Left(r) => op.on_input_batch(0, batch(&ls, r), &mut out).unwrap(),
            Event::Right(r) => op.on_input_batch(1, batch(&rs, r), &mut out).unwrap(),
            Event::Watermark(w) => {
                op.on_watermark(*w, &mut out).unwrap();
                assert!(
                    matches!(messages.last(), Some(Message::Watermark(_))),
                    "the watermark follows the rows it released"
                );
            }
        }
        messages
    };
    let mut original: Option<IntervalJoinOperator> = None;
    for (step, event) in events.iter().enumerate() {
        if restore_at == Some(step) {
            let state = op.snapshot().unwrap().unwrap();
            let mut fresh = join.operator().unwrap();
            fresh
                .restore(crate::checkpoint::ipc::round_trip(&state))
                .unwrap();
            assert_eq!(fresh.state_rows(), op.state_rows());
            original = Some(std::mem::replace(&mut op, fresh));
        }
        let messages = feed(&mut op, event, &metrics);
        if let Some(original) = original.as_mut() {
            let theirs = feed(original, event, &NodeMetrics::default());
            let (mut a, mut b) = (Vec::new(), Vec::new());
            collect(messages.clone(), step, &mut a);
            collect(theirs, step, &mut b);
            a.sort();
            b.sort();
            assert_eq!(a, b, "event {step}: the restored instance differs");
            assert_eq!(original.state_rows(), op.state_rows());
        }
        collect(messages, step, &mut rows);
        state.push(op.state_rows());
        assert_eq!(
            op.state_size(),
            op.recounted_state_size(),
            "event {step}: the running state size drifted"
        );
    }
    let peak = metrics
        .peak_state_bytes
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        peak >= state.iter().max().map_or(0, |&rows| rows.min(1) as u64),
        "a join that buffered rows records its peak state"
    );
    let mut messages = Vec::new();
    op.on_end(&mut Output::new(&mut messages, &metrics))
        .unwrap();
    assert_eq!(op.state_size(), op.recounted_state_size());
    assert_eq!(
        op.stored_bytes(),
        0,
        "the end releases every buffered batch"
    );
    collect(messages, events.len(), &mut rows);
    rows.sort();
    Run {
        rows,
        counts: metrics.snapshot(),
        state,
        state_at_end: op.state_rows(),
    }
}

/// `(left id, right id)` of each output row, checking the other columns
/// against the input rows.
pub(super) fn decode(
    b: &RecordBatch,
    left: &HashMap<i64, Row>,
    right: &HashMap<i64, Row>,
) -> Vec<(Option<i64>, Option<i64>)> {
    let side = |offset: usize, rows: &HashMap<i64, Row>, i: usize| -> Option<i64> {
        let id = b.column(offset + 3).as_primitive::<Int64Type>();
        if id.is_null(i) {
            for c in 0..5 {
                assert!(b.column(offset + c).is_null(i), "padded side is all NULL");
            }
            return None;
        }
        let row = rows[&id.value(i)];
        let ts = b.column(offset).as_primitive::<TimestampMillisecondType>();
        assert_eq!(ts.value(i), row.ts);
        let k = b.column(offset + 1).as_primitive::<Int64Type>();
        assert_eq!(k.is_valid(i).then(|| k.value(i)), row.k);
        assert_eq!(b.column(offset + 2).as_string::<i32>().value(i), row.g);
        assert_eq!(
            b.column(offset + 4).as_primitive::<Int64Type>().value(i),
            row.amt
        );
        Some(row.id)
    };
    (0..b.num_rows())
        .map(|i| {
            let pair = (side(0, left, i), side(5, right, i));
            assert!(pair.0.is_some() || pair.1.is_some());
            pair
        })
        .collect()
}

struct Expected {
    rows: Vec<OutRow>,
    late: u64,
    /// Live rows after each event.
    state: Vec<usize>,
}

/// The brute-force model.
fn oracle(case: &Case, events: &[Event]) -> Expected {
    let end = events.len();
    // (row, arrival event, watermark at arrival) of accepted rows.
    let mut lefts: Vec<(Row, usize, i64)> = Vec::new();
    let mut rights: Vec<(Row, usize, i64)> = Vec::new();
    let mut watermarks: Vec<(usize, i64)> = Vec::new();
    let mut w = MIN_WATERMARK;
    let mut late = 0;
    let mut state = Vec::new();
    let left_expiry = |r: &Row| r.ts.saturating_add(case.upper);
    let right_expiry = |r: &Row| r.ts.saturating_sub(case.lower);
    for (step, e) in events.iter().enumerate() {
        match e {
            Event::Left(rows) | Event::Right(rows) => {
                let into = if matches!(e, Event::Left(_)) {
                    &mut lefts
                } else {
                    &mut rights
                };
                for r in rows {
                    if r.ts <= w {
                        late += 1;
                    } else {
                        into.push((*r, step, w));
                    }
                }
            }
            Event::Watermark(wm) => {
                w = w.max(*wm);
                watermarks.push((step, *wm));
            }
        }
        let live = lefts
            .iter()
            .filter(|(r, _, _)| r.k.is_some() && left_expiry(r) > w)
            .count()
            + rights
                .iter()
                .filter(|(r, _, _)| r.k.is_some() && right_expiry(r) > w)
                .count();
        state.push(live);
    }
    let matches = |a: &Row, b: &Row| {
        a.k.is_some()
            && a.k == b.k
            && (!case.two_keys || a.g == b.g)
            && a.ts + case.lower <= b.ts
            && b.ts <= a.ts + case.upper
            && (!case.residual || b.amt >= a.amt)
    };
    // When an unmatched row is released: at once, at the first watermark that
    // reaches its expiry, or at the end.
    let release = |r: &Row, arrival: usize, w_arrival: i64, expiry: i64| {
        if r.k.is_none() || expiry <= w_arrival {
            return arrival;
        }
        watermarks
            .iter()
            .find(|&&(s, wm)| s > arrival && wm >= expiry)
            .map_or(end, |&(s, _)| s)
    };
    let mut rows = Vec::new();
    let mut right_matched = vec![false; rights.len()];
    for (a, sa, wa) in &lefts {
        let mut matched = false;
        for (j, (b, sb, _)) in rights.iter().enumerate() {
            if matches(a, b) {
                rows.push((Some(a.id), Some(b.id), (*sa).max(*sb)));
                matched = true;
                right_matched[j] = true;
            }
        }
        if !matched && case.kind.keeps_unmatched_left() {
            rows.push((Some(a.id), None, release(a, *sa, *wa, left_expiry(a))));
        }
    }
    if case.kind.keeps_unmatched_right() {
        for ((b, sb, wb), matched) in rights.iter().zip(right_matched) {
            if !matched {
                rows.push((None, Some(b.id), release(b, *sb, *wb, right_expiry(b))));
            }
        }
    }
    rows.sort();
    Expected { rows, late, state }
}

/// Small sides, a few keys, small batches: every case quickly.
pub(super) const SMALL: Gen = Gen {
    rows_per_side: 120,
    disorder: 14,
    bound: 10,
    keys: 4,
    max_batch: 7,
};

pub(super) struct Gen {
    pub rows_per_side: usize,
    /// Rows are at most this far out of time order.
    pub disorder: u64,
    /// The watermark trails the maximum time seen by this much.
    pub bound: i64,
    pub keys: u64,
    pub max_batch: u64,
}

/// Two out-of-order streams cut into random batches, interleaved at random, with
/// `min(max left ts, max right ts) - bound` watermarks between batches.
pub(super) fn generate(rng: &mut Rng, g: &Gen, two_keys: bool) -> (Vec<Event>, Vec<Row>, Vec<Row>) {
    let make = |first_id: i64, rng: &mut Rng| -> Vec<Row> {
        let mut t = 1_000;
        (0..g.rows_per_side)
            .map(|i| {
                t += rng.below(3);
                Row {
                    id: first_id + i as i64,
                    ts: t + rng.below(g.disorder + 1),
                    k: (rng.below(10) != 0).then(|| rng.below(g.keys)),
                    g: if two_keys && rng.below(2) == 0 {
                        "x"
                    } else {
                        "y"
                    },
                    amt: rng.below(100),
                }
            })
            .collect()
    };
    let left = make(0, rng);
    let right = make(1_000_000, rng);
    let (mut li, mut ri) = (0, 0);
    let (mut max_l, mut max_r) = (None::<i64>, None::<i64>);
    let mut last_wm = MIN_WATERMARK;
    let mut events = Vec::new();
    while li < left.len() || ri < right.len() {
        let n = rng.below(g.max_batch + 1) as usize;
        let take_left = ri >= right.len() || (li < left.len() && rng.below(2) == 0);
        let (rows, i, max) = if take_left {
            (&left, &mut li, &mut max_l)
        } else {
            (&right, &mut ri, &mut max_r)
        };
        let chunk: Vec<Row> = rows[*i..(*i + n).min(rows.len())].to_vec();
        *i += chunk.len();
        for r in &chunk {
            *max = Some(max.map_or(r.ts, |m| m.max(r.ts)));
        }
        events.push(if take_left {
            Event::Left(chunk)
        } else {
            Event::Right(chunk)
        });
        if rng.below(3) != 0
            && let (Some(l), Some(r)) = (max_l, max_r)
        {
            let wm = l.min(r) - g.bound;
            // Repeated watermarks happen too; they must change nothing.
            if wm >= last_wm {
                last_wm = wm;
                events.push(Event::Watermark(wm));
            }
        }
    }
    (events, left, right)
}

fn check(case: &Case, g: &Gen, seed: u64, rebuild_min_rows: Option<usize>) {
    check_restoring(case, g, seed, rebuild_min_rows, None);
}

/// [`check`], restoring a snapshot before event `restore_at`, if given.
fn check_restoring(
    case: &Case,
    g: &Gen,
    seed: u64,
    rebuild_min_rows: Option<usize>,
    restore_at: Option<usize>,
) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let (mut events, left, right) = generate(&mut rng, g, case.two_keys);
    if case.final_watermark {
        events.push(Event::Watermark(MAX_WATERMARK));
    }
    let left: HashMap<i64, Row> = left.into_iter().map(|r| (r.id, r)).collect();
    let right: HashMap<i64, Row> = right.into_iter().map(|r| (r.id, r)).collect();
    let ctx = format!("{case:?} seed={seed}");
    let expected = oracle(case, &events);
    let restore_at = restore_at.map(|at| at.min(events.len().saturating_sub(1)));
    let got = run(
        &join(case),
        &events,
        rebuild_min_rows,
        restore_at,
        &left,
        &right,
    );
    if got.rows != expected.rows {
        let missing: Vec<_> = expected
            .rows
            .iter()
            .filter(|r| !got.rows.contains(r))
            .collect();
        let extra: Vec<_> = got
            .rows
            .iter()
            .filter(|r| !expected.rows.contains(r))
            .collect();
        panic!(
            "{ctx}: {} rows, expected {}\nmissing {missing:?}\nextra {extra:?}",
            got.rows.len(),
            expected.rows.len()
        );
    }
    assert_eq!(got.counts.rows_late, expected.late, "{ctx}");
    assert_eq!(got.counts.rows_out, expected.rows.len() as u64, "{ctx}");
    assert_eq!(
        got.state, expected.state,
        "{ctx}: state_rows() after each event"
    );
    assert_eq!(got.state_at_end, 0, "{ctx}");
    if case.final_watermark {
        assert_eq!(
            got.state.last(),
            Some(&0),
            "{ctx}: after the final watermark"
        );
    }
}

pub(super) const KINDS: [JoinKind; 4] = [
    JoinKind::Inner,
    JoinKind::Left,
    JoinKind::Right,
    JoinKind::Full,
];

#[test]
fn matches_the_oracle_on_random_out_of_order_input() {
    let g = SMALL;
    let bounds = [(-5, 15), (-20, -3), (2, 10), (0, 0), (-7, 7)];
    let mut seed = 0;
    for kind in KINDS {
        for (lower, upper) in bounds {
            for residual in [false, true] {
                for _ in 0..3 {
                    seed += 1;
                    let case = Case {
                        kind,
                        lower,
                        upper,
                        residual,
                        two_keys: seed % 2 == 0,
                        final_watermark: seed % 3 == 0,
                    };
                    check(&case, &g, seed, None);
                }
            }
        }
    }
}

#[test]
fn a_restored_snapshot_gives_the_uninterrupted_rows() {
    let g = SMALL;
    let mut seed = 500;
    for kind in KINDS {
        for (lower, upper) in [(-5, 15), (0, 10)] {
            for restore_at in [1, 20, 45] {
                seed += 1;
                let case = Case {
                    kind,
                    lower,
                    upper,
                    residual: seed % 2 == 0,
                    two_keys: seed % 3 == 0,
                    final_watermark: seed % 2 == 1,
                };
                let rebuild = (seed % 4 == 0).then_some(16);
                check_restoring(&case, &g, seed, rebuild, Some(restore_at));
            }
        }
    }
}

#[test]
fn malformed_join_state_is_an_error() {
    let join = join(&Case {
        kind: JoinKind::Left,
        lower: 0,
        upper: 10,
        residual: false,
        two_keys: false,
        final_watermark: false,
    });
    let mut op = join.operator().unwrap();
    let row = |id, ts, k| Row {
        id,
        ts,
        k: Some(k),
        g: "x",
        amt: 1,
    };
    let metrics = NodeMetrics::default();
    let mut messages = Vec::new();
    let mut out = Output::new(&mut messages, &metrics);
    op.on_input_batch(
        0,
        batch(&schema("l"), &[row(1, 100, 7), row(2, 105, 8)]),
        &mut out,
    )
    .unwrap();
    op.on_input_batch(1, batch(&schema("r"), &[row(3, 103, 7)]), &mut out)
        .unwrap();
    let state = op.snapshot().unwrap().unwrap();
    assert_eq!(state.num_rows(), 3);

    // The state of another join: its sides have other columns.
    let other = IntervalJoin::new(
        JoinInput::new(schema("l"), vec![1], 0),
        JoinInput::new(schema("x"), vec![1], 0),
        0,
        10,
        JoinKind::Left,
        None,
    )
    .unwrap();
    let mut fresh = other.operator().unwrap();
    let err = fresh.restore(state.clone()).unwrap_err().to_string();
    assert!(err.contains("expected 'right.x_ts'"), "{err}");

    // Column `position` of the first batch replaced: the error of a restore.
    let batch0 = &state.batches[0];
    let restore_with = |position: usize, column: ArrayRef| {
        let mut columns = batch0.columns().to_vec();
        columns[position] = column;
        let broken = crate::checkpoint::OperatorState {
            schema: state.schema.clone(),
            batches: vec![RecordBatch::try_new(state.schema.clone(), columns).unwrap()],
        };
        let mut fresh = join.operator().unwrap();
        fresh.restore(broken).unwrap_err().to_string()
    };
    // Match flags with NULLs.
    let matched = batch0.schema().index_of("left.__matched").unwrap();
    let nulls = datafusion::arrow::array::BooleanArray::from(vec![None; batch0.num_rows()]);
    let err = restore_with(matched, Arc::new(nulls));
    assert!(err.contains("malformed checkpoint state"), "{err}");
    // An unknown part number.
    let err = restore_with(0, Arc::new(Int64Array::from(vec![5; batch0.num_rows()])));
    assert!(err.contains("unknown part number 5"), "{err}");
}

#[test]
fn compaction_keeps_results_exact() {
    // Tiny batches (merged every 32) and a low rebuild threshold: state is
    // merged and rebuilt many times while rows are still being matched.
    let g = Gen {
        rows_per_side: 3_000,
        disorder: 30,
        bound: 20,
        keys: 5,
        max_batch: 4,
    };
    for (seed, kind) in KINDS.into_iter().enumerate() {
        let case = Case {
            kind,
            lower: -6,
            upper: 25,
            residual: seed % 2 == 1,
            two_keys: false,
            final_watermark: true,
        };
        check(&case, &g, 100 + seed as u64, Some(16));
    }
}

#[test]
fn large_batches_and_hot_keys_split_output() {
    let g = Gen {
        rows_per_side: 4_000,
        disorder: 5,
        bound: 5,
        keys: 2,
        max_batch: 2_500,
    };
    for (seed, kind) in [JoinKind::Inner, JoinKind::Full].into_iter().enumerate() {
        let case = Case {
            kind,
            lower: -40,
            upper: 40,
            residual: seed == 1,
            two_keys: false,
            final_watermark: false,
        };
        check(&case, &g, 200 + seed as u64, None);
    }
}

fn payments() -> (IntervalJoin, SchemaRef, SchemaRef) {
    let auth = Arc::new(Schema::new(vec![
        Field::new("card", DataType::Int64, true),
        Field::new("auth_ts", event_time_type(), false),
    ]));
    let capture = Arc::new(Schema::new(vec![
        Field::new("card", DataType::Int64, false),
        Field::new("cap_ts", event_time_type(), false),
    ]));
    let join = IntervalJoin::new(
        JoinInput::new(auth.clone(), vec![0], 1),
        JoinInput::new(capture.clone(), vec![0], 1),
        -5_000,
        900_000,
        JoinKind::Left,
        None,
    )
    .unwrap();
    (join, auth, capture)
}

fn two_column(schema: &SchemaRef, rows: &[(Option<i64>, i64)]) -> RecordBatch {
    RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.0))),
            Arc::new(TimestampMillisecondArray::from_iter_values(
                rows.iter().map(|r| r.1),
            )),
        ],
    )
    .unwrap()
}

/// `(card, auth_ts, card, cap_ts)` rows of the batches in `messages`, and
/// `W(x)` for watermarks.
fn render(messages: &[Message]) -> Vec<String> {
    let mut lines = Vec::new();
    for m in messages {
        match m {
            Message::Batch(b) => {
                for i in 0..b.num_rows() {
                    let cell = |c: usize| {
                        let a = b.column(c);
                        if a.is_null(i) {
                            "NULL".to_string()
                        } else if c.is_multiple_of(2) {
                            a.as_primitive::<Int64Type>().value(i).to_string()
                        } else {
                            a.as_primitive::<TimestampMillisecondType>()
                                .value(i)
                                .to_string()
                        }
                    };
                    lines.push(format!("{} {} | {} {}", cell(0), cell(1), cell(2), cell(3)));
                }
            }
            Message::Watermark(w) => lines.push(format!("W({w})")),
            other => lines.push(format!("{other:?}")),
        }
    }
    lines
}

#[test]
fn authorization_without_capture_times_out_when_the_watermark_passes() {
    let (join, auth, capture) = payments();
    assert_eq!(
        join.explain(),
        vec![
            "type: LEFT OUTER",
            "keys: left.card = right.card",
            "interval: right.cap_ts BETWEEN left.auth_ts - 5 s AND left.auth_ts + 15 min",
            "state: left row until watermark >= left.auth_ts + 15 min, right row until \
             watermark >= right.cap_ts + 5 s; rows at or behind the watermark are late; \
             unmatched left rows are emitted with NULLs when released",
        ]
    );
    assert!(join.output_schema().field(2).is_nullable());
    assert!(join.output_schema().field(3).is_nullable());
    assert!(!join.output_schema().field(1).is_nullable());

    let mut op = join.operator().unwrap();
    let metrics = NodeMetrics::default();
    fn step(
        op: &mut IntervalJoinOperator,
        metrics: &NodeMetrics,
        f: impl FnOnce(&mut IntervalJoinOperator, &mut Output<'_>),
    ) -> Vec<String> {
        let mut messages = Vec::new();
        f(op, &mut Output::new(&mut messages, metrics));
        render(&messages)
    }
    let a = two_column(&auth, &[(Some(1), 0), (Some(2), 1_000), (None, 2_000)]);
    assert_eq!(
        step(&mut op, &metrics, |op, out| op
            .on_input_batch(0, a.clone(), out)
            .unwrap()),
        vec!["NULL 2000 | NULL NULL"],
        "a NULL card never matches: emitted at once"
    );
    let c = two_column(&capture, &[(Some(1), 60_000), (Some(2), 1_000_000)]);
    assert_eq!(
        step(&mut op, &metrics, |op, out| op
            .on_input_batch(1, c.clone(), out)
            .unwrap()),
        vec!["1 0 | 1 60000"]
    );
    assert_eq!(
        step(&mut op, &metrics, |op, out| op
            .on_watermark(900_999, out)
            .unwrap()),
        vec!["W(900999)"]
    );
    assert_eq!(
        step(&mut op, &metrics, |op, out| op
            .on_watermark(901_000, out)
            .unwrap()),
        vec!["2 1000 | NULL NULL", "W(901000)"],
        "card 2 has no capture by auth_ts + 15 min"
    );
    // Right rows stay until the watermark passes cap_ts + 5 s.
    assert_eq!(op.state_rows(), 1);
    let late = two_column(&auth, &[(Some(1), 901_000), (Some(2), 999_999)]);
    assert_eq!(
        step(&mut op, &metrics, |op, out| op
            .on_input_batch(0, late.clone(), out)
            .unwrap()),
        vec!["2 999999 | 2 1000000"],
        "the row at the watermark is late"
    );
    assert_eq!(metrics.snapshot().rows_late, 1);
    assert_eq!(
        step(&mut op, &metrics, |op, out| op
            .on_watermark(1_005_000, out)
            .unwrap()),
        vec!["W(1005000)"]
    );
    assert_eq!(
        op.state_rows(),
        1,
        "the matched left row waits for auth_ts + 15 min"
    );
    assert_eq!(
        step(&mut op, &metrics, |op, out| op
            .on_watermark(1_899_999, out)
            .unwrap()),
        vec!["W(1899999)"]
    );
    assert_eq!(op.state_rows(), 0);
}

#[test]
fn on_end_emits_pending_unmatched_rows() {
    let (join, auth, _) = payments();
    let mut op = join.create().unwrap();
    let metrics = NodeMetrics::default();
    let mut messages = Vec::new();
    let a = two_column(&auth, &[(Some(7), 10)]);
    op.on_input_batch(0, a, &mut Output::new(&mut messages, &metrics))
        .unwrap();
    assert!(messages.is_empty());
    op.on_end(&mut Output::new(&mut messages, &metrics))
        .unwrap();
    assert_eq!(render(&messages), vec!["7 10 | NULL NULL"]);
}

#[test]
fn null_times_never_match() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, true),
        Field::new("ts", event_time_type(), true),
    ]));
    let b = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![Some(1), Some(1)])),
            Arc::new(TimestampMillisecondArray::from(vec![None, Some(5)])),
        ],
    )
    .unwrap();
    for (kind, expected) in [
        (JoinKind::Inner, vec!["1 5 | 1 5"]),
        (
            JoinKind::Full,
            vec!["1 NULL | NULL NULL", "1 5 | 1 5", "NULL NULL | 1 NULL"],
        ),
    ] {
        let join = IntervalJoin::new(
            JoinInput::new(schema.clone(), vec![0], 1),
            JoinInput::new(schema.clone(), vec![0], 1),
            0,
            0,
            kind,
            None,
        )
        .unwrap();
        let mut op = join.operator().unwrap();
        let metrics = NodeMetrics::default();
        let mut messages = Vec::new();
        let mut out = Output::new(&mut messages, &metrics);
        op.on_input_batch(0, b.clone(), &mut out).unwrap();
        op.on_input_batch(1, b.clone(), &mut out).unwrap();
        op.on_end(&mut out).unwrap();
        assert_eq!(render(&messages), expected, "{kind}");
    }
}

#[test]
fn joins_without_equi_keys() {
    let schema = schema("l");
    let right = schema.clone();
    let join = IntervalJoin::new(
        JoinInput::new(schema.clone(), vec![], 0),
        JoinInput::new(right.clone(), vec![], 0),
        0,
        1,
        JoinKind::Inner,
        Some(lit(true)),
    )
    .unwrap();
    let rows = |ts: &[i64]| -> Vec<Row> {
        ts.iter()
            .map(|&ts| Row {
                id: ts,
                ts,
                k: None,
                g: "x",
                amt: 0,
            })
            .collect()
    };
    let mut op = join.operator().unwrap();
    let metrics = NodeMetrics::default();
    let mut messages = Vec::new();
    let mut out = Output::new(&mut messages, &metrics);
    op.on_input_batch(0, batch(&schema, &rows(&[10, 20])), &mut out)
        .unwrap();
    op.on_input_batch(1, batch(&right, &rows(&[10, 11, 12, 21])), &mut out)
        .unwrap();
    assert_eq!(metrics.snapshot().rows_out, 3);
}

#[test]
fn rejects_invalid_joins() {
    let (l, r) = (schema("l"), schema("r"));
    let new = |lk: Vec<usize>, rk: Vec<usize>, lt: usize, lower: i64, residual| {
        IntervalJoin::new(
            JoinInput::new(l.clone(), lk, lt),
            JoinInput::new(r.clone(), rk, 0),
            lower,
            10,
            JoinKind::Inner,
            residual,
        )
        .map(|_| ())
        .unwrap_err()
        .to_string()
    };
    assert!(new(vec![1], vec![1, 2], 0, 0, None).contains("1 left keys but 2 right keys"));
    assert!(new(vec![1], vec![2], 0, 0, None).contains("key l_k is Int64 but r_g is Utf8"));
    assert!(new(vec![1], vec![1], 2, 0, None).contains("time column l_g is Utf8"));
    assert!(new(vec![1], vec![1], 0, 11, None).contains("empty interval"));
    assert!(new(vec![9], vec![1], 0, 0, None).contains("left column 9 does not exist"));
    assert!(new(vec![1], vec![1], 0, 0, Some(lit(1i64))).contains("not BOOLEAN"));

    let mut op = join(&Case {
        kind: JoinKind::Inner,
        lower: 0,
        upper: 0,
        residual: false,
        two_keys: false,
        final_watermark: false,
    })
    .create()
    .unwrap();
    let metrics = NodeMetrics::default();
    let mut messages = Vec::new();
    let b = batch(&l, &[]);
    assert!(
        op.on_input_batch(2, b.clone(), &mut Output::new(&mut messages, &metrics))
            .is_err()
    );
    assert!(
        op.on_batch(b, &mut Output::new(&mut messages, &metrics))
            .is_err()
    );
}

/// Flink's window join lateness: a row is late once `window_end - 1 <= W`, and a
/// window's pairs and unmatched outer rows come out when the watermark reaches
/// `window_end - 1`, not a millisecond earlier or later.
#[test]
fn window_join_uses_the_last_instant_of_the_window() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, true),
        Field::new("window_start", event_time_type(), false),
        Field::new("window_end", event_time_type(), false),
    ]));
    let rows = |rows: &[(i64, i64)]| {
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(TimestampMillisecondArray::from_iter_values(
                    rows.iter().map(|r| r.1),
                )),
                Arc::new(TimestampMillisecondArray::from_iter_values(
                    rows.iter().map(|r| r.1 + 60_000),
                )),
            ],
        )
        .unwrap()
    };
    let render = |messages: &[Message]| -> Vec<String> {
        let mut lines = Vec::new();
        for m in messages {
            match m {
                Message::Batch(b) => {
                    for i in 0..b.num_rows() {
                        let cells: Vec<String> = [0, 1, 3, 4]
                            .iter()
                            .map(|&c| {
                                let a = b.column(c);
                                if a.is_null(i) {
                                    "NULL".to_string()
                                } else if c % 3 == 0 {
                                    a.as_primitive::<Int64Type>().value(i).to_string()
                                } else {
                                    a.as_primitive::<TimestampMillisecondType>()
                                        .value(i)
                                        .to_string()
                                }
                            })
                            .collect();
                        lines.push(cells.join(" "));
                    }
                }
                Message::Watermark(w) => lines.push(format!("W({w})")),
                other => lines.push(format!("{other:?}")),
            }
        }
        lines
    };
    let join = IntervalJoin::window_join(
        JoinInput::new(schema.clone(), vec![1, 2, 0], 2),
        JoinInput::new(schema.clone(), vec![1, 2, 0], 2),
        JoinKind::Left,
        None,
    )
    .unwrap();
    assert_eq!(join.name(), "WindowJoin");
    let text = join.explain().join("\n");
    assert!(text.contains("their window_end - 1 ms"), "{text}");
    let mut op = join.window_operator().unwrap();
    let metrics = NodeMetrics::default();
    let mut messages = Vec::new();
    let mut out = Output::new(&mut messages, &metrics);
    op.on_watermark(59_999, &mut out).unwrap();
    // The window [0, 60 s) has fired at 59 999: its rows are late.
    op.on_input_batch(0, rows(&[(1, 0), (1, 60_000), (2, 60_000)]), &mut out)
        .unwrap();
    op.on_input_batch(1, rows(&[(1, 60_000), (1, 0), (2, 0)]), &mut out)
        .unwrap();
    op.on_watermark(119_998, &mut out).unwrap();
    op.on_watermark(119_999, &mut out).unwrap();
    assert_eq!(
        render(&messages),
        vec![
            "W(59999)",
            "W(119998)",
            "1 60000 1 60000",
            "2 60000 NULL NULL",
            "W(119999)"
        ]
    );
    assert_eq!(metrics.snapshot().rows_late, 3);
    assert_eq!(op.state_rows(), 0);
}
