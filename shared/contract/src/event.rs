//! The accepted, normalised event and its RECORD serde form (what is packed
//! into SQS messages and read back by the archiver).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::code::Flag;
use crate::json_object::JsonObject;

/// One experiment the unit was exposed to when the event happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentRef {
    pub experiment_id: Uuid,
    pub variant_id: Uuid,
}

/// An accepted event, normalised.
///
/// Its serde form is the record format: every field is written, timestamps
/// as RFC 3339 UTC with exactly six fractional digits and `Z`, flags as
/// their snake_case strings. Deserialize is strict (unknown fields and
/// non-canonical timestamps are errors) because a record that does not
/// round-trip exactly would make the archive disagree with the database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    pub event_id: Uuid,
    pub event_type: String,
    pub unit_type: String,
    pub unit_id: String,
    pub experiments: Vec<ExperimentRef>,
    /// `{}` when the request had none. Canonical text: numbers exact.
    pub context: JsonObject,
    /// `{}` when the request had none.
    pub metrics: BTreeMap<String, f64>,
    /// `{}` when the request had none. Canonical text: numbers exact.
    pub payload: JsonObject,
    /// In UTC, truncated to microseconds (what PostgreSQL and Parquet keep).
    #[serde(with = "record_time")]
    pub timestamp: DateTime<Utc>,
    /// The `now` given to validation, truncated to microseconds.
    #[serde(with = "record_time")]
    pub received_at: DateTime<Utc>,
    /// When the client sent the request, by its own clock (the `EIS-Sent-At` header), when it
    /// said. Not content: a retry carries a new one, and the digest leaves it out. Absent from
    /// the record when None, so records written before it existed read back unchanged.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "record_time_option"
    )]
    pub sent_at: Option<DateTime<Utc>>,
    /// The tracking plan's version the event was checked against (docs/plan.md), as
    /// `MODEL-REVISION-ADDITION`: the version it matched, or, with the flag
    /// `schema_violation`, the one it failed (the version it named, else the newest active).
    /// None: not checked (no plan, an unplanned type, a named version the plan lacks). Between
    /// validation and the plan's check (`Plan::check`), the version the event named in its
    /// `schema` field. Not content, like `sent_at`: a retry judged by a newer plan stays a
    /// duplicate. Absent from the record when None.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_version: Option<String>,
    /// With the flag `schema_violation`: the JSON pointer, within the event, of the first
    /// value the plan refused (`/payload/meal_count`), for plan health's failing paths.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_violation: Option<String>,
    /// Warnings, in `Flag::ALL` order.
    pub flags: Vec<Flag>,
}

impl Event {
    /// The warnings to return to the caller (the stored flags).
    pub fn warnings(&self) -> &[Flag] {
        &self.flags
    }

    /// `timestamp` moved by the client clock's offset: `timestamp + (received_at − sent_at)`,
    /// the event's time by the server's clock (less the request's transit). None without
    /// `sent_at`, or when the sum is not a time chrono can hold.
    pub fn adjusted_timestamp(&self) -> Option<DateTime<Utc>> {
        let offset = self.received_at.signed_duration_since(self.sent_at?);
        self.timestamp.checked_add_signed(offset)
    }
}

/// Serde for an optional record timestamp, in the form of [`record_time`].
pub(crate) mod record_time_option {
    use chrono::{DateTime, Utc};
    use serde::{Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(
        t: &Option<DateTime<Utc>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::record_time::serialize(t, s),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        super::record_time::deserialize(d).map(Some)
    }
}

/// Serde for record timestamps: exactly `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
pub(crate) mod record_time {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{de::Error as _, Deserialize, Deserializer, Serializer};

    pub(crate) fn format(t: &DateTime<Utc>) -> String {
        t.to_rfc3339_opts(SecondsFormat::Micros, true)
    }

