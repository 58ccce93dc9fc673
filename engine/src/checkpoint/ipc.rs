//! State objects as Arrow IPC streams: operators snapshot their state as record
//! batches, which keeps snapshots columnar and readable by any Arrow tool.

use bytes::Bytes;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::arrow::record_batch::RecordBatch;

use crate::error::Result;

/// Encodes batches of one schema as an Arrow IPC stream.
pub fn encode_batches(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Bytes> {
    let mut writer = StreamWriter::try_new(Vec::new(), schema)?;
    for batch in batches {
        writer.write(batch)?;
    }
    writer.finish()?;
    Ok(Bytes::from(writer.into_inner()?))
}

/// Decodes an Arrow IPC stream written by [`encode_batches`].
pub fn decode_batches(data: Bytes) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let reader = StreamReader::try_new(std::io::Cursor::new(data), None)?;
    let schema = reader.schema();
    let batches = reader.collect::<std::result::Result<Vec<_>, _>>()?;
    Ok((schema, batches))
}

/// A state as a restore reads it back: written as an Arrow IPC stream and
/// decoded again (for operators' snapshot and restore tests).
#[cfg(test)]
pub(crate) fn round_trip(
    state: &crate::checkpoint::OperatorState,
) -> crate::checkpoint::OperatorState {
    let data = encode_batches(&state.schema, &state.batches).expect("encode state");
    let (schema, batches) = decode_batches(data).expect("decode state");
    crate::checkpoint::OperatorState { schema, batches }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    #[test]
    fn batches_round_trip_and_garbage_is_an_error() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("v", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 3])),
                Arc::new(StringArray::from(vec![Some("a"), None, Some("c")])),
            ],
        )
        .unwrap();
        let data = encode_batches(&schema, &[batch.clone(), batch.slice(1, 2)]).unwrap();
        let (read_schema, read) = decode_batches(data).unwrap();
        assert_eq!(read_schema, schema);
        assert_eq!(read, vec![batch.clone(), batch.slice(1, 2)]);

        assert!(decode_batches(Bytes::from_static(b"not arrow")).is_err());
    }
}
