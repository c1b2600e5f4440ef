//! The plan's check, table-driven per mode (docs/plan.md, "Modes").

use chrono::Utc;
use serde_json::{json, Value};

use super::*;
use crate::limits::Limits;

/// pantry_updated: 1-0-0 (items_added required, integer), 1-1-0 (adds an optional `source`,
/// no other properties), 2-0-0 deprecated (items as arrays). meal_swapped: one version with
/// a metrics schema.
fn document(mode: PlanMode, unplanned: UnplannedPolicy) -> PlanDocument {
    serde_json::from_value(json!({
        "unplanned": unplanned,
        "types": [
            {"event_type": "pantry_updated", "mode": mode, "versions": [
                {"version": "1-0-0", "payload": {
                    "type": "object", "required": ["items_added"],
                    "properties": {"items_added": {"type": "integer", "minimum": 0},
                                   "items_removed": {"type": "integer"}},
                    "additionalProperties": false}},
                {"version": "1-1-0", "payload": {
                    "type": "object", "required": ["items_added"],
                    "properties": {"items_added": {"type": "integer", "minimum": 0},
                                   "items_removed": {"type": "integer"},
                                   "source": {"enum": ["scan", "manual"]}},
                    "additionalProperties": false}},
                {"version": "2-0-0", "status": "deprecated", "payload": {
                    "type": "object", "required": ["items"],
                    "properties": {"items": {"type": "array"}}}}
            ]},
            {"event_type": "meal_swapped", "mode": mode, "versions": [
                {"version": "1-0-0", "payload": {"type": "object"},
                 "metrics": {"type": "object", "properties": {"latency_ms": {"maximum": 60000}}}}
            ]}
        ]
    }))
    .expect("plan document")
}

fn event(event_type: &str, payload: Value, extra: Value) -> Event {
    let mut text = json!({
        "event_type": event_type, "unit_type": "user", "unit_id": "u-1",
        "timestamp": Utc::now().to_rfc3339(), "payload": payload,
    });
    if let (Some(text), Value::Object(extra)) = (text.as_object_mut(), extra) {
        text.extend(extra);
    }
    let bytes = serde_json::to_vec(&text).expect("json");
    crate::validate_event(&bytes, Utc::now(), &Limits::default()).expect("contract-valid")
}

/// What became of an event, in a form to compare: (verdict, stamped version or the
/// rejection's code, pointer, schema path).
#[derive(Debug, PartialEq)]
enum Got {
    Stored {
        version: Option<String>,
        flags: Vec<Flag>,
        violation: Option<String>,
    },
    Kept(String, String, String),
    Refused(String, String),
}

fn outcome(plan: &Plan, event: Event) -> Got {
    match plan.check(event) {
        PlanVerdict::Accepted(e) => Got::Stored {
            version: e.schema_version,
            flags: e
                .flags
                .into_iter()
                .filter(|f| *f != Flag::NoExperimentContext)
                .collect(),
            violation: e.schema_violation,
        },
        PlanVerdict::Quarantined(r) => Got::Kept(
            r.code.to_string(),
            r.field,
            r.schema_path.unwrap_or_default(),
        ),
        PlanVerdict::Refused(r) => Got::Refused(r.code.to_string(), r.field),
    }
}

fn stored(version: &str) -> Got {
    Got::Stored {
        version: Some(version.into()),
        flags: vec![],
        violation: None,
    }
}

