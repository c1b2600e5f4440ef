//! What a caller captures: a typed [`Event`] or any JSON object, made ready to send at capture
//! (an `event_id` and a `timestamp` set when absent, the required fields checked, the size
//! bounded), so that everything later works on finished bytes and a retry resends exactly them.

use std::collections::BTreeMap;

use bytes::Bytes;
use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::CaptureError;

/// The server's limit on one event's JSON text (docs/contract.md, "Size").
pub const MAX_EVENT_BYTES: usize = 65_536;

/// The fields the server requires and the SDK can check without the contract's full rules
/// (`timestamp` is required too, but the SDK sets it when absent).
const REQUIRED: [&str; 3] = ["event_type", "unit_type", "unit_id"];

/// One event, typed. `event_id` and `timestamp` may be left `None`: capture sets a UUIDv7 and
/// the current time, so that a retry carries the same identity and instant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<Uuid>,
    pub event_type: String,
    pub unit_type: String,
    pub unit_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<DateTime<FixedOffset>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub experiments: Vec<Experiment>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub context: Map<String, Value>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, f64>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub payload: Map<String, Value>,
    /// The tracking plan's version the event is written to, `event_type/MODEL-REVISION-ADDITION`
    /// (docs/plan.md); None: checked against the type's active versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
}

/// An experiment the event's unit is in, and its variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    pub experiment_id: Uuid,
    pub variant_id: Uuid,
}

impl Event {
    /// An event of `event_type` about `unit_id` of `unit_type`, with nothing else set yet.
    pub fn new(
        event_type: impl Into<String>,
        unit_type: impl Into<String>,
        unit_id: impl Into<String>,
    ) -> Event {
        Event {
            event_type: event_type.into(),
            unit_type: unit_type.into(),
            unit_id: unit_id.into(),
            ..Event::default()
        }
    }

    pub fn experiment(mut self, experiment_id: Uuid, variant_id: Uuid) -> Event {
        self.experiments.push(Experiment {
            experiment_id,
            variant_id,
        });
        self
    }

    pub fn context(mut self, key: impl Into<String>, value: impl Into<Value>) -> Event {
        self.context.insert(key.into(), value.into());
        self
    }

    pub fn metric(mut self, key: impl Into<String>, value: f64) -> Event {
        self.metrics.insert(key.into(), value);
        self
    }

    pub fn payload(mut self, key: impl Into<String>, value: impl Into<Value>) -> Event {
        self.payload.insert(key.into(), value.into());
        self
    }

    /// Names the plan version the event is written to: `"pantry_updated/1-1-0"`.
    pub fn schema(mut self, schema: impl Into<String>) -> Event {
        self.schema = Some(schema.into());
        self
    }
}

/// What `capture` and `send` take: an [`Event`] or a `serde_json::Value` holding an object.
pub trait IntoEvent {
    fn into_json(self) -> Result<Value, CaptureError>;
}

impl IntoEvent for Value {
    fn into_json(self) -> Result<Value, CaptureError> {
        Ok(self)
    }
}

impl IntoEvent for Event {
    fn into_json(self) -> Result<Value, CaptureError> {
        // serde_json writes a NaN or an infinity as `null`, which the server would reject
        // later as `invalid_metric`: refused here, where the caller still holds the event.
        if let Some((key, _)) = self.metrics.iter().find(|(_, v)| !v.is_finite()) {
            return Err(CaptureError::Invalid {
                code: "invalid_metric",
                field: format!("/metrics/{}", key.replace('~', "~0").replace('/', "~1")),
                message: format!("metric {key:?} is not a finite number"),
            });
        }
        serde_json::to_value(self).map_err(|e| CaptureError::Invalid {
            code: "invalid_event",
            field: String::new(),
            message: e.to_string(),
        })
    }
}

/// An event ready to send: its id and its JSON text, which no later step changes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Prepared {
    pub id: Uuid,
    pub json: Bytes,
}

/// Sets what capture sets and checks what can be checked without the server: an object, the
/// required fields present, a usable `event_id`, at most `max_bytes` of JSON.
pub(crate) fn prepare(event: impl IntoEvent, max_bytes: usize) -> Result<Prepared, CaptureError> {
    let Value::Object(mut fields) = event.into_json()? else {
        return Err(CaptureError::Invalid {
            code: "invalid_event",
            field: String::new(),
            message: "an event is a JSON object".into(),
        });
    };
    for name in REQUIRED {
        if is_missing(fields.get(name)) {
            return Err(CaptureError::MissingField { field: name });
        }
    }
    let id = match fields.get("event_id") {
        None | Some(Value::Null) => {
            let id = Uuid::now_v7();
            fields.insert("event_id".into(), Value::String(id.to_string()));
            id
        }
        Some(Value::String(text)) => match Uuid::try_parse(text) {
            Ok(id) if !id.is_nil() => id,
            _ => return Err(invalid_event_id()),
        },
        Some(_) => return Err(invalid_event_id()),
    };
    if is_missing(fields.get("timestamp")) {
        let now = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
        fields.insert("timestamp".into(), Value::String(now));
    }
    // Sized for a typical event up front: the default start of 128 bytes means several
    // reallocations per event.
    let mut json = Vec::with_capacity(1024);
    serde_json::to_writer(&mut json, &Value::Object(fields)).map_err(|e| {
        CaptureError::Invalid {
            code: "invalid_event",
            field: String::new(),
            message: e.to_string(),
        }
    })?;
    // The queue counts `len` bytes: the spare capacity goes (glibc shrinks in place).
    json.shrink_to_fit();
    if json.len() > max_bytes {
        return Err(CaptureError::TooLarge {
            event_id: id,
            bytes: json.len(),
            limit: max_bytes,
        });
    }
    Ok(Prepared {
        id,
        json: Bytes::from(json),
    })
}

