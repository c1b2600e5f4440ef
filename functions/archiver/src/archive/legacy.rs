//! Files of format 3 (and, as its prefixes, 1 and 2), as the archiver wrote them before
//! format 4 shredded `context`, `payload` and `metrics`: whole canonical JSON text and a map of
//! metrics. Nothing writes them any more but the tests and the `write-sample` example, which
//! check that such files still read back (restore, compaction, DuckDB, pyarrow, polars, Spark).

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Builder, MapBuilder, MapFieldNames, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use eis_contract::Event;

use parquet::arrow::ArrowWriter;
use parquet::file::metadata::KeyValue;

use crate::archive::event_parquet::{self, EventColumns};
use crate::archive::format::FormatError;
use crate::archive::shred_columns::{metric_entries, metric_keys, metric_values};

/// The columns of format 3, in its order; formats 1 and 2 are its first 11 and 13.
pub const FORMAT_THREE: [&str; 15] = [
    "event_id",
    "event_type",
    "unit_type",
    "unit_id",
    "experiments",
    "context",
    "metrics",
    "payload",
    "timestamp",
    "received_at",
    "flags",
    "sent_at",
    "adjusted_timestamp",
    "schema_version",
    "schema_violation",
];

/// Columns of format 1 and 2: the first this many of [`FORMAT_THREE`].
pub const FORMAT_ONE_COLUMNS: usize = 11;
pub const FORMAT_TWO_COLUMNS: usize = 13;

/// `events` as a batch of format 3, or of its first `columns` columns (1: 11, 2: 13).
pub fn batch(events: &[Event], columns: usize) -> Result<RecordBatch, FormatError> {
    let mut current = EventColumns::new();
    for e in events {
        current.push(e)?;
    }
    let current = current.finish()?;
    let mut metrics = MapBuilder::new(
        Some(MapFieldNames {
            entry: "entries".into(),
            key: "keys".into(),
            value: "values".into(),
        }),
        arrow::array::StringBuilder::new(),
        Float64Builder::new(),
    )
    .with_keys_field(metric_keys())
    .with_values_field(metric_values());
    for e in events {
        for (name, value) in &e.metrics {
            metrics.keys().append_value(name);
            metrics.values().append_value(*value);
        }
        metrics.append(true)?;
    }
    let text = |f: fn(&Event) -> &str| -> ArrayRef {
        Arc::new(events.iter().map(|e| Some(f(e))).collect::<StringArray>())
    };
    let (mut fields, mut arrays) = (Vec::new(), Vec::new());
    for name in FORMAT_THREE.iter().take(columns) {
        let (field, array): (Field, ArrayRef) = match *name {
            "context" => (
                Field::new("context", DataType::Utf8, false),
                text(|e| e.context.as_str()),
            ),
            "payload" => (
                Field::new("payload", DataType::Utf8, false),
                text(|e| e.payload.as_str()),
            ),
            "metrics" => (
                Field::new("metrics", DataType::Map(metric_entries(), false), false),
                Arc::new(metrics.finish()),
            ),
            other => {
                let schema = current.schema();
                let (_, field) = schema
                    .column_with_name(other)
                    .ok_or_else(|| crate::archive::columns::invalid("format 3", other))?;
                let array = current
                    .column_by_name(other)
                    .ok_or_else(|| crate::archive::columns::invalid("format 3", other))?;
                (field.clone(), Arc::clone(array))
            }
        };
        fields.push(field);
        arrays.push(array);
    }
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?)
}

/// `events` as one file of format `version` (1, 2 or 3: its columns, its version in the
/// key-value metadata, the archive's other writer settings).
pub fn encode(events: &[Event], version: u8) -> Result<Vec<u8>, FormatError> {
    let columns = match version {
        1 => FORMAT_ONE_COLUMNS,
        2 => FORMAT_TWO_COLUMNS,
        _ => FORMAT_THREE.len(),
    };
    let batch = batch(events, columns)?;
    let properties = event_parquet::writer_properties()?
        .into_builder()
        .set_key_value_metadata(Some(vec![KeyValue::new(
            event_parquet::FORMAT_VERSION_KEY.to_string(),
            version.min(3).to_string(),
        )]))
        .build();
    let mut writer = ArrowWriter::try_new(Vec::new(), batch.schema(), Some(properties))?;
    writer.write(&batch)?;
    Ok(writer.into_inner()?)
}
