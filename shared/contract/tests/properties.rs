//! Property tests: no input panics; every well-formed event is accepted and
//! survives both the request and the record round trips, and its one-pass encoding (record and
//! content digest) equals the serde form and the content digest as stored in exp.event_ids.

mod common;

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, FixedOffset, Utc};
use common::*;
use eis_contract::{
    parse_batch, validate_event, Encoded, Event, ExperimentRef, Flag, JsonObject, Limits,
    STANDARD_EVENT_TYPES,
};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{json, Map, Value};
use uuid::Uuid;

// ---- arbitrary JSON ---------------------------------------------------------

/// Keys that reach the contract's code paths, mixed with arbitrary ones.
const KEYS: &[&str] = &[
    "event_id",
    "event_type",
    "unit_type",
    "unit_id",
    "timestamp",
    "experiments",
    "experiment_id",
    "variant_id",
    "context",
    "metrics",
    "payload",
    "policy_version_id",
    "latency_ms",
    "plan_id",
    "events",
];

fn arb_key() -> impl Strategy<Value = String> {
    prop_oneof![select(KEYS).prop_map(str::to_owned), ".{0,8}"]
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from), // non-finite becomes null
        ".{0,12}".prop_map(Value::from),
        select(&[NOW, EXP_A, VAR_A, "plan_generated", "user", ""][..]).prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            btree_map(arb_key(), inner, 0..8).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// An object whose keys are mostly the contract's own, so that arbitrary
/// values reach deep into validation rather than stopping at unknown_field.
fn arb_event_like() -> impl Strategy<Value = Value> {
    (btree_map(select(KEYS), arb_json(), 0..10), any::<bool>()).prop_map(|(fields, complete)| {
        let mut event = if complete { base() } else { json!({}) };
        for (k, v) in fields {
            event[k] = v;
        }
        event
    })
}

/// The content digest's definition, as stored in exp.event_ids since it was introduced: the
/// SHA-256 (first 16 bytes) of this struct's JSON. `Encoded::new` must agree with it forever.
#[derive(serde::Serialize)]
struct Content<'a> {
    event_type: &'a str,
    unit_type: &'a str,
    unit_id: &'a str,
    experiments: &'a [ExperimentRef],
    context: &'a JsonObject,
    metrics: &'a BTreeMap<String, f64>,
    payload: &'a JsonObject,
    timestamp: String,
}

fn reference_digest(ev: &Event) -> [u8; 16] {
    use sha2::Digest;
    let content = Content {
        event_type: &ev.event_type,
        unit_type: &ev.unit_type,
        unit_id: &ev.unit_id,
        experiments: &ev.experiments,
        context: &ev.context,
        metrics: &ev.metrics,
        payload: &ev.payload,
        timestamp: ev
            .timestamp
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
    };
    let hash = sha2::Sha256::digest(serde_json::to_vec(&content).expect("content"));
    let mut digest = [0u8; 16];
    digest.copy_from_slice(&hash[..16]);
    digest
}

