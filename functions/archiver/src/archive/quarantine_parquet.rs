//! The quarantine's Parquet format: `eis_contract::Quarantined` records as the columns of
//! `{rejected prefix}{year}/{month}/{day}/{hour}/rejected_{id}.parquet` (hour of
//! `received_at`), the Glue table `rejected_events` in template.yaml, and back (replay).
//! Pure: no I/O. docs/quarantine.md describes the columns for the people who query them.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, Int32Builder, Int64Builder, ListArray, RecordBatch,
    StringBuilder, StructArray, TimestampMicrosecondBuilder,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{
    DataType, Field, Fields, Int32Type, Int64Type, Schema, SchemaRef, TimeUnit,
    TimestampMicrosecondType,
};
use bytes::Bytes;
use chrono::DateTime;
use eis_contract::{NamedVariant, Quarantined, Scope};
use uuid::Uuid;

use crate::archive::columns::{invalid, named, read_batches, struct_text, Lists, Text};

/// Which file an error is about.
const FILE: &str = "quarantine file";
use crate::archive::event_parquet::{self, FormatError};
use crate::archive::partition::HourPartition;

fn variant_fields() -> Fields {
    Fields::from(vec![
        Field::new("experiment_id", DataType::Utf8, false),
        Field::new("variant_id", DataType::Utf8, false),
    ])
}

fn variant_item() -> Arc<Field> {
    Arc::new(Field::new(
        "item",
        DataType::Struct(variant_fields()),
        false,
    ))
}

/// The columns, in the Glue table's order; only `batch_index` and `violations` are
/// nullable.
pub fn schema() -> SchemaRef {
    let utc = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("record_id", DataType::Utf8, false),
        Field::new("request_id", DataType::Utf8, false),
        Field::new("route", DataType::Utf8, false),
        Field::new("scope", DataType::Utf8, false),
        Field::new("batch_index", DataType::Int32, true),
        Field::new("received_at", utc, false),
        Field::new("code", DataType::Utf8, false),
        Field::new("message", DataType::Utf8, false),
        Field::new("raw", DataType::Utf8, false),
        Field::new("raw_bytes", DataType::Int64, false),
        Field::new("raw_truncated", DataType::Boolean, false),
        Field::new("raw_lossy", DataType::Boolean, false),
        Field::new("experiments", DataType::List(variant_item()), false),
        // The tracking plan's failures as one JSON array text, null when there are none (every
        // code but `schema_violation`): any engine's JSON functions read it, and its items can
        // gain fields without a change of column type.
        Field::new("violations", DataType::Utf8, true),
    ]))
}

/// The key of a new file of an hour.
pub fn key(prefix: &str, hour: HourPartition, id: Uuid) -> String {
    format!("{prefix}{}rejected_{id}.parquet", hour.folder())
}

fn strings<'a>(values: impl Iterator<Item = &'a str>) -> ArrayRef {
    let mut b = StringBuilder::new();
    for v in values {
        b.append_value(v);
    }
    Arc::new(b.finish())
}

/// One file of records (of one hour).
pub fn encode(records: &[Quarantined]) -> Result<Vec<u8>, FormatError> {
    let mut index = Int32Builder::new();
    let mut received = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    let mut raw_bytes = Int64Builder::new();
    let mut truncated = BooleanBuilder::new();
    let mut lossy = BooleanBuilder::new();
    let (mut offsets, mut experiment_ids, mut variant_ids) = (vec![0i32], vec![], vec![]);
    let mut violations = StringBuilder::new();
    for r in records {
        index.append_option(r.batch_index.and_then(|i| i32::try_from(i).ok()));
        received.append_value(r.received_at.timestamp_micros());
        raw_bytes.append_value(i64::try_from(r.raw_bytes).unwrap_or(i64::MAX));
        truncated.append_value(r.raw_truncated);
        lossy.append_value(r.raw_lossy);
        for v in &r.experiments {
            experiment_ids.push(v.experiment_id.as_str());
            variant_ids.push(v.variant_id.as_str());
        }
        let end = i32::try_from(experiment_ids.len()).map_err(|_| FormatError::Overflow)?;
        offsets.push(end);
        if r.violations.is_empty() {
            violations.append_null();
        } else {
            violations.append_value(serde_json::to_string(&r.violations)?);
        }
    }
    let variants = StructArray::try_new(
        variant_fields(),
        vec![
            strings(experiment_ids.into_iter()),
            strings(variant_ids.into_iter()),
        ],
        None,
    )?;
    let experiments = ListArray::try_new(
        variant_item(),
        OffsetBuffer::new(offsets.into()),
        Arc::new(variants),
        None,
    )?;
    let ids: Vec<String> = records.iter().map(|r| r.record_id.to_string()).collect();
    let columns: Vec<ArrayRef> = vec![
        strings(ids.iter().map(String::as_str)),
        strings(records.iter().map(|r| r.request_id.as_str())),
        strings(records.iter().map(|r| r.route.as_str())),
        strings(records.iter().map(|r| r.scope.as_str())),
        Arc::new(index.finish()),
        Arc::new(received.finish()),
        strings(records.iter().map(|r| r.code.as_str())),
        strings(records.iter().map(|r| r.message.as_str())),
        strings(records.iter().map(|r| r.raw.as_str())),
        Arc::new(raw_bytes.finish()),
        Arc::new(truncated.finish()),
        Arc::new(lossy.finish()),
        Arc::new(experiments),
        Arc::new(violations.finish()),
    ];
    let batch = RecordBatch::try_new(schema(), columns)?;
    event_parquet::write_parquet(&batch)
}

