//! Flink's `AVG`.
//!
//! Flink's `AVG` differs from DataFusion's on exact numeric inputs:
//!
//! | input                 | Flink result                 | DataFusion result            |
//! |-----------------------|------------------------------|------------------------------|
//! | `DECIMAL(p, s)`       | `DECIMAL(38, max(s, 6))`, rounded HALF_UP | `Decimal128(p + 4, s + 4)`, truncated |
//! | `TINYINT`..`BIGINT`   | the input type, truncating division | `DOUBLE`              |
//! | `FLOAT`, `DOUBLE`     | `DOUBLE`                     | `DOUBLE`                     |
//!
//! [`FlinkAvg`] implements the exact cases itself and delegates floating point (and
//! `INTERVAL`/duration) inputs to DataFusion's [`Avg`].
//!
//! For the exact cases the running sum is an `i128` and the count a `u64`; the
//! intermediate state is `[sum: Decimal128(38, s), count: UInt64]` (scale 0 for
//! integer inputs). A decimal average is `round_half_up(sum * 10^(t - s) / count)`
//! where `t = max(s, 6)` is the result scale, computed in `i128`; overflow is an
//! error rather than a wrapped value. An integer average truncates toward zero, as
//! Java's `/` does.
//!
//! `AVG(DISTINCT x)` on exact inputs is supported by a row accumulator that keeps
//! the distinct values (state: a list of them).

use std::collections::HashSet;
use std::fmt::Debug;
use std::hash::Hash;
use std::marker::PhantomData;
use std::mem::{size_of, size_of_val};
use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{
    Array, ArrayRef, ArrowPrimitiveType, AsArray, BooleanArray, Decimal128Array, ListArray,
    PrimitiveArray, UInt64Array,
};
use datafusion::arrow::buffer::{BooleanBuffer, NullBuffer, OffsetBuffer};
use datafusion::arrow::datatypes::{
    ArrowNativeType, DECIMAL128_MAX_PRECISION, DECIMAL128_MAX_SCALE, DataType, Decimal128Type,
    Field, FieldRef, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type, UInt32Type,
    UInt64Type,
};
use datafusion::common::{
    Result, ScalarValue, exec_datafusion_err, exec_err, internal_datafusion_err, internal_err,
    plan_err,
};
use datafusion::functions_aggregate::average::Avg;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::{AggregateOrderSensitivity, format_state_name};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, EmitTo, GroupsAccumulator, ReversedUDAF,
    Signature, Volatility, aggregate_doc_sections,
};
use datafusion::physical_expr::NullState;

/// The smallest scale Flink gives `AVG(DECIMAL)`: the result scale is
/// `max(input scale, 6)`.
const MIN_AVG_DECIMAL_SCALE: i8 = 6;

/// `10^38`: the smallest magnitude a `DECIMAL(38, _)` cannot hold.
const DECIMAL128_LIMIT: u128 = 100_000_000_000_000_000_000_000_000_000_000_000_000;

/// Flink-compatible `AVG` aggregate (also answers to `mean`).
///
/// - `AVG(DECIMAL(p, s))` is `DECIMAL(38, max(s, 6))`, rounded HALF_UP (half away
///   from zero).
/// - `AVG` of `TINYINT`, `SMALLINT`, `INT`, `BIGINT` (and unsigned integers) has the
///   input's type; the division truncates toward zero (`AVG` of 1, 2 is 1).
/// - `AVG` of `FLOAT`/`DOUBLE` is `DOUBLE` (DataFusion's implementation).
///
/// Register it under the name `avg` (see [`super::register_flink_aggregates`]) to
/// replace DataFusion's built-in `AVG`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct FlinkAvg {
    /// Accepts any single argument; [`AggregateUDFImpl::coerce_types`] decides.
    signature: Signature,
    /// `mean`, so that DataFusion's alias does not keep DataFusion's semantics.
    aliases: Vec<String>,
    /// DataFusion's `AVG`, used for floating point and duration inputs.
    inner: Avg,
}

impl FlinkAvg {
    /// Creates the Flink `AVG` aggregate.
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
            aliases: vec![String::from("mean")],
            inner: Avg::new(),
        }
    }
}

impl Default for FlinkAvg {
    fn default() -> Self {
        Self::new()
    }
}

/// Documentation shown for `AVG`.
static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        aggregate_doc_sections::DOC_SECTION_GENERAL,
        "Returns the average of the non-NULL values, or NULL if there are none. Follows \
         Flink: AVG(DECIMAL(p, s)) is DECIMAL(38, max(s, 6)) rounded half up; AVG of an \
         integer type has that type and truncates; AVG of FLOAT/DOUBLE is DOUBLE.",
        "avg(expression)",
    )
    .with_standard_argument("expression", None)
    .build()
});