/// If an arbitrary input was accepted, it must round-trip like any other.
fn check_round_trips(ev: &Event, now: DateTime<Utc>) -> Result<(), TestCaseError> {
    let encoded = Encoded::new(ev).expect("encode");
    prop_assert_eq!(&encoded.record, &serde_json::to_string(ev).expect("serde"));
    prop_assert_eq!(encoded.digest, reference_digest(ev));
    let again = request_json(ev);
    let back = validate_event(again.as_bytes(), now, &Limits::default());
    prop_assert_eq!(back.as_ref().ok(), Some(ev));
    let record = serde_json::to_vec(ev).expect("serialize record");
    let read: Event = serde_json::from_slice(&record).expect("read record");
    prop_assert_eq!(&read, ev);
    Ok(())
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..512)) {
        let limits = Limits::default();
        let _ = validate_event(&bytes, now(), &limits);
        let _ = parse_batch(&bytes, &limits);
    }

    #[test]
    fn mutated_fixture_never_panics(cut in 0..FIXTURE.len(), at in 0..FIXTURE.len(), byte in any::<u8>()) {
        let limits = Limits::default();
        let _ = validate_event(&FIXTURE[..cut], now(), &limits);
        let mut mutated = FIXTURE.to_vec();
        mutated[at] = byte;
        let _ = validate_event(&mutated, now(), &limits);
    }

    #[test]
    fn arbitrary_json_never_panics(value in arb_json()) {
        let raw = serde_json::to_vec(&value).expect("serialize");
        let limits = Limits::default();
        if let Ok(ev) = validate_event(&raw, now(), &limits) {
            check_round_trips(&ev, now())?;
        }
        let body = serde_json::to_vec(&json!({ "events": [value] })).expect("serialize");
        let _ = parse_batch(&raw, &limits);
        let events = parse_batch(&body, &limits).expect("a one-element batch");
        prop_assert_eq!(events.len(), 1);
    }

    #[test]
    fn event_like_json_never_panics(event in arb_event_like()) {
        let raw = serde_json::to_vec(&event).expect("serialize");
        if let Ok(ev) = validate_event(&raw, now(), &Limits::default()) {
            check_round_trips(&ev, now())?;
        }
    }
}

// ---- well-formed events -----------------------------------------------------

/// A generated valid event: the request body, and what it must become.
#[derive(Debug, Clone)]
struct Valid {
    request: Value,
    timestamp: DateTime<Utc>,
    old: bool,
}

fn arb_uuid() -> impl Strategy<Value = Uuid> {
    (1..=u128::MAX).prop_map(Uuid::from_u128)
}

fn arb_name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_]{0,63}"
}

/// Free-form JSON without U+0000 (the one thing context/payload refuse).
fn arb_free_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[^\u{0}]{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..5).prop_map(Value::Array),
            btree_map("[^\u{0}]{0,8}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn arb_free_map() -> impl Strategy<Value = Map<String, Value>> {
    // `policy_version_id` has a rule of its own; generated separately.
    btree_map("[^\u{0}]{1,10}", arb_free_value(), 0..6).prop_map(|m| {
        m.into_iter()
            .filter(|(k, _)| k != "policy_version_id")
            .collect()
    })
}

fn arb_metrics() -> impl Strategy<Value = BTreeMap<String, f64>> {
    let key = prop_oneof![
        select(&["latency_ms", "token_count", "edit_count"][..]).prop_map(str::to_owned),
        "[^\u{0}]{1,16}",
    ];
    let value = any::<f64>().prop_filter("finite", |f| f.is_finite());
    btree_map(key, value, 0..10).prop_map(|mut m| {
        for key in ["latency_ms", "token_count", "edit_count"] {
            if let Some(v) = m.get_mut(key) {
                *v = v.abs();
            }
        }
        m.retain(|k, _| k.len() <= 64);
        m
    })
}

/// How an optional object field appears in the request.
fn arb_presence() -> impl Strategy<Value = u8> {
    0u8..3 // 0: absent, 1: null when empty, 2: present
}

fn put_object(request: &mut Value, field: &str, map: Map<String, Value>, presence: u8) {
    match (presence, map.is_empty()) {
        (0, true) => {}
        (1, true) => request[field] = Value::Null,
        _ => request[field] = Value::Object(map),
    }
}

