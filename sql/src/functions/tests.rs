//! SQL-level tests of the Flink aggregates, run through a DataFusion
//! `SessionContext` over `MemTable`s.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Decimal128Array, Float64Array, Int32Array, Int64Array, RecordBatch,
    StringArray,
};
use datafusion::arrow::datatypes::{
    DataType, Decimal128Type, Field, Float64Type, Int8Type, Int32Type, Int64Type, Schema,
};
use datafusion::common::Result;
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};

use super::register_flink_aggregates;

/// Drives `future` to completion on the current thread.
///
/// The crate has no async runtime dependency; single-partition plans run without
/// one (only plans with several partitions spawn tokio tasks).
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(output) => return output,
            Poll::Pending => thread::park(),
        }
    }
}

/// A single-partition context without the Flink aggregates.
fn builtin_ctx() -> SessionContext {
    SessionContext::new_with_config(SessionConfig::new().with_target_partitions(1))
}

/// A single-partition context with the Flink aggregates.
fn flink_ctx() -> SessionContext {
    let ctx = builtin_ctx();
    register_flink_aggregates(&ctx);
    ctx
}

/// `DECIMAL(18, 2)` values given in hundredths.
fn dec(values: &[Option<i128>]) -> ArrayRef {
    Arc::new(
        Decimal128Array::from(values.to_vec())
            .with_precision_and_scale(18, 2)
            .expect("valid decimal type"),
    )
}

/// A row of `t`: `(k, d in hundredths, b)`; `f` is `b` as a DOUBLE.
type Row = (&'static str, Option<i128>, Option<i64>);

/// Registers table `t(k VARCHAR, d DECIMAL(18, 2), b BIGINT, f DOUBLE)`: one
/// partition, one batch per element of `batches`.
fn register_t(ctx: &SessionContext, batches: Vec<Vec<Row>>) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Utf8, true),
        Field::new("d", DataType::Decimal128(18, 2), true),
        Field::new("b", DataType::Int64, true),
        Field::new("f", DataType::Float64, true),
    ]));
    let batches = batches
        .into_iter()
        .map(|rows| {
            let keys: Vec<&str> = rows.iter().map(|r| r.0).collect();
            let decimals: Vec<Option<i128>> = rows.iter().map(|r| r.1).collect();
            let bigints: Vec<Option<i64>> = rows.iter().map(|r| r.2).collect();
            let doubles: Vec<Option<f64>> = rows.iter().map(|r| r.2.map(|b| b as f64)).collect();
            let columns: Vec<ArrayRef> = vec![
                Arc::new(StringArray::from(keys)),
                dec(&decimals),
                Arc::new(Int64Array::from(bigints)),
                Arc::new(Float64Array::from(doubles)),
            ];
            RecordBatch::try_new(Arc::clone(&schema), columns).expect("valid batch")
        })
        .collect();
    let table = MemTable::try_new(schema, vec![batches]).expect("valid table");
    ctx.register_table("t", Arc::new(table))
        .expect("table registers");
}

/// Runs `sql` and returns the single result batch (concatenated) with its schema.
async fn query(ctx: &SessionContext, sql: &str) -> Result<RecordBatch> {
    let df = ctx.sql(sql).await?;
    let schema = Arc::new(df.schema().as_arrow().clone());
    let batches = df.collect().await?;
    Ok(datafusion::arrow::compute::concat_batches(
        &schema, &batches,
    )?)
}

fn decimals(batch: &RecordBatch, column: usize) -> Vec<Option<i128>> {
    batch
        .column(column)
        .as_primitive::<Decimal128Type>()
        .iter()
        .collect()
}

fn bigints(batch: &RecordBatch, column: usize) -> Vec<Option<i64>> {
    batch
        .column(column)
        .as_primitive::<Int64Type>()
        .iter()
        .collect()
}

#[test]
fn result_types_follow_flink() -> Result<()> {
    block_on(async {
        let ctx = flink_ctx();
        register_t(&ctx, vec![vec![("a", Some(1), Some(1))]]);
        let batch = query(
            &ctx,
            "SELECT SUM(d), AVG(d), AVG(b), SUM(b), AVG(f), SUM(f) FROM t",
        )
        .await?;
        let types: Vec<DataType> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        assert_eq!(
            types,
            vec![
                DataType::Decimal128(38, 2),
                DataType::Decimal128(38, 6),
                DataType::Int64,
                DataType::Int64,
                DataType::Float64,
                DataType::Float64,
            ]
        );
        Ok(())
    })
}