/// How `AVG` handles an (already coerced) input type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InputClass {
    /// `Decimal128(_, scale)`: exact, Flink rounding.
    Decimal { scale: i8 },
    /// A signed or unsigned integer type: exact, truncating division.
    Integer,
    /// Floating point, duration: DataFusion's `AVG`.
    Delegate,
}

fn classify(data_type: &DataType) -> InputClass {
    match data_type {
        DataType::Decimal128(_, scale) => InputClass::Decimal { scale: *scale },
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => InputClass::Integer,
        _ => InputClass::Delegate,
    }
}

/// The Flink result scale of `AVG` over a decimal of scale `scale`.
fn avg_result_scale(scale: i8) -> i8 {
    scale.clamp(MIN_AVG_DECIMAL_SCALE, DECIMAL128_MAX_SCALE)
}

/// The type of the intermediate sum for an exact input.
fn sum_state_type(class: InputClass) -> DataType {
    match class {
        InputClass::Decimal { scale } => DataType::Decimal128(DECIMAL128_MAX_PRECISION, scale),
        InputClass::Integer | InputClass::Delegate => {
            DataType::Decimal128(DECIMAL128_MAX_PRECISION, 0)
        }
    }
}

/// Calls `$func::<ArrowType>($args)` for the primitive Arrow type of an exact input.
macro_rules! dispatch_exact {
    ($data_type:expr, $func:ident, $($arg:expr),* $(,)?) => {
        match $data_type {
            DataType::Decimal128(..) => $func::<Decimal128Type>($($arg),*),
            DataType::Int8 => $func::<Int8Type>($($arg),*),
            DataType::Int16 => $func::<Int16Type>($($arg),*),
            DataType::Int32 => $func::<Int32Type>($($arg),*),
            DataType::Int64 => $func::<Int64Type>($($arg),*),
            DataType::UInt8 => $func::<UInt8Type>($($arg),*),
            DataType::UInt16 => $func::<UInt16Type>($($arg),*),
            DataType::UInt32 => $func::<UInt32Type>($($arg),*),
            DataType::UInt64 => $func::<UInt64Type>($($arg),*),
            other => internal_err!("AVG has no exact accumulator for {other}"),
        }
    };
}

impl AggregateUDFImpl for FlinkAvg {
    fn name(&self) -> &str {
        "avg"
    }

    fn aliases(&self) -> &[String] {
        &self.aliases
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let [arg] = arg_types else {
            return plan_err!("AVG takes one argument, got {}", arg_types.len());
        };
        let coerced = match arg {
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Float64
            | DataType::Decimal128(..)
            | DataType::Duration(_) => arg.clone(),
            DataType::Decimal32(precision, scale) | DataType::Decimal64(precision, scale) => {
                DataType::Decimal128(*precision, *scale)
            }
            DataType::Decimal256(precision, scale) if *precision <= DECIMAL128_MAX_PRECISION => {
                DataType::Decimal128(*precision, *scale)
            }
            DataType::Float16 | DataType::Float32 | DataType::Null => DataType::Float64,
            DataType::Dictionary(_, value_type) => {
                return self.coerce_types(std::slice::from_ref(value_type.as_ref()));
            }
            other => return plan_err!("AVG is not defined for {other}"),
        };
        Ok(vec![coerced])
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        let [arg] = arg_types else {
            return plan_err!("AVG takes one argument, got {}", arg_types.len());
        };
        match classify(arg) {
            InputClass::Decimal { scale } => Ok(DataType::Decimal128(
                DECIMAL128_MAX_PRECISION,
                avg_result_scale(scale),
            )),
            InputClass::Integer => Ok(arg.clone()),
            InputClass::Delegate => self.inner.return_type(arg_types),
        }
    }

