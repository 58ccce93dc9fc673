//! [`DefaultConnectors`]: the connector registry that turns a table's
//! `'connector'` option into a source or sink factory.
//!
//! | connector    | source | sink |
//! |--------------|--------|------|
//! | `filesystem` | yes    | yes  |
//! | `kafka`      | yes    | yes  |
//! | `upsert-kafka` | no (changelog sources are not supported yet) | yes |
//! | `payments`   | yes    | no   |
//! | `nexmark`    | yes    | no   |
//! | `memory`     | yes    | yes  |
//! | `print`      | no     | yes  |
//! | `blackhole`  | no     | yes  |
//!
//! `memory` tables are registered from Rust (the embedded API): batches with
//! [`DefaultConnectors::register_memory_table`], result sinks with
//! [`DefaultConnectors::register_memory_sink`]; a table with
//! `'connector' = 'memory'` is looked up by name (exactly, else ignoring ASCII
//! case).

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use watershed_engine::EngineError;
use watershed_engine::connector::{ConnectorRegistry, TableSpec};
use watershed_engine::sink::SinkFactory;
use watershed_engine::source::SourceFactory;

use crate::blackhole::{self, BlackholeSinkFactory};
use crate::filesystem::{self, FileSinkFactory, FileSourceFactory};
use crate::kafka::{self, KafkaSinkFactory, KafkaSourceFactory};
use crate::memory::{self, MemorySourceFactory, StreamSourceFactory};
use crate::nexmark::{self, NexmarkSourceFactory};
use crate::options::{CONNECTOR, TableOptions};
use crate::payments::{self, PaymentsSourceFactory};
use crate::print::{self, PrintSinkFactory};

/// The connectors this registry knows, for error messages.
pub const SUPPORTED_CONNECTORS: &str =
    "filesystem, kafka, upsert-kafka, payments, nexmark, memory, print, blackhole";

/// The built-in connectors plus the in-memory tables and sinks registered on it.
#[derive(Default)]
pub struct DefaultConnectors {
    memory_tables: RwLock<BTreeMap<String, Arc<MemorySourceFactory>>>,
    memory_streams: RwLock<BTreeMap<String, Arc<StreamSourceFactory>>>,
    memory_sinks: RwLock<BTreeMap<String, Arc<dyn SinkFactory>>>,
}

impl std::fmt::Debug for DefaultConnectors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tables: Vec<String> = self
            .memory_tables
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        let streams: Vec<String> = self
            .memory_streams
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        let sinks: Vec<String> = self
            .memory_sinks
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        f.debug_struct("DefaultConnectors")
            .field("memory_tables", &tables)
            .field("memory_streams", &streams)
            .field("memory_sinks", &sinks)
            .finish()
    }
}

/// Looks `name` up exactly, else ignoring ASCII case when that is unambiguous.
fn lookup<'m, V>(map: &'m BTreeMap<String, V>, name: &str) -> Option<&'m V> {
    map.get(name).or_else(|| {
        let mut matches = map
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v);
        match (matches.next(), matches.next()) {
            (Some(v), None) => Some(v),
            _ => None,
        }
    })
}

impl DefaultConnectors {
    /// A registry with no in-memory tables or sinks.
    pub fn new() -> Self {
        DefaultConnectors::default()
    }

