//! Helpers shared by the integration tests: a fixed clock, a valid base
//! event to mutate, and shorthands for "validate this and give me the code".
#![allow(dead_code)] // each test crate uses a different subset

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use eis_contract::{validate_event, Code, Event, ExperimentRef, JsonObject, Limits, Rejection};
use serde::Serialize;
use serde_json::{json, Value};
use uuid::Uuid;

/// The canonical event (events/plan_generated.json, about 1 KiB): the integration tests' support
/// and the benchmarks' workload are built from it too.
pub const FIXTURE: &[u8] = include_bytes!("../../../../events/plan_generated.json");

/// The server clock used by every test unless a test says otherwise.
pub const NOW: &str = "2026-03-01T12:00:00Z";

pub fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("test timestamp")
        .with_timezone(&Utc)
}

pub fn now() -> DateTime<Utc> {
    at(NOW)
}

pub const EXP_A: &str = "0191e3b2-7a10-7c44-8f0e-2b9d6a1c3e58";
pub const VAR_A: &str = "0191e3b2-7a10-7c44-8f0e-2b9d6a1c3e5a";
pub const EXP_B: &str = "0191f0c4-1d22-7e90-a3b5-6c7d8e9f0a12";
pub const VAR_B: &str = "0191f0c4-1d22-7e90-a3b5-6c7d8e9f0a15";
pub const POLICY: &str = "0192a1b0-55e3-7f01-8c2d-3e4f5a6b7c8d";

/// A minimal valid event of a custom type, with one experiment.
pub fn base() -> Value {
    json!({
        "event_type": "pantry_updated",
        "unit_type": "user",
        "unit_id": "u-1",
        "timestamp": NOW,
        "experiments": [{"experiment_id": EXP_A, "variant_id": VAR_A}],
    })
}

/// `base()` with `field` set to `value`.
pub fn with(field: &str, value: Value) -> Value {
    let mut event = base();
    event[field] = value;
    event
}

/// `base()` without `field`.
pub fn without(field: &str) -> Value {
    let mut event = base();
    if let Value::Object(map) = &mut event {
        map.remove(field);
    }
    event
}

pub fn validate_bytes(raw: &[u8]) -> Result<Event, Rejection> {
    validate_event(raw, now(), &Limits::default())
}

pub fn validate(event: &Value) -> Result<Event, Rejection> {
    validate_bytes(&serde_json::to_vec(event).expect("serialize test event"))
}

/// The accepted event, or a panic naming the rejection.
pub fn accept(event: &Value) -> Event {
    match validate(event) {
        Ok(ev) => ev,
        Err(r) => panic!("expected acceptance, got {}: {}", r.code, r.message),
    }
}

/// The rejection code, or a panic if the event was accepted.
pub fn reject(event: &Value) -> Code {
    reject_bytes(&serde_json::to_vec(event).expect("serialize test event"))
}

pub fn reject_bytes(raw: &[u8]) -> Code {
    match validate_bytes(raw) {
        Ok(ev) => panic!("expected a rejection, accepted {ev:?}"),
        Err(r) => r.code,
    }
}

/// A stored object read back as a `Value`, to index into in assertions
/// (numbers go through f64 here: compare `as_str()` to check exactness).
pub fn value(object: &eis_contract::JsonObject) -> Value {
    serde_json::from_str(object.as_str()).expect("canonical text is JSON")
}

/// The canonical text of `value`, as validation would store it.
pub fn canonical(value: &Value) -> String {
    let text = serde_json::to_string(value).expect("serialize");
    eis_contract::JsonObject::parse(&text)
        .expect("an object")
        .as_str()
        .to_owned()
}

/// The request-body form of an event, as JSON text: what a client would POST to get it.
/// Validating it again with the same `now` yields an equal `Event` (numbers in `context` and
/// `payload` are kept exactly).
pub fn request_json(ev: &Event) -> String {
    #[derive(Serialize)]
    struct Request<'a> {
        event_id: &'a Uuid,
        event_type: &'a str,
        unit_type: &'a str,
        unit_id: &'a str,
        experiments: &'a [ExperimentRef],
        context: &'a JsonObject,
        // Finite by construction, so none is written as null.
        metrics: &'a BTreeMap<String, f64>,
        payload: &'a JsonObject,
        timestamp: String,
    }
    serde_json::to_string(&Request {
        event_id: &ev.event_id,
        event_type: &ev.event_type,
        unit_type: &ev.unit_type,
        unit_id: &ev.unit_id,
        experiments: &ev.experiments,
        context: &ev.context,
        metrics: &ev.metrics,
        payload: &ev.payload,
        timestamp: ev.timestamp.to_rfc3339_opts(SecondsFormat::Micros, true),
    })
    .expect("an accepted event serialises")
}