    fn accumulator(&self, acc_args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let input_type = input_type(&acc_args)?;
        let class = classify(input_type);
        if class == InputClass::Delegate {
            return self.inner.accumulator(acc_args);
        }
        let finisher = Finisher::try_new(class, acc_args.return_type())?;
        let return_type = acc_args.return_type().clone();
        if acc_args.is_distinct {
            dispatch_exact!(
                input_type,
                new_distinct_accumulator,
                finisher,
                input_type.clone(),
                return_type,
            )
        } else {
            dispatch_exact!(
                input_type,
                new_row_accumulator,
                finisher,
                sum_state_type(class),
                return_type,
            )
        }
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let Some(input) = args.input_fields.first() else {
            return internal_err!("AVG takes one argument, got none");
        };
        let class = classify(input.data_type());
        if class == InputClass::Delegate {
            return self.inner.state_fields(args);
        }
        if args.is_distinct {
            return Ok(vec![Arc::new(Field::new_list(
                format_state_name(args.name, "avg distinct"),
                Field::new_list_field(input.data_type().clone(), true),
                false,
            ))]);
        }
        Ok(vec![
            Arc::new(Field::new(
                format_state_name(args.name, "sum"),
                sum_state_type(class),
                true,
            )),
            Arc::new(Field::new(
                format_state_name(args.name, "count"),
                DataType::UInt64,
                true,
            )),
        ])
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        match args.expr_fields.first().map(|f| classify(f.data_type())) {
            Some(InputClass::Delegate) => self.inner.groups_accumulator_supported(args),
            Some(_) => !args.is_distinct,
            None => false,
        }
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        let input_type = input_type(&args)?;
        let class = classify(input_type);
        if class == InputClass::Delegate {
            return self.inner.create_groups_accumulator(args);
        }
        if args.is_distinct {
            return internal_err!("AVG(DISTINCT) has no groups accumulator");
        }
        let finisher = Finisher::try_new(class, args.return_type())?;
        dispatch_exact!(
            input_type,
            new_groups_accumulator,
            finisher,
            sum_state_type(class),
            args.return_type().clone(),
        )
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        // The exact (non-distinct) accumulators support `retract_batch`.
        match classify(input_type(&args)?) {
            InputClass::Delegate => self.inner.create_sliding_accumulator(args),
            InputClass::Decimal { .. } | InputClass::Integer => self.accumulator(args),
        }
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        AggregateOrderSensitivity::Insensitive
    }

    fn reverse_expr(&self) -> ReversedUDAF {
        ReversedUDAF::Identical
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }
}

/// The (coerced) type of the single argument.
fn input_type<'a>(args: &'a AccumulatorArgs) -> Result<&'a DataType> {
    args.expr_fields
        .first()
        .map(|f| f.data_type())
        .ok_or_else(|| internal_datafusion_err!("AVG takes one argument, got none"))
}

/// Turns a sum and a count into an average, as Flink does.
#[derive(Debug, Clone, Copy)]
enum Finisher {
    /// `round_half_up(sum * factor / count)`, where `factor = 10^(result scale -
    /// input scale)`; the result must fit `DECIMAL(38, _)`.
    Decimal {
        /// `10^(result scale - input scale)`.
        factor: i128,
        /// The result scale, for error messages.
        result_scale: i8,
    },
    /// `sum / count`, truncating toward zero.
    Integer,
}

impl Finisher {
    fn try_new(class: InputClass, return_type: &DataType) -> Result<Self> {
        match (class, return_type) {
            (InputClass::Decimal { scale }, DataType::Decimal128(_, result_scale)) => {
                let Some(exponent) = i32::from(*result_scale)
                    .checked_sub(i32::from(scale))
                    .and_then(|e| u32::try_from(e).ok())
                else {
                    return internal_err!(
                        "AVG result scale {result_scale} is below the input scale {scale}"
                    );
                };
                let Some(factor) = 10_i128.checked_pow(exponent) else {
                    return plan_err!(
                        "AVG over DECIMAL with scale {scale}: rescaling to scale \
                         {result_scale} overflows DECIMAL(38)"
                    );
                };
                Ok(Self::Decimal {
                    factor,
                    result_scale: *result_scale,
                })
            }
            (InputClass::Integer, _) => Ok(Self::Integer),
            (class, return_type) => {
                internal_err!("AVG cannot produce {return_type} for {class:?} input")
            }
        }
    }

    /// The average of `count` (> 0) values summing to `sum`.
    fn finish(self, sum: i128, count: u64) -> Result<i128> {
        let divisor = i128::from(count);
        if divisor == 0 {
            return internal_err!("AVG of zero values");
        }
        match self {
            Self::Integer => Ok(sum / divisor),
            Self::Decimal {
                factor,
                result_scale,
            } => {
                let scaled = sum.checked_mul(factor).ok_or_else(|| {
                    exec_datafusion_err!(
                        "Arithmetic overflow in AVG: rescaling the sum {sum} to scale \
                         {result_scale} overflows DECIMAL(38)"
                    )
                })?;
                let avg = div_round_half_up(scaled, divisor);
                if avg.unsigned_abs() >= DECIMAL128_LIMIT {
                    return exec_err!(
                        "Arithmetic overflow in AVG: the average does not fit \
                         DECIMAL(38, {result_scale})"
                    );
                }
                Ok(avg)
            }
        }
    }
}