#[test]
fn each_mode_takes_each_kind_of_event_as_documented() {
    let flagged = |version: Option<&str>, path: &str| Got::Stored {
        version: version.map(String::from),
        flags: vec![Flag::SchemaViolation],
        violation: Some(path.into()),
    };
    let kept = |path: &str, schema_path: &str| {
        Got::Kept("schema_violation".into(), path.into(), schema_path.into())
    };
    let refused = |path: &str| Got::Refused("schema_violation".into(), path.into());
    let none = json!({});
    // (what, event type, payload, extra fields, flag mode, quarantine mode, reject mode)
    let cases: Vec<(&str, &str, Value, Value, Got, Got, Got)> = vec![
        (
            "matches the newest active version",
            "pantry_updated",
            json!({"items_added": 2, "source": "scan"}),
            none.clone(),
            stored("1-1-0"),
            stored("1-1-0"),
            stored("1-1-0"),
        ),
        (
            "two active versions, only the older matches",
            "pantry_updated",
            json!({"items_added": 2, "source": "fridge"}),
            none.clone(),
            flagged(Some("1-1-0"), "/payload/source"),
            kept("/payload/source", "/payload/properties/source/enum"),
            refused("/payload/source"),
        ),
        (
            "a required field missing",
            "pantry_updated",
            json!({"items_removed": 1}),
            none.clone(),
            flagged(Some("1-1-0"), "/payload/items_added"),
            kept("/payload/items_added", "/payload/required"),
            refused("/payload/items_added"),
        ),
        (
            "a wrong type",
            "pantry_updated",
            json!({"items_added": "2"}),
            none.clone(),
            flagged(Some("1-1-0"), "/payload/items_added"),
            kept(
                "/payload/items_added",
                "/payload/properties/items_added/type",
            ),
            refused("/payload/items_added"),
        ),
        (
            "an additional property",
            "pantry_updated",
            json!({"items_added": 1, "mealCount": 3}),
            none.clone(),
            flagged(Some("1-1-0"), "/payload/mealCount"),
            kept("/payload/mealCount", "/payload/additionalProperties"),
            refused("/payload/mealCount"),
        ),
        (
            "a metric out of its schema's range",
            "meal_swapped",
            json!({"meal_id": "m", "new_meal_id": "n"}),
            json!({"metrics": {"latency_ms": 90000}}),
            flagged(Some("1-0-0"), "/metrics/latency_ms"),
            kept(
                "/metrics/latency_ms",
                "/metrics/properties/latency_ms/maximum",
            ),
            refused("/metrics/latency_ms"),
        ),
        (
            "naming an older active version it matches",
            "pantry_updated",
            json!({"items_added": 1}),
            json!({"schema": "pantry_updated/1-0-0"}),
            stored("1-0-0"),
            stored("1-0-0"),
            stored("1-0-0"),
        ),
        (
            "naming a deprecated version it matches",
            "pantry_updated",
            json!({"items": []}),
            json!({"schema": "pantry_updated/2-0-0"}),
            Got::Stored {
                version: Some("2-0-0".into()),
                flags: vec![Flag::DeprecatedSchema],
                violation: None,
            },
            Got::Stored {
                version: Some("2-0-0".into()),
                flags: vec![Flag::DeprecatedSchema],
                violation: None,
            },
            Got::Stored {
                version: Some("2-0-0".into()),
                flags: vec![Flag::DeprecatedSchema],
                violation: None,
            },
        ),
        (
            "a deprecated version is never tried unnamed",
            "pantry_updated",
            json!({"items": []}),
            none.clone(),
            flagged(Some("1-1-0"), "/payload/items"),
            kept("/payload/items", "/payload/additionalProperties"),
            refused("/payload/items"),
        ),
        (
            "naming a version that does not exist",
            "pantry_updated",
            json!({"items_added": 1}),
            json!({"schema": "pantry_updated/1-2-0"}),
            flagged(None, "/schema"),
            kept("/schema", ""),
            refused("/schema"),
        ),
    ];
    for (what, event_type, payload, extra, flag, quarantine, reject) in cases {
        for (mode, want) in [
            (PlanMode::Flag, flag),
            (PlanMode::Quarantine, quarantine),
            (PlanMode::Reject, reject),
        ] {
            let plan = Plan::compile(&document(mode, UnplannedPolicy::Allow)).expect("compiles");
            let got = outcome(&plan, event(event_type, payload.clone(), extra.clone()));
            assert_eq!(got, want, "{what}, {mode:?}");
        }
    }
}

#[test]
fn unplanned_types_follow_the_policy_and_no_plan_checks_nothing() {
    let custom = || event("custom", json!({"anything": 1}), json!({}));
    let cases = [
        (UnplannedPolicy::Allow, stored_without_version(vec![])),
        (
            UnplannedPolicy::Flag,
            stored_without_version(vec![Flag::UnplannedEventType]),
        ),
        (
            UnplannedPolicy::Reject,
            Got::Refused("unplanned_event_type".into(), "/event_type".into()),
        ),
    ];
    for (policy, want) in cases {
        let plan = Plan::compile(&document(PlanMode::Reject, policy)).expect("compiles");
        assert_eq!(outcome(&plan, custom()), want, "{policy:?}");
    }
    // No plan: nothing is checked, and a named version is not stamped (nothing matched it).
    let named = event(
        "pantry_updated",
        json!({"x": 1}),
        json!({"schema": "pantry_updated/1-0-0"}),
    );
    assert_eq!(
        outcome(&Plan::default(), named),
        stored_without_version(vec![])
    );
}

