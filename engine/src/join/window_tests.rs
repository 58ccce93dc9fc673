//! Tests of [`WindowJoinOperator`] against a brute-force model: nested loops
//! over the accepted rows of each window give the pairs, and the watermarks give
//! the event at which each window fires (when its pairs and unmatched rows must
//! come out).

use std::collections::HashMap;

use super::interval_tests::{
    Event, Gen, KINDS, Row, SMALL, batch, decode, generate, residual_expr, schema,
};
use super::{IntervalJoin, JoinInput, JoinKind, WindowJoinOperator};
use crate::message::Message;
use crate::metrics::NodeMetrics;
use crate::operator::{Operator, OperatorFactory, Output};
use crate::time::MAX_WATERMARK;
use crate::window::test_support::Rng;
use datafusion::arrow::array::AsArray;

#[derive(Debug, Clone, Copy)]
struct Case {
    /// Windows are this many milliseconds long; a row's time column is its
    /// window's end.
    window_ms: i64,
    kind: JoinKind,
    residual: bool,
    two_keys: bool,
    final_watermark: bool,
}

fn join(case: &Case) -> IntervalJoin {
    let (left, right) = (schema("l"), schema("r"));
    let keys = if case.two_keys { vec![1, 2] } else { vec![1] };
    let residual = case.residual.then(|| residual_expr(&left, &right));
    IntervalJoin::window_join(
        JoinInput::new(left, keys.clone(), 0),
        JoinInput::new(right, keys, 0),
        case.kind,
        residual,
    )
    .unwrap()
}

/// Random streams whose time column is each row's window end.
fn windowed(rng: &mut Rng, g: &Gen, case: &Case) -> (Vec<Event>, Vec<Row>, Vec<Row>) {
    let (events, left, right) = generate(rng, g, case.two_keys);
    let window_end = |ts: i64| (ts.div_euclid(case.window_ms) + 1) * case.window_ms;
    let end = |rows: &[Row]| -> Vec<Row> {
        rows.iter()
            .map(|r| Row {
                ts: window_end(r.ts),
                ..*r
            })
            .collect()
    };
    let events = events
        .into_iter()
        .map(|e| match e {
            Event::Left(rows) => Event::Left(end(&rows)),
            Event::Right(rows) => Event::Right(end(&rows)),
            w => w,
        })
        .collect();
    (events, end(&left), end(&right))
}

/// Left id, right id, and the event that emitted the row (`events.len()`
/// for `on_end`).
type OutRow = (Option<i64>, Option<i64>, usize);

struct Expected {
    rows: Vec<OutRow>,
    late: u64,
    /// Rows held after each event.
    state: Vec<usize>,
}

/// The model: a row is late when its window's last instant is at or behind the
/// watermark; a window fires at the first watermark that reaches that instant.
fn oracle(case: &Case, events: &[Event]) -> Expected {
    let end = events.len();
    let mut lefts: Vec<(Row, usize)> = Vec::new();
    let mut rights: Vec<(Row, usize)> = Vec::new();
    let mut watermarks: Vec<(usize, i64)> = Vec::new();
    let mut w = i64::MIN;
    let mut late = 0;
    let mut state = Vec::new();
    for (step, e) in events.iter().enumerate() {
        match e {
            Event::Left(rows) | Event::Right(rows) => {
                let into = if matches!(e, Event::Left(_)) {
                    &mut lefts
                } else {
                    &mut rights
                };
                for r in rows {
                    if r.ts - 1 <= w {
                        late += 1;
                    } else {
                        into.push((*r, step));
                    }
                }
            }
            Event::Watermark(wm) => {
                w = w.max(*wm);
                watermarks.push((step, *wm));
            }
        }
        let held = |rows: &[(Row, usize)]| {
            rows.iter()
                .filter(|(r, _)| r.k.is_some() && r.ts - 1 > w)
                .count()
        };
        state.push(held(&lefts) + held(&rights));
    }
    let fires = |ts: i64| {
        watermarks
            .iter()
            .find(|&&(_, wm)| wm >= ts - 1)
            .map_or(end, |&(s, _)| s)
    };
    let matches = |a: &Row, b: &Row| {
        a.k.is_some()
            && a.k == b.k
            && (!case.two_keys || a.g == b.g)
            && a.ts == b.ts
            && (!case.residual || b.amt >= a.amt)
    };
    let unmatched_at = |r: &Row, arrival: usize| {
        if r.k.is_none() { arrival } else { fires(r.ts) }
    };
    let mut rows = Vec::new();
    let mut right_matched = vec![false; rights.len()];
    for (a, sa) in &lefts {
        let mut matched = false;
        for (j, (b, _)) in rights.iter().enumerate() {
            if matches(a, b) {
                rows.push((Some(a.id), Some(b.id), fires(a.ts)));
                matched = true;
                right_matched[j] = true;
            }
        }
        if !matched && case.kind.keeps_unmatched_left() {
            rows.push((Some(a.id), None, unmatched_at(a, *sa)));
        }
    }
    if case.kind.keeps_unmatched_right() {
        for ((b, sb), matched) in rights.iter().zip(right_matched) {
            if !matched {
                rows.push((None, Some(b.id), unmatched_at(b, *sb)));
            }
        }
    }
    rows.sort();
    Expected { rows, late, state }
}

