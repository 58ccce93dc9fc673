//! The columns the payments generator can produce, matched by name
//! (case-insensitive) against a table's schema.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use watershed_engine::EngineError;

use crate::format::types::sql_type_name;

/// One generated column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentColumn {
    /// `txn_id BIGINT`: the 0-based row index.
    TxnId,
    /// `event_time TIMESTAMP(3)`, out of order within the configured bound.
    EventTime {
        /// Time zone annotation of the table's column, kept as declared.
        tz: Option<Arc<str>>,
    },
    /// `card_id BIGINT`: skewed, 80% of rows on 20% of the cards.
    CardId,
    /// `account_id BIGINT`: `card_id % accounts`.
    AccountId,
    /// `merchant_id BIGINT`: uniform.
    MerchantId,
    /// `mcc STRING`: the merchant's category code (fixed per merchant).
    Mcc,
    /// `country STRING`: mostly the card's home country.
    Country,
    /// `amount DECIMAL(p, s)`: positive, log-normal-ish, occasionally large.
    Amount {
        /// Column precision.
        precision: u8,
        /// Column scale.
        scale: i8,
    },
    /// `currency STRING`: the country's currency.
    Currency,
    /// `status STRING`: `APPROVED`, `DECLINED` or `TIMEOUT`.
    Status,
}

/// Names and SQL types of the supported columns, for error messages.
pub const SUPPORTED_COLUMNS: &str = "txn_id BIGINT, event_time TIMESTAMP(3), card_id BIGINT, \
     account_id BIGINT, merchant_id BIGINT, mcc STRING, country STRING, amount DECIMAL(p, s) \
     with p - s >= 5, currency STRING, status STRING";

/// The full 10-column schema, with `amount DECIMAL(18, 2)`.
pub fn payments_schema() -> SchemaRef {
    let column = |name: &str, data_type: DataType| Field::new(name, data_type, true);
    Arc::new(Schema::new(vec![
        column("txn_id", DataType::Int64),
        column(
            "event_time",
            DataType::Timestamp(TimeUnit::Millisecond, None),
        ),
        column("card_id", DataType::Int64),
        column("account_id", DataType::Int64),
        column("merchant_id", DataType::Int64),
        column("mcc", DataType::Utf8),
        column("country", DataType::Utf8),
        column("amount", DataType::Decimal128(18, 2)),
        column("currency", DataType::Utf8),
        column("status", DataType::Utf8),
    ]))
}

/// Maps every column of `schema` to a generated column, or explains what is
/// wrong, naming the table.
pub fn resolve_columns(table: &str, schema: &Schema) -> Result<Vec<PaymentColumn>, EngineError> {
    schema
        .fields()
        .iter()
        .map(|field| {
            let name = field.name().to_ascii_lowercase();
            let data_type = field.data_type();
            let column = match (name.as_str(), data_type) {
                ("txn_id", DataType::Int64) => Some(PaymentColumn::TxnId),
                ("event_time", DataType::Timestamp(TimeUnit::Millisecond, tz)) => {
                    Some(PaymentColumn::EventTime { tz: tz.clone() })
                }
                ("card_id", DataType::Int64) => Some(PaymentColumn::CardId),
                ("account_id", DataType::Int64) => Some(PaymentColumn::AccountId),
                ("merchant_id", DataType::Int64) => Some(PaymentColumn::MerchantId),
                ("mcc", DataType::Utf8) => Some(PaymentColumn::Mcc),
                ("country", DataType::Utf8) => Some(PaymentColumn::Country),
                ("amount", DataType::Decimal128(precision, scale))
                    if *scale >= 0 && i16::from(*precision) - i16::from(*scale) >= 5 =>
                {
                    Some(PaymentColumn::Amount {
                        precision: *precision,
                        scale: *scale,
                    })
                }
                ("currency", DataType::Utf8) => Some(PaymentColumn::Currency),
                ("status", DataType::Utf8) => Some(PaymentColumn::Status),
                _ => None,
            };
            column.ok_or_else(|| {
                let known = [
                    "txn_id",
                    "event_time",
                    "card_id",
                    "account_id",
                    "merchant_id",
                    "mcc",
                    "country",
                    "amount",
                    "currency",
                    "status",
                ]
                .contains(&name.as_str());
                let problem = if known {
                    format!(
                        "column '{}' has type {} which the payments generator cannot produce",
                        field.name(),
                        sql_type_name(data_type)
                    )
                } else {
                    format!("column '{}' is not a payments column", field.name())
                };
                EngineError::Config(format!(
                    "table '{table}': {problem}; supported columns: {SUPPORTED_COLUMNS}"
                ))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_any_subset_in_any_order_case_insensitively() {
        let schema = Schema::new(vec![
            Field::new("Amount", DataType::Decimal128(10, 3), true),
            Field::new("CARD_ID", DataType::Int64, true),
        ]);
        assert_eq!(
            resolve_columns("t", &schema).unwrap(),
            vec![
                PaymentColumn::Amount {
                    precision: 10,
                    scale: 3
                },
                PaymentColumn::CardId
            ]
        );
        assert_eq!(resolve_columns("t", &payments_schema()).unwrap().len(), 10);
    }

    #[test]
    fn unknown_columns_and_wrong_types_are_config_errors() {
        let schema = Schema::new(vec![Field::new("iban", DataType::Utf8, true)]);
        let err = resolve_columns("t", &schema).unwrap_err().to_string();
        assert!(
            err.starts_with("table 't': column 'iban' is not a payments column; supported columns: txn_id BIGINT"),
            "{err}"
        );
        let schema = Schema::new(vec![Field::new("amount", DataType::Float64, true)]);
        let err = resolve_columns("t", &schema).unwrap_err().to_string();
        assert!(err.contains("column 'amount' has type DOUBLE"), "{err}");
        let schema = Schema::new(vec![Field::new("amount", DataType::Decimal128(5, 2), true)]);
        assert!(resolve_columns("t", &schema).is_err());
    }
}
