//! The columns of the three Nexmark tables, matched by name (case-insensitive)
//! against a table's schema: any subset, in any order.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use watershed_engine::EngineError;

use super::config::EventKind;
use crate::format::types::sql_type_name;

/// One generated column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NexmarkColumn {
    /// person `id`, auction `id`.
    Id,
    /// person `name`.
    Name,
    /// person `emailAddress`.
    EmailAddress,
    /// person `creditCard`.
    CreditCard,
    /// person `city`.
    City,
    /// person `state`.
    State,
    /// auction `itemName`.
    ItemName,
    /// auction `description`.
    Description,
    /// auction `initialBid`.
    InitialBid,
    /// auction `reserve`.
    Reserve,
    /// auction `expires`.
    Expires,
    /// auction `seller`.
    Seller,
    /// auction `category`.
    Category,
    /// bid `auction`.
    Auction,
    /// bid `bidder`.
    Bidder,
    /// bid `price`.
    Price,
    /// bid `channel`.
    Channel,
    /// bid `url`.
    Url,
    /// every kind's `dateTime`: the event time.
    DateTime,
    /// every kind's `extra`: padding to the kind's average size.
    Extra,
}

/// The columns of `kind`, with their names and SQL types, in the order of the
/// Nexmark repository's views.
pub fn columns_of(kind: EventKind) -> &'static [(&'static str, NexmarkColumn, ColumnType)] {
    use ColumnType::*;
    use NexmarkColumn::*;
    match kind {
        EventKind::Person => &[
            ("id", Id, Bigint),
            ("name", Name, Text),
            ("emailAddress", EmailAddress, Text),
            ("creditCard", CreditCard, Text),
            ("city", City, Text),
            ("state", State, Text),
            ("dateTime", DateTime, Timestamp),
            ("extra", Extra, Text),
        ],
        EventKind::Auction => &[
            ("id", Id, Bigint),
            ("itemName", ItemName, Text),
            ("description", Description, Text),
            ("initialBid", InitialBid, Bigint),
            ("reserve", Reserve, Bigint),
            ("dateTime", DateTime, Timestamp),
            ("expires", Expires, Timestamp),
            ("seller", Seller, Bigint),
            ("category", Category, Bigint),
            ("extra", Extra, Text),
        ],
        EventKind::Bid => &[
            ("auction", Auction, Bigint),
            ("bidder", Bidder, Bigint),
            ("price", Price, Bigint),
            ("channel", Channel, Text),
            ("url", Url, Text),
            ("dateTime", DateTime, Timestamp),
            ("extra", Extra, Text),
        ],
    }
}

/// The SQL type of a generated column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// `BIGINT`.
    Bigint,
    /// `STRING` / `VARCHAR`.
    Text,
    /// `TIMESTAMP(3)`.
    Timestamp,
}

impl ColumnType {
    fn accepts(self, data_type: &DataType) -> bool {
        match self {
            ColumnType::Bigint => data_type == &DataType::Int64,
            ColumnType::Text => data_type == &DataType::Utf8,
            ColumnType::Timestamp => {
                matches!(data_type, DataType::Timestamp(TimeUnit::Millisecond, _))
            }
        }
    }

    fn data_type(self) -> DataType {
        match self {
            ColumnType::Bigint => DataType::Int64,
            ColumnType::Text => DataType::Utf8,
            ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Millisecond, None),
        }
    }

    fn sql(self) -> &'static str {
        match self {
            ColumnType::Bigint => "BIGINT",
            ColumnType::Text => "STRING",
            ColumnType::Timestamp => "TIMESTAMP(3)",
        }
    }
}

/// The full schema of `kind`'s table.
pub fn nexmark_schema(kind: EventKind) -> SchemaRef {
    Arc::new(Schema::new(
        columns_of(kind)
            .iter()
            .map(|(name, _, t)| Field::new(*name, t.data_type(), true))
            .collect::<Vec<_>>(),
    ))
}

/// Maps every column of `schema` to a generated column of `kind`, or explains
/// what is wrong, naming the table.
pub fn resolve_columns(
    table: &str,
    kind: EventKind,
    schema: &Schema,
) -> Result<Vec<NexmarkColumn>, EngineError> {
    let known = columns_of(kind);
    schema
        .fields()
        .iter()
        .map(|field| {
            let Some((_, column, column_type)) = known
                .iter()
                .find(|(name, _, _)| name.eq_ignore_ascii_case(field.name()))
            else {
                let supported: Vec<String> = known
                    .iter()
                    .map(|(name, _, t)| format!("{name} {}", t.sql()))
                    .collect();
                return Err(EngineError::Config(format!(
                    "table '{table}': column '{}' is not a column of Nexmark's {} table; \
                     supported columns: {}",
                    field.name(),
                    kind.name(),
                    supported.join(", ")
                )));
            };
            if !column_type.accepts(field.data_type()) {
                return Err(EngineError::Config(format!(
                    "table '{table}': column '{}' has type {}; the Nexmark generator makes it {}",
                    field.name(),
                    sql_type_name(field.data_type()),
                    column_type.sql()
                )));
            }
            Ok(*column)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_subsets_case_insensitively_and_names_bad_columns() {
        let schema = Schema::new(vec![
            Field::new(
                "DATETIME",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                true,
            ),
            Field::new("price", DataType::Int64, true),
        ]);
        assert_eq!(
            resolve_columns("bid", EventKind::Bid, &schema).unwrap(),
            [NexmarkColumn::DateTime, NexmarkColumn::Price]
        );
        assert_eq!(
            resolve_columns("p", EventKind::Person, &nexmark_schema(EventKind::Person))
                .unwrap()
                .len(),
            8
        );
        let schema = Schema::new(vec![Field::new("seller", DataType::Int64, true)]);
        let err = resolve_columns("bid", EventKind::Bid, &schema)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a column of Nexmark's bid table"), "{err}");
        let schema = Schema::new(vec![Field::new("price", DataType::Float64, true)]);
        let err = resolve_columns("bid", EventKind::Bid, &schema)
            .unwrap_err()
            .to_string();
        assert!(err.contains("makes it BIGINT"), "{err}");
    }
}
