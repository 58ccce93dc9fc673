//! Test support shared by the window operators' tests: a tiny deterministic
//! random number generator, an input schema `(ts, k, v)` and an aggregate spec
//! over it (COUNT, SUM, MAX, COUNT DISTINCT and a FILTERed COUNT).

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::functions_aggregate::count::count_udaf;
use datafusion::functions_aggregate::min_max::max_udaf;
use datafusion::functions_aggregate::sum::sum_udaf;
use datafusion::logical_expr::{AggregateUDF, Operator as BinaryOp};
use datafusion::physical_expr::aggregate::AggregateExprBuilder;
use datafusion::physical_expr::expressions::{binary, col, lit};

use crate::aggregate::{AggregateCall, AggregateSpec};
use crate::time::event_time_type;

/// A xorshift generator: the same sequence for the same seed.
pub struct Rng(pub u64);

impl Rng {
    /// The next value.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A value in `0..n`.
    pub fn below(&mut self, n: u64) -> i64 {
        (self.next() % n) as i64
    }
}

/// `(ts TIMESTAMP(3), k STRING, v BIGINT)`.
pub fn input_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("ts", event_time_type(), false),
        Field::new("k", DataType::Utf8, true),
        Field::new("v", DataType::Int64, true),
    ]))
}

/// Aggregates over `v`, grouped by `k` when `keyed`.
pub fn spec(keyed: bool) -> AggregateSpec {
    let schema = input_schema();
    let v = col("v", &schema).unwrap();
    let call = |udaf: Arc<AggregateUDF>, name: &str, distinct: bool| {
        Arc::new(
            AggregateExprBuilder::new(udaf, vec![v.clone()])
                .schema(schema.clone())
                .alias(name)
                .with_distinct(distinct)
                .build()
                .unwrap(),
        )
    };
    let over_50 = binary(v.clone(), BinaryOp::Gt, lit(50i64), &schema).unwrap();
    let calls = vec![
        AggregateCall {
            function: call(count_udaf(), "cnt", false),
            filter: None,
        },
        AggregateCall {
            function: call(sum_udaf(), "total", false),
            filter: None,
        },
        AggregateCall {
            function: call(max_udaf(), "biggest", false),
            filter: None,
        },
        AggregateCall {
            function: call(count_udaf(), "distinct_v", true),
            filter: None,
        },
        AggregateCall {
            function: call(count_udaf(), "big", false),
            filter: Some(over_50),
        },
    ];
    let group_exprs = if keyed {
        vec![(col("k", &schema).unwrap(), "k".to_string())]
    } else {
        vec![]
    };
    AggregateSpec::new(group_exprs, calls, &schema, Arc::new(Schema::empty())).unwrap()
}