#[test]
fn smaller_integer_types_keep_their_type() -> Result<()> {
    block_on(async {
        let ctx = flink_ctx();
        let schema = Arc::new(Schema::new(vec![Field::new("i", DataType::Int32, true)]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(Int32Array::from(vec![Some(-1), Some(-2), None]))],
        )?;
        ctx.register_table(
            "ints",
            Arc::new(MemTable::try_new(schema, vec![vec![batch]])?),
        )?;
        let batch = query(
            &ctx,
            "SELECT AVG(i), AVG(t) FROM (SELECT i, CAST(i AS TINYINT) AS t FROM ints)",
        )
        .await?;
        assert_eq!(batch.column(0).data_type(), &DataType::Int32);
        assert_eq!(batch.column(1).data_type(), &DataType::Int8);
        // -3 / 2 truncates toward zero.
        assert_eq!(batch.column(0).as_primitive::<Int32Type>().value(0), -1);
        assert_eq!(batch.column(1).as_primitive::<Int8Type>().value(0), -1);
        Ok(())
    })
}

#[test]
fn avg_decimal_rounds_half_up() -> Result<()> {
    block_on(async {
        // Two batches: the accumulators are updated twice.
        let ctx = flink_ctx();
        register_t(
            &ctx,
            vec![
                vec![("p", Some(1), Some(1)), ("n", Some(-1), Some(-1))],
                vec![
                    ("p", Some(2), Some(2)),
                    ("p", Some(2), Some(2)),
                    ("n", Some(-2), Some(-2)),
                    ("n", Some(-2), Some(-2)),
                ],
            ],
        );
        // No GROUP BY: row accumulators.
        let batch = query(
            &ctx,
            "SELECT AVG(d) FILTER (WHERE k = 'p'), AVG(d) FILTER (WHERE k = 'n') FROM t",
        )
        .await?;
        assert_eq!(decimals(&batch, 0), vec![Some(16_667)]);
        assert_eq!(decimals(&batch, 1), vec![Some(-16_667)]);

        // GROUP BY: groups accumulators.
        let batch = query(&ctx, "SELECT k, AVG(d) FROM t GROUP BY k ORDER BY k").await?;
        assert_eq!(decimals(&batch, 1), vec![Some(-16_667), Some(16_667)]);
        Ok(())
    })
}

#[test]
fn avg_group_by_with_all_null_group() -> Result<()> {
    block_on(async {
        {
            let ctx = flink_ctx();
            register_t(
                &ctx,
                vec![
                    vec![
                        ("a", Some(100), Some(1)),
                        ("b", None, None),
                        ("c", Some(5), Some(7)),
                    ],
                    vec![
                        ("a", Some(201), Some(2)),
                        ("b", None, None),
                        ("c", None, None),
                        ("d", Some(-3), Some(-3)),
                    ],
                ],
            );
            let batch = query(
                &ctx,
                "SELECT k, AVG(d), AVG(b), AVG(d) FILTER (WHERE b > 1), AVG(f) \
                 FROM t GROUP BY k ORDER BY k",
            )
            .await?;
            assert_eq!(
                decimals(&batch, 1),
                vec![Some(1_505_000), None, Some(50_000), Some(-30_000)]
            );
            assert_eq!(bigints(&batch, 2), vec![Some(1), None, Some(7), Some(-3)]);
            // FILTER: "a" keeps 2.01 only; "d" keeps nothing.
            assert_eq!(
                decimals(&batch, 3),
                vec![Some(2_010_000), None, Some(50_000), None]
            );
            let doubles: Vec<Option<f64>> = batch
                .column(4)
                .as_primitive::<Float64Type>()
                .iter()
                .collect();
            assert_eq!(doubles, vec![Some(1.5), None, Some(7.0), Some(-3.0)]);
        }
        Ok(())
    })
}

#[test]
fn avg_bigint_truncates() -> Result<()> {
    block_on(async {
        let ctx = flink_ctx();
        register_t(&ctx, vec![vec![("a", None, Some(1)), ("a", None, Some(2))]]);
        let batch = query(&ctx, "SELECT AVG(b), AVG(-b) FROM t").await?;
        assert_eq!(batch.column(0).data_type(), &DataType::Int64);
        assert_eq!(bigints(&batch, 0), vec![Some(1)]);
        assert_eq!(bigints(&batch, 1), vec![Some(-1)]);
        Ok(())
    })
}

