//! Archive rows back into events (a restore): the inverse of `parquet_encoder`. Every column
//! holds exactly what the event had (canonical JSON text, exact f64 metrics, microsecond
//! timestamps), so an event read back has the content digest it was stored with.

use std::collections::BTreeMap;

use arrow::array::{Array, ArrayAccessor, AsArray, RecordBatch, StringArray};
use arrow::datatypes::{Float64Type, Int32Type, TimestampMicrosecondType};
use chrono::{DateTime, Utc};
use eis_contract::{Event, ExperimentRef, Flag, JsonObject};
use uuid::Uuid;

use crate::parquet_encoder::FormatError;

fn bad(what: &str) -> FormatError {
    FormatError::Parquet(parquet::errors::ParquetError::General(format!(
        "archive row: {what} missing or invalid"
    )))
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a dyn Array, FormatError> {
    batch
        .column_by_name(name)
        .map(|c| c.as_ref())
        .ok_or_else(|| bad(name))
}

fn time(micros: i64) -> Result<DateTime<Utc>, FormatError> {
    DateTime::from_timestamp_micros(micros).ok_or_else(|| bad("timestamp"))
}

fn uuid(text: &str, what: &str) -> Result<Uuid, FormatError> {
    Uuid::try_parse(text).map_err(|_| bad(what))
}

fn object(text: &str, what: &str) -> Result<JsonObject, FormatError> {
    JsonObject::parse(text).map_err(|_| bad(what))
}

/// The events of one batch of the archive schema, in row order. A column of another type
/// is an error, never a panic: the files come from a bucket.
pub fn events(batch: &RecordBatch) -> Result<Vec<Event>, FormatError> {
    let text = |name| {
        column(batch, name)?
            .as_string_opt::<i32>()
            .ok_or_else(|| bad(name))
    };
    let micros = |name| {
        column(batch, name)?
            .as_primitive_opt::<TimestampMicrosecondType>()
            .ok_or_else(|| bad(name))
    };
    let list = |name| {
        column(batch, name)?
            .as_list_opt::<i32>()
            .ok_or_else(|| bad(name))
    };
    let (ids, unit_types, unit_ids) = (text("event_id")?, text("unit_type")?, text("unit_id")?);
    // A dictionary read through its values: no cast kernel (which links every conversion).
    let event_types = column(batch, "event_type")?
        .as_dictionary_opt::<Int32Type>()
        .and_then(|d| d.downcast_dict::<StringArray>())
        .ok_or_else(|| bad("event_type"))?;
    let (contexts, payloads) = (text("context")?, text("payload")?);
    let (timestamps, received) = (micros("timestamp")?, micros("received_at")?);
    let (experiments, flags) = (list("experiments")?, list("flags")?);
    let metrics = column(batch, "metrics")?
        .as_map_opt()
        .ok_or_else(|| bad("metrics"))?;

    let mut events = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let pairs = experiments.value(row);
        let pairs = pairs.as_struct_opt().ok_or_else(|| bad("experiments"))?;
        let id_column = |i: usize| {
            pairs
                .column(i)
                .as_string_opt::<i32>()
                .ok_or_else(|| bad("experiments"))
        };
        let (experiment_ids, variant_ids) = (id_column(0)?, id_column(1)?);
        let experiments = (0..pairs.len())
            .map(|i| {
                Ok(ExperimentRef {
                    experiment_id: uuid(experiment_ids.value(i), "experiment_id")?,
                    variant_id: uuid(variant_ids.value(i), "variant_id")?,
                })
            })
            .collect::<Result<Vec<_>, FormatError>>()?;
        let entries = metrics.value(row);
        let keys = entries.column(0).as_string_opt::<i32>();
        let values = entries.column(1).as_primitive_opt::<Float64Type>();
        let (Some(keys), Some(values)) = (keys, values) else {
            return Err(bad("metrics"));
        };
        let metrics: BTreeMap<String, f64> = (0..entries.len())
            .map(|i| (keys.value(i).to_string(), values.value(i)))
            .collect();
        let row_flags = flags.value(row);
        let row_flags = row_flags
            .as_string_opt::<i32>()
            .ok_or_else(|| bad("flags"))?;
        let flags = (0..row_flags.len())
            .map(|i| {
                let name = row_flags.value(i);
                Flag::ALL
                    .iter()
                    .copied()
                    .find(|f| f.as_str() == name)
                    .ok_or_else(|| bad("flag"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        events.push(Event {
            event_id: uuid(ids.value(row), "event_id")?,
            event_type: event_types.value(row).to_string(),
            unit_type: unit_types.value(row).to_string(),
            unit_id: unit_ids.value(row).to_string(),
            experiments,
            context: object(contexts.value(row), "context")?,
            metrics,
            payload: object(payloads.value(row), "payload")?,
            timestamp: time(timestamps.value(row))?,
            received_at: time(received.value(row))?,
            flags,
        });
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parquet_encoder::{encode, EventColumns};
    use crate::test_events::{event, utc};

    /// Every column filled: experiments, context, metrics, payload and a flag.
    fn full(n: u32) -> Event {
        let body = format!(
            r#"{{"event_id": "01900000-0000-7000-8000-{n:012}", "event_type": "plan_accepted",
                "unit_type": "user", "unit_id": "u-{n}",
                "timestamp": "2026-11-20T10:00:00.123456Z",
                "experiments": [{{"experiment_id": "0190aaaa-0000-7000-8000-000000000001",
                                 "variant_id": "0190bbbb-0000-7000-8000-000000000002"}}],
                "context": {{"plan_id": "p-1", "n": 123456789012345678901234567890}},
                "metrics": {{"latency_ms": {n}.1, "token_count": 17}},
                "payload": {{"note": "\u00e9\t", "x": 1.50}}}}"#
        );
        eis_contract::validate_event(
            body.as_bytes(),
            utc("2026-12-02T10:00:00Z"),
            &eis_contract::Limits::default(),
        )
        .expect("valid")
    }

    #[test]
    fn archived_events_read_back_with_their_digests() {
        let mut events: Vec<Event> = (1..4).map(full).collect();
        events.push(event(9, "2026-12-02T09:00:00Z"));
        assert!(!events[0].flags.is_empty() && !events[0].metrics.is_empty());
        let mut columns = EventColumns::new();
        for e in &events {
            columns.push(e).expect("push");
        }
        let file = encode(columns).expect("encode");
        let mut back = Vec::new();
        for batch in crate::dedupe::read_rows(bytes::Bytes::from(file)).expect("read") {
            back.extend(super::events(&batch).expect("events"));
        }
        assert_eq!(back, events);
        for (a, b) in back.iter().zip(&events) {
            let digest = |e: &Event| eis_contract::Encoded::new(e).expect("encode").digest;
            assert_eq!(digest(a), digest(b));
        }
    }
}
