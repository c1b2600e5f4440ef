//! Archive rows back into events (a restore): the inverse of `parquet_encoder`. Every column
//! holds exactly what the event had (canonical JSON text, exact f64 metrics, microsecond
//! timestamps), so an event read back has the content digest it was stored with.

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray, Float64Array, MapArray, RecordBatch};
use arrow::datatypes::{Float64Type, TimestampMicrosecondType};
use chrono::{DateTime, Utc};
use eis_contract::{Event, ExperimentRef, Flag, JsonObject};
use uuid::Uuid;

use crate::archive::columns::{invalid, named, struct_text, Lists, Text};
use crate::archive::shred_columns::ShredReader;

/// Which file an error is about.
const FILE: &str = "archive row";
use crate::archive::format::FormatError;

fn time(micros: i64) -> Result<DateTime<Utc>, FormatError> {
    DateTime::from_timestamp_micros(micros).ok_or_else(|| invalid(FILE, "timestamp"))
}

fn uuid(text: Option<&str>, what: &str) -> Result<Uuid, FormatError> {
    text.and_then(|t| Uuid::try_parse(t).ok())
        .ok_or_else(|| invalid(FILE, what))
}

fn object(text: Option<&str>, what: &str) -> Result<JsonObject, FormatError> {
    text.and_then(|t| JsonObject::parse(t).ok())
        .ok_or_else(|| invalid(FILE, what))
}

