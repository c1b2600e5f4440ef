//! The archive's Parquet format: one schema, the column builders that fill it event by event,
//! and the writer settings. Pure: no I/O. `docs/archive.md` describes the same format for
//! the people who query it.
//!
//! Events are appended to Arrow builders as they arrive, so a buffered event costs about its
//! column bytes (no per-event allocations are kept), and a full buffer turns into a
//! `RecordBatch` without copying.
//! (Over 400 lines with its unit tests, which read every column back and read files of every
//! older format; the code is ~390.)

use std::sync::Arc;

pub use crate::archive::format::{FormatError, ROW_GROUP_ROWS};
use crate::archive::shred_columns::{self, ShredBuilders};
use arrow::array::{
    ArrayRef, ListArray, ListBuilder, RecordBatch, StringBuilder, StringDictionaryBuilder,
    StructArray, TimestampMicrosecondBuilder,
};
use arrow::buffer::{OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, Field, FieldRef, Fields, Int32Type, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, Utc};
use eis_contract::Event;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{BloomFilterPosition, EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

/// Written into every file's key-value metadata; bumped when the columns change. Version 2
/// added `sent_at` and `adjusted_timestamp`, version 3 `schema_version` and
/// `schema_violation`; version 4 shredded `context`, `payload` and `metrics` into typed
/// columns and remainders (`shred`). [`upgrade`] reads the rows of versions 1 to 3 as
/// version 4's.
pub const FORMAT_VERSION: &str = "4";
pub const FORMAT_VERSION_KEY: &str = "eis.archive.format_version";

/// False positives of the `unit_id` bloom filter: the share of files without a unit that
/// erasure still reads whole.
pub const UNIT_BLOOM_FPP: f64 = 0.01;

/// zstd level 3: most of zstd's ratio at a fraction of the CPU of higher levels, which
/// matters on a Lambda with less than one vCPU.
const ZSTD_LEVEL: i32 = 3;

fn utc_micros() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn experiment_fields() -> Fields {
    Fields::from(vec![
        Field::new("experiment_id", DataType::Utf8, false),
        Field::new("variant_id", DataType::Utf8, false),
    ])
}

fn experiment_item() -> FieldRef {
    Arc::new(Field::new(
        "item",
        DataType::Struct(experiment_fields()),
        false,
    ))
}

fn flag_item() -> FieldRef {
    Arc::new(Field::new("item", DataType::Utf8, false))
}

fn dictionary_text() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

/// The archive schema: the one definition used by the writer and the tests. Nothing is
/// nullable (empty lists and `{}` where the request had none) but `sent_at`,
/// `adjusted_timestamp` (null for events whose request did not say when it was sent), the
/// plan's two columns (null for events the tracking plan did not check, or did not refuse)
/// and the typed columns of shredded keys (null where the event has no such key, or its value
/// stayed in the remainder; `shred_columns::fields`).
/// The nested fields are the same values the builders below are given, so the finished
/// arrays carry exactly these types (`RecordBatch::try_new` checks it).
pub fn schema() -> SchemaRef {
    let mut fields = vec![
        Field::new("event_id", DataType::Utf8, false),
        Field::new("event_type", dictionary_text(), false),
        Field::new("unit_type", DataType::Utf8, false),
        Field::new("unit_id", DataType::Utf8, false),
        Field::new("experiments", DataType::List(experiment_item()), false),
        Field::new("timestamp", utc_micros(), false),
        Field::new("received_at", utc_micros(), false),
        Field::new("flags", DataType::List(flag_item()), false),
        Field::new("sent_at", utc_micros(), true),
        Field::new("adjusted_timestamp", utc_micros(), true),
        // A handful of versions across millions of rows: a dictionary, like `event_type`.
        Field::new("schema_version", dictionary_text(), true),
        Field::new("schema_violation", DataType::Utf8, true),
    ];
    fields.extend(shred_columns::fields());
    Arc::new(Schema::new(fields))
}

/// The columns of one future file, filled event by event.
pub struct EventColumns {
    event_id: StringBuilder,
    event_type: StringDictionaryBuilder<Int32Type>,
    unit_type: StringBuilder,
    unit_id: StringBuilder,
    experiment_ids: StringBuilder,
    variant_ids: StringBuilder,
    experiment_offsets: Vec<i32>,
    shredded: ShredBuilders,
    timestamp: TimestampMicrosecondBuilder,
    received_at: TimestampMicrosecondBuilder,
    flags: ListBuilder<StringBuilder>,
    sent_at: TimestampMicrosecondBuilder,
    adjusted_timestamp: TimestampMicrosecondBuilder,
    schema_version: StringDictionaryBuilder<Int32Type>,
    schema_violation: StringBuilder,
    rows: usize,
    bytes: usize,
    earliest_received: Option<DateTime<Utc>>,
}

impl Default for EventColumns {
    fn default() -> Self {
        Self::new()
    }
}

impl EventColumns {
    pub fn new() -> Self {
        Self {
            event_id: StringBuilder::new(),
            event_type: StringDictionaryBuilder::new(),
            unit_type: StringBuilder::new(),
            unit_id: StringBuilder::new(),
            experiment_ids: StringBuilder::new(),
            variant_ids: StringBuilder::new(),
            experiment_offsets: vec![0],
            shredded: ShredBuilders::new(),
            timestamp: TimestampMicrosecondBuilder::new().with_data_type(utc_micros()),
            received_at: TimestampMicrosecondBuilder::new().with_data_type(utc_micros()),
            flags: ListBuilder::new(StringBuilder::new()).with_field(flag_item()),
            sent_at: TimestampMicrosecondBuilder::new().with_data_type(utc_micros()),
            adjusted_timestamp: TimestampMicrosecondBuilder::new().with_data_type(utc_micros()),
            schema_version: StringDictionaryBuilder::new(),
            schema_violation: StringBuilder::new(),
            rows: 0,
            bytes: 0,
            earliest_received: None,
        }
    }

    /// Appends one event; returns the bytes it added to the columns (an estimate of the
    /// memory it holds: string bytes, 8 per number, 4 per offset).
    pub fn push(&mut self, event: &Event) -> Result<usize, FormatError> {
        // What can fail comes before the first append, so an error leaves the columns
        // consistent. (`ShredBuilders::append` only fails when the metrics map's keys and
        // values differ in number, and they are appended in pairs.)
        let experiments_start = self.experiment_offsets.last().copied().unwrap_or_default();
        let experiments_end = i32::try_from(event.experiments.len())
            .ok()
            .and_then(|n| experiments_start.checked_add(n))
            .ok_or(FormatError::Overflow)?;
        // The dictionaries' Int32 keys fit a column of at most i32::MAX rows: past this
        // check neither dictionary append fails, so none fails half-way through a row.
        if self.rows >= i32::MAX as usize {
            return Err(FormatError::Overflow);
        }
        self.event_type.append(&event.event_type)?;

        let mut uuid = uuid::Uuid::encode_buffer();
        self.event_id
            .append_value(event.event_id.hyphenated().encode_lower(&mut uuid));
        self.unit_type.append_value(&event.unit_type);
        self.unit_id.append_value(&event.unit_id);
        let mut bytes = 36 + event.event_type.len() + event.unit_type.len() + event.unit_id.len();

        for e in &event.experiments {
            self.experiment_ids
                .append_value(e.experiment_id.hyphenated().encode_lower(&mut uuid));
            self.variant_ids
                .append_value(e.variant_id.hyphenated().encode_lower(&mut uuid));
        }
        self.experiment_offsets.push(experiments_end);
        bytes += event.experiments.len() * (2 * 36 + 8);

        bytes += self.shredded.append(event)?;

        self.timestamp
            .append_value(event.timestamp.timestamp_micros());
        self.received_at
            .append_value(event.received_at.timestamp_micros());

        for flag in &event.flags {
            self.flags.values().append_value(flag.as_str());
            bytes += flag.as_str().len() + 4;
        }
        self.flags.append(true);
        let micros = |t: Option<DateTime<Utc>>| t.map(|t| t.timestamp_micros());
        self.sent_at.append_option(micros(event.sent_at));
        self.adjusted_timestamp
            .append_option(micros(event.adjusted_timestamp()));
        if let Some(version) = &event.schema_version {
            self.schema_version.append(version)?;
            bytes += version.len();
        } else {
            self.schema_version.append_null();
        }
        self.schema_violation
            .append_option(event.schema_violation.as_deref());
        bytes += event.schema_violation.as_deref().map_or(0, str::len);

        // Offsets of the variable-width columns and the four timestamps.
        bytes += 12 * 4 + 4 * 8;
        self.rows += 1;
        self.bytes += bytes;
        if self.earliest_received.is_none_or(|t| event.received_at < t) {
            self.earliest_received = Some(event.received_at);
        }
        Ok(bytes)
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Estimated bytes held (see [`EventColumns::push`]).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The earliest `received_at` of the rows: for the archive-lag metric.
    pub fn earliest_received(&self) -> Option<DateTime<Utc>> {
        self.earliest_received
    }

    /// The rows as one batch of [`schema`].
    pub fn finish(mut self) -> Result<RecordBatch, FormatError> {
        let experiments = StructArray::try_new(
            experiment_fields(),
            vec![
                Arc::new(self.experiment_ids.finish()) as ArrayRef,
                Arc::new(self.variant_ids.finish()),
            ],
            None,
        )?;
        // Monotonic by construction: each push appends the running total.
        let offsets = OffsetBuffer::new(ScalarBuffer::from(self.experiment_offsets));
        let experiments =
            ListArray::try_new(experiment_item(), offsets, Arc::new(experiments), None)?;
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(self.event_id.finish()),
            Arc::new(self.event_type.finish()),
            Arc::new(self.unit_type.finish()),
            Arc::new(self.unit_id.finish()),
            Arc::new(experiments),
            Arc::new(self.timestamp.finish()),
            Arc::new(self.received_at.finish()),
            Arc::new(self.flags.finish()),
            Arc::new(self.sent_at.finish()),
            Arc::new(self.adjusted_timestamp.finish()),
            Arc::new(self.schema_version.finish()),
            Arc::new(self.schema_violation.finish()),
        ];
        columns.extend(self.shredded.finish());
        Ok(RecordBatch::try_new(schema(), columns)?)
    }
}

/// Timestamps: DELTA_BINARY_PACKED (no dictionary). Rows of an hour are close in time, so
/// the deltas take a few bits where plain values take 8 bytes (bench: `timestamp` 441 kB →
/// under 1 kB for 100 000 events, docs/archive.md "Writer settings").
pub const DELTA_TIMESTAMPS: [&str; 4] =
    ["timestamp", "received_at", "sent_at", "adjusted_timestamp"];
/// Identifiers nearly every row has its own of: no dictionary (it would only be abandoned
/// half-way, after its pages were written) and DELTA_BYTE_ARRAY, which stores each value's
/// prefix shared with the previous one once (UUID v7s of one hour share their time prefix).
pub const DISTINCT_TEXT: [&str; 5] = [
    "event_id",
    "unit_id",
    "context_session_id",
    "payload_plan_id",
    "context_plan_id",
];
/// Continuous measures with as many values as rows: plain (no dictionary).
pub const DISTINCT_NUMBERS: [&str; 1] = ["metrics_latency_ms"];

/// zstd, statistics per page (min/max let engines skip row groups and pages by time or
/// type), 128 Ki-row row groups, the encodings above; a dictionary for every other column (the
/// writer's default: falls back to plain when the dictionary grows past 1 MiB). A bloom
/// filter on `unit_id`, at the end of the file beside the footer: erasure (and an analyst's
/// lookup of one unit) reads the filters, not the rows, to learn which files may hold a unit
/// (docs/archive.md). The writer sizes each filter for a full row group, then folds it to what
/// its row group holds.
pub fn writer_properties() -> Result<WriterProperties, FormatError> {
    let unit_id = || ColumnPath::from("unit_id");
    let mut builder = WriterProperties::builder()
        .set_column_bloom_filter_enabled(unit_id(), true)
        .set_column_bloom_filter_fpp(unit_id(), UNIT_BLOOM_FPP)
        .set_column_bloom_filter_max_ndv(unit_id(), ROW_GROUP_ROWS as u64)
        .set_bloom_filter_position(BloomFilterPosition::End)
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(ZSTD_LEVEL)?))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_key_value_metadata(Some(vec![KeyValue::new(
            FORMAT_VERSION_KEY.to_string(),
            FORMAT_VERSION.to_string(),
        )]));
    for (columns, encoding) in [
        (&DELTA_TIMESTAMPS[..], Some(Encoding::DELTA_BINARY_PACKED)),
        (&DISTINCT_TEXT[..], Some(Encoding::DELTA_BYTE_ARRAY)),
        (&DISTINCT_NUMBERS[..], None),
    ] {
        for column in columns {
            let path = || ColumnPath::from(*column);
            builder = builder.set_column_dictionary_enabled(path(), false);
            if let Some(encoding) = encoding {
                builder = builder.set_column_encoding(path(), encoding);
            }
        }
    }
    Ok(builder.build())
}

