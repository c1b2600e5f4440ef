//! An accepted event's record text and content digest from one serialisation. The record
//! (the event's serde form, byte for byte) is what the SQS hand-off carries; the content
//! digest is the SHA-256 of the record's content fields (see `identity`); PostgreSQL's
//! `experiments` and `metrics` columns are slices of it. Writing the event once instead of
//! three times (digest, SQS body, column arrays) is most of what the ingest spends in serde
//! per event after parsing.

use std::borrow::Cow;
use std::ops::Range;

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::ser::Error as _;
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::event::{record_time, Event, ExperimentRef};
use crate::identity::ContentDigest;

/// An event written once: its record, its content digest, and where its columns sit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub event_id: Uuid,
    /// Equal to `serde_json::to_string(&event)`.
    pub record: String,
    pub digest: ContentDigest,
    experiments: Range<usize>,
    metrics: Range<usize>,
}

/// Appends `,"key":` (or `"key":` after the opening brace). The keys are this file's
/// constants, plain ASCII that serde_json writes as is.
fn key(out: &mut Vec<u8>, key: &str) {
    if out.len() > 1 {
        out.push(b',');
    }
    out.push(b'"');
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
}

/// Appends `,"key":value` and returns where the value lies.
fn field<T: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    name: &str,
    value: &T,
) -> Result<Range<usize>, serde_json::Error> {
    key(out, name);
    let start = out.len();
    serde_json::to_writer(&mut *out, value)?;
    Ok(start..out.len())
}

/// A UUID as serde writes it (a string, hyphenated, lower case), without serde's escaping
/// pass over text that has nothing to escape.
fn uuid(out: &mut Vec<u8>, id: &Uuid) {
    let mut buf = Uuid::encode_buffer();
    out.push(b'"');
    out.extend_from_slice(id.hyphenated().encode_lower(&mut buf).as_bytes());
    out.push(b'"');
}

/// `experiments` as serde writes `Vec<ExperimentRef>`; returns where it lies.
fn experiments(out: &mut Vec<u8>, experiments: &[ExperimentRef]) -> Range<usize> {
    key(out, "experiments");
    let start = out.len();
    out.push(b'[');
    for (i, e) in experiments.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"experiment_id\":");
        uuid(out, &e.experiment_id);
        out.extend_from_slice(b",\"variant_id\":");
        uuid(out, &e.variant_id);
        out.push(b'}');
    }
    out.push(b']');
    start..out.len()
}

/// A record timestamp as serde writes it (`record_time`: `"YYYY-MM-DDTHH:MM:SS.ffffffZ"`),
/// digit by digit instead of through chrono's formatter and a string. Chrono writes the
/// years it cannot write in four digits, and leap seconds, its own way: those go through it.
fn time(out: &mut Vec<u8>, name: &str, t: &DateTime<Utc>) -> Result<(), serde_json::Error> {
    let year = t.year();
    let nanos = t.nanosecond();
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        field(out, name, &record_time::format(t))?;
        return Ok(());
    }
    key(out, name);
    let digits = |out: &mut Vec<u8>, n: u32, width: u32| {
        for p in (0..width).rev() {
            out.push(b'0' + (n / 10u32.pow(p) % 10) as u8);
        }
    };
    out.push(b'"');
    digits(out, year.unsigned_abs(), 4);
    out.push(b'-');
    digits(out, t.month(), 2);
    out.push(b'-');
    digits(out, t.day(), 2);
    out.push(b'T');
    digits(out, t.hour(), 2);
    out.push(b':');
    digits(out, t.minute(), 2);
    out.push(b':');
    digits(out, t.second(), 2);
    out.push(b'.');
    digits(out, nanos / 1_000, 6);
    out.extend_from_slice(b"Z\"");
    Ok(())
}

impl Encoded {
    /// Writes the event's fields in the order of `Event`'s serde form (its derive); the
    /// content fields (`event_type` to `timestamp`) are contiguous there, and hashed as the
    /// object `{…}` they form, which is exactly the content digest stored in exp.event_ids.
    pub fn new(event: &Event) -> Result<Self, serde_json::Error> {
        let mut out =
            Vec::with_capacity(320 + event.context.as_str().len() + event.payload.as_str().len());
        out.push(b'{');
        key(&mut out, "event_id");
        uuid(&mut out, &event.event_id);
        let content_start = out.len() + 1; // after the comma
        field(&mut out, "event_type", &event.event_type)?;
        field(&mut out, "unit_type", &event.unit_type)?;
        field(&mut out, "unit_id", &event.unit_id)?;
        let experiments = experiments(&mut out, &event.experiments);
        field(&mut out, "context", &event.context)?;
        let metrics = field(&mut out, "metrics", &event.metrics)?;
        field(&mut out, "payload", &event.payload)?;
        time(&mut out, "timestamp", &event.timestamp)?;
        let content = content_start..out.len();
        time(&mut out, "received_at", &event.received_at)?;
        if let Some(sent_at) = &event.sent_at {
            time(&mut out, "sent_at", sent_at)?;
        }
        if let Some(version) = &event.schema_version {
            field(&mut out, "schema_version", version)?;
        }
        if let Some(path) = &event.schema_violation {
            field(&mut out, "schema_violation", path)?;
        }
        field(&mut out, "flags", &event.flags)?;
        out.push(b'}');

        let mut hasher = Sha256::new();
        hasher.update(b"{");
        hasher.update(&out[content]);
        hasher.update(b"}");
        let hash = hasher.finalize();
        let mut digest = [0u8; 16];
        digest.copy_from_slice(&hash[..16]);
        // serde_json writes UTF-8 only; the check keeps that an error rather than a panic.
        let record = String::from_utf8(out).map_err(serde_json::Error::custom)?;
        Ok(Self {
            event_id: event.event_id,
            record,
            digest,
            experiments,
            metrics,
        })
    }