/// The events of one batch of the archive schema, in row order. Strings and lists may be of
/// any of the types other writers use (`columns`); a column of another type, or a null where
/// the archive has none, is an error, never a panic: the files come from a bucket.
pub fn events(batch: &RecordBatch) -> Result<Vec<Event>, FormatError> {
    let text = |name| Text::of(named(batch, name, FILE)?).ok_or_else(|| invalid(FILE, name));
    let micros = |name| {
        named(batch, name, FILE)?
            .as_primitive_opt::<TimestampMicrosecondType>()
            .ok_or_else(|| invalid(FILE, name))
    };
    let list = |name| Lists::of(named(batch, name, FILE)?).ok_or_else(|| invalid(FILE, name));
    let (ids, unit_types, unit_ids) = (text("event_id")?, text("unit_type")?, text("unit_id")?);
    let event_types = text("event_type")?;
    // Format 4 shreds context, payload and metrics; older files hold them whole.
    let objects = match ShredReader::of(batch)? {
        Some(shredded) => Objects::Shredded(shredded),
        None => Objects::Whole(Whole::of(batch)?),
    };
    let (timestamps, received) = (micros("timestamp")?, micros("received_at")?);
    // Files written before a column existed have none: every row's is null.
    let sent = match batch.column_by_name("sent_at") {
        None => None,
        Some(_) => Some(micros("sent_at")?),
    };
    let optional_text = |name| match batch.column_by_name(name) {
        None => Ok(None),
        Some(c) => Text::of(c.as_ref())
            .map(Some)
            .ok_or_else(|| invalid(FILE, name)),
    };
    let (versions, violations) = (
        optional_text("schema_version")?,
        optional_text("schema_violation")?,
    );
    let (experiments, flags) = (list("experiments")?, list("flags")?);
    let experiment_ids = struct_text(experiments.values(), "experiment_id");
    let variant_ids = struct_text(experiments.values(), "variant_id");
    let (Some(experiment_ids), Some(variant_ids)) = (experiment_ids, variant_ids) else {
        return Err(invalid(FILE, "experiments"));
    };
    let flag_names = Text::of(flags.values().as_ref()).ok_or_else(|| invalid(FILE, "flags"))?;
    let present = |array: &dyn Array, row: usize, what: &str| {
        (row < array.len() && !array.is_null(row))
            .then_some(())
            .ok_or_else(|| invalid(FILE, what))
    };

    let mut events = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let pairs = experiments
            .range(row)
            .ok_or_else(|| invalid(FILE, "experiments"))?;
        let experiments = pairs
            .map(|i| {
                Ok(ExperimentRef {
                    experiment_id: uuid(experiment_ids.get(i), "experiment_id")?,
                    variant_id: uuid(variant_ids.get(i), "variant_id")?,
                })
            })
            .collect::<Result<Vec<_>, FormatError>>()?;
        let flags = flags
            .range(row)
            .ok_or_else(|| invalid(FILE, "flags"))?
            .map(|i| {
                let name = flag_names.get(i);
                Flag::ALL
                    .iter()
                    .copied()
                    .find(|f| Some(f.as_str()) == name)
                    .ok_or_else(|| invalid(FILE, "flag"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let name = |t: &Text, what: &str| {
            t.get(row)
                .map(str::to_string)
                .ok_or_else(|| invalid(FILE, what))
        };
        present(timestamps, row, "timestamp")?;
        present(received, row, "received_at")?;
        events.push(Event {
            event_id: uuid(ids.get(row), "event_id")?,
            event_type: name(&event_types, "event_type")?,
            unit_type: name(&unit_types, "unit_type")?,
            unit_id: name(&unit_ids, "unit_id")?,
            experiments,
            context: objects.context(row)?,
            metrics: objects.metrics(row)?,
            payload: objects.payload(row)?,
            timestamp: time(timestamps.value(row))?,
            received_at: time(received.value(row))?,
            sent_at: match sent {
                Some(sent) if sent.is_valid(row) => Some(time(sent.value(row))?),
                _ => None,
            },
            schema_version: versions
                .as_ref()
                .and_then(|t| t.get(row))
                .map(str::to_string),
            schema_violation: violations
                .as_ref()
                .and_then(|t| t.get(row))
                .map(str::to_string),
            flags,
        });
    }
    Ok(events)
}

/// `context`, `payload` and `metrics` of format 4 (shredded) or of formats 1 to 3 (whole).
enum Objects<'a> {
    Shredded(ShredReader<'a>),
    Whole(Whole<'a>),
}

impl Objects<'_> {
    fn context(&self, row: usize) -> Result<JsonObject, FormatError> {
        match self {
            Objects::Shredded(s) => s.context(row),
            Objects::Whole(w) => object(w.contexts.get(row), "context"),
        }
    }

    fn payload(&self, row: usize) -> Result<JsonObject, FormatError> {
        match self {
            Objects::Shredded(s) => s.payload(row),
            Objects::Whole(w) => object(w.payloads.get(row), "payload"),
        }
    }

    fn metrics(&self, row: usize) -> Result<BTreeMap<String, f64>, FormatError> {
        match self {
            Objects::Shredded(s) => s.metrics(row),
            Objects::Whole(w) => w.metrics(row),
        }
    }
}

/// The columns of formats 1 to 3: canonical JSON text and a map of metrics.
struct Whole<'a> {
    contexts: Text<'a>,
    payloads: Text<'a>,
    metrics: &'a MapArray,
    metric_keys: Text<'a>,
    metric_values: &'a Float64Array,
}

impl<'a> Whole<'a> {
    fn of(batch: &'a RecordBatch) -> Result<Self, FormatError> {
        let text = |name| Text::of(named(batch, name, FILE)?).ok_or_else(|| invalid(FILE, name));
        let metrics = named(batch, "metrics", FILE)?
            .as_map_opt()
            .ok_or_else(|| invalid(FILE, "metrics"))?;
        let metric_keys = Text::of(metrics.keys().as_ref());
        let metric_values = metrics.values().as_primitive_opt::<Float64Type>();
        let (Some(metric_keys), Some(metric_values)) = (metric_keys, metric_values) else {
            return Err(invalid(FILE, "metrics"));
        };
        Ok(Self {
            contexts: text("context")?,
            payloads: text("payload")?,
            metrics,
            metric_keys,
            metric_values,
        })
    }

    fn metrics(&self, row: usize) -> Result<BTreeMap<String, f64>, FormatError> {
        let bad = || invalid(FILE, "metrics");
        if row >= self.metrics.len() || self.metrics.is_null(row) {
            return Err(bad());
        }
        let offsets = self.metrics.value_offsets();
        let (start, end) = match (offsets.get(row), offsets.get(row + 1)) {
            (Some(s), Some(e)) if 0 <= *s && s <= e => (*s as usize, *e as usize),
            _ => return Err(bad()),
        };
        (start..end)
            .map(|i| {
                let key = self.metric_keys.get(i).ok_or_else(bad)?;
                if i >= self.metric_values.len() || self.metric_values.is_null(i) {
                    return Err(bad());
                }
                Ok((key.to_string(), self.metric_values.value(i)))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::event_parquet::{encode, EventColumns};
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
        events[1].sent_at = Some(utc("2026-12-02T09:58:30Z"));
        events[1].schema_version = Some("1-1-0".into());
        events[2].schema_version = Some("1-0-0".into());
        events[2].schema_violation = Some("/payload/x".into());
        events.push(event(9, "2026-12-02T09:00:00Z"));
        // Shredded keys of every kind, and values that stay in the remainder.
        let mut shredded = full(5);
        shredded.payload = eis_contract::JsonObject::parse(
            r#"{"plan_id": "a\"b\u00e9", "days": 7, "meals_per_day": 7.0, "retry": true,
                "dietary_tags": ["x", "y\n"], "excluded_ingredients": [], "summary": null,
                "pantry_items_used": -9223372036854775808, "week_start": 20260302}"#,
        )
        .expect("an object");
        shredded.metrics.insert("edit_count".into(), 3.0);
        shredded.metrics.insert("zz_other".into(), -0.5);
        events.push(shredded);
        assert!(!events[0].flags.is_empty() && !events[0].metrics.is_empty());
        let mut columns = EventColumns::new();
        for e in &events {
            columns.push(e).expect("push");
        }
        let file = encode(columns).expect("encode");
        let batches =
            crate::archive::columns::read_batches(bytes::Bytes::from(file)).expect("read");
        let mut back = Vec::new();
        for batch in &batches {
            back.extend(super::events(batch).expect("events"));
        }
        assert_eq!(back, events);
        for (a, b) in back.iter().zip(&events) {
            let digest = |e: &Event| eis_contract::Encoded::new(e).expect("encode").digest;
            assert_eq!(digest(a), digest(b));
        }

        // Files of version 3 (whole objects) and 2 (no plan columns either): the same events,
        // those of version 2 not checked.
        let file = crate::archive::event_parquet::write_parquet(
            &crate::archive::legacy::batch(&events, crate::archive::legacy::FORMAT_THREE.len())
                .expect("version 3"),
        )
        .expect("write");
        let version_three = crate::archive::columns::read_batches(bytes::Bytes::from(file))
            .expect("read")
            .remove(0);
        assert_eq!(super::events(&version_three).expect("events"), events);
        let version_two =
            crate::archive::legacy::batch(&events, crate::archive::legacy::FORMAT_TWO_COLUMNS)
                .expect("version 2");
        let unchecked: Vec<Event> = events
            .iter()
            .map(|e| Event {
                schema_version: None,
                schema_violation: None,
                ..e.clone()
            })
            .collect();
        assert_eq!(super::events(&version_two).expect("events"), unchecked);
    }
}