    /// Registers (or replaces) the batches read by the `memory` table `name`.
    /// Fails when a batch does not have `schema`'s column names and types.
    pub fn register_memory_table(
        &self,
        name: impl Into<String>,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    ) -> Result<(), EngineError> {
        let name = name.into();
        let factory = MemorySourceFactory::new(schema, batches)
            .map_err(|e| EngineError::Config(format!("table '{name}': {e}")))?;
        self.memory_tables
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name, Arc::new(factory));
        Ok(())
    }

    /// Removes an in-memory table or stream; true if it existed.
    pub fn deregister_memory_table(&self, name: &str) -> bool {
        let table = self
            .memory_tables
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name)
            .is_some();
        let stream = self
            .memory_streams
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name)
            .is_some();
        table || stream
    }

    /// Registers (or replaces) the live stream read by the `memory` table
    /// `name`: an unbounded source fed through `receiver`, ending when every
    /// sender is dropped (see [`StreamSourceFactory`]).
    pub fn register_memory_stream(
        &self,
        name: impl Into<String>,
        schema: SchemaRef,
        receiver: tokio::sync::mpsc::Receiver<RecordBatch>,
    ) {
        let name = name.into();
        let factory = StreamSourceFactory::new(name.clone(), schema, receiver);
        self.memory_streams
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name, Arc::new(factory));
    }

    /// Registers (or replaces) the sink used when the `memory` table `name` is
    /// written, e.g. a [`crate::memory::ChannelSinkFactory`].
    pub fn register_memory_sink(&self, name: impl Into<String>, factory: Arc<dyn SinkFactory>) {
        self.memory_sinks
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.into(), factory);
    }

    /// Removes an in-memory sink; true if it existed.
    pub fn deregister_memory_sink(&self, name: &str) -> bool {
        self.memory_sinks
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name)
            .is_some()
    }

    fn memory_source(&self, table: &TableSpec) -> Result<Arc<dyn SourceFactory>, EngineError> {
        TableOptions::from_spec(table).check_known(memory::IDENTIFIER, &[CONNECTOR])?;
        if let Some(stream) = lookup(
            &self
                .memory_streams
                .read()
                .unwrap_or_else(PoisonError::into_inner),
            &table.name,
        ) {
            if stream.schema() != table.schema {
                return Err(EngineError::Config(format!(
                    "table '{}': the registered stream's schema ({:?}) differs from the \
                     table's ({:?})",
                    table.name,
                    stream.schema(),
                    table.schema
                )));
            }
            return Ok(stream.clone());
        }
        let tables = self
            .memory_tables
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let registered = lookup(&tables, &table.name).ok_or_else(|| {
            EngineError::Config(format!(
                "table '{}' uses the 'memory' connector but no in-memory table of that name \
                 is registered",
                table.name
            ))
        })?;
        if registered.schema() == table.schema {
            return Ok(registered.clone());
        }
        let conformed =
            MemorySourceFactory::new(table.schema.clone(), registered.batches().to_vec())
                .map_err(|e| EngineError::Config(format!("table '{}': {e}", table.name)))?;
        Ok(Arc::new(conformed))
    }

    fn memory_sink(&self, table: &TableSpec) -> Result<Arc<dyn SinkFactory>, EngineError> {
        TableOptions::from_spec(table).check_known(memory::IDENTIFIER, &[CONNECTOR])?;
        let sinks = self
            .memory_sinks
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        lookup(&sinks, &table.name).cloned().ok_or_else(|| {
            EngineError::Config(format!(
                "table '{}' uses the 'memory' connector but no in-memory sink of that name \
                 is registered",
                table.name
            ))
        })
    }
}

/// The table's connector name, lower-cased.
fn connector_of(table: &TableSpec) -> Result<String, EngineError> {
    match table.options.get(CONNECTOR) {
        Some(name) => Ok(name.trim().to_ascii_lowercase()),
        None => Err(EngineError::Config(format!(
            "table '{}' has no '{CONNECTOR}' option; supported: {SUPPORTED_CONNECTORS}",
            table.name
        ))),
    }
}

fn unknown_connector(table: &TableSpec, name: &str) -> EngineError {
    EngineError::Config(format!(
        "table '{}': unknown connector '{name}'; supported: {SUPPORTED_CONNECTORS}",
        table.name
    ))
}

impl ConnectorRegistry for DefaultConnectors {
    fn source(&self, table: &TableSpec) -> Result<Arc<dyn SourceFactory>, EngineError> {
        let name = connector_of(table)?;
        match name.as_str() {
            filesystem::IDENTIFIER => Ok(Arc::new(FileSourceFactory::new(table)?)),
            kafka::IDENTIFIER => Ok(Arc::new(KafkaSourceFactory::new(table)?)),
            kafka::UPSERT_IDENTIFIER => Err(EngineError::Config(format!(
                "table '{}': reading an 'upsert-kafka' table (a changelog source) is not \
                 supported yet; read the topic with 'connector' = 'kafka' to see every message \
                 (a tombstone, whose value is empty, holds no row)",
                table.name
            ))),
            payments::IDENTIFIER => Ok(Arc::new(PaymentsSourceFactory::new(table)?)),
            nexmark::IDENTIFIER => Ok(Arc::new(NexmarkSourceFactory::new(table)?)),
            memory::IDENTIFIER => self.memory_source(table),
            print::IDENTIFIER | blackhole::IDENTIFIER => Err(EngineError::Config(format!(
                "table '{}': connector '{name}' can only be written to, not read from",
                table.name
            ))),
            _ => Err(unknown_connector(table, &name)),
        }
    }