/// Runs the join over `events`; with `restore_at`, before that event it takes
/// a snapshot and goes on with a fresh instance restored from it (through
/// Arrow IPC), checking that the instance that took it emits the same rows.
fn check(case: &Case, g: &Gen, seed: u64, restore_at: Option<usize>) {
    check_batches(case, g, seed, restore_at, None);
}

/// [`check`], and at most `max_batches_held` batches held at any time.
fn check_batches(
    case: &Case,
    g: &Gen,
    seed: u64,
    restore_at: Option<usize>,
    max_batches_held: Option<usize>,
) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let (mut events, left, right) = windowed(&mut rng, g, case);
    if case.final_watermark {
        events.push(Event::Watermark(MAX_WATERMARK));
    }
    let left: HashMap<i64, Row> = left.into_iter().map(|r| (r.id, r)).collect();
    let right: HashMap<i64, Row> = right.into_iter().map(|r| (r.id, r)).collect();
    let ctx = format!("{case:?} seed={seed}");
    let expected = oracle(case, &events);
    let join = join(case);
    let (ls, rs) = (schema("l"), schema("r"));
    let metrics = NodeMetrics::default();
    let collect = |messages: Vec<Message>, step: usize, rows: &mut Vec<OutRow>| {
        for m in messages {
            if let Message::Batch(b) = m {
                assert_eq!(b.schema(), join.output_schema());
                rows.extend(
                    decode(&b, &left, &right)
                        .into_iter()
                        .map(|(l, r)| (l, r, step)),
                );
            }
        }
    };
    let feed = |op: &mut WindowJoinOperator, event: &Event, metrics: &NodeMetrics| {
        let mut messages = Vec::new();
        let mut out = Output::new(&mut messages, metrics);
        match event {
            Event::Left(r) => op.on_input_batch(0, batch(&ls, r), &mut out).unwrap(),
            Event::Right(r) => op.on_input_batch(1, batch(&rs, r), &mut out).unwrap(),
            Event::Watermark(w) => op.on_watermark(*w, &mut out).unwrap(),
        }
        messages
    };
    let mut op = join.window_operator().unwrap();
    let mut original: Option<WindowJoinOperator> = None;
    let mut rows = Vec::new();
    let mut state = Vec::new();
    let mut max_batches = 0;
    for (step, event) in events.iter().enumerate() {
        if restore_at == Some(step) {
            let snapshot = op.snapshot().unwrap().unwrap();
            let mut fresh = join.window_operator().unwrap();
            fresh
                .restore(crate::checkpoint::ipc::round_trip(&snapshot))
                .unwrap();
            assert_eq!(fresh.windows(), op.windows(), "{ctx}: restored windows");
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
            assert_eq!(a, b, "{ctx}: event {step}: the restored instance differs");
        }
        collect(messages, step, &mut rows);
        state.push(op.state_rows());
        let (bytes, batches) = op.recounted();
        assert_eq!(
            op.held_bytes(),
            bytes,
            "{ctx}: event {step}: the byte count drifted"
        );
        max_batches = max_batches.max(batches);
    }
    let mut messages = Vec::new();
    op.on_end(&mut Output::new(&mut messages, &metrics))
        .unwrap();
    collect(messages, events.len(), &mut rows);
    rows.sort();
    if rows != expected.rows {
        let missing: Vec<_> = expected.rows.iter().filter(|r| !rows.contains(r)).collect();
        let extra: Vec<_> = rows.iter().filter(|r| !expected.rows.contains(r)).collect();
        panic!(
            "{ctx}: {} rows, expected {}\nmissing {missing:?}\nextra {extra:?}",
            rows.len(),
            expected.rows.len()
        );
    }
    let counts = metrics.snapshot();
    assert_eq!(counts.rows_late, expected.late, "{ctx}");
    assert_eq!(counts.rows_out, expected.rows.len() as u64, "{ctx}");
    assert_eq!(
        state, expected.state,
        "{ctx}: state_rows() after each event"
    );
    assert_eq!(op.state_rows(), 0, "{ctx}");
    assert!(op.windows().is_empty(), "{ctx}: windows left after the end");
    if let Some(limit) = max_batches_held {
        assert!(
            max_batches <= limit,
            "{ctx}: {max_batches} batches held at once (tiny batches are merged)"
        );
    }
    let held = expected.state.iter().any(|&rows| rows > 0);
    let peak = metrics
        .peak_state_bytes
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(peak > 0, held, "{ctx}: peak state {peak} bytes");
}

