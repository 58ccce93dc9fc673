//! Rows into Kafka messages: the value in the table's format and, with a key,
//! the key columns in the key format; for `upsert-kafka`, changes into upserts
//! and tombstones.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use watershed_engine::EngineError;
use watershed_engine::changelog::{RowKind, row_kind_column, row_kinds};

use super::{KafkaConfig, MessageFormat};
use crate::format::BatchEncoder;

/// One message to send: its key and value (`None`: absent, as in a
/// tombstone's value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The key bytes, when the table has key columns.
    pub key: Option<Vec<u8>>,
    /// The value bytes; `None` for a tombstone or a NULL raw value.
    pub value: Option<Vec<u8>>,
}

/// Encodes one sink instance's rows as messages.
pub struct MessageEncoder {
    value_encoder: Option<Box<dyn BatchEncoder>>,
    key_encoder: Option<Box<dyn BatchEncoder>>,
    /// Positions of the key columns in the table's schema.
    key_columns: Option<Vec<usize>>,
    upsert: bool,
}

impl MessageEncoder {
    /// An encoder of rows of `schema` (the table's columns) per `config`;
    /// `key_columns` are the key's positions in `schema`.
    pub fn new(
        config: &KafkaConfig,
        schema: &SchemaRef,
        key_columns: &[usize],
    ) -> Result<Self, EngineError> {
        let encoder = |format: &MessageFormat, schema: &SchemaRef| match format {
            MessageFormat::Text(text) => text.encoder(schema).map(Some),
            MessageFormat::Raw => Ok(None),
        };
        let key_encoder = match &config.key {
            Some((format, _)) => encoder(format, &Arc::new(schema.project(key_columns)?))?,
            None => None,
        };
        Ok(MessageEncoder {
            value_encoder: encoder(&config.format, schema)?,
            key_encoder,
            key_columns: config.key.as_ref().map(|_| key_columns.to_vec()),
            upsert: config.upsert,
        })
    }

    /// The messages of `batch`'s rows, in order. A changelog batch (with
    /// `__row_kind`) is written as upserts: an insert or update-after is the
    /// row, a delete is a tombstone, an update-before is not written.
    pub fn encode(&mut self, batch: &RecordBatch) -> Result<Vec<Message>, EngineError> {
        let (data, kinds) = match row_kind_column(batch.schema_ref()) {
            Some(position) => {
                let kinds = row_kinds(batch)?;
                let columns: Vec<usize> = (0..batch.num_columns())
                    .filter(|c| *c != position)
                    .collect();
                (batch.project(&columns)?, Some(kinds))
            }
            None => (batch.clone(), None),
        };
        let keys = match &self.key_columns {
            Some(columns) => Some(data.project(columns)?),
            None => None,
        };
        let mut messages = Vec::with_capacity(data.num_rows());
        for row in 0..data.num_rows() {
            let kind = kinds.as_ref().map_or(RowKind::Insert, |k| k[row]);
            if kind == RowKind::UpdateBefore && self.upsert {
                continue;
            }
            let key = match &keys {
                Some(keys) => row_bytes(&keys.slice(row, 1), self.key_encoder.as_mut())?,
                None => None,
            };
            let value = if kind == RowKind::Delete && self.upsert {
                None
            } else {
                row_bytes(&data.slice(row, 1), self.value_encoder.as_mut())?
            };
            messages.push(Message { key, value });
        }
        Ok(messages)
    }
}

/// One row's bytes: the encoder's line without its line break, or the single
/// raw column (`None` when it is NULL).
fn row_bytes(
    row: &RecordBatch,
    encoder: Option<&mut Box<dyn BatchEncoder>>,
) -> Result<Option<Vec<u8>>, EngineError> {
    let mut out = Vec::new();
    match encoder {
        Some(encoder) => {
            encoder.encode(row, &mut out)?;
            while out.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                out.pop();
            }
        }
        None => {
            let column = row.column(0);
            if column.is_null(0) {
                return Ok(None);
            }
            match column.data_type() {
                DataType::Utf8 => {
                    out.extend_from_slice(column.as_string::<i32>().value(0).as_bytes())
                }
                DataType::Binary => out.extend_from_slice(column.as_binary::<i32>().value(0)),
                other => {
                    return Err(EngineError::Config(format!(
                        "'raw' format needs a STRING or BYTES column, not {other}"
                    )));
                }
            }
        }
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use watershed_engine::changelog::append_row_kind;

    use super::*;
    use crate::options::TableOptions;

    fn encoder(connector: &str, extra: &[(&str, &str)], primary_key: &[&str]) -> MessageEncoder {
        let mut options: BTreeMap<String, String> = [
            ("connector", connector),
            ("topic", "balances"),
            ("properties.bootstrap.servers", "127.0.0.1:9"),
        ]
        .into_iter()
        .chain(extra.iter().copied())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        options.insert("value.format".into(), "csv".into());
        let key: Vec<String> = primary_key.iter().map(|k| k.to_string()).collect();
        let config = KafkaConfig::from_options(&TableOptions::new("t", &options), &key).unwrap();
        MessageEncoder::new(&config, &schema(), &[0]).unwrap()
    }

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("account", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]))
    }

    fn rows(ids: &[i64], names: &[Option<&str>]) -> RecordBatch {
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int64Array::from(ids.to_vec())),
                Arc::new(StringArray::from(names.to_vec())),
            ],
        )
        .unwrap()
    }

    fn text(bytes: &Option<Vec<u8>>) -> Option<String> {
        bytes
            .as_ref()
            .map(|b| String::from_utf8(b.clone()).unwrap())
    }

    #[test]
    fn upserts_carry_the_row_deletes_are_tombstones_and_update_befores_are_dropped() {
        use RowKind::*;
        let mut encoder = encoder("upsert-kafka", &[("key.format", "json")], &["account"]);
        let changes = append_row_kind(
            &rows(
                &[1, 1, 1, 2, 1],
                &[Some("a"), Some("a"), Some("b"), Some("c"), Some("b")],
            ),
            &[Insert, UpdateBefore, UpdateAfter, Insert, Delete],
        )
        .unwrap();
        let messages: Vec<(Option<String>, Option<String>)> = encoder
            .encode(&changes)
            .unwrap()
            .iter()
            .map(|m| (text(&m.key), text(&m.value)))
            .collect();
        let key = |k: &str| Some(format!("{{\"account\":{k}}}"));
        assert_eq!(
            messages,
            [
                (key("1"), Some("1,a".to_string())),
                (key("1"), Some("1,b".to_string())),
                (key("2"), Some("2,c".to_string())),
                (key("1"), None),
            ]
        );
    }

    #[test]
    fn append_rows_are_values_with_keys_from_the_key_fields() {
        let mut encoder = encoder(
            "kafka",
            &[("key.format", "csv"), ("key.fields", "account")],
            &[],
        );
        let messages = encoder.encode(&rows(&[7, 8], &[Some("x"), None])).unwrap();
        let texts: Vec<_> = messages
            .iter()
            .map(|m| (text(&m.key), text(&m.value)))
            .collect();
        assert_eq!(
            texts,
            [
                (Some("7".to_string()), Some("7,x".to_string())),
                (Some("8".to_string()), Some("8,".to_string())),
            ]
        );
    }
}