    /// The `experiments` array as JSON text.
    pub fn experiments_json(&self) -> &str {
        self.record.get(self.experiments.clone()).unwrap_or("[]")
    }

    /// The `metrics` object as JSON text.
    pub fn metrics_json(&self) -> &str {
        self.record.get(self.metrics.clone()).unwrap_or("{}")
    }
}

/// What can be handed off as a record: an [`Encoded`] event (written already) or an
/// [`Event`] (written on demand).
pub trait ToRecord {
    fn event_id(&self) -> Uuid;
    fn record(&self) -> Result<Cow<'_, str>, serde_json::Error>;
}

impl ToRecord for Encoded {
    fn event_id(&self) -> Uuid {
        self.event_id
    }
    fn record(&self) -> Result<Cow<'_, str>, serde_json::Error> {
        Ok(Cow::Borrowed(&self.record))
    }
}

impl ToRecord for Event {
    fn event_id(&self) -> Uuid {
        self.event_id
    }
    fn record(&self) -> Result<Cow<'_, str>, serde_json::Error> {
        serde_json::to_string(self).map(Cow::Owned)
    }
}

impl<T: ToRecord + ?Sized> ToRecord for &T {
    fn event_id(&self) -> Uuid {
        (**self).event_id()
    }
    fn record(&self) -> Result<Cow<'_, str>, serde_json::Error> {
        (**self).record()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{validate_event, Limits};
    use chrono::{TimeZone, Utc};

    #[test]
    fn timestamps_are_written_as_serde_writes_them() {
        let times = [
            "0000-01-01T00:00:00Z",
            "0009-02-03T04:05:06.000007Z",
            "1970-01-01T00:00:00.999999999Z",
            "2026-12-31T23:59:59.123456Z",
            "9999-12-31T23:59:59.999999Z",
            "-0001-12-31T23:59:59Z",
            "+10000-01-01T00:00:00Z",
        ];
        for text in times {
            let t = text
                .parse::<chrono::DateTime<Utc>>()
                .expect("a chrono time");
            let mut out = vec![b'{'];
            time(&mut out, "t", &t).expect("written");
            let expected = format!(
                r#"{{"t":{}"#,
                serde_json::to_string(&record_time::format(&t)).expect("serde")
            );
            assert_eq!(String::from_utf8(out).expect("UTF-8"), expected, "{text}");
        }
        let leap = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
            .and_then(|d| d.and_hms_nano_opt(23, 59, 59, 1_500_000_000))
            .expect("a leap second")
            .and_utc();
        let mut out = vec![b'{'];
        time(&mut out, "t", &leap).expect("written");
        let expected = serde_json::to_string(&record_time::format(&leap)).expect("serde");
        assert_eq!(out, format!(r#"{{"t":{expected}"#).into_bytes());
    }

    #[test]
    fn the_record_is_the_serde_form_and_the_columns_are_its_slices() {
        let now = Utc
            .with_ymd_and_hms(2026, 12, 1, 12, 0, 0)
            .single()
            .expect("date");
        let bodies = [
            r#"{"event_type":"pantry_updated","unit_type":"user","unit_id":"u\"1\u00e9","timestamp":"2026-12-01T11:00:00.123456789+01:00"}"#,
            r#"{"event_type":"plan_generated","unit_type":"user","unit_id":"u2","timestamp":"2026-12-01T11:59:00Z",
                "experiments":[{"experiment_id":"0190a000-0000-7000-8000-000000000001","variant_id":"0190a000-0000-7000-8000-000000000002"}],
                "context":{"policy_version_id":"0190a000-0000-7000-8000-000000000003","n":1.50},
                "metrics":{"latency_ms":450,"token_count":1e3},"payload":{"plan_id":"p","x":[1,{"y":"\ufffe"}]}}"#,
        ];
        let sent_at = [None, Some(now - chrono::Duration::milliseconds(1500))];
        for (body, sent_at) in bodies.iter().flat_map(|b| sent_at.map(|s| (b, s))) {
            let mut event = validate_event(body.as_bytes(), now, &Limits::default()).expect(body);
            event.sent_at = sent_at;
            let encoded = Encoded::new(&event).expect("encode");
            assert_eq!(
                encoded.record,
                serde_json::to_string(&event).expect("serde")
            );
            assert_eq!(
                encoded.experiments_json(),
                serde_json::to_string(&event.experiments).expect("serde")
            );
            assert_eq!(
                encoded.metrics_json(),
                serde_json::to_string(&event.metrics).expect("serde")
            );
            assert_eq!(encoded.event_id, event.event_id);
        }
    }
}