/// `n / d` rounded half away from zero (Java's `RoundingMode.HALF_UP`); `d > 0`.
fn div_round_half_up(n: i128, d: i128) -> i128 {
    let quotient = n / d;
    let remainder = n % d;
    // |remainder| < d <= u64::MAX, so doubling it cannot overflow a u128.
    if remainder.unsigned_abs() * 2 >= d.unsigned_abs() {
        quotient + n.signum()
    } else {
        quotient
    }
}

/// The native types the exact accumulators handle: they widen losslessly to
/// `i128`, and an average (which lies between the smallest and largest input)
/// narrows back.
trait ExactNative: ArrowNativeType + Into<i128> + TryFrom<i128> + Hash + Eq {}

impl<N: ArrowNativeType + Into<i128> + TryFrom<i128> + Hash + Eq> ExactNative for N {}

/// Narrows an average back to the output's native type.
fn narrow<N: ExactNative>(value: i128, return_type: &DataType) -> Result<N> {
    N::try_from(value).map_err(|_| {
        exec_datafusion_err!("Arithmetic overflow in AVG: {value} does not fit {return_type}")
    })
}

/// The error for a running sum that leaves the `i128` range.
fn sum_overflow() -> datafusion::error::DataFusionError {
    exec_datafusion_err!("Arithmetic overflow in AVG: the sum does not fit 128 bits")
}

/// Stamps `data_type` (e.g. a decimal's precision and scale) on `array`.
fn with_type<T: ArrowPrimitiveType>(
    array: PrimitiveArray<T>,
    data_type: &DataType,
) -> Result<PrimitiveArray<T>> {
    if PrimitiveArray::<T>::is_compatible(data_type) {
        Ok(array.with_data_type(data_type.clone()))
    } else {
        internal_err!("AVG: {data_type} is not a valid type for {}", T::DATA_TYPE)
    }
}

/// The single argument of `update_batch`, as a `PrimitiveArray<T>`.
fn single_argument<T: ArrowPrimitiveType>(values: &[ArrayRef]) -> Result<&PrimitiveArray<T>> {
    match values {
        [values] => values.as_primitive_opt::<T>().ok_or_else(|| {
            internal_datafusion_err!(
                "AVG expected {} input, got {}",
                T::DATA_TYPE,
                values.data_type()
            )
        }),
        _ => internal_err!("AVG takes one argument, got {}", values.len()),
    }
}

/// The `[sum, count]` state arrays.
fn state_arrays(states: &[ArrayRef]) -> Result<(&Decimal128Array, &UInt64Array)> {
    let [sums, counts] = states else {
        return internal_err!("AVG state has two fields, got {}", states.len());
    };
    let sums = sums
        .as_primitive_opt::<Decimal128Type>()
        .ok_or_else(|| internal_datafusion_err!("AVG sum state is {}", sums.data_type()))?;
    let counts = counts
        .as_primitive_opt::<UInt64Type>()
        .ok_or_else(|| internal_datafusion_err!("AVG count state is {}", counts.data_type()))?;
    Ok((sums, counts))
}

/// The checked sum (as `i128`) and count of the non-null values of `values`.
fn sum_and_count<T>(values: &PrimitiveArray<T>) -> Result<(i128, u64)>
where
    T: ArrowPrimitiveType,
    T::Native: ExactNative,
{
    let count = (values.len() - values.null_count()) as u64;
    let sum = match values.nulls() {
        Some(nulls) if nulls.null_count() > 0 => values
            .values()
            .iter()
            .zip(nulls.iter())
            .filter(|(_, valid)| *valid)
            .try_fold(0_i128, |acc, (v, _)| acc.checked_add((*v).into())),
        _ => values
            .values()
            .iter()
            .try_fold(0_i128, |acc, v| acc.checked_add((*v).into())),
    };
    Ok((sum.ok_or_else(sum_overflow)?, count))
}

fn new_row_accumulator<T>(
    finisher: Finisher,
    sum_type: DataType,
    return_type: DataType,
) -> Result<Box<dyn Accumulator>>
where
    T: ArrowPrimitiveType + Debug,
    T::Native: ExactNative,
{
    Ok(Box::new(ExactAvgAccumulator::<T> {
        finisher,
        sum_type,
        return_type,
        sum: 0,
        count: 0,
        _input: PhantomData,
    }))
}