/// Rows of a file of an older format (versions 1 to 3: whole `context`, `payload` and
/// `metrics` columns, perhaps without the later columns), as rows of [`schema`]: each row
/// read back as its event (`event_parquet_reader`, which takes the missing columns as null)
/// and written again, so the shredded columns hold exactly what this writer would have
/// written. Rows of the current schema pass unchanged; rows that do not read as events are
/// left for the schema check of whoever uses them.
pub fn upgrade(batch: RecordBatch) -> Result<RecordBatch, FormatError> {
    if batch.schema().fields() == schema().fields() {
        return Ok(batch);
    }
    let Ok(events) = crate::archive::event_parquet_reader::events(&batch) else {
        return Ok(batch);
    };
    let mut columns = EventColumns::new();
    for event in &events {
        columns.push(event)?;
    }
    columns.finish()
}

/// One complete Parquet file holding `batch`.
pub fn write_parquet(batch: &RecordBatch) -> Result<Vec<u8>, FormatError> {
    let mut writer = ArrowWriter::try_new(Vec::new(), batch.schema(), Some(writer_properties()?))?;
    writer.write(batch)?;
    Ok(writer.into_inner()?)
}

/// Columns → batch → file: what one upload sends.
pub fn encode(columns: EventColumns) -> Result<Vec<u8>, FormatError> {
    write_parquet(&columns.finish()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    use crate::archive::legacy;

    use arrow::array::{
        Array, AsArray, DictionaryArray, MapArray, StringArray, TimestampMicrosecondArray,
    };
    use arrow::datatypes::Float64Type;
    use bytes::Bytes;
    use chrono::TimeZone;
    use eis_contract::{ExperimentRef, Flag, JsonObject};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use serde_json::json;
    use uuid::Uuid;

    fn at(h: u32, m: u32, s: u32, micros: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 5, h, m, s)
            .single()
            .expect("valid time")
            + chrono::Duration::microseconds(micros.into())
    }

    fn sample(n: u128) -> Event {
        let mut metrics = BTreeMap::new();
        metrics.insert("latency_ms".to_string(), 450.5);
        metrics.insert("token_count".to_string(), 1200.0);
        Event {
            event_id: Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 + n),
            event_type: if n % 2 == 0 {
                "plan_generated"
            } else {
                "meal_swapped"
            }
            .into(),
            unit_type: "user".into(),
            unit_id: format!("user-{n}"),
            experiments: vec![
                ExperimentRef {
                    experiment_id: Uuid::from_u128(0xE1),
                    variant_id: Uuid::from_u128(0xA1),
                },
                ExperimentRef {
                    experiment_id: Uuid::from_u128(0xE2),
                    variant_id: Uuid::from_u128(0xA2),
                },
            ],
            context: JsonObject::parse(r#"{"platform": "ios", "nested": {"a": [1, 2]}}"#)
                .expect("an object"),
            metrics,
            payload: JsonObject::parse(
                r#"{"plan_id": "p-1", "ünïcode": "✓", "order_id": 123456789012345678901234567890}"#,
            )
            .expect("an object"),
            timestamp: at(9, 59, 59, 999_999),
            received_at: at(10, 0, 1, 123_456),
            sent_at: None,
            schema_version: None,
            schema_violation: None,
            flags: vec![Flag::OldTimestamp],
        }
    }

    fn bare(n: u128) -> Event {
        Event {
            experiments: vec![],
            context: Default::default(),
            metrics: BTreeMap::new(),
            payload: Default::default(),
            flags: vec![Flag::NoExperimentContext],
            ..sample(n)
        }
    }

    fn columns(events: &[Event]) -> EventColumns {
        let mut c = EventColumns::new();
        for e in events {
            c.push(e).expect("push");
        }
        c
    }

    fn read_back(file: Vec<u8>) -> RecordBatch {
        let reader = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(file))
            .expect("parquet file")
            .build()
            .expect("reader");
        let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>().expect("batches");
        arrow::compute::concat_batches(&schema(), &batches).expect("one batch")
    }

    #[test]
    fn finished_columns_match_the_schema_exactly() {
        let batch = columns(&[sample(1), bare(2)]).finish().expect("finish");
        assert_eq!(batch.schema(), schema());
        let empty = EventColumns::new()
            .finish()
            .expect("an empty file is valid too");
        assert_eq!(empty.num_rows(), 0);
    }

    #[test]
    fn every_column_reads_back_as_written() {
        let mut events = vec![sample(1), bare(2), sample(3)];
        events[0].schema_version = Some("1-1-0".into());
        events[2].schema_version = Some("1-1-0".into());
        events[2].schema_violation = Some("/payload/meal_count".into());
        let batch = read_back(encode(columns(&events)).expect("encode"));
        assert_eq!(
            batch.schema(),
            schema(),
            "the arrow schema travels in the file"
        );
        assert_eq!(batch.num_rows(), 3);

        let strings = |name: &str| -> Vec<String> {
            let col = batch.column_by_name(name).expect(name);
            let col = col.as_any().downcast_ref::<StringArray>().expect("utf8");
            col.iter()
                .map(|v| v.unwrap_or_default().to_string())
                .collect()
        };
        let ids: Vec<String> = events.iter().map(|e| e.event_id.to_string()).collect();
        assert_eq!(strings("event_id"), ids);
        assert_eq!(strings("unit_id"), vec!["user-1", "user-2", "user-3"]);
        assert_eq!(strings("unit_type"), vec!["user"; 3]);
        // Shredded keys in their typed columns, the rest as canonical text (numbers exact).
        assert_eq!(strings("context_platform"), vec!["ios", "", "ios"]);
        let contexts: Vec<serde_json::Value> = strings("context_rest")
            .iter()
            .map(|s| serde_json::from_str(s).expect("json"))
            .collect();
        assert_eq!(contexts[0], json!({"nested": {"a": [1, 2]}}));
        assert_eq!(contexts[1], json!({}));
        assert_eq!(strings("payload_plan_id"), vec!["p-1", "", "p-1"]);
        assert_eq!(
            strings("payload_rest")[0],
            r#"{"order_id":123456789012345678901234567890,"ünïcode":"✓"}"#
        );

        let types = batch.column_by_name("event_type").expect("event_type");
        let types: &DictionaryArray<Int32Type> = types.as_dictionary();
        let values = types.values().as_string::<i32>();
        let decoded: Vec<&str> = types
            .keys()
            .iter()
            .map(|k| values.value(k.map(|k| k as usize).unwrap_or_default()))
            .collect();
        assert_eq!(
            decoded,
            vec!["meal_swapped", "plan_generated", "meal_swapped"]
        );
        assert_eq!(values.len(), 2, "each type is stored once");

        let experiments = batch.column_by_name("experiments").expect("experiments");
        let experiments = experiments.as_list::<i32>();
        assert_eq!(experiments.value_length(0), 2);
        assert_eq!(experiments.value_length(1), 0);
        let first = experiments.value(0);
        let first = first.as_struct();
        let variant = first.column_by_name("variant_id").expect("variant_id");
        assert_eq!(
            variant.as_string::<i32>().value(1),
            Uuid::from_u128(0xA2).to_string()
        );

        let latency = batch.column_by_name("metrics_latency_ms").expect("metric");
        let latency = latency.as_primitive::<Float64Type>();
        assert_eq!(
            latency.iter().collect::<Vec<_>>(),
            [Some(450.5), None, Some(450.5)]
        );
        let metrics = batch.column_by_name("metrics_rest").expect("metrics_rest");
        let metrics = metrics.as_any().downcast_ref::<MapArray>().expect("map");
        assert_eq!(
            metrics.value_length(0),
            0,
            "every metric of the sample is shredded"
        );

        let ts = batch.column_by_name("timestamp").expect("timestamp");
        let ts = ts
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .expect("µs");
        assert_eq!(ts.timezone(), Some("UTC"));
        assert_eq!(ts.value(0), events[0].timestamp.timestamp_micros());
        let received = batch.column_by_name("received_at").expect("received_at");
        let received = received.as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        assert_eq!(received.value(2), events[2].received_at.timestamp_micros());

        let flags = batch.column_by_name("flags").expect("flags");
        let flags = flags.as_list::<i32>();
        let flags1 = flags.value(1);
        assert_eq!(flags1.as_string::<i32>().value(0), "no_experiment_context");

        let versions = batch
            .column_by_name("schema_version")
            .expect("schema_version");
        let versions: &DictionaryArray<Int32Type> = versions.as_dictionary();
        assert_eq!(versions.values().len(), 1, "a version is stored once");
        let versions = versions
            .downcast_dict::<StringArray>()
            .expect("utf8 values");
        let read: Vec<Option<&str>> = versions.into_iter().collect();
        assert_eq!(read, [Some("1-1-0"), None, Some("1-1-0")]);
        let violations = batch.column_by_name("schema_violation").expect("column");
        let read: Vec<Option<&str>> = violations.as_string::<i32>().iter().collect();
        assert_eq!(read, [None, None, Some("/payload/meal_count")]);
    }

    #[test]
    fn files_are_zstd_compressed_with_statistics_and_versioned() {
        let events: Vec<Event> = (0..100).map(sample).collect();
        let file = encode(columns(&events)).expect("encode");
        let reader = SerializedFileReader::new(Bytes::from(file)).expect("reader");
        let meta = reader.metadata();
        assert_eq!(meta.num_row_groups(), 1);
        let row_group = meta.row_group(0);
        for column in row_group.columns() {
            // The codec is recorded in the file; the level is not.
            assert!(
                matches!(column.compression(), Compression::ZSTD(_)),
                "{}: {:?}",
                column.column_path(),
                column.compression()
            );
            assert!(column.statistics().is_some(), "{}", column.column_path());
        }
        let version = meta
            .file_metadata()
            .key_value_metadata()
            .and_then(|kv| kv.iter().find(|k| k.key == FORMAT_VERSION_KEY))
            .and_then(|k| k.value.clone());
        assert_eq!(version.as_deref(), Some(FORMAT_VERSION));
    }

    #[test]
    fn the_byte_estimate_grows_with_the_data() {
        let mut c = EventColumns::new();
        let small = c.push(&bare(1)).expect("push");
        let mut big = bare(2);
        big.payload = JsonObject::parse(&format!(r#"{{"note": "{}"}}"#, "x".repeat(10_000)))
            .expect("an object");
        let large = c.push(&big).expect("push");
        assert!(large > small + 10_000, "{small} {large}");
        assert_eq!(c.bytes(), small + large);
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn older_formats_rows_read_as_the_current_schema() {
        let mut events: Vec<Event> = (0..3).map(sample).collect();
        events[1].sent_at = Some(events[1].received_at - chrono::Duration::seconds(90));
        events[1].schema_version = Some("1-0-0".into());
        events[1].schema_violation = Some("/payload/plan_id".into());
        let current = columns(&events).finish().expect("finish");
        // Format 3 holds every column (whole objects), 2 lacks the plan's, 1 the send time's.
        for (columns, nulls) in [
            (legacy::FORMAT_THREE.len(), &[][..]),
            (
                legacy::FORMAT_TWO_COLUMNS,
                &["schema_version", "schema_violation"][..],
            ),
            (
                legacy::FORMAT_ONE_COLUMNS,
                &[
                    "sent_at",
                    "adjusted_timestamp",
                    "schema_version",
                    "schema_violation",
                ][..],
            ),
        ] {
            let older = legacy::batch(&events, columns).expect("an older batch");
            let upgraded = upgrade(older).expect("upgrade");
            assert_eq!(upgraded.schema(), schema());
            for field in schema().fields() {
                let name = field.name();
                let column = upgraded.column_by_name(name).expect(name);
                if nulls.contains(&name.as_str()) {
                    assert_eq!(column.null_count(), 3, "{name}");
                } else {
                    let written = current.column_by_name(name).expect(name);
                    assert_eq!(column, written, "{name}: as the current writer writes it");
                }
            }
        }
        let adjusted = current
            .column_by_name("adjusted_timestamp")
            .expect("column");
        let adjusted = adjusted.as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        let expected = events[1].timestamp + chrono::Duration::seconds(90);
        assert_eq!(adjusted.value(1), expected.timestamp_micros());
        // The current schema passes through unchanged.
        assert_eq!(upgrade(current.clone()).expect("upgrade"), current);
    }

    #[test]
    fn an_hour_of_files_of_every_version_compacts_into_current_rows() {
        let mut events: Vec<Event> = (0..8).map(sample).collect();
        for e in &mut events[4..] {
            e.schema_version = Some("1-1-0".into());
        }
        // Files of versions 1, 2, 3 and 4 (two events each), as compaction reads them back.
        let mut parts = Vec::new();
        let widths = [
            Some(legacy::FORMAT_ONE_COLUMNS),
            Some(legacy::FORMAT_TWO_COLUMNS),
            Some(legacy::FORMAT_THREE.len()),
            None,
        ];
        for (chunk, width) in events.chunks(2).zip(widths) {
            let batch = match width {
                Some(w) => legacy::batch(chunk, w).expect("an older batch"),
                None => columns(chunk).finish().expect("finish"),
            };
            let file = write_parquet(&batch).expect("write");
            for read in crate::archive::columns::read_batches(Bytes::from(file)).expect("read") {
                assert_eq!(read.num_columns(), batch.num_columns());
                parts.push(upgrade(read).expect("upgrade"));
            }
        }
        let merged = crate::compaction::dedupe::dedupe(&parts).expect("dedupe");
        assert_eq!(merged.rows.schema(), schema());
        assert_eq!(merged.rows.num_rows(), 8);
        let versions = merged
            .rows
            .column_by_name("schema_version")
            .expect("column");
        assert_eq!(
            versions.null_count(),
            4,
            "only the version 3 and 4 files' were checked"
        );
        // Every event as it was sent (one timestamp: sorted by id, the order made).
        let back = crate::archive::event_parquet_reader::events(&merged.rows).expect("events");
        assert_eq!(back, events);
    }

    #[test]
    fn the_earliest_received_at_is_tracked() {
        let mut late = sample(1);
        late.received_at = at(11, 0, 0, 0);
        let early = sample(2);
        let c = columns(&[late, early.clone()]);
        assert_eq!(c.earliest_received(), Some(early.received_at));
    }
}