    fn sink(&self, table: &TableSpec) -> Result<Arc<dyn SinkFactory>, EngineError> {
        let name = connector_of(table)?;
        match name.as_str() {
            filesystem::IDENTIFIER => Ok(Arc::new(FileSinkFactory::new(table)?)),
            kafka::IDENTIFIER | kafka::UPSERT_IDENTIFIER => {
                Ok(Arc::new(KafkaSinkFactory::new(table)?))
            }
            print::IDENTIFIER => Ok(Arc::new(PrintSinkFactory::new(table)?)),
            blackhole::IDENTIFIER => Ok(Arc::new(BlackholeSinkFactory::new(table)?)),
            memory::IDENTIFIER => self.memory_sink(table),
            payments::IDENTIFIER | nexmark::IDENTIFIER => Err(EngineError::Config(format!(
                "table '{}': connector '{name}' can only be read from, not written to",
                table.name
            ))),
            _ => Err(unknown_connector(table, &name)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::CollectSinkFactory;
    use crate::payments::payments_schema;
    use datafusion::arrow::array::{ArrayRef, Int64Array};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    fn spec(name: &str, schema: SchemaRef, pairs: &[(&str, &str)]) -> TableSpec {
        TableSpec {
            name: name.into(),
            schema,
            options: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            time_column: None,
            primary_key: Vec::new(),
        }
    }

    fn ids_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]))
    }

    #[test]
    fn dispatches_on_the_connector_option() {
        let r = DefaultConnectors::new();
        let payments = spec(
            "payments",
            payments_schema(),
            &[("connector", "payments"), ("number-of-rows", "10")],
        );
        assert!(r.source(&payments).unwrap().is_bounded());
        let err = r.sink(&payments).err().unwrap().to_string();
        assert_eq!(
            err,
            "table 'payments': connector 'payments' can only be read from, not written to"
        );
        let print = spec("out", ids_schema(), &[("connector", "print")]);
        assert_eq!(r.sink(&print).unwrap().explain(), vec!["connector=print"]);
        assert!(r.source(&print).is_err());
        let hole = spec("out", ids_schema(), &[("connector", "blackhole")]);
        assert!(r.sink(&hole).is_ok());
        let fs = spec(
            "f",
            ids_schema(),
            &[
                ("connector", "filesystem"),
                ("path", "x"),
                ("format", "csv"),
            ],
        );
        assert!(r.source(&fs).is_ok());
        assert!(r.sink(&fs).is_ok());
    }

    #[test]
    fn upsert_kafka_is_written_to_and_not_read_from() {
        let r = DefaultConnectors::new();
        let mut table = spec(
            "balances",
            ids_schema(),
            &[
                ("connector", "upsert-kafka"),
                ("topic", "balances"),
                ("properties.bootstrap.servers", "127.0.0.1:9"),
                ("key.format", "csv"),
                ("value.format", "json"),
            ],
        );
        let err = r.source(&table).err().unwrap().to_string();
        assert!(err.contains("reading an 'upsert-kafka' table"), "{err}");
        let err = r.sink(&table).err().unwrap().to_string();
        assert!(err.contains("needs a primary key"), "{err}");
        table.primary_key = vec!["id".into()];
        let sink = r.sink(&table).unwrap();
        assert!(sink.accepts_changelog());
    }

    #[test]
    fn missing_or_unknown_connector_lists_the_supported_ones() {
        let r = DefaultConnectors::new();
        let err = r
            .source(&spec("x", ids_schema(), &[]))
            .err()
            .unwrap()
            .to_string();
        assert_eq!(
            err,
            "table 'x' has no 'connector' option; supported: filesystem, kafka, upsert-kafka, payments, nexmark, memory, print, blackhole"
        );
        let err = r
            .sink(&spec("x", ids_schema(), &[("connector", "rabbitmq")]))
            .err()
            .unwrap()
            .to_string();
        assert_eq!(
            err,
            "table 'x': unknown connector 'rabbitmq'; supported: filesystem, kafka, upsert-kafka, payments, nexmark, memory, print, blackhole"
        );
    }

    #[test]
    fn memory_tables_and_sinks_are_looked_up_by_name() {
        let r = DefaultConnectors::new();
        let a: ArrayRef = Arc::new(Int64Array::from(vec![1, 2, 3]));
        let batch = RecordBatch::try_from_iter([("id", a)]).unwrap();
        r.register_memory_table("Events", ids_schema(), vec![batch])
            .unwrap();
        let table = spec("events", ids_schema(), &[("connector", "memory")]);
        let source = r.source(&table).unwrap();
        assert_eq!(
            source.explain(),
            vec!["connector=memory", "batches=1", "rows=3"]
        );
        let nullable_false = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
        assert!(
            r.source(&spec("events", nullable_false, &[("connector", "memory")]))
                .is_ok()
        );
        let other = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, true)]));
        assert!(
            r.source(&spec("events", other, &[("connector", "memory")]))
                .is_err()
        );
        assert!(r.sink(&table).is_err());
        r.register_memory_sink("events", Arc::new(CollectSinkFactory::new()));
        assert!(r.sink(&table).is_ok());
        assert!(r.deregister_memory_table("Events"));
        let err = r.source(&table).err().unwrap().to_string();
        assert!(err.contains("no in-memory table"), "{err}");
        assert!(r.deregister_memory_sink("events"));
        assert!(!r.deregister_memory_sink("events"));
    }
}