/// Row accumulator for `AVG` over an exact type; supports retraction (sliding
/// window frames).
#[derive(Debug)]
struct ExactAvgAccumulator<T> {
    finisher: Finisher,
    /// `Decimal128(38, s)`: the type of the sum in the state.
    sum_type: DataType,
    return_type: DataType,
    sum: i128,
    count: u64,
    _input: PhantomData<fn() -> T>,
}

impl<T> Accumulator for ExactAvgAccumulator<T>
where
    T: ArrowPrimitiveType + Debug,
    T::Native: ExactNative,
{
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let (sum, count) = sum_and_count(single_argument::<T>(values)?)?;
        self.sum = self.sum.checked_add(sum).ok_or_else(sum_overflow)?;
        self.count += count;
        Ok(())
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let (sum, count) = sum_and_count(single_argument::<T>(values)?)?;
        self.sum = self.sum.checked_sub(sum).ok_or_else(sum_overflow)?;
        self.count = self
            .count
            .checked_sub(count)
            .ok_or_else(|| internal_datafusion_err!("AVG retracted more rows than it saw"))?;
        Ok(())
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        if self.count == 0 {
            return ScalarValue::try_from(&self.return_type);
        }
        let avg = self.finisher.finish(self.sum, self.count)?;
        ScalarValue::new_primitive::<T>(Some(narrow(avg, &self.return_type)?), &self.return_type)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let (sum, count) = if self.count == 0 {
            (None, None)
        } else {
            (Some(self.sum), Some(self.count))
        };
        Ok(vec![
            ScalarValue::new_primitive::<Decimal128Type>(sum, &self.sum_type)?,
            ScalarValue::UInt64(count),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let (sums, counts) = state_arrays(states)?;
        for (sum, count) in sums.iter().zip(counts.iter()) {
            if let (Some(sum), Some(count)) = (sum, count) {
                self.sum = self.sum.checked_add(sum).ok_or_else(sum_overflow)?;
                self.count += count;
            }
        }
        Ok(())
    }

    fn size(&self) -> usize {
        size_of_val(self)
    }
}

fn new_distinct_accumulator<T>(
    finisher: Finisher,
    input_type: DataType,
    return_type: DataType,
) -> Result<Box<dyn Accumulator>>
where
    T: ArrowPrimitiveType + Debug,
    T::Native: ExactNative,
{
    Ok(Box::new(DistinctAvgAccumulator::<T> {
        finisher,
        input_type,
        return_type,
        values: HashSet::new(),
    }))
}

/// Row accumulator for `AVG(DISTINCT x)` over an exact type. Its state is the list
/// of distinct values seen.
#[derive(Debug)]
struct DistinctAvgAccumulator<T: ArrowPrimitiveType> {
    finisher: Finisher,
    input_type: DataType,
    return_type: DataType,
    values: HashSet<T::Native>,
}

impl<T: ArrowPrimitiveType> DistinctAvgAccumulator<T> {
    fn insert_all(&mut self, values: &PrimitiveArray<T>)
    where
        T::Native: ExactNative,
    {
        match values.nulls() {
            Some(nulls) if nulls.null_count() > 0 => {
                for (value, valid) in values.values().iter().zip(nulls.iter()) {
                    if valid {
                        self.values.insert(*value);
                    }
                }
            }
            _ => self.values.extend(values.values().iter().copied()),
        }
    }
}

impl<T> Accumulator for DistinctAvgAccumulator<T>
where
    T: ArrowPrimitiveType + Debug,
    T::Native: ExactNative,
{
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.insert_all(single_argument::<T>(values)?);
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        if self.values.is_empty() {
            return ScalarValue::try_from(&self.return_type);
        }
        let sum = self
            .values
            .iter()
            .try_fold(0_i128, |acc, v| acc.checked_add((*v).into()))
            .ok_or_else(sum_overflow)?;
        let avg = self.finisher.finish(sum, self.values.len() as u64)?;
        ScalarValue::new_primitive::<T>(Some(narrow(avg, &self.return_type)?), &self.return_type)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let values = with_type(
            PrimitiveArray::<T>::from_iter_values(self.values.iter().copied()),
            &self.input_type,
        )?;
        let list = ListArray::try_new(
            Arc::new(Field::new_list_field(self.input_type.clone(), true)),
            OffsetBuffer::from_lengths([values.len()]),
            Arc::new(values),
            None,
        )?;
        Ok(vec![ScalarValue::List(Arc::new(list))])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let [lists] = states else {
            return internal_err!("AVG(DISTINCT) state has one field, got {}", states.len());
        };
        let lists = lists.as_list_opt::<i32>().ok_or_else(|| {
            internal_datafusion_err!("AVG(DISTINCT) state is {}", lists.data_type())
        })?;
        for values in lists.iter().flatten() {
            let values = values.as_primitive_opt::<T>().ok_or_else(|| {
                internal_datafusion_err!("AVG(DISTINCT) state holds {}", values.data_type())
            })?;
            self.insert_all(values);
        }
        Ok(())
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.values.capacity() * size_of::<T::Native>()
    }
}

