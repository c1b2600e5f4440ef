//! Every code has an input that produces it, the precedence order holds
//! when an event has several problems, and the docs list every code.

mod common;

use common::*;
use std::collections::HashMap;

use eis_contract::plan::{Plan, PlanVerdict};
use eis_contract::{
    parse_batch, unit_hash, Code, Flag, Limits, RegisteredExperiment, Registry, RegistryMode,
    Tombstone, Tombstones, UnitBinding,
};
use serde_json::{json, Value};
use uuid::Uuid;

enum Input {
    Event(Vec<u8>),
    Batch(Vec<u8>),
    /// `base()`, valid, checked in reject mode against a registry holding `EXP_A` (or, with
    /// `false`, another experiment) as given.
    Registered(RegisteredExperiment, bool),
    /// `base()`, valid, sent by another user than its unit, to a deployment that binds users.
    NotTheCaller,
    /// `base()`, valid, of a unit erased after its timestamp (`true`: with suppression).
    Erased(bool),
    /// `base()`, valid, checked against a tracking plan in reject mode that requires a payload
    /// field it lacks (or, with `true`, that does not name its type, unplanned ones refused).
    Planned(bool),
}

/// `EXP_A` as `base()` fits it: unit_type user, running, from 2026-01-01, variant `VAR_A`.
fn registered() -> RegisteredExperiment {
    RegisteredExperiment {
        unit_type: "user".into(),
        stopped: false,
        starts_at: at("2026-01-01T00:00:00Z"),
        ends_at: None,
        variants: vec![uuid(VAR_A)],
    }
}

fn uuid(text: &str) -> Uuid {
    Uuid::parse_str(text).expect("a UUID")
}

fn event(value: Value) -> Input {
    Input::Event(serde_json::to_vec(&value).expect("serialize"))
}

fn batch(text: &str) -> Input {
    Input::Batch(text.as_bytes().to_vec())
}

fn standard(event_type: &str) -> Input {
    event(with("event_type", json!(event_type)))
}