#[test]
fn matches_the_oracle_on_random_out_of_order_input() {
    let mut seed = 1_000;
    for kind in KINDS {
        for residual in [false, true] {
            for _ in 0..4 {
                seed += 1;
                let case = Case {
                    window_ms: 10,
                    kind,
                    residual,
                    two_keys: seed % 2 == 0,
                    final_watermark: seed % 3 == 0,
                };
                check(&case, &SMALL, seed, None);
            }
        }
    }
}

#[test]
fn a_restored_snapshot_gives_the_uninterrupted_rows() {
    let mut seed = 2_000;
    for kind in KINDS {
        for restore_at in [1, 20, 45] {
            seed += 1;
            let case = Case {
                window_ms: 10,
                kind,
                residual: seed % 2 == 0,
                two_keys: seed % 3 == 0,
                final_watermark: seed % 2 == 1,
            };
            check(&case, &SMALL, seed, Some(restore_at));
        }
    }
}

/// Big batches spanning many windows, few keys (many pairs per key, output
/// split into several batches), and windows where either side is the smaller.
#[test]
fn large_batches_and_hot_keys() {
    let g = Gen {
        rows_per_side: 4_000,
        disorder: 5,
        bound: 5,
        keys: 2,
        max_batch: 2_500,
    };
    for (seed, kind) in KINDS.into_iter().enumerate() {
        let case = Case {
            window_ms: 200,
            kind,
            residual: seed % 2 == 1,
            two_keys: false,
            final_watermark: seed % 2 == 0,
        };
        check(&case, &g, 3_000 + seed as u64, None);
    }
}

/// A slow input: batches of a few rows into long windows. They are merged as
/// they arrive (every 32 batches or 1024 rows), so a window holds a few dozen
/// batches, not one per arrival; results stay exact, also across a restore.
#[test]
fn tiny_batches_are_merged() {
    let g = Gen {
        rows_per_side: 3_000,
        disorder: 20,
        bound: 10,
        keys: 5,
        max_batch: 4,
    };
    for (seed, kind) in KINDS.into_iter().enumerate() {
        let case = Case {
            window_ms: 1_000,
            kind,
            residual: seed % 2 == 0,
            two_keys: false,
            final_watermark: true,
        };
        // Without merging, a window of ~1000 rows per side in batches of at
        // most 4 would hold 500 or more batches.
        check_batches(&case, &g, 4_000 + seed as u64, Some(700), Some(150));
    }
}

/// Two old instances restored into one: the restored watermark is the higher
/// one's, and the windows the lower one still held that it has reached fire
/// at the first watermark after the restore, before that watermark is
/// forwarded (their pairs would otherwise arrive behind it, late downstream).
#[test]
fn a_rescaled_restore_fires_windows_behind_the_restored_watermark() {
    use crate::checkpoint::Rescaled;
    let case = Case {
        window_ms: 10,
        kind: JoinKind::Left,
        residual: false,
        two_keys: false,
        final_watermark: false,
    };
    let join = join(&case);
    let (ls, rs) = (schema("l"), schema("r"));
    let row = |id, ts, k| Row {
        id,
        ts,
        k: Some(k),
        g: "x",
        amt: 1,
    };
    let metrics = NodeMetrics::default();
    let mut sink = Vec::new();
    // Old instance 0 is behind (W = 100) and holds the window ending at 150;
    // old instance 1 is ahead (W = 200) and holds the window ending at 250.
    let mut behind = join.window_operator().unwrap();
    let mut out = Output::new(&mut sink, &metrics);
    behind.on_watermark(100, &mut out).unwrap();
    behind
        .on_input_batch(0, batch(&ls, &[row(1, 150, 7)]), &mut out)
        .unwrap();
    behind
        .on_input_batch(1, batch(&rs, &[row(2, 150, 7)]), &mut out)
        .unwrap();
    let mut ahead = join.window_operator().unwrap();
    ahead.on_watermark(200, &mut out).unwrap();
    ahead
        .on_input_batch(0, batch(&ls, &[row(3, 250, 8)]), &mut out)
        .unwrap();
    let states = vec![
        (0, behind.snapshot().unwrap().unwrap()),
        (1, ahead.snapshot().unwrap().unwrap()),
    ];
    let mut restored = join.window_operator().unwrap();
    restored
        .restore_rescaled(Rescaled {
            old_parallelism: 2,
            new_parallelism: 1,
            instance: 0,
            input_keys: vec![Some(vec![1]), Some(vec![1])],
            states,
        })
        .unwrap();
    assert_eq!(restored.windows(), vec![(149, [1, 1]), (249, [1, 0])]);
    let mut messages = Vec::new();
    restored
        .on_watermark(120, &mut Output::new(&mut messages, &metrics))
        .unwrap();
    let rendered: Vec<String> = messages
        .iter()
        .map(|m| match m {
            Message::Batch(b) => {
                let ids = b
                    .column(3)
                    .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
                let rids = b
                    .column(8)
                    .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
                format!("pair {} {}", ids.value(0), rids.value(0))
            }
            Message::Watermark(w) => format!("W({w})"),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(rendered, vec!["pair 1 2", "W(200)"]);
    assert_eq!(restored.windows(), vec![(249, [1, 0])]);
}