fn new_groups_accumulator<T>(
    finisher: Finisher,
    sum_type: DataType,
    return_type: DataType,
) -> Result<Box<dyn GroupsAccumulator>>
where
    T: ArrowPrimitiveType + Send,
    T::Native: ExactNative,
{
    // Fail here rather than when the first group is emitted.
    if !PrimitiveArray::<T>::is_compatible(&return_type) {
        return internal_err!("AVG cannot produce {return_type} from {}", T::DATA_TYPE);
    }
    Ok(Box::new(ExactAvgGroupsAccumulator::<T> {
        finisher,
        sum_type,
        return_type,
        sums: Vec::new(),
        counts: Vec::new(),
        null_state: NullState::new(),
        _input: PhantomData,
    }))
}

/// Groups accumulator for `AVG` over an exact type: one `i128` sum and one `u64`
/// count per group. A group that saw no non-NULL (unfiltered) value yields NULL.
struct ExactAvgGroupsAccumulator<T> {
    finisher: Finisher,
    /// `Decimal128(38, s)`: the type of the sum in the state.
    sum_type: DataType,
    return_type: DataType,
    sums: Vec<i128>,
    counts: Vec<u64>,
    /// Which groups have seen a value.
    null_state: NullState,
    _input: PhantomData<fn() -> T>,
}

impl<T> ExactAvgGroupsAccumulator<T> {
    fn resize(&mut self, total_num_groups: usize) {
        self.sums.resize(total_num_groups, 0);
        self.counts.resize(total_num_groups, 0);
    }
}