fn stored_without_version(flags: Vec<Flag>) -> Got {
    Got::Stored {
        version: None,
        flags,
        violation: None,
    }
}

#[test]
fn the_quarantine_keeps_every_failure_of_every_active_version() {
    let plan =
        Plan::compile(&document(PlanMode::Quarantine, UnplannedPolicy::Allow)).expect("compiles");
    let e = event(
        "pantry_updated",
        json!({"items_added": -1, "source": 7, "extra": true}),
        json!({}),
    );
    let PlanVerdict::Quarantined(rejection) = plan.check(e) else {
        panic!("quarantined");
    };
    let versions: Vec<&str> = rejection
        .violations
        .iter()
        .map(|v| v.version.as_str())
        .collect();
    // 1-1-0 (newest): minimum, enum, additionalProperties; 1-0-0: minimum, additionalProperties.
    assert_eq!(versions.iter().filter(|v| **v == "1-1-0").count(), 3);
    assert_eq!(versions.iter().filter(|v| **v == "1-0-0").count(), 2);
    assert_eq!(versions[0], "1-1-0");
    assert_eq!(rejection.field, rejection.violations[0].path);
}

#[test]
fn an_invalid_plan_is_refused_naming_what_is_wrong() {
    let base = |types: Value| -> PlanDocument {
        serde_json::from_value(json!({ "types": types })).expect("document")
    };
    let cases = [
        (
            json!([{"event_type": "t", "mode": "flag", "versions": [
                {"version": "1-0-0", "payload": {"type": "strnig"}}]}]),
            "t 1-0-0: the payload schema",
        ),
        (
            json!([{"event_type": "t", "mode": "flag", "versions": [
                {"version": "1-0-0", "payload": {}, "context": {"minimum": "x"}}]}]),
            "t 1-0-0: the context schema",
        ),
        (
            json!([{"event_type": "t", "mode": "flag", "versions": [
                {"version": "1-0-0", "payload": {"$ref": "https://example.com/s.json"}}]}]),
            "t 1-0-0: the payload schema",
        ),
        (
            json!([{"event_type": "t", "mode": "flag", "versions": [
                {"version": "1-0", "payload": {}}]}]),
            "t: `1-0` is not a version",
        ),
        (
            json!([{"event_type": "t", "mode": "flag", "versions": [
                {"version": "1-0-0", "payload": {}}, {"version": "1-0-0", "payload": {}}]}]),
            "t: version 1-0-0 is given twice",
        ),
        (
            json!([{"event_type": "T", "mode": "flag", "versions": []}]),
            "`T` is not an event type name",
        ),
        (
            json!([{"event_type": "t", "mode": "flag"}, {"event_type": "t", "mode": "reject"}]),
            "t is given twice",
        ),
    ];
    for (types, want) in cases {
        let err = Plan::compile(&base(types)).expect_err(want);
        assert!(err.to_string().starts_with(want), "{err}");
    }
}

#[test]
fn a_pattern_is_matched_in_linear_time() {
    // A pattern that backtracks exponentially in a backtracking engine; the regex engine
    // answers at once (no timing here: the test would not finish with a backtracking one).
    let plan: PlanDocument = serde_json::from_value(json!({"types": [
        {"event_type": "t", "mode": "reject", "versions": [{"version": "1-0-0", "payload": {
            "properties": {"s": {"type": "string", "pattern": "^(a+)+$"}}}}]}]}))
    .expect("document");
    let plan = Plan::compile(&plan).expect("compiles");
    let s = format!("{}!", "a".repeat(4096));
    let got = outcome(&plan, event("t", json!({ "s": s }), json!({})));
    assert_eq!(
        got,
        Got::Refused("schema_violation".into(), "/payload/s".into())
    );
}

#[test]
fn formats_are_checked() {
    let plan: PlanDocument = serde_json::from_value(json!({"types": [
        {"event_type": "t", "mode": "reject", "versions": [{"version": "1-0-0", "payload": {
            "properties": {"id": {"type": "string", "format": "uuid"}}}}]}]}))
    .expect("document");
    let plan = Plan::compile(&plan).expect("compiles");
    for (id, want) in [
        ("0190a000-0000-7000-8000-000000000001", stored("1-0-0")),
        (
            "v12",
            Got::Refused("schema_violation".into(), "/payload/id".into()),
        ),
    ] {
        assert_eq!(
            outcome(&plan, event("t", json!({ "id": id }), json!({}))),
            want
        );
    }
}