#[test]
fn avg_of_no_rows_is_null() -> Result<()> {
    block_on(async {
        let ctx = flink_ctx();
        register_t(&ctx, vec![vec![("a", Some(1), Some(1))]]);
        let batch = query(&ctx, "SELECT AVG(d), AVG(b) FROM t WHERE k = 'none'").await?;
        assert_eq!(decimals(&batch, 0), vec![None]);
        assert_eq!(bigints(&batch, 1), vec![None]);
        Ok(())
    })
}

#[test]
fn avg_distinct() -> Result<()> {
    block_on(async {
        let ctx = flink_ctx();
        register_t(
            &ctx,
            vec![
                vec![("a", Some(1), Some(1)), ("a", Some(2), Some(2))],
                vec![
                    ("a", Some(2), Some(2)),
                    ("b", Some(4), Some(4)),
                    ("b", None, None),
                ],
            ],
        );
        // 0.01, 0.02, 0.04 -> 0.023333; 1, 2, 4 -> 2
        let batch = query(&ctx, "SELECT AVG(DISTINCT d), AVG(DISTINCT b) FROM t").await?;
        assert_eq!(batch.column(0).data_type(), &DataType::Decimal128(38, 6));
        assert_eq!(decimals(&batch, 0), vec![Some(23_333)]);
        assert_eq!(bigints(&batch, 1), vec![Some(2)]);

        // A single DISTINCT aggregate: DataFusion rewrites it to a GROUP BY d and
        // a plain AVG over the groups.
        let batch = query(&ctx, "SELECT AVG(DISTINCT d) FROM t").await?;
        assert_eq!(decimals(&batch, 0), vec![Some(23_333)]);

        // With another distinct aggregate DataFusion cannot rewrite to GROUP BY.
        let batch = query(
            &ctx,
            "SELECT k, AVG(DISTINCT d), COUNT(DISTINCT b) FROM t GROUP BY k ORDER BY k",
        )
        .await?;
        assert_eq!(decimals(&batch, 1), vec![Some(15_000), Some(40_000)]);
        Ok(())
    })
}

#[test]
fn avg_over_sliding_window() -> Result<()> {
    block_on(async {
        let ctx = flink_ctx();
        register_t(
            &ctx,
            vec![vec![
                ("1", Some(1), Some(1)),
                ("2", Some(2), Some(2)),
                ("3", Some(2), Some(2)),
                ("4", Some(5), Some(5)),
            ]],
        );
        let batch = query(
            &ctx,
            "SELECT AVG(d) OVER (ORDER BY k ROWS BETWEEN 2 PRECEDING AND CURRENT ROW), \
                    AVG(b) OVER (ORDER BY k ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) \
             FROM t ORDER BY k",
        )
        .await?;
        assert_eq!(
            decimals(&batch, 0),
            vec![Some(10_000), Some(15_000), Some(16_667), Some(30_000)]
        );
        assert_eq!(bigints(&batch, 1), vec![Some(1), Some(1), Some(2), Some(3)]);
        Ok(())
    })
}

#[test]
fn avg_decimal_overflow_is_an_error() -> Result<()> {
    block_on(async {
        let ctx = flink_ctx();
        let schema = Arc::new(Schema::new(vec![Field::new(
            "x",
            DataType::Decimal128(38, 0),
            true,
        )]));
        let big = 10_i128.pow(37);
        let values =
            Decimal128Array::from(vec![Some(big), Some(big)]).with_precision_and_scale(38, 0)?;
        let batch = RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(values)])?;
        ctx.register_table(
            "big",
            Arc::new(MemTable::try_new(schema, vec![vec![batch]])?),
        )?;
        let err = query(&ctx, "SELECT AVG(x) FROM big")
            .await
            .expect_err("rescaling 2e37 by 10^6 overflows");
        assert!(err.to_string().contains("overflow"), "{err}");
        Ok(())
    })
}

#[test]
fn sum_with_filter() -> Result<()> {
    block_on(async {
        let ctx = flink_ctx();
        register_t(
            &ctx,
            vec![
                vec![("a", Some(150), Some(1)), ("b", Some(-25), Some(2))],
                vec![
                    ("a", Some(250), Some(3)),
                    ("b", None, Some(4)),
                    ("c", Some(1), Some(5)),
                ],
            ],
        );
        let batch = query(
            &ctx,
            "SELECT SUM(d) FILTER (WHERE b >= 2), SUM(b) FILTER (WHERE k <> 'a') FROM t",
        )
        .await?;
        assert_eq!(batch.column(0).data_type(), &DataType::Decimal128(38, 2));
        assert_eq!(decimals(&batch, 0), vec![Some(226)]);
        assert_eq!(bigints(&batch, 1), vec![Some(11)]);

        let batch = query(
            &ctx,
            "SELECT k, SUM(d) FILTER (WHERE b >= 2) FROM t GROUP BY k ORDER BY k",
        )
        .await?;
        assert_eq!(decimals(&batch, 1), vec![Some(250), Some(-25), Some(1)]);
        Ok(())
    })
}

