//! EXPLAIN lines for connectors: deterministic text built from a table's options.
//!
//! The first line names the connector; the remaining options follow sorted by key
//! (they live in a `BTreeMap`), so plans can be snapshot-tested.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use watershed_engine::EngineError;

use crate::options::CONNECTOR;

/// `["connector=<name>", "<key>=<value>", ...]` with every option except
/// `'connector'`, sorted by key.
pub fn explain_options(connector: &str, options: &BTreeMap<String, String>) -> Vec<String> {
    std::iter::once(format!("{CONNECTOR}={connector}"))
        .chain(
            options
                .iter()
                .filter(|(k, _)| k.as_str() != CONNECTOR)
                .map(|(k, v)| format!("{k}={v}")),
        )
        .collect()
}

/// A generator narrowed to `columns` of `schema` (projection pushdown): the
/// narrower schema, and `explain` with a `columns: a, b` line added.
pub fn narrowed(
    schema: &SchemaRef,
    explain: &[String],
    columns: &[usize],
) -> Result<(SchemaRef, Vec<String>), EngineError> {
    let schema = Arc::new(schema.project(columns)?);
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let mut explain = explain.to_vec();
    explain.push(format!("columns: {}", names.join(", ")));
    Ok((schema, explain))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connector_first_then_sorted_options() {
        let options: BTreeMap<String, String> = [
            ("path", "data/payments.csv"),
            ("connector", "filesystem"),
            ("format", "csv"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            explain_options("filesystem", &options),
            vec![
                "connector=filesystem",
                "format=csv",
                "path=data/payments.csv"
            ]
        );
    }
}