    pub(crate) fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(t))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        // Accept only the canonical form we write: anything else would be
        // normalised on read and no longer round-trip byte for byte.
        let text = std::borrow::Cow::<str>::deserialize(d)?;
        let parsed = DateTime::parse_from_rfc3339(&text)
            .map_err(|e| D::Error::custom(format_args!("invalid record timestamp: {e}")))?
            .with_timezone(&Utc);
        if format(&parsed) != text {
            return Err(D::Error::custom(
                "record timestamp is not in the form YYYY-MM-DDTHH:MM:SS.ffffffZ",
            ));
        }
        Ok(parsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::Value;

    fn sample() -> Event {
        let ts = Utc
            .with_ymd_and_hms(2026, 3, 1, 12, 0, 0)
            .single()
            .expect("valid date");
        Event {
            event_id: Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001),
            event_type: "pantry_updated".into(),
            unit_type: "user".into(),
            unit_id: "u-1".into(),
            experiments: vec![],
            context: JsonObject::default(),
            metrics: BTreeMap::new(),
            payload: JsonObject::default(),
            timestamp: ts,
            received_at: ts,
            sent_at: None,
            schema_version: None,
            schema_violation: None,
            flags: vec![Flag::NoExperimentContext],
        }
    }

    #[test]
    fn record_form_is_canonical_and_round_trips() {
        let ev = sample();
        let json = serde_json::to_value(&ev).expect("serialize");
        assert_eq!(json["timestamp"], "2026-03-01T12:00:00.000000Z");
        assert_eq!(json["flags"], serde_json::json!(["no_experiment_context"]));
        let back: Event = serde_json::from_value(json).expect("deserialize");
        assert_eq!(back, ev);
    }

    #[test]
    fn record_keeps_payload_numbers_exactly() {
        let mut ev = sample();
        ev.payload = JsonObject::parse(r#"{"n": 123456789012345678901234567890, "f": 1.50}"#)
            .expect("an object");
        let text = serde_json::to_string(&ev).expect("serialize");
        assert!(text.contains(r#""payload":{"f":1.50,"n":123456789012345678901234567890}"#));
        let back: Event = serde_json::from_str(&text).expect("deserialize");
        assert_eq!(back, ev);
    }

    #[test]
    fn record_rejects_unknown_fields_and_loose_timestamps() {
        let mut json = serde_json::to_value(sample()).expect("serialize");
        json["extra"] = Value::Bool(true);
        assert!(serde_json::from_value::<Event>(json).is_err());

        for loose in [
            "2026-03-01T12:00:00Z",
            "2026-03-01T14:00:00.000000+02:00",
            "2026-03-01T12:00:00.000000001Z",
        ] {
            let mut json = serde_json::to_value(sample()).expect("serialize");
            json["timestamp"] = Value::from(loose);
            assert!(serde_json::from_value::<Event>(json).is_err(), "{loose}");
        }
    }

    #[test]
    fn sent_at_is_written_only_when_known_and_moves_the_adjusted_timestamp() {
        let mut ev = sample();
        assert!(!serde_json::to_string(&ev)
            .expect("serialize")
            .contains("sent_at"));
        assert_eq!(ev.adjusted_timestamp(), None);
        // The client's clock runs 90 s behind the server's.
        ev.sent_at = Some(ev.received_at - chrono::Duration::seconds(90));
        let json = serde_json::to_value(&ev).expect("serialize");
        assert_eq!(json["sent_at"], "2026-03-01T11:58:30.000000Z");
        assert_eq!(
            serde_json::from_value::<Event>(json).expect("round trip"),
            ev
        );
        assert_eq!(
            ev.adjusted_timestamp(),
            Some(ev.timestamp + chrono::Duration::seconds(90))
        );
    }

    #[test]
    fn record_requires_every_field() {
        let mut json = serde_json::to_value(sample()).expect("serialize");
        if let Value::Object(obj) = &mut json {
            obj.remove("context");
        }
        assert!(serde_json::from_value::<Event>(json).is_err());
    }
}
