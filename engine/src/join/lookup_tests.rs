//! Tests of [`BoundedTableJoin`] against nested loops over all stream and table
//! rows: the streaming join, fed the table in several batches and the stream
//! partly before and partly after the table's end, must give exactly the batch
//! join's rows, and nothing (not even a watermark) before the table has ended.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use datafusion::logical_expr::Operator as BinaryOp;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{binary, col};

use super::{BoundedTableJoin, JoinKind, KeyedInput, TableSide};
use crate::message::Message;
use crate::metrics::NodeMetrics;
use crate::operator::{Operator, OperatorFactory, Output};
use crate::window::test_support::Rng;

/// One row of either input: `k` and `g` are the keys, `v` the amount (stream)
/// or limit (table).
#[derive(Debug, Clone, Copy)]
struct Row {
    id: i64,
    k: Option<i64>,
    g: &'static str,
    v: i64,
}

/// Columns `{p}_k, {p}_g, {p}_id, {p}_v`.
fn schema(prefix: &str) -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(format!("{prefix}_k"), DataType::Int64, true),
        Field::new(format!("{prefix}_g"), DataType::Utf8, false),
        Field::new(format!("{prefix}_id"), DataType::Int64, false),
        Field::new(format!("{prefix}_v"), DataType::Int64, false),
    ]))
}

fn batch(schema: &SchemaRef, rows: &[Row]) -> RecordBatch {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.k))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.g))),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.id))),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.v))),
    ];
    RecordBatch::try_new(schema.clone(), columns).unwrap()
}

#[derive(Debug, Clone, Copy)]
struct Case {
    kind: JoinKind,
    table: TableSide,
    residual: bool,
    two_keys: bool,
}

/// The stream's and the table's schema, in SQL order (left, right).
fn schemas(table: TableSide) -> (SchemaRef, SchemaRef) {
    match table {
        TableSide::Right => (schema("s"), schema("t")),
        TableSide::Left => (schema("t"), schema("s")),
    }
}

/// `s_v > t_v` over the joined schema.
fn residual_expr(left: &SchemaRef, right: &SchemaRef) -> Arc<dyn PhysicalExpr> {
    let joined = Schema::new(
        left.fields()
            .iter()
            .chain(right.fields().iter())
            .cloned()
            .collect::<Vec<_>>(),
    );
    binary(
        col("s_v", &joined).unwrap(),
        BinaryOp::Gt,
        col("t_v", &joined).unwrap(),
        &joined,
    )
    .unwrap()
}

fn join(case: &Case) -> BoundedTableJoin {
    let (left, right) = schemas(case.table);
    let keys = if case.two_keys { vec![0, 1] } else { vec![0] };
    let residual = case.residual.then(|| residual_expr(&left, &right));
    BoundedTableJoin::new(
        KeyedInput::new(left, keys.clone()),
        KeyedInput::new(right, keys),
        case.table,
        case.kind,
        residual,
    )
    .unwrap()
}

#[derive(Debug, Clone)]
enum Event {
    Table(Vec<Row>),
    Stream(Vec<Row>),
    Watermark(i64),
    TableEnd,
    End,
    /// Snapshot, then go on in a fresh operator restored from it (which, as
    /// the runtime does, hears of the table's end again if it had ended).
    Restore,
}

/// What the operator emitted: `(stream id, table id)` per output row (`None`
/// where padded), and the messages in order (`'b'` batch, `'w'` watermark)
/// after each event.
struct Run {
    rows: Vec<(Option<i64>, Option<i64>)>,
    emitted: Vec<Vec<char>>,
    watermarks: Vec<i64>,
}

fn ids(batch: &RecordBatch, column: &str) -> Vec<Option<i64>> {
    let array = batch
        .column_by_name(column)
        .unwrap()
        .as_primitive::<Int64Type>();
    (0..array.len())
        .map(|i| array.is_valid(i).then(|| array.value(i)))
        .collect()
}