impl<T> GroupsAccumulator for ExactAvgGroupsAccumulator<T>
where
    T: ArrowPrimitiveType + Send,
    T::Native: ExactNative,
{
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        let values = single_argument::<T>(values)?;
        self.resize(total_num_groups);
        let sums = &mut self.sums;
        let counts = &mut self.counts;
        let mut overflow = false;
        self.null_state.accumulate(
            group_indices,
            values,
            opt_filter,
            total_num_groups,
            |group, value| {
                if let (Some(sum), Some(count)) = (sums.get_mut(group), counts.get_mut(group)) {
                    match sum.checked_add(value.into()) {
                        Some(new_sum) => *sum = new_sum,
                        None => overflow = true,
                    }
                    *count += 1;
                }
            },
        );
        if overflow {
            return Err(sum_overflow());
        }
        Ok(())
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        let (partial_sums, partial_counts) = state_arrays(values)?;
        self.resize(total_num_groups);
        let sums = &mut self.sums;
        let mut overflow = false;
        self.null_state.accumulate(
            group_indices,
            partial_sums,
            None,
            total_num_groups,
            |group, partial| {
                if let Some(sum) = sums.get_mut(group) {
                    match sum.checked_add(partial) {
                        Some(new_sum) => *sum = new_sum,
                        None => overflow = true,
                    }
                }
            },
        );
        let counts = &mut self.counts;
        self.null_state.accumulate(
            group_indices,
            partial_counts,
            None,
            total_num_groups,
            |group, partial| {
                if let Some(count) = counts.get_mut(group) {
                    *count += partial;
                }
            },
        );
        if overflow {
            return Err(sum_overflow());
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let sums = emit_to.take_needed(&mut self.sums);
        let counts = emit_to.take_needed(&mut self.counts);
        let seen = self.null_state.build(emit_to);

        let mut averages = Vec::with_capacity(sums.len());
        let mut validity = Vec::with_capacity(sums.len());
        for (group, (sum, count)) in sums.into_iter().zip(counts).enumerate() {
            let has_value = count > 0 && seen.as_ref().is_none_or(|s| s.is_valid(group));
            if has_value {
                let avg = self.finisher.finish(sum, count)?;
                averages.push(narrow::<T::Native>(avg, &self.return_type)?);
            } else {
                averages.push(T::Native::default());
            }
            validity.push(has_value);
        }
        let nulls = NullBuffer::from(validity);
        let nulls = (nulls.null_count() > 0).then_some(nulls);
        let averages = PrimitiveArray::<T>::try_new(averages.into(), nulls)?;
        Ok(Arc::new(with_type(averages, &self.return_type)?))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let seen = self.null_state.build(emit_to);
        let sums = emit_to.take_needed(&mut self.sums);
        let counts = emit_to.take_needed(&mut self.counts);
        let sums = with_type(
            Decimal128Array::try_new(sums.into(), seen.clone())?,
            &self.sum_type,
        )?;
        let counts = UInt64Array::try_new(counts.into(), seen)?;
        Ok(vec![Arc::new(sums), Arc::new(counts)])
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let values = single_argument::<T>(values)?;
        let len = values.len();
        if let Some(filter) = opt_filter
            && filter.len() != len
        {
            return internal_err!("AVG filter has {} rows for {len} values", filter.len());
        }
        let valid = BooleanBuffer::collect_bool(len, |i| {
            values.is_valid(i)
                && opt_filter.is_none_or(|filter| filter.is_valid(i) && filter.value(i))
        });
        let nulls = NullBuffer::new(valid);
        let nulls = (nulls.null_count() > 0).then_some(nulls);

        let sums: Vec<i128> = values.values().iter().map(|v| (*v).into()).collect();
        let sums = with_type(
            Decimal128Array::try_new(sums.into(), nulls.clone())?,
            &self.sum_type,
        )?;
        let counts = UInt64Array::try_new(vec![1_u64; len].into(), nulls)?;
        Ok(vec![Arc::new(sums), Arc::new(counts)])
    }

    fn size(&self) -> usize {
        self.sums.capacity() * size_of::<i128>()
            + self.counts.capacity() * size_of::<u64>()
            + self.null_state.size()
            + size_of_val(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_half_away_from_zero() {
        assert_eq!(div_round_half_up(50_000, 3), 16_667);
        assert_eq!(div_round_half_up(-50_000, 3), -16_667);
        assert_eq!(div_round_half_up(5, 2), 3);
        assert_eq!(div_round_half_up(-5, 2), -3);
        assert_eq!(div_round_half_up(4, 3), 1);
        assert_eq!(div_round_half_up(-4, 3), -1);
        assert_eq!(div_round_half_up(i128::MAX, 1), i128::MAX);
        assert_eq!(div_round_half_up(i128::MIN, 1), i128::MIN);
    }

    #[test]
    fn decimal_finisher_rescales_and_checks_overflow() -> Result<()> {
        let finisher = Finisher::try_new(
            InputClass::Decimal { scale: 2 },
            &DataType::Decimal128(38, 6),
        )?;
        assert_eq!(finisher.finish(5, 3)?, 16_667);
        let err = finisher.finish(i128::MAX / 10, 1).unwrap_err();
        assert!(err.to_string().contains("overflow"), "{err}");
        Ok(())
    }

    #[test]
    fn groups_convert_to_state_then_merge() -> Result<()> {
        let finisher = Finisher::try_new(
            InputClass::Decimal { scale: 2 },
            &DataType::Decimal128(38, 6),
        )?;
        let mut acc = new_groups_accumulator::<Decimal128Type>(
            finisher,
            DataType::Decimal128(38, 2),
            DataType::Decimal128(38, 6),
        )?;
        let values: ArrayRef = Arc::new(
            Decimal128Array::from(vec![Some(1), Some(2), Some(2), None, Some(7)])
                .with_precision_and_scale(18, 2)?,
        );
        let filter = BooleanArray::from(vec![Some(true), Some(true), Some(true), Some(true), None]);
        let state = acc.convert_to_state(&[values], Some(&filter))?;
        assert_eq!(state[0].null_count(), 2);
        // Rows 0..3 go to group 0, rows 3 and 4 (NULL value, filtered out) to group 1.
        acc.merge_batch(&state, &[0, 0, 0, 1, 1], 2)?;
        let result = acc.evaluate(EmitTo::All)?;
        let result = result.as_primitive::<Decimal128Type>();
        assert_eq!(result.data_type(), &DataType::Decimal128(38, 6));
        assert_eq!(result.value(0), 16_667);
        assert!(result.is_null(1));
        Ok(())
    }

    fn decimal_finisher() -> Result<Finisher> {
        Finisher::try_new(
            InputClass::Decimal { scale: 2 },
            &DataType::Decimal128(38, 6),
        )
    }

    fn hundredths(values: Vec<Option<i128>>) -> Result<ArrayRef> {
        Ok(Arc::new(
            Decimal128Array::from(values).with_precision_and_scale(18, 2)?,
        ))
    }

    /// Converts a row accumulator's state (scalars) to the arrays `merge_batch` takes.
    fn state_to_arrays(acc: &mut dyn Accumulator) -> Result<Vec<ArrayRef>> {
        acc.state()?.iter().map(|s| s.to_array()).collect()
    }

    #[test]
    fn row_accumulator_state_merges() -> Result<()> {
        let sum_type = DataType::Decimal128(38, 2);
        let return_type = DataType::Decimal128(38, 6);
        let mut left = new_row_accumulator::<Decimal128Type>(
            decimal_finisher()?,
            sum_type.clone(),
            return_type.clone(),
        )?;
        let mut right =
            new_row_accumulator::<Decimal128Type>(decimal_finisher()?, sum_type, return_type)?;
        left.update_batch(&[hundredths(vec![Some(-1), None])?])?;
        right.update_batch(&[hundredths(vec![Some(-2), Some(-2)])?])?;
        let right_state = state_to_arrays(right.as_mut())?;
        assert_eq!(right_state[0].data_type(), &DataType::Decimal128(38, 2));
        left.merge_batch(&right_state)?;
        assert_eq!(
            left.evaluate()?,
            ScalarValue::Decimal128(Some(-16_667), 38, 6)
        );

        // An empty accumulator's state is NULL and merges as nothing.
        let mut empty = new_row_accumulator::<Decimal128Type>(
            decimal_finisher()?,
            DataType::Decimal128(38, 2),
            DataType::Decimal128(38, 6),
        )?;
        assert_eq!(empty.evaluate()?, ScalarValue::Decimal128(None, 38, 6));
        let empty_state = state_to_arrays(empty.as_mut())?;
        left.merge_batch(&empty_state)?;
        left.retract_batch(&[hundredths(vec![Some(-1)])?])?;
        assert_eq!(
            left.evaluate()?,
            ScalarValue::Decimal128(Some(-20_000), 38, 6)
        );
        Ok(())
    }

    #[test]
    fn distinct_accumulator_state_merges() -> Result<()> {
        let input_type = DataType::Decimal128(18, 2);
        let return_type = DataType::Decimal128(38, 6);
        let mut left = new_distinct_accumulator::<Decimal128Type>(
            decimal_finisher()?,
            input_type.clone(),
            return_type.clone(),
        )?;
        let mut right = new_distinct_accumulator::<Decimal128Type>(
            decimal_finisher()?,
            input_type,
            return_type,
        )?;
        left.update_batch(&[hundredths(vec![Some(1), Some(2), None])?])?;
        right.update_batch(&[hundredths(vec![Some(2), Some(4)])?])?;
        let right_state = state_to_arrays(right.as_mut())?;
        left.merge_batch(&right_state)?;
        // 0.01, 0.02, 0.04
        assert_eq!(
            left.evaluate()?,
            ScalarValue::Decimal128(Some(23_333), 38, 6)
        );
        Ok(())
    }

    #[test]
    fn groups_accumulator_state_merges_and_emits_first() -> Result<()> {
        let new = || {
            new_groups_accumulator::<Int64Type>(
                Finisher::Integer,
                DataType::Decimal128(38, 0),
                DataType::Int64,
            )
        };
        let mut partial = new()?;
        let values: ArrayRef = Arc::new(datafusion::arrow::array::Int64Array::from(vec![
            Some(1),
            Some(2),
            None,
            Some(-7),
            Some(-8),
        ]));
        partial.update_batch(&[values], &[0, 0, 1, 2, 2], None, 3)?;
        let state = partial.state(EmitTo::All)?;
        assert_eq!(state[0].data_type(), &DataType::Decimal128(38, 0));

        let mut merged = new()?;
        // Partial groups 0, 1, 2 become final groups 1, 0, 2; group 3 sees nothing.
        merged.merge_batch(&state, &[1, 0, 2], 4)?;
        let first = merged.evaluate(EmitTo::First(2))?;
        let first: Vec<Option<i64>> = first.as_primitive::<Int64Type>().iter().collect();
        assert_eq!(first, vec![None, Some(1)]);
        let rest = merged.evaluate(EmitTo::All)?;
        let rest: Vec<Option<i64>> = rest.as_primitive::<Int64Type>().iter().collect();
        assert_eq!(rest, vec![Some(-7), None]);
        Ok(())
    }
}