/// One input per code. The match is exhaustive, so a new code does not
/// compile until it has an example here.
fn example(code: Code) -> Input {
    match code {
        Code::EventTooLarge => event(with("payload", json!({ "x": "x".repeat(70_000) }))),
        Code::InvalidJson => Input::Event(b"{\"event_type\": ".to_vec()),
        Code::InvalidEvent => Input::Event(b"[]".to_vec()),
        Code::UnknownField => event(with("experiment", json!([]))),
        Code::MissingEventType => event(without("event_type")),
        Code::InvalidEventType => event(with("event_type", json!("Bad Type"))),
        Code::MissingUnitType => event(without("unit_type")),
        Code::InvalidUnitType => event(with("unit_type", json!(1))),
        Code::MissingUnitId => event(with("unit_id", json!(""))),
        Code::InvalidUnitId => event(with("unit_id", json!("x".repeat(257)))),
        Code::MissingTimestamp => event(without("timestamp")),
        Code::InvalidTimestamp => event(with("timestamp", json!("2026-03-01T12:00:00"))),
        Code::FutureTimestamp => event(with("timestamp", json!("2026-03-01T12:05:00.000001Z"))),
        Code::InvalidEventId => event(with(
            "event_id",
            json!("00000000-0000-0000-0000-000000000000"),
        )),
        Code::InvalidExperiments => event(with("experiments", json!({}))),
        Code::InvalidExperimentId => event(with(
            "experiments",
            json!([{"experiment_id": "exp-1", "variant_id": VAR_A}]),
        )),
        Code::InvalidVariantId => event(with(
            "experiments",
            json!([{"experiment_id": EXP_A, "variant_id": "control"}]),
        )),
        Code::DuplicateExperiment => event(with(
            "experiments",
            json!([
                {"experiment_id": EXP_A, "variant_id": VAR_A},
                {"experiment_id": EXP_A, "variant_id": VAR_B},
            ]),
        )),
        Code::InvalidContext => event(with("context", json!("ios"))),
        Code::InvalidPolicyVersionId => event(with("context", json!({"policy_version_id": "v12"}))),
        Code::InvalidMetrics => event(with("metrics", json!([1]))),
        Code::InvalidMetric => event(with("metrics", json!({"latency_ms": -5}))),
        Code::InexactMetric => event(with("metrics", json!({"revenue": 9007199254740993u64}))),
        Code::InvalidPayload => event(with("payload", json!([]))),
        Code::MissingPolicyVersionId => standard("plan_generated"),
        Code::MissingPlanId => standard("plan_accepted"),
        Code::MissingRejectionReason => {
            let mut e = with("event_type", json!("plan_rejected"));
            e["payload"] = json!({"plan_id": "p1"});
            event(e)
        }
        Code::MissingMealId => standard("meal_swapped"),
        Code::MissingNewMealId => {
            let mut e = with("event_type", json!("meal_swapped"));
            e["payload"] = json!({"meal_id": "m1"});
            event(e)
        }
        Code::MissingEditType => standard("edit_applied"),
        Code::MissingEditDetails => {
            let mut e = with("event_type", json!("edit_applied"));
            e["context"] = json!({"edit_type": "servings"});
            event(e)
        }
        Code::MissingInterventionType => standard("validator_intervention"),
        Code::MissingEvents => batch(r#"{"evnts": []}"#),
        Code::InvalidEvents => batch(r#"{"events": {}}"#),
        Code::BatchTooLarge => {
            let events = vec!["{}"; 1001].join(",");
            Input::Batch(format!(r#"{{"events": [{events}]}}"#).into_bytes())
        }
        Code::EmptyBatch => batch(r#"{"events": []}"#),
        Code::UnregisteredExperiment => Input::Registered(registered(), false),
        Code::UnknownVariant => Input::Registered(
            RegisteredExperiment {
                variants: vec![uuid(VAR_B)],
                ..registered()
            },
            true,
        ),
        Code::UnitTypeMismatch => Input::Registered(
            RegisteredExperiment {
                unit_type: "household".into(),
                ..registered()
            },
            true,
        ),
        Code::ExperimentStopped => Input::Registered(
            RegisteredExperiment {
                stopped: true,
                ..registered()
            },
            true,
        ),
        Code::OutsideExperimentWindow => Input::Registered(
            RegisteredExperiment {
                ends_at: Some(at(NOW)),
                ..registered()
            },
            true,
        ),
        Code::UnitNotAuthorized => Input::NotTheCaller,
        Code::UnitErased => Input::Erased(false),
        Code::UnitSuppressed => Input::Erased(true),
        Code::InvalidSchema => event(with("schema", json!("plan_generated/1-0-0"))),
        Code::SchemaViolation => Input::Planned(false),
        Code::UnplannedEventType => Input::Planned(true),
    }
}

/// The JSON pointer each code's example blames (`""`: the whole event or body).
fn blamed(code: Code) -> &'static str {
    match code {
        Code::EventTooLarge | Code::InvalidJson | Code::InvalidEvent => "",
        Code::UnknownField => "/experiment",
        Code::MissingEventType | Code::InvalidEventType => "/event_type",
        Code::MissingUnitType | Code::InvalidUnitType => "/unit_type",
        Code::MissingUnitId
        | Code::InvalidUnitId
        | Code::UnitNotAuthorized
        | Code::UnitSuppressed => "/unit_id",
        Code::UnitErased => "/timestamp",
        Code::MissingTimestamp | Code::InvalidTimestamp | Code::FutureTimestamp => "/timestamp",
        Code::InvalidEventId => "/event_id",
        Code::InvalidExperiments => "/experiments",
        Code::InvalidExperimentId => "/experiments/0/experiment_id",
        Code::InvalidVariantId => "/experiments/0/variant_id",
        Code::DuplicateExperiment => "/experiments/1/experiment_id",
        Code::InvalidContext => "/context",
        Code::InvalidPolicyVersionId => "/context/policy_version_id",
        Code::InvalidMetrics => "/metrics",
        Code::InvalidMetric => "/metrics/latency_ms",
        Code::InexactMetric => "/metrics/revenue",
        Code::InvalidPayload => "/payload",
        Code::MissingPolicyVersionId => "/context/policy_version_id",
        Code::MissingPlanId => "/context/plan_id",
        Code::MissingRejectionReason => "/context/rejection_reason",
        Code::MissingMealId => "/context/meal_id",
        Code::MissingNewMealId => "/context/new_meal_id",
        Code::MissingEditType => "/context/edit_type",
        Code::MissingEditDetails => "/context/edit_details",
        Code::MissingInterventionType => "/context/intervention_type",
        Code::MissingEvents => "",
        Code::InvalidEvents | Code::BatchTooLarge | Code::EmptyBatch => "/events",
        Code::UnregisteredExperiment
        | Code::UnknownVariant
        | Code::UnitTypeMismatch
        | Code::ExperimentStopped
        | Code::OutsideExperimentWindow => "/experiments/0",
        Code::InvalidSchema => "/schema",
        Code::SchemaViolation => "/payload/servings",
        Code::UnplannedEventType => "/event_type",
    }
}

#[test]
fn every_code_has_an_example_that_produces_it() {
    for &code in Code::ALL {
        let got = match example(code) {
            Input::Event(raw) => validate_bytes(&raw).err(),
            Input::Batch(raw) => parse_batch(&raw, &Limits::default()).err(),
            Input::Registered(experiment, as_exp_a) => {
                let id = if as_exp_a { EXP_A } else { EXP_B };
                let registry = Registry::new(HashMap::from([(uuid(id), experiment)]));
                let event = validate(&base()).expect("base() is valid");
                registry.admit(event, RegistryMode::Reject).err()
            }
            Input::NotTheCaller => {
                let binding = UnitBinding {
                    unit_type: "user".into(),
                };
                let event = validate(&base()).expect("base() is valid");
                binding.check(&event, Some("someone-else")).err()
            }
            Input::Erased(suppress) => {
                let key = vec![7u8; 32];
                let tombstone = Tombstone {
                    erased_at: now() + chrono::Duration::hours(1),
                    suppress,
                };
                let units = HashMap::from([(unit_hash(&key, "user", "u-1"), tombstone)]);
                let event = validate(&base()).expect("base() is valid");
                Tombstones::new(key, units).check(&event).err()
            }
            Input::Planned(unplanned) => {
                let event_type = if unplanned { "other" } else { "pantry_updated" };
                let document = json!({"unplanned": "reject", "types": [{
                    "event_type": event_type, "mode": "reject", "versions": [
                        {"version": "1-0-0", "payload": {"required": ["servings"]}}]}]});
                let document = serde_json::from_value(document).expect("a plan document");
                let plan = Plan::compile(&document).expect("compiles");
                match plan.check(validate(&base()).expect("base() is valid")) {
                    PlanVerdict::Refused(rejection) => Some(rejection),
                    _ => None,
                }
            }
        };
        let got = got.map(|r| (r.code, r.field));
        assert_eq!(
            got,
            Some((code, blamed(code).to_string())),
            "example for {code}"
        );
    }
}

#[test]
fn every_code_and_flag_is_documented() {
    let doc = include_str!("../../../docs/contract.md");
    for code in Code::ALL {
        assert!(
            doc.contains(&format!("| `{code}` |")),
            "{code} missing from docs/contract.md"
        );
    }
    for flag in Flag::ALL {
        assert!(
            doc.contains(&format!("| `{flag}` |")),
            "{flag} missing from docs/contract.md"
        );
    }
}

#[test]
fn size_beats_everything() {
    let raw = vec![b'['; 70_000];
    assert_eq!(reject_bytes(&raw), Code::EventTooLarge);
}

#[test]
fn syntax_beats_shape_and_keys() {
    assert_eq!(reject_bytes(b"[1, 2"), Code::InvalidJson);
    assert_eq!(
        reject_bytes(br#"{"bogus": 1, "event_type": }"#),
        Code::InvalidJson
    );
    assert_eq!(
        reject_bytes(br#"{"unit_id": "a", "unit_id": "b", "x": [}"#),
        Code::InvalidJson
    );
}

#[test]
fn repeated_keys_beat_unknown_keys() {
    assert_eq!(
        reject_bytes(br#"{"bogus": 1, "unit_id": "a", "unit_id": "b"}"#),
        Code::InvalidEvent
    );
}

#[test]
fn unknown_fields_beat_every_field_rule() {
    assert_eq!(reject_bytes(br#"{"bogus": 1}"#), Code::UnknownField);
    assert_eq!(
        reject_bytes(br#"{"event_type": 5, "payload": [], "extra": null}"#),
        Code::UnknownField
    );
}

#[test]
fn experiment_shape_beats_ids_and_ids_beat_duplicates() {
    let shape_last = json!([{"experiment_id": "x", "variant_id": "y"}, 5]);
    assert_eq!(
        reject(&with("experiments", shape_last)),
        Code::InvalidExperiments
    );
    let dup_then_bad = json!([
        {"experiment_id": EXP_A, "variant_id": VAR_A},
        {"experiment_id": EXP_A, "variant_id": VAR_B},
        {"experiment_id": EXP_B, "variant_id": "bad"},
    ]);
    assert_eq!(
        reject(&with("experiments", dup_then_bad)),
        Code::InvalidVariantId
    );
}

/// A change that fixes one problem of an event.
type Repair = Box<dyn Fn(&mut Value)>;

/// Starts from an event with a problem in every field and repairs them one
/// at a time: each step must report the next code in the documented order.
#[test]
fn field_problems_are_reported_in_the_documented_order() {
    let mut e = json!({
        "event_type": 5,
        "unit_id": "a\nb",
        "timestamp": "2030-01-01T00:00:00Z",
        "event_id": "00000000-0000-0000-0000-000000000000",
        "experiments": [
            {"experiment_id": "x", "variant_id": VAR_A},
            {"experiment_id": EXP_B, "variant_id": "y"},
        ],
        "context": {"policy_version_id": "v1"},
        "metrics": {"latency_ms": -1},
        "payload": [],
    });
    let steps: Vec<(Code, Repair)> = vec![
        (
            Code::InvalidEventType,
            Box::new(|e| e["event_type"] = json!("plan_generated")),
        ),
        (
            Code::MissingUnitType,
            Box::new(|e| e["unit_type"] = json!("user")),
        ),
        (
            Code::InvalidUnitId,
            Box::new(|e| e["unit_id"] = json!("u1")),
        ),
        (
            Code::FutureTimestamp,
            Box::new(|e| e["timestamp"] = json!(NOW)),
        ),
        (
            Code::InvalidEventId,
            Box::new(|e| e["event_id"] = Value::Null),
        ),
        (
            Code::InvalidExperimentId,
            Box::new(|e| e["experiments"][0]["experiment_id"] = json!(EXP_B)),
        ),
        (
            Code::InvalidVariantId,
            Box::new(|e| e["experiments"][1]["variant_id"] = json!(VAR_B)),
        ),
        (
            Code::DuplicateExperiment,
            Box::new(|e| e["experiments"][1]["experiment_id"] = json!(EXP_A)),
        ),
        (
            Code::InvalidPolicyVersionId,
            Box::new(|e| e["context"] = json!({})),
        ),
        (
            Code::InvalidMetric,
            Box::new(|e| e["metrics"] = json!({"latency_ms": 1, "n": 9007199254740993u64})),
        ),
        (
            Code::InexactMetric,
            Box::new(|e| e["metrics"] = json!({"latency_ms": 1})),
        ),
        (Code::InvalidPayload, Box::new(|e| e["payload"] = json!({}))),
        (
            Code::MissingPolicyVersionId,
            Box::new(|e| e["payload"] = json!({ "policy_version_id": POLICY })),
        ),
    ];
    for (code, repair) in steps {
        assert_eq!(reject(&e), code, "{e}");
        repair(&mut e);
    }
    accept(&e);
}

#[test]
fn earlier_fields_win_over_later_ones() {
    // Missing unit_type is reported before an invalid unit_id and timestamp.
    let mut e = without("unit_type");
    e["unit_id"] = json!(1);
    e["timestamp"] = json!("yesterday");
    assert_eq!(reject(&e), Code::MissingUnitType);
    // Missing timestamp is reported before an invalid event_id.
    let mut e = without("timestamp");
    e["event_id"] = json!("x");
    assert_eq!(reject(&e), Code::MissingTimestamp);
}