fn run(join: &BoundedTableJoin, events: &[Event]) -> Run {
    let side = join.table_side();
    let (stream, table) = (side.stream_input(), side.table_input());
    let (s_schema, t_schema) = match side {
        TableSide::Right => schemas(TableSide::Right),
        TableSide::Left => {
            let (t, s) = schemas(TableSide::Left);
            (s, t)
        }
    };
    let metrics = NodeMetrics::default();
    let mut op = join.operator().unwrap();
    let mut table_ended = false;
    let mut run = Run {
        rows: Vec::new(),
        emitted: Vec::new(),
        watermarks: Vec::new(),
    };
    for event in events {
        let mut messages = Vec::new();
        let mut out = Output::new(&mut messages, &metrics);
        match event {
            Event::Table(rows) => op
                .on_input_batch(table, batch(&t_schema, rows), &mut out)
                .unwrap(),
            Event::Stream(rows) => op
                .on_input_batch(stream, batch(&s_schema, rows), &mut out)
                .unwrap(),
            Event::Watermark(wm) => op.on_watermark(*wm, &mut out).unwrap(),
            Event::TableEnd => {
                table_ended = true;
                op.on_input_end(table, &mut out).unwrap()
            }
            Event::Restore => {
                let state = op.snapshot().unwrap().expect("state");
                op = join.operator().unwrap();
                op.restore(state).unwrap();
                if table_ended {
                    op.on_input_end(table, &mut out).unwrap();
                }
            }
            Event::End => {
                op.on_input_end(stream, &mut out).unwrap();
                op.on_end(&mut out).unwrap();
            }
        }
        let mut kinds = Vec::new();
        for message in messages {
            match message {
                Message::Batch(b) => {
                    assert_eq!(b.schema(), join.output_schema());
                    let s = ids(&b, "s_id");
                    let t = ids(&b, "t_id");
                    run.rows.extend(s.into_iter().zip(t));
                    kinds.push('b');
                }
                Message::Watermark(wm) => {
                    run.watermarks.push(wm);
                    kinds.push('w');
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        run.emitted.push(kinds);
    }
    run.rows.sort();
    run
}

/// Nested loops over every stream row and every table row.
fn oracle(case: &Case, events: &[Event]) -> Vec<(Option<i64>, Option<i64>)> {
    let rows = |table: bool| -> Vec<Row> {
        events
            .iter()
            .flat_map(|e| match (e, table) {
                (Event::Table(rows), true) | (Event::Stream(rows), false) => rows.clone(),
                _ => Vec::new(),
            })
            .collect()
    };
    let (stream, table) = (rows(false), rows(true));
    let mut out = Vec::new();
    for s in &stream {
        let mut matched = false;
        for t in &table {
            let keys_equal = s.k.is_some()
                && s.k == t.k
                && (!case.two_keys || s.g == t.g)
                && (!case.residual || s.v > t.v);
            if keys_equal {
                matched = true;
                out.push((Some(s.id), Some(t.id)));
            }
        }
        if !matched && case.kind != JoinKind::Inner {
            out.push((Some(s.id), None));
        }
    }
    out.sort();
    out
}

fn random_rows(rng: &mut Rng, next_id: &mut i64, n: usize) -> Vec<Row> {
    (0..n)
        .map(|_| {
            *next_id += 1;
            Row {
                id: *next_id,
                k: (rng.below(10) != 0).then(|| rng.below(8)),
                g: ["a", "b"][rng.below(2) as usize],
                v: rng.below(100),
            }
        })
        .collect()
}

/// Table in three batches (with a repeated key), the stream in six, two of
/// them before the table ends, watermarks in between.
fn random_events(seed: u64) -> Vec<Event> {
    let mut rng = Rng(seed);
    let mut id = 0;
    let mut events = Vec::new();
    for step in 0..3 {
        events.push(Event::Table(random_rows(&mut rng, &mut id, 12)));
        if step < 2 {
            events.push(Event::Stream(random_rows(&mut rng, &mut id, 30)));
            events.push(Event::Watermark(1_000 * (step + 1)));
        }
    }
    events.push(Event::TableEnd);
    for step in 0..4 {
        events.push(Event::Stream(random_rows(&mut rng, &mut id, 30)));
        events.push(Event::Watermark(10_000 + step));
    }
    events.push(Event::End);
    events
}

fn check(case: Case) {
    for seed in [7, 99, 12345] {
        let events = random_events(seed);
        let expected = oracle(&case, &events);
        assert!(
            expected.iter().any(|(_, t)| t.is_some()),
            "{case:?}: the data has no matches"
        );
        let run = run(&join(&case), &events);
        assert_eq!(run.rows, expected, "{case:?} seed {seed}");
    }
}

#[test]
fn inner_join_matches_nested_loops() {
    check(Case {
        kind: JoinKind::Inner,
        table: TableSide::Right,
        residual: false,
        two_keys: false,
    });
}

#[test]
fn inner_join_with_two_keys_and_residual_matches_nested_loops() {
    check(Case {
        kind: JoinKind::Inner,
        table: TableSide::Right,
        residual: true,
        two_keys: true,
    });
}

#[test]
fn left_join_pads_stream_rows_whose_matches_all_fail_the_residual() {
    let case = Case {
        kind: JoinKind::Left,
        table: TableSide::Right,
        residual: true,
        two_keys: false,
    };
    check(case);
    // A stream row with matching keys but no table row below its amount is
    // emitted once, padded.
    let s = |id, v| Row {
        id,
        k: Some(1),
        g: "a",
        v,
    };
    let events = vec![
        Event::Table(vec![s(100, 50), s(101, 60)]),
        Event::TableEnd,
        Event::Stream(vec![s(1, 10), s(2, 55), s(3, 70)]),
        Event::End,
    ];
    let rows = run(&join(&case), &events).rows;
    assert_eq!(
        rows,
        vec![
            (Some(1), None),
            (Some(2), Some(100)),
            (Some(3), Some(100)),
            (Some(3), Some(101))
        ]
    );
    assert_eq!(rows, oracle(&case, &events));
}

#[test]
fn table_on_the_left_mirrors_the_columns() {
    check(Case {
        kind: JoinKind::Right,
        table: TableSide::Left,
        residual: true,
        two_keys: false,
    });
    check(Case {
        kind: JoinKind::Inner,
        table: TableSide::Left,
        residual: false,
        two_keys: true,
    });
}

#[test]
fn null_keys_never_match() {
    let row = |id, k| Row {
        id,
        k,
        g: "a",
        v: 0,
    };
    let events = vec![
        Event::Table(vec![row(100, None), row(101, Some(1))]),
        Event::TableEnd,
        Event::Stream(vec![row(1, None), row(2, Some(1)), row(3, Some(2))]),
        Event::End,
    ];
    for kind in [JoinKind::Inner, JoinKind::Left] {
        let case = Case {
            kind,
            table: TableSide::Right,
            residual: false,
            two_keys: false,
        };
        let rows = run(&join(&case), &events).rows;
        assert_eq!(rows, oracle(&case, &events), "{kind}");
        assert!(rows.contains(&(Some(2), Some(101))), "{kind}");
        assert!(!rows.contains(&(Some(1), Some(100))), "{kind}: NULL = NULL");
        assert_eq!(
            rows.contains(&(Some(1), None)),
            kind == JoinKind::Left,
            "{kind}"
        );
    }
}

#[test]
fn stream_rows_and_watermarks_wait_for_the_table() {
    let case = Case {
        kind: JoinKind::Left,
        table: TableSide::Right,
        residual: false,
        two_keys: false,
    };
    let events = random_events(3);
    let run = run(&join(&case), &events);
    let table_end = events
        .iter()
        .position(|e| matches!(e, Event::TableEnd))
        .unwrap();
    // Nothing before the table has ended: every stream row (even a LEFT join's
    // unmatched ones) and every watermark waits.
    for kinds in &run.emitted[..table_end] {
        assert!(kinds.is_empty(), "{:?}", run.emitted);
    }
    // At its end: the waiting rows, then the latest held watermark.
    assert_eq!(run.emitted[table_end].last(), Some(&'w'));
    assert!(
        run.emitted[table_end][..run.emitted[table_end].len() - 1]
            .iter()
            .all(|&k| k == 'b')
    );
    assert!(run.emitted[table_end].contains(&'b'));
    assert_eq!(run.watermarks, vec![2_000, 10_000, 10_001, 10_002, 10_003]);
    // Afterwards each stream batch is joined as it arrives.
    for (event, kinds) in events.iter().zip(&run.emitted).skip(table_end + 1) {
        match event {
            Event::Stream(_) => assert!(!kinds.is_empty() && kinds.iter().all(|&k| k == 'b')),
            Event::Watermark(_) => assert_eq!(kinds, &vec!['w']),
            _ => {}
        }
    }
}

#[test]
fn stream_ending_before_the_table_is_joined_at_the_end() {
    let case = Case {
        kind: JoinKind::Inner,
        table: TableSide::Right,
        residual: false,
        two_keys: false,
    };
    let mut events = random_events(5);
    // Move the table's end behind every stream row.
    events.retain(|e| !matches!(e, Event::TableEnd));
    let rows = run(&join(&case), &events).rows;
    assert_eq!(rows, oracle(&case, &events));
}

#[test]
fn refuses_joins_that_keep_unmatched_table_rows() {
    let make = |kind, table| {
        let (left, right) = schemas(table);
        BoundedTableJoin::new(
            KeyedInput::new(left, vec![0]),
            KeyedInput::new(right, vec![0]),
            table,
            kind,
            None,
        )
    };
    for (kind, table) in [
        (JoinKind::Full, TableSide::Right),
        (JoinKind::Full, TableSide::Left),
        (JoinKind::Left, TableSide::Left),
        (JoinKind::Right, TableSide::Right),
    ] {
        let err = make(kind, table).expect_err("refused").to_string();
        assert!(err.contains("table"), "{err}");
    }
    assert!(make(JoinKind::Left, TableSide::Right).is_ok());
    assert!(make(JoinKind::Right, TableSide::Left).is_ok());
}

#[test]
fn explains_the_table_side_and_keys() {
    let join = join(&Case {
        kind: JoinKind::Left,
        table: TableSide::Right,
        residual: true,
        two_keys: false,
    });
    let text = join.explain().join("\n");
    assert!(text.contains("left.s_k = right.t_k"), "{text}");
    assert!(text.contains("the right input"), "{text}");
    assert!(text.contains("residual"), "{text}");
    assert_eq!(join.name(), "BoundedTableJoin");
}

#[test]
fn reports_state_size() {
    let case = Case {
        kind: JoinKind::Inner,
        table: TableSide::Right,
        residual: false,
        two_keys: false,
    };
    let join = join(&case);
    let metrics = NodeMetrics::default();
    let mut op = join.operator().unwrap();
    let mut messages = Vec::new();
    let mut out = Output::new(&mut messages, &metrics);
    let mut rng = Rng(11);
    let mut id = 0;
    op.on_input_batch(
        1,
        batch(&schema("t"), &random_rows(&mut rng, &mut id, 50)),
        &mut out,
    )
    .unwrap();
    op.on_input_end(1, &mut out).unwrap();
    assert!(op.table_loaded());
    assert_eq!(op.state_rows(), 50);
    let snapshot = metrics.snapshot();
    let peak = metrics
        .peak_state_bytes
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(peak > 0, "{snapshot:?}");
}

/// A restore at any point (before, while and after the table loads, with
/// stream rows and a watermark waiting) gives the uninterrupted rows.
#[test]
fn a_restore_at_any_point_gives_the_uninterrupted_rows() {
    let case = Case {
        kind: JoinKind::Left,
        table: TableSide::Right,
        residual: true,
        two_keys: false,
    };
    let events = random_events(7);
    let expected = oracle(&case, &events);
    for at in 0..events.len() {
        let mut restored = events.clone();
        restored.insert(at, Event::Restore);
        let run = run(&join(&case), &restored);
        assert_eq!(run.rows, expected, "restore before event {at}");
    }
}

/// Two instances checkpointed with stream rows waiting for the table, restored
/// into one: it takes the table once and both instances' waiting rows.
#[test]
fn a_restore_at_another_parallelism_keeps_every_waiting_row_once() {
    use crate::checkpoint::Rescaled;
    let case = Case {
        kind: JoinKind::Inner,
        table: TableSide::Right,
        residual: false,
        two_keys: false,
    };
    let join = join(&case);
    let (s_schema, t_schema) = schemas(TableSide::Right);
    let mut rng = Rng(3);
    let mut id = 0;
    let table_rows = random_rows(&mut rng, &mut id, 20);
    let waiting = [
        random_rows(&mut rng, &mut id, 25),
        random_rows(&mut rng, &mut id, 25),
    ];
    let later = random_rows(&mut rng, &mut id, 25);
    let metrics = NodeMetrics::default();
    let mut states = Vec::new();
    for (instance, rows) in waiting.iter().enumerate() {
        let mut op = join.operator().unwrap();
        let mut messages = Vec::new();
        let mut out = Output::new(&mut messages, &metrics);
        op.on_input_batch(1, batch(&t_schema, &table_rows), &mut out)
            .unwrap();
        op.on_input_batch(0, batch(&s_schema, rows), &mut out)
            .unwrap();
        assert!(messages.is_empty(), "nothing before the table ends");
        states.push((instance, op.snapshot().unwrap().unwrap()));
    }
    let mut op = join.operator().unwrap();
    op.restore_rescaled(Rescaled {
        old_parallelism: 2,
        new_parallelism: 1,
        instance: 0,
        input_keys: vec![None, None],
        states,
    })
    .unwrap();
    let mut messages = Vec::new();
    let mut out = Output::new(&mut messages, &metrics);
    op.on_input_end(1, &mut out).unwrap();
    op.on_input_batch(0, batch(&s_schema, &later), &mut out)
        .unwrap();
    op.on_end(&mut out).unwrap();
    let mut got: Vec<(Option<i64>, Option<i64>)> = messages
        .iter()
        .filter_map(|m| match m {
            Message::Batch(b) => Some(ids(b, "s_id").into_iter().zip(ids(b, "t_id"))),
            _ => None,
        })
        .flatten()
        .collect();
    got.sort();
    let events = [
        Event::Table(table_rows),
        Event::Stream(waiting[0].clone()),
        Event::Stream(waiting[1].clone()),
        Event::Stream(later),
    ];
    assert_eq!(got, oracle(&case, &events));
}