/// The records of one file (tests and tools; replay streams a file by `decode_batch`).
pub fn decode(body: Bytes) -> Result<Vec<Quarantined>, FormatError> {
    let mut records = Vec::new();
    for batch in read_batches(body)? {
        records.extend(decode_batch(&batch)?);
    }
    Ok(records)
}

/// The records of one batch of a quarantine file. Strings and lists may be of any type other
/// writers use for them (`columns`); anything else is an error for the file, never a panic.
/// A file without `raw_lossy` (written before it existed) marks a text holding U+FFFD lossy:
/// it may have been a replaced byte; one without `violations` has none.
pub fn decode_batch(batch: &RecordBatch) -> Result<Vec<Quarantined>, FormatError> {
    let text = |name| Text::of(named(batch, name, FILE)?).ok_or_else(|| invalid(FILE, name));
    let primitive = |name| named(batch, name, FILE);
    let (record_id, request_id, route, scope) = (
        text("record_id")?,
        text("request_id")?,
        text("route")?,
        text("scope")?,
    );
    let (code, message, raw) = (text("code")?, text("message")?, text("raw")?);
    let index = primitive("batch_index")?
        .as_primitive_opt::<Int32Type>()
        .ok_or_else(|| invalid(FILE, "batch_index"))?;
    let received = primitive("received_at")?
        .as_primitive_opt::<TimestampMicrosecondType>()
        .ok_or_else(|| invalid(FILE, "received_at"))?;
    let raw_bytes = primitive("raw_bytes")?
        .as_primitive_opt::<Int64Type>()
        .ok_or_else(|| invalid(FILE, "raw_bytes"))?;
    let truncated = primitive("raw_truncated")?
        .as_boolean_opt()
        .ok_or_else(|| invalid(FILE, "raw_truncated"))?;
    let lossy = match batch.column_by_name("raw_lossy") {
        Some(c) => Some(
            c.as_boolean_opt()
                .ok_or_else(|| invalid(FILE, "raw_lossy"))?,
        ),
        None => None,
    };
    let violations = match batch.column_by_name("violations") {
        Some(c) => Some(Text::of(c.as_ref()).ok_or_else(|| invalid(FILE, "violations"))?),
        None => None,
    };
    let experiments = Lists::of(named(batch, "experiments", FILE)?)
        .ok_or_else(|| invalid(FILE, "experiments"))?;
    let ids = struct_text(experiments.values(), "experiment_id");
    let vids = struct_text(experiments.values(), "variant_id");
    let (Some(ids), Some(vids)) = (ids, vids) else {
        return Err(invalid(FILE, "experiments"));
    };
    let mut records = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let bad = |what: &str| invalid(FILE, &format!("{what} of row {row}"));
        let string = |t: &Text, what: &str| t.get(row).map(str::to_string).ok_or_else(|| bad(what));
        let present =
            |a: &dyn Array, what: &str| (!a.is_null(row)).then_some(()).ok_or_else(|| bad(what));
        present(received, "received_at")?;
        present(raw_bytes, "raw_bytes")?;
        present(truncated, "raw_truncated")?;
        let raw = string(&raw, "raw")?;
        let raw_lossy = match lossy {
            Some(l) => {
                present(l, "raw_lossy")?;
                l.value(row)
            }
            None => raw.contains('\u{FFFD}'),
        };
        let variants = experiments.range(row).ok_or_else(|| bad("experiments"))?;
        records.push(Quarantined {
            record_id: record_id
                .get(row)
                .and_then(|id| Uuid::try_parse(id).ok())
                .ok_or_else(|| bad("record_id"))?,
            request_id: string(&request_id, "request_id")?,
            route: string(&route, "route")?,
            scope: match scope.get(row) {
                Some("event") => Scope::Event,
                Some("request") => Scope::Request,
                _ => return Err(bad("scope")),
            },
            batch_index: (!index.is_null(row))
                .then(|| u32::try_from(index.value(row)))
                .transpose()
                .map_err(|_| bad("batch_index"))?,
            received_at: DateTime::from_timestamp_micros(received.value(row))
                .ok_or_else(|| bad("received_at"))?,
            code: string(&code, "code")?,
            message: string(&message, "message")?,
            raw,
            raw_bytes: u64::try_from(raw_bytes.value(row)).map_err(|_| bad("raw_bytes"))?,
            raw_truncated: truncated.value(row),
            raw_lossy,
            experiments: variants
                .map(|i| {
                    Some(NamedVariant {
                        experiment_id: ids.get(i)?.to_string(),
                        variant_id: vids.get(i)?.to_string(),
                    })
                })
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| bad("experiments"))?,
            violations: match violations.as_ref().and_then(|v| v.get(row)) {
                Some(text) => serde_json::from_str(text).map_err(|_| bad("violations"))?,
                None => Vec::new(),
            },
        });
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use eis_contract::plan::Violation;
    use eis_contract::{Arrival, Limits};

    fn record(index: Option<usize>, raw: &str) -> Quarantined {
        let received_at = Utc
            .with_ymd_and_hms(2026, 12, 2, 10, 30, 0)
            .single()
            .expect("valid date");
        let arrival = Arrival {
            request_id: "req-7",
            route: "POST /events/batch",
            received_at,
        };
        let rejection =
            eis_contract::validate_event(raw.as_bytes(), received_at, &Limits::default())
                .expect_err("invalid");
        Quarantined::event(arrival, index, raw.as_bytes(), &rejection, 16, 32)
    }

    #[test]
    fn records_read_back_exactly() {
        let records = vec![
            record(
                Some(3),
                r#"{"experiments":[{"experiment_id":"e","variant_id":"v"}]}"#,
            ),
            record(None, "{}"),
            Quarantined {
                code: "schema_violation".into(),
                violations: vec![
                    Violation {
                        version: "1-1-0".into(),
                        path: "/payload/meal_count".into(),
                        schema_path: "/payload/properties/meal_count/type".into(),
                        message: "\"seven\" is not of type \"integer\"".into(),
                    },
                    Violation {
                        version: "1-1-0".into(),
                        path: "".into(),
                        schema_path: "/payload/required".into(),
                        message: "\"plan_id\" is a required property".into(),
                    },
                ],
                ..record(Some(4), r#"{"payload":{"meal_count":"seven"}}"#)
            },
            Quarantined::request(
                Arrival {
                    request_id: "req-8",
                    route: "POST /events/batch",
                    received_at: Utc::now(),
                },
                b"{not json",
                &eis_contract::parse_batch(b"{not json", &Limits::default()).expect_err("invalid"),
                1024,
            ),
        ];
        assert!(records[0].raw_truncated && !records[0].experiments.is_empty());
        let file = encode(&records).expect("encode");
        let back = decode(Bytes::from(file)).expect("decode");
        let micros = |r: &Quarantined| Quarantined {
            received_at: DateTime::from_timestamp_micros(r.received_at.timestamp_micros())
                .expect("in range"),
            ..r.clone()
        };
        assert_eq!(back, records.iter().map(micros).collect::<Vec<_>>());

        let batch = &read_batches(Bytes::from(encode(&records).expect("encode"))).expect("read")[0];
        let violations = batch.column_by_name("violations").expect("violations");
        assert_eq!(violations.null_count(), 3, "null where a record has none");
        let text: serde_json::Value =
            serde_json::from_str(violations.as_string::<i32>().value(2)).expect("JSON text");
        assert_eq!(text[0]["path"], "/payload/meal_count");
        assert_eq!(text.as_array().map(Vec::len), Some(2));
        // A file from before the column: no record has violations.
        let older = batch
            .project(&(0..batch.num_columns() - 1).collect::<Vec<_>>())
            .expect("the first columns");
        let read = decode_batch(&older).expect("decode");
        assert!(read.iter().all(|r| r.violations.is_empty()));
        assert_eq!(read.len(), records.len());
    }

    #[test]
    fn keys_are_hour_folders_under_the_prefix() {
        let hour = HourPartition::of(Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap());
        let id = Uuid::nil();
        assert_eq!(
            key("rejected/", hour, id),
            format!("rejected/2026/01/02/03/rejected_{id}.parquet")
        );
    }
}
