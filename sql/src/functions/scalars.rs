//! Flink scalar functions DataFusion lacks, with Flink's semantics:
//!
//! - `MOD(a, b)`: the remainder of integer division, with the sign of `a`
//!   (as Java's `%`); `MOD(a, 0)` is an error.
//! - `REGEXP_EXTRACT(s, regex[, group])`: group `group` (default 0, the whole
//!   match) of the first match of `regex` in `s`; NULL when nothing matches.
//! - `SPLIT_INDEX(s, delimiter, index)`: the `index`-th (0-based) part of `s`
//!   split at `delimiter`; NULL when there is no such part.
//!
//! A NULL argument gives NULL. The pattern of `REGEXP_EXTRACT` is compiled
//! once per distinct pattern, not per row. `DATE_FORMAT` has a module of its
//! own (`date_format.rs`).

use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};

/// The argument arrays of a call, each as long as the batch.
fn arrays(args: &ScalarFunctionArgs) -> Result<Vec<ArrayRef>> {
    args.args
        .iter()
        .map(|a| a.to_array(args.number_rows))
        .collect()
}

/// `arg` cast to `to`.
fn as_type(arg: &ArrayRef, to: &DataType) -> Result<ArrayRef> {
    Ok(cast(arg, to)?)
}

/// Flink's `MOD(a, b)` over integers.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct FlinkMod {
    signature: Signature,
}

impl FlinkMod {
    /// The function.
    pub fn new() -> Self {
        let ints = [
            DataType::Int8,
            DataType::Int16,
            DataType::Int32,
            DataType::Int64,
        ];
        let signatures = ints
            .iter()
            .flat_map(|a| {
                ints.iter()
                    .map(move |b| TypeSignature::Exact(vec![a.clone(), b.clone()]))
            })
            .collect();
        FlinkMod {
            signature: Signature::one_of(signatures, Volatility::Immutable),
        }
    }
}

impl Default for FlinkMod {
    fn default() -> Self {
        Self::new()
    }
}

impl ScalarUDFImpl for FlinkMod {
    fn name(&self) -> &str {
        "mod"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = arrays(&args)?;
        let (a, b) = match arrays.as_slice() {
            [a, b] => (as_type(a, &DataType::Int64)?, as_type(b, &DataType::Int64)?),
            _ => return Err(DataFusionError::Plan("MOD takes two arguments".into())),
        };
        let (a, b) = (a.as_primitive::<Int64Type>(), b.as_primitive::<Int64Type>());
        let mut out = Vec::with_capacity(a.len());
        for i in 0..a.len() {
            if a.is_null(i) || b.is_null(i) {
                out.push(None);
            } else if b.value(i) == 0 {
                return Err(DataFusionError::Execution(format!(
                    "MOD({}, 0): division by zero",
                    a.value(i)
                )));
            } else {
                out.push(Some(a.value(i).wrapping_rem(b.value(i))));
            }
        }
        Ok(ColumnarValue::Array(Arc::new(Int64Array::from(out))))
    }
}

/// Flink's `REGEXP_EXTRACT(s, regex[, group])`.
#[derive(Debug)]
pub struct RegexpExtract {
    signature: Signature,
    /// The last pattern compiled (shared, so its match caches are reused).
    compiled: Mutex<Option<(String, Arc<regex::Regex>)>>,
}

impl PartialEq for RegexpExtract {
    fn eq(&self, other: &Self) -> bool {
        self.signature == other.signature
    }
}

impl Eq for RegexpExtract {}

impl std::hash::Hash for RegexpExtract {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.signature.hash(state);
    }
}

impl RegexpExtract {
    /// The function.
    pub fn new() -> Self {
        RegexpExtract {
            signature: Signature::one_of(
                vec![
                    TypeSignature::Exact(vec![DataType::Utf8, DataType::Utf8]),
                    TypeSignature::Exact(vec![DataType::Utf8, DataType::Utf8, DataType::Int64]),
                ],
                Volatility::Immutable,
            ),
            compiled: Mutex::new(None),
        }
    }