prop_compose! {
    fn arb_valid()(
        kind in 0..(STANDARD_EVENT_TYPES.len() + 1),
        custom_type in arb_name(),
        unit_type in arb_name(),
        unit_id in "[^\\p{Cc}]{1,64}",
        event_id in proptest::option::of(arb_uuid()),
        experiments in btree_map(any::<u128>(), arb_uuid(), 0..=32),
        experiments_presence in arb_presence(),
        age_micros in -300_000_000i64..=(30 * 86_400_000_000i64),
        offset_minutes in -(23 * 60 + 59)..=(23 * 60 + 59),
        extra_digits in 0u32..1000,
        mut context in arb_free_map(),
        mut payload in arb_free_map(),
        metrics in arb_metrics(),
        presence in (arb_presence(), arb_presence(), arb_presence()),
        policy in proptest::option::of(arb_uuid()),
        required_in_payload in any::<bool>(),
        required_value in "[^\u{0}]{1,10}",
    ) -> Valid {
        let (event_type, required) = match STANDARD_EVENT_TYPES.get(kind) {
            Some((name, keys)) => ((*name).to_owned(), *keys),
            // Avoid generating a standard name as a "custom" one.
            None if STANDARD_EVENT_TYPES.iter().any(|(n, _)| *n == custom_type) => {
                ("custom_event".to_owned(), &[][..])
            }
            None => (custom_type, &[][..]),
        };
        if let Some(policy) = policy {
            context.insert("policy_version_id".into(), json!(policy.to_string()));
        }
        for (key, _) in required {
            let value = if *key == "policy_version_id" {
                json!(Uuid::from_u128(7).to_string())
            } else {
                json!(required_value)
            };
            let target = if required_in_payload { &mut payload } else { &mut context };
            target.insert(key.to_string(), value);
        }

        let received = now();
        let timestamp = received - Duration::microseconds(age_micros);
        let offset = FixedOffset::east_opt(offset_minutes * 60).expect("offset within a day");
        let local = timestamp.with_timezone(&offset);
        let zone = if offset_minutes == 0 { "Z".to_owned() } else { local.format("%:z").to_string() };
        // Digits below the microsecond are allowed and truncated away.
        let stamp = format!("{}{extra_digits:03}{zone}", local.format("%Y-%m-%dT%H:%M:%S%.6f"));

        let mut request = json!({
            "event_type": event_type,
            "unit_type": unit_type,
            "unit_id": unit_id,
            "timestamp": stamp,
        });
        if let Some(id) = event_id {
            request["event_id"] = json!(id.to_string());
        }
        let experiments: Vec<Value> = experiments
            .into_iter()
            .map(|(e, v)| json!({"experiment_id": Uuid::from_u128(e).to_string(), "variant_id": v.to_string()}))
            .collect();
        match (experiments_presence, experiments.is_empty()) {
            (0, true) => {}
            (1, true) => request["experiments"] = Value::Null,
            _ => request["experiments"] = Value::Array(experiments),
        }
        let metrics: Map<String, Value> = metrics.into_iter().map(|(k, v)| (k, json!(v))).collect();
        put_object(&mut request, "context", context, presence.0);
        put_object(&mut request, "metrics", metrics, presence.1);
        put_object(&mut request, "payload", payload, presence.2);

        Valid {
            request,
            timestamp,
            old: age_micros > 7 * 86_400_000_000,
        }
    }
}

proptest! {
    #[test]
    fn valid_events_are_accepted_and_round_trip(valid in arb_valid()) {
        let raw = serde_json::to_vec(&valid.request).expect("serialize");
        let ev = match validate_event(&raw, now(), &Limits::default()) {
            Ok(ev) => ev,
            Err(r) => return Err(TestCaseError::fail(format!("{}: {} for {}", r.code, r.message, valid.request))),
        };
        prop_assert_eq!(ev.timestamp, valid.timestamp);
        prop_assert_eq!(ev.received_at, now());
        prop_assert_eq!(ev.flags.contains(&Flag::OldTimestamp), valid.old);
        prop_assert_eq!(ev.flags.contains(&Flag::NoExperimentContext), ev.experiments.is_empty());
        prop_assert_eq!(&ev.event_type, &valid.request["event_type"]);
        prop_assert_eq!(&ev.unit_id, &valid.request["unit_id"]);
        let context = valid.request.get("context").cloned().unwrap_or(Value::Null);
        let context = if context.is_null() { json!({}) } else { context };
        prop_assert_eq!(ev.context.as_str(), canonical(&context));
        check_round_trips(&ev, now())?;
    }
}