/// The contract's "missing": absent, `null` or `""`.
fn is_missing(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(_) => false,
    }
}

fn invalid_event_id() -> CaptureError {
    CaptureError::Invalid {
        code: "invalid_event_id",
        field: "/event_id".into(),
        message: "event_id is not a UUID (8-4-4-4-12), or is the nil UUID".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn minimal() -> Value {
        json!({"event_type": "meal_swapped", "unit_type": "user", "unit_id": "u1"})
    }

    fn parsed(p: &Prepared) -> Value {
        serde_json::from_slice(&p.json).unwrap_or(Value::Null)
    }

    #[test]
    fn capture_sets_a_v7_id_and_a_timestamp_with_an_offset() {
        let before = Uuid::now_v7();
        let p = prepare(minimal(), MAX_EVENT_BYTES).expect("valid");
        assert_eq!(p.id.get_version_num(), 7);
        assert!(p.id >= before, "time-ordered: later than an id made before");
        let event = parsed(&p);
        assert_eq!(event["event_id"], p.id.to_string());
        let ts = event["timestamp"].as_str().expect("timestamp");
        assert!(DateTime::parse_from_rfc3339(ts).is_ok(), "{ts}");
        assert!(ts.ends_with('Z'));
    }

    #[test]
    fn a_given_id_and_timestamp_are_kept() {
        let mut event = minimal();
        event["event_id"] = json!("0193F1A2-7C3E-7A10-8B2C-3D4E5F6A7B01");
        event["timestamp"] = json!("2026-03-01T11:58:42.517+01:00");
        let p = prepare(event, MAX_EVENT_BYTES).expect("valid");
        assert_eq!(p.id.to_string(), "0193f1a2-7c3e-7a10-8b2c-3d4e5f6a7b01");
        let sent = parsed(&p);
        assert_eq!(sent["timestamp"], "2026-03-01T11:58:42.517+01:00");
        assert_eq!(
            sent["event_id"], "0193F1A2-7C3E-7A10-8B2C-3D4E5F6A7B01",
            "sent as given"
        );
    }

    #[test]
    fn missing_required_fields_are_named() {
        for field in REQUIRED {
            for absent in [None, Some(Value::Null), Some(json!(""))] {
                let mut event = minimal();
                match &absent {
                    None => {
                        event.as_object_mut().map(|o| o.remove(field));
                    }
                    Some(v) => event[field] = v.clone(),
                }
                let err = prepare(event, MAX_EVENT_BYTES).expect_err("missing");
                assert_eq!(err, CaptureError::MissingField { field });
                assert_eq!(err.code(), format!("missing_{field}"));
            }
        }
    }

    #[test]
    fn bad_ids_and_non_objects_are_refused() {
        for id in [json!("nope"), json!(7), json!(Uuid::nil().to_string())] {
            let mut event = minimal();
            event["event_id"] = id;
            let err = prepare(event, MAX_EVENT_BYTES).expect_err("bad id");
            assert_eq!(err.code(), "invalid_event_id");
        }
        let err = prepare(json!([1]), MAX_EVENT_BYTES).expect_err("array");
        assert_eq!(err.code(), "invalid_event");
    }

    #[test]
    fn an_event_over_the_limit_is_too_large() {
        let mut event = minimal();
        event["payload"] = json!({"text": "x".repeat(MAX_EVENT_BYTES)});
        match prepare(event, MAX_EVENT_BYTES) {
            Err(CaptureError::TooLarge { bytes, limit, .. }) => {
                assert!(bytes > limit);
                assert_eq!(limit, MAX_EVENT_BYTES);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_typed_event_serialises_as_the_contract_says() {
        let exp = Uuid::now_v7();
        let var = Uuid::now_v7();
        let event = Event::new("plan_generated", "user", "u1")
            .experiment(exp, var)
            .context("policy_version_id", Uuid::now_v7().to_string())
            .metric("latency_ms", 450.0)
            .payload("plan_id", "p1")
            .schema("plan_generated/1-0-0");
        let p = prepare(event, MAX_EVENT_BYTES).expect("valid");
        let sent = parsed(&p);
        assert_eq!(sent["experiments"][0]["variant_id"], var.to_string());
        assert_eq!(sent["schema"], "plan_generated/1-0-0");
        assert_eq!(sent["metrics"]["latency_ms"], 450.0);
        let keys: Vec<&String> = sent
            .as_object()
            .map(|o| o.keys().collect())
            .unwrap_or_default();
        assert_eq!(keys.len(), 10, "{keys:?}");

        let bad = Event::new("x", "user", "u").metric("a/b", f64::NAN);
        let err = prepare(bad, MAX_EVENT_BYTES).expect_err("NaN");
        assert_eq!(
            (err.code(), err.field()),
            ("invalid_metric", Some("/metrics/a~1b"))
        );
    }
}