    fn regex(&self, pattern: &str) -> Result<Arc<regex::Regex>> {
        let mut compiled = self
            .compiled
            .lock()
            .map_err(|_| DataFusionError::Execution("REGEXP_EXTRACT: poisoned cache".into()))?;
        if let Some((known, regex)) = compiled.as_ref()
            && known == pattern
        {
            return Ok(regex.clone());
        }
        let regex = Arc::new(regex::Regex::new(pattern).map_err(|e| {
            DataFusionError::Execution(format!("REGEXP_EXTRACT: bad pattern '{pattern}': {e}"))
        })?);
        *compiled = Some((pattern.to_string(), regex.clone()));
        Ok(regex)
    }
}

impl Default for RegexpExtract {
    fn default() -> Self {
        Self::new()
    }
}

impl ScalarUDFImpl for RegexpExtract {
    fn name(&self) -> &str {
        "regexp_extract"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = arrays(&args)?;
        let (text, pattern) = match arrays.as_slice() {
            [t, p] | [t, p, _] => (t.as_string::<i32>(), p.as_string::<i32>()),
            _ => {
                return Err(DataFusionError::Plan(
                    "REGEXP_EXTRACT takes 2 or 3 arguments".into(),
                ));
            }
        };
        let groups = arrays.get(2).map(|g| g.as_primitive::<Int64Type>());
        let mut out = StringBuilder::with_capacity(text.len(), text.len() * 4);
        // The pattern of the previous row, usually the same literal.
        let mut current: Option<(usize, Arc<regex::Regex>)> = None;
        for i in 0..text.len() {
            let group = match groups {
                Some(g) if g.is_null(i) => None,
                Some(g) => usize::try_from(g.value(i)).ok(),
                None => Some(0),
            };
            if text.is_null(i) || pattern.is_null(i) || group.is_none() {
                out.append_null();
                continue;
            }
            let regex = match &current {
                Some((row, regex)) if pattern.value(*row) == pattern.value(i) => regex.clone(),
                _ => {
                    let regex = self.regex(pattern.value(i))?;
                    current = Some((i, regex.clone()));
                    regex
                }
            };
            let found = regex
                .captures(text.value(i))
                .and_then(|c| group.and_then(|g| c.get(g)))
                .map(|m| m.as_str());
            out.append_option(found);
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

/// Flink's `SPLIT_INDEX(s, delimiter, index)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SplitIndex {
    signature: Signature,
}

impl SplitIndex {
    /// The function.
    pub fn new() -> Self {
        SplitIndex {
            signature: Signature::exact(
                vec![DataType::Utf8, DataType::Utf8, DataType::Int64],
                Volatility::Immutable,
            ),
        }
    }
}

impl Default for SplitIndex {
    fn default() -> Self {
        Self::new()
    }
}

impl ScalarUDFImpl for SplitIndex {
    fn name(&self) -> &str {
        "split_index"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = arrays(&args)?;
        let [text, delimiter, index] = arrays.as_slice() else {
            return Err(DataFusionError::Plan(
                "SPLIT_INDEX takes 3 arguments".into(),
            ));
        };
        let (text, delimiter, index) = (
            text.as_string::<i32>(),
            delimiter.as_string::<i32>(),
            index.as_primitive::<Int64Type>(),
        );
        let mut out = StringBuilder::with_capacity(text.len(), text.len() * 4);
        for i in 0..text.len() {
            if text.is_null(i) || delimiter.is_null(i) || index.is_null(i) {
                out.append_null();
                continue;
            }
            let part = usize::try_from(index.value(i))
                .ok()
                .filter(|_| !delimiter.value(i).is_empty())
                .and_then(|n| text.value(i).split(delimiter.value(i)).nth(n));
            out.append_option(part);
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

/// The Flink scalar functions of this module.
pub fn flink_scalars() -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::new_from_impl(FlinkMod::new()),
        ScalarUDF::new_from_impl(RegexpExtract::new()),
        ScalarUDF::new_from_impl(SplitIndex::new()),
        ScalarUDF::new_from_impl(super::date_format::DateFormat::new()),
    ]
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
    use datafusion::prelude::SessionContext;

    /// The single value `expr` evaluates to, as text (`NULL` for null).
    async fn eval(expr: &str) -> Result<String, String> {
        let ctx = SessionContext::new();
        for udf in super::flink_scalars() {
            ctx.register_udf(udf);
        }
        let batches = ctx
            .sql(&format!("SELECT {expr}"))
            .await
            .map_err(|e| e.to_string())?
            .collect()
            .await
            .map_err(|e| e.to_string())?;
        let options = FormatOptions::default().with_null("NULL");
        let formatter = ArrayFormatter::try_new(batches[0].column(0), &options).unwrap();
        Ok(formatter.value(0).to_string())
    }

    #[tokio::test]
    async fn date_format_takes_timestamps_dates_and_strings() {
        let ts = "TIMESTAMP '2024-02-29 13:05:09.042'";
        assert_eq!(
            eval(&format!("DATE_FORMAT({ts}, 'yyyy-MM-dd HH:mm:ss.SSS')"))
                .await
                .unwrap(),
            "2024-02-29 13:05:09.042"
        );
        assert_eq!(
            eval("DATE_FORMAT(CAST('2024-05-01 08:30:00' AS TIMESTAMP(3)), 'HH:mm')")
                .await
                .unwrap(),
            "08:30"
        );
        assert_eq!(
            eval("DATE_FORMAT('2024-05-01 08:30:00', 'dd/MM/yy')")
                .await
                .unwrap(),
            "01/05/24"
        );
        assert_eq!(
            eval("DATE_FORMAT(DATE '2024-05-01', 'EEE d MMM')")
                .await
                .unwrap(),
            "Wed 1 May"
        );
        assert_eq!(
            eval("DATE_FORMAT(CAST(NULL AS TIMESTAMP), 'yyyy')")
                .await
                .unwrap(),
            "NULL"
        );
        let err = eval(&format!("DATE_FORMAT({ts}, 'G yyyy')"))
            .await
            .unwrap_err();
        assert!(err.contains("letter 'G' is not supported"), "{err}");
        let err = eval("DATE_FORMAT(42, 'yyyy')").await.unwrap_err();
        assert!(err.contains("formats a TIMESTAMP"), "{err}");
    }

    #[tokio::test]
    async fn mod_keeps_the_sign_of_the_dividend_and_refuses_zero() {
        assert_eq!(eval("MOD(7, 3)").await.unwrap(), "1");
        assert_eq!(eval("MOD(-7, 3)").await.unwrap(), "-1");
        assert_eq!(eval("MOD(CAST(NULL AS BIGINT), 3)").await.unwrap(), "NULL");
        assert!(
            eval("MOD(7, 0)")
                .await
                .unwrap_err()
                .contains("division by zero")
        );
    }

    #[tokio::test]
    async fn regexp_extract_returns_a_group_of_the_first_match_or_null() {
        let url = "'https://x/item.htm?query=1&channel_id=42&b=1'";
        let pattern = "'(&|^)channel_id=([^&]*)'";
        assert_eq!(
            eval(&format!("REGEXP_EXTRACT({url}, {pattern}, 2)"))
                .await
                .unwrap(),
            "42"
        );
        assert_eq!(
            eval(&format!("REGEXP_EXTRACT({url}, {pattern})"))
                .await
                .unwrap(),
            "&channel_id=42"
        );
        assert_eq!(
            eval(&format!("REGEXP_EXTRACT('none', {pattern}, 2)"))
                .await
                .unwrap(),
            "NULL"
        );
        assert!(
            eval("REGEXP_EXTRACT('a', '(', 1)")
                .await
                .unwrap_err()
                .contains("bad pattern")
        );
    }

    #[tokio::test]
    async fn split_index_counts_from_zero_and_is_null_past_the_end() {
        assert_eq!(eval("SPLIT_INDEX('a/b/c', '/', 1)").await.unwrap(), "b");
        assert_eq!(eval("SPLIT_INDEX('a/b/c', '/', 3)").await.unwrap(), "NULL");
        assert_eq!(eval("SPLIT_INDEX('a/b/c', '/', -1)").await.unwrap(), "NULL");
    }
}