#[test]
fn sum_matches_datafusion_values() -> Result<()> {
    block_on(async {
        let data = || {
            vec![
                vec![
                    ("a", Some(150), Some(1)),
                    ("b", Some(-25), Some(2)),
                    ("b", None, None),
                ],
                vec![
                    ("a", Some(250), Some(3)),
                    ("b", Some(7), Some(4)),
                    ("c", Some(1), Some(5)),
                    ("d", None, None),
                ],
            ]
        };
        let flink = flink_ctx();
        register_t(&flink, data());
        let builtin = builtin_ctx();
        register_t(&builtin, data());

        for sql in [
            "SELECT SUM(d), SUM(b), SUM(f) FROM t",
            "SELECT SUM(d), SUM(b), SUM(f) FROM t GROUP BY k ORDER BY k",
            "SELECT SUM(DISTINCT d), SUM(DISTINCT b), SUM(DISTINCT f) FROM t GROUP BY k ORDER BY k",
            "SELECT SUM(d) OVER (ORDER BY b ROWS BETWEEN 1 PRECEDING AND CURRENT ROW), \
                    SUM(b) OVER (ORDER BY b ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) \
             FROM t ORDER BY b",
        ] {
            let ours = query(&flink, sql)
                .await
                .map_err(|e| e.context(format!("flink: {sql}")))?;
            let theirs = query(&builtin, sql)
                .await
                .map_err(|e| e.context(format!("builtin: {sql}")))?;
            assert_eq!(ours.num_columns(), theirs.num_columns(), "{sql}");
            for column in 0..ours.num_columns() {
                let (a, b) = (ours.column(column), theirs.column(column));
                match (a.data_type(), b.data_type()) {
                    (DataType::Decimal128(38, s), DataType::Decimal128(_, t)) if s == t => {
                        assert_eq!(decimals(&ours, column), decimals(&theirs, column), "{sql}");
                    }
                    (DataType::Decimal128(p, s), _) => {
                        panic!("{sql}: column {column} is Decimal128({p}, {s})")
                    }
                    (x, y) => {
                        assert_eq!(x, y, "{sql}");
                        assert_eq!(a.to_data(), b.to_data(), "{sql}");
                    }
                }
            }
        }
        Ok(())
    })
}

/// DataFusion's `SUM` rewrites `SUM(x + 1), SUM(x + 2)` to `SUM(x) + 1 * COUNT(x),
/// ...`, which changes the decimal result type and, with a DECIMAL literal such as
/// `0.5`, fails the query (`COUNT` is cast to `DECIMAL(1, 1)`). Flink's `SUM` does
/// not take part in that rewrite.
#[test]
fn sum_of_linear_expressions() -> Result<()> {
    block_on(async {
        let ctx = flink_ctx();
        register_t(
            &ctx,
            vec![
                vec![("a", Some(150), Some(1)), ("b", Some(-25), Some(2))],
                vec![
                    ("a", Some(250), Some(3)),
                    ("b", None, None),
                    ("c", Some(8), Some(9)),
                ],
            ],
        );
        let batch = query(
            &ctx,
            "SELECT SUM(d + 1), SUM(d + 2), SUM(b + 1), SUM(b + 2) FROM t",
        )
        .await?;
        assert_eq!(batch.column(0).data_type(), &DataType::Decimal128(38, 2));
        // sum(d) = 3.83 over 4 values
        assert_eq!(decimals(&batch, 0), vec![Some(783)]);
        assert_eq!(decimals(&batch, 1), vec![Some(1_183)]);
        // sum(b) = 15 over 4 values
        assert_eq!(bigints(&batch, 2), vec![Some(19)]);
        assert_eq!(bigints(&batch, 3), vec![Some(23)]);

        // As in Flink, `0.5` is a DECIMAL literal.
        ctx.sql("SET datafusion.sql_parser.parse_float_as_decimal = true")
            .await?;
        let batch = query(&ctx, "SELECT SUM(d + 0.5), SUM(d - 1.5) FROM t").await?;
        assert_eq!(batch.column(0).data_type(), &DataType::Decimal128(38, 2));
        assert_eq!(decimals(&batch, 0), vec![Some(583)]);
        assert_eq!(decimals(&batch, 1), vec![Some(-217)]);
        Ok(())
    })
}
