//! One test (or a few) per rule of the event contract, at its boundaries.

mod common;

use chrono::{Duration, Timelike};
use common::*;
use eis_contract::{validate_event, Code, Flag, Limits};
use serde_json::{json, Value};

// ---- the fixture and normalisation -----------------------------------------

#[test]
fn fixture_is_accepted_and_normalised() {
    let ev = validate_event(FIXTURE, at("2026-03-01T11:00:00Z"), &Limits::default())
        .expect("the fixture is valid");
    assert_eq!(ev.event_type, "plan_generated");
    assert_eq!(
        ev.event_id.to_string(),
        "0192f5a8-3c4e-7d21-9b6a-5e2f1c8d4a07"
    );
    // 11:58:42.517+01:00 is 10:58:42.517Z.
    assert_eq!(ev.timestamp, at("2026-03-01T10:58:42.517Z"));
    assert_eq!(ev.experiments.len(), 2);
    assert_eq!(ev.metrics["token_count"], 2117.0);
    assert_eq!(value(&ev.context)["platform"], "ios");
    assert_eq!(value(&ev.payload)["days"], 7);
    assert!(ev.warnings().is_empty());
}

#[test]
fn absent_optional_fields_become_empty() {
    let ev = accept(&without("experiments"));
    assert!(ev.experiments.is_empty());
    assert!(ev.context.is_empty());
    assert!(ev.metrics.is_empty());
    assert!(ev.payload.is_empty());
    assert_eq!(ev.flags, [Flag::NoExperimentContext]);
}

#[test]
fn null_optional_fields_are_treated_as_absent() {
    let mut event = base();
    for field in ["event_id", "experiments", "context", "metrics", "payload"] {
        event[field] = Value::Null;
    }
    let ev = accept(&event);
    assert_eq!(ev.event_id.get_version_num(), 7);
    assert!(ev.experiments.is_empty());
    assert!(ev.context.is_empty() && ev.metrics.is_empty() && ev.payload.is_empty());
}

#[test]
fn received_at_is_now_truncated_to_microseconds() {
    let now = at("2026-03-01T12:00:00.123456789Z");
    let raw = serde_json::to_vec(&base()).expect("serialize");
    let ev = validate_event(&raw, now, &Limits::default()).expect("valid");
    assert_eq!(ev.received_at, at("2026-03-01T12:00:00.123456Z"));
}

#[test]
fn request_json_validates_back_to_the_same_event() {
    let now = at("2026-03-01T11:00:00Z");
    let ev = validate_event(FIXTURE, now, &Limits::default()).expect("valid");
    let again = request_json(&ev);
    let back = validate_event(again.as_bytes(), now, &Limits::default()).expect("still valid");
    assert_eq!(back, ev);
}

#[test]
fn record_form_round_trips() {
    let ev =
        validate_event(FIXTURE, at("2026-03-01T11:00:00Z"), &Limits::default()).expect("valid");
    let record = serde_json::to_string(&ev).expect("serialize");
    assert!(record.contains(r#""timestamp":"2026-03-01T10:58:42.517000Z""#));
    assert!(record.contains(r#""received_at":"2026-03-01T11:00:00.000000Z""#));
    let back: eis_contract::Event = serde_json::from_str(&record).expect("deserialize");
    assert_eq!(back, ev);
}

// ---- size and JSON ----------------------------------------------------------

#[test]
fn size_limit_is_inclusive() {
    let raw = serde_json::to_vec(&base()).expect("serialize");
    let exact = Limits {
        max_event_bytes: raw.len(),
        ..Limits::default()
    };
    assert!(validate_event(&raw, now(), &exact).is_ok());
    let smaller = Limits {
        max_event_bytes: raw.len() - 1,
        ..Limits::default()
    };
    let err = validate_event(&raw, now(), &smaller).expect_err("too large");
    assert_eq!(err.code, Code::EventTooLarge);
}

#[test]
fn default_size_limit_is_64_kib() {
    let mut event = base();
    let filler = "x".repeat(65_536);
    event["payload"] = json!({ "blob": filler });
    assert_eq!(reject(&event), Code::EventTooLarge);
}

#[test]
fn malformed_json_is_invalid_json() {
    for raw in [
        &b""[..],
        b"{",
        b"{\"event_type\": }",
        b"{\"a\": 1,}",
        b"{} {}",
        b"{\"unit_id\": \"x\"} trailing",
        b"\xef\xbb\xbf{}",
        b"{\"unit_id\": \"\xff\"}",
        b"{\"bogus\": \"\xc3\x28\"}",
        b"[1, 2",
        b"nul",
        b"{'a': 1}",
    ] {
        assert_eq!(
            reject_bytes(raw),
            Code::InvalidJson,
            "{}",
            String::from_utf8_lossy(raw)
        );
    }
}

#[test]
fn json_that_is_not_an_object_is_invalid_event() {
    for raw in [
        "[]",
        "[{\"event_type\": \"x\"}]",
        "\"event\"",
        "42",
        "true",
        "null",
    ] {
        assert_eq!(reject_bytes(raw.as_bytes()), Code::InvalidEvent, "{raw}");
    }
}

#[test]
fn a_repeated_top_level_key_is_invalid_event() {
    let raw = br#"{"event_type": "a", "unit_type": "user", "unit_id": "u", "timestamp": "2026-03-01T12:00:00Z",
                  "experiments": [], "experiments": []}"#;
    let err = validate_bytes(raw).expect_err("repeated key");
    assert_eq!(err.code, Code::InvalidEvent);
    assert!(err.message.contains("`experiments`"), "{}", err.message);
}

#[test]
fn unknown_fields_are_rejected_by_name() {
    let mut event = without("experiments");
    event["experiment"] = json!([{"experiment_id": EXP_A, "variant_id": VAR_A}]);
    let err = validate(&event).expect_err("misspelt field");
    assert_eq!(err.code, Code::UnknownField);
    assert!(err.message.contains("`experiment`"), "{}", err.message);
    // flags and received_at belong to the record, not the request.
    assert_eq!(reject(&with("flags", json!([]))), Code::UnknownField);
    assert_eq!(reject(&with("received_at", json!(NOW))), Code::UnknownField);
}

#[test]
fn messages_never_echo_long_input() {
    let key = "k".repeat(10_000);
    let err = validate(&with(&key, json!(1))).expect_err("unknown");
    assert_eq!(err.code, Code::UnknownField);
    assert!(err.message.len() < 200, "{}", err.message);
}

// ---- event_type and unit_type -----------------------------------------------

#[test]
fn event_type_missing_null_or_empty() {
    assert_eq!(reject(&without("event_type")), Code::MissingEventType);
    assert_eq!(
        reject(&with("event_type", Value::Null)),
        Code::MissingEventType
    );
    assert_eq!(
        reject(&with("event_type", json!(""))),
        Code::MissingEventType
    );
}

#[test]
fn event_type_must_be_a_well_formed_name() {
    for good in ["pantry_updated", "a", "x9", "a_b_c"] {
        accept(&with("event_type", json!(good)));
    }
    accept(&with("event_type", json!("a".repeat(64))));
    for bad in [
        json!("a".repeat(65)),
        json!("Plan_generated"),
        json!("9lives"),
        json!("_private"),
        json!("plan-generated"),
        json!("plan generated"),
        json!("plan\u{0}generated"),
        json!("plän"),
        json!(42),
        json!(["plan_generated"]),
        json!({}),
        json!(true),
    ] {
        assert_eq!(
            reject(&with("event_type", bad.clone())),
            Code::InvalidEventType,
            "{bad}"
        );
    }
}

#[test]
fn unit_type_follows_the_same_rules() {
    assert_eq!(reject(&without("unit_type")), Code::MissingUnitType);
    assert_eq!(
        reject(&with("unit_type", Value::Null)),
        Code::MissingUnitType
    );
    assert_eq!(reject(&with("unit_type", json!(""))), Code::MissingUnitType);
    accept(&with("unit_type", json!("household")));
    accept(&with("unit_type", json!("u".repeat(64))));
    assert_eq!(
        reject(&with("unit_type", json!("u".repeat(65)))),
        Code::InvalidUnitType
    );
    assert_eq!(
        reject(&with("unit_type", json!("User"))),
        Code::InvalidUnitType
    );
    assert_eq!(reject(&with("unit_type", json!(7))), Code::InvalidUnitType);
}

// ---- unit_id ----------------------------------------------------------------

#[test]
fn unit_id_missing_null_or_empty() {
    assert_eq!(reject(&without("unit_id")), Code::MissingUnitId);
    assert_eq!(reject(&with("unit_id", Value::Null)), Code::MissingUnitId);
    assert_eq!(reject(&with("unit_id", json!(""))), Code::MissingUnitId);
}

#[test]
fn unit_id_accepts_unicode_up_to_the_byte_limit() {
    for id in [
        "ユーザー-42",
        "user@example.com",
        "🙂",
        " spaced id ",
        "a\"quoted\"\\id",
    ] {
        assert_eq!(accept(&with("unit_id", json!(id))).unit_id, id);
    }
    // 64 four-byte characters are exactly 256 bytes.
    accept(&with("unit_id", json!("🙂".repeat(64))));
    let over = format!("{}a", "🙂".repeat(64));
    assert_eq!(reject(&with("unit_id", json!(over))), Code::InvalidUnitId);
}

#[test]
fn unit_id_with_escapes_is_decoded() {
    let raw = br#"{"event_type": "x", "unit_type": "user", "unit_id": "a\u0042\u00e9\ud83d\ude42",
                  "timestamp": "2026-03-01T12:00:00Z"}"#;
    let ev = validate_bytes(raw).expect("valid");
    assert_eq!(ev.unit_id, "aBé🙂");
}

#[test]
fn unit_id_rejects_control_characters_and_wrong_types() {
    for bad in [
        json!("a\u{0}b"),
        json!("line\nbreak"),
        json!("tab\t"),
        json!("del\u{7f}"),
        json!("c1\u{85}"),
        json!(42),
        json!({"id": 1}),
    ] {
        assert_eq!(
            reject(&with("unit_id", bad.clone())),
            Code::InvalidUnitId,
            "{bad}"
        );
    }
    // A lone surrogate escape is not text at all.
    let raw = br#"{"event_type": "x", "unit_type": "user", "unit_id": "\ud800",
                  "timestamp": "2026-03-01T12:00:00Z"}"#;
    assert_eq!(reject_bytes(raw), Code::InvalidUnitId);
}

// ---- timestamp --------------------------------------------------------------

fn ts(text: &str) -> Value {
    with("timestamp", json!(text))
}

#[test]
fn timestamp_missing_null_or_empty() {
    assert_eq!(reject(&without("timestamp")), Code::MissingTimestamp);
    assert_eq!(
        reject(&with("timestamp", Value::Null)),
        Code::MissingTimestamp
    );
    assert_eq!(reject(&ts("")), Code::MissingTimestamp);
}

#[test]
fn timestamp_offsets_are_normalised_to_utc() {
    assert_eq!(accept(&ts("2026-03-01T14:00:00+02:00")).timestamp, at(NOW));
    assert_eq!(accept(&ts("2026-03-01T06:30:00-05:30")).timestamp, at(NOW));
    assert_eq!(accept(&ts("2026-03-01T12:00:00+00:00")).timestamp, at(NOW));
    assert_eq!(accept(&ts("2026-03-01T12:00:00-00:00")).timestamp, at(NOW));
}

#[test]
fn timestamp_accepts_lowercase_t_and_z() {
    assert_eq!(accept(&ts("2026-03-01t12:00:00z")).timestamp, at(NOW));
}

#[test]
fn timestamp_accepts_a_space_for_t_as_rfc3339_allows() {
    assert_eq!(accept(&ts("2026-03-01 12:00:00Z")).timestamp, at(NOW));
}

#[test]
fn timestamp_needs_an_offset_and_rfc3339_syntax() {
    for bad in [
        "2026-03-01T12:00:00",
        "2026-03-01T12:00:00.123",
        "2026-03-01",
        "12:00:00Z",
        "2026-03-01T12:00Z",
        "2026-03-01T12:00:00+02",
        "2026-03-01T12:00:00+0200",
        "2026-03-01T12:00:00 UTC",
        "2026-03-01T12:00:00\u{2212}05:00",
        "2026-02-29T12:00:00Z",
        "2026-03-01T25:00:00Z",
        "Sun, 01 Mar 2026 12:00:00 +0000",
        "1772366400",
        "now",
    ] {
        assert_eq!(reject(&ts(bad)), Code::InvalidTimestamp, "{bad}");
    }
    assert_eq!(
        reject(&with("timestamp", json!(1_772_366_400))),
        Code::InvalidTimestamp
    );
}

#[test]
fn timestamp_fractions_of_one_to_nine_digits_truncate_to_microseconds() {
    assert_eq!(
        accept(&ts("2026-03-01T11:59:59.5Z")).timestamp,
        at("2026-03-01T11:59:59.500000Z")
    );
    let nine = accept(&ts("2026-03-01T11:59:59.123456789Z")).timestamp;
    assert_eq!(nine, at("2026-03-01T11:59:59.123456Z"));
    assert_eq!(nine.nanosecond(), 123_456_000);
}

#[test]
fn leap_second_becomes_the_next_second() {
    assert_eq!(
        accept(&ts("2026-03-01T11:59:60Z")).timestamp,
        at("2026-03-01T12:00:00Z")
    );
    assert_eq!(
        accept(&ts("2026-02-28T23:59:60.75Z")).timestamp,
        at("2026-03-01T00:00:00Z")
    );
}

#[test]
fn exactly_five_minutes_ahead_is_accepted() {
    accept(&ts("2026-03-01T12:05:00Z"));
    accept(&ts("2026-03-01T12:05:00.000000999Z")); // truncates to 12:05:00
    assert_eq!(
        reject(&ts("2026-03-01T12:05:00.000001Z")),
        Code::FutureTimestamp
    );
    assert_eq!(reject(&ts("2027-01-01T00:00:00Z")), Code::FutureTimestamp);
}

#[test]
fn future_limit_is_configurable() {
    let limits = Limits {
        max_future: Duration::zero(),
        ..Limits::default()
    };
    let raw = serde_json::to_vec(&ts("2026-03-01T12:00:00.000001Z")).expect("serialize");
    let err = validate_event(&raw, now(), &limits).expect_err("future");
    assert_eq!(err.code, Code::FutureTimestamp);
}

#[test]
fn exactly_seven_days_old_is_not_flagged() {
    assert!(accept(&ts("2026-02-22T12:00:00Z")).flags.is_empty());
    assert_eq!(
        accept(&ts("2026-02-22T11:59:59.999999Z")).flags,
        [Flag::OldTimestamp]
    );
    assert_eq!(
        accept(&ts("1999-12-31T23:59:59Z")).flags,
        [Flag::OldTimestamp]
    );
}

#[test]
fn both_flags_come_in_flag_all_order() {
    let mut event = ts("2020-01-01T00:00:00Z");
    event["experiments"] = json!([]);
    // Validation's own flags; the registry's come after them (eis_contract::Registry).
    assert_eq!(accept(&event).flags, Flag::ALL[..2]);
}

#[test]
fn timestamps_must_fit_four_digit_utc_years() {
    accept(&ts("0001-01-01T00:00:00Z"));
    assert_eq!(
        reject(&ts("0000-01-01T00:00:00+01:00")),
        Code::InvalidTimestamp
    );
}

// ---- event_id ---------------------------------------------------------------

#[test]
fn event_id_is_kept_when_given() {
    let id = "0192f5a8-3c4e-7d21-9b6a-5e2f1c8d4a07";
    assert_eq!(
        accept(&with("event_id", json!(id))).event_id.to_string(),
        id
    );
    let upper = accept(&with("event_id", json!(id.to_uppercase())));
    assert_eq!(upper.event_id.to_string(), id);
}

#[test]
fn event_id_is_generated_as_v7_from_now() {
    let a = accept(&base());
    let b = accept(&base());
    assert_eq!(a.event_id.get_version_num(), 7);
    assert_ne!(a.event_id, b.event_id);
    let (secs, _) = a.event_id.get_timestamp().expect("v7").to_unix();
    assert_eq!(secs, 1_772_366_400);
}

#[test]
fn event_id_must_be_a_non_nil_hyphenated_uuid() {
    for bad in [
        json!(""),
        json!("00000000-0000-0000-0000-000000000000"),
        json!("not-a-uuid"),
        json!("0192f5a83c4e7d219b6a5e2f1c8d4a07"),
        json!("{0192f5a8-3c4e-7d21-9b6a-5e2f1c8d4a07}"),
        json!("urn:uuid:0192f5a8-3c4e-7d21-9b6a-5e2f1c8d4a07"),
        json!(12345),
        json!({}),
    ] {
        assert_eq!(
            reject(&with("event_id", bad.clone())),
            Code::InvalidEventId,
            "{bad}"
        );
    }
}

// ---- experiments ------------------------------------------------------------

fn experiment(id: &str, variant: &str) -> Value {
    json!({"experiment_id": id, "variant_id": variant})
}

fn nth_uuid(n: usize) -> String {
    format!("0191e3b2-7a10-7c44-8f0e-{n:012x}")
}

#[test]
fn experiments_are_kept_in_order() {
    let ev = accept(&with(
        "experiments",
        json!([experiment(EXP_B, VAR_B), experiment(EXP_A, VAR_A)]),
    ));
    assert_eq!(ev.experiments[0].experiment_id.to_string(), EXP_B);
    assert_eq!(ev.experiments[1].variant_id.to_string(), VAR_A);
    assert!(ev.flags.is_empty());
}

#[test]
fn empty_experiments_flag_no_experiment_context() {
    assert_eq!(
        accept(&with("experiments", json!([]))).flags,
        [Flag::NoExperimentContext]
    );
}

#[test]
fn experiments_shape_errors() {
    for bad in [
        json!({}),
        json!("x"),
        json!(1),
        json!([1]),
        json!([null]),
        json!([[]]),
        json!([{"experiment_id": EXP_A}]),
        json!([{"variant_id": VAR_A}]),
        json!([{"experiment_id": EXP_A, "variant_id": VAR_A, "weight": 1}]),
        json!([experiment(EXP_A, VAR_A), {}]),
    ] {
        assert_eq!(
            reject(&with("experiments", bad.clone())),
            Code::InvalidExperiments,
            "{bad}"
        );
    }
}

#[test]
fn experiments_count_limit_is_inclusive() {
    let at_limit: Vec<Value> = (0..32).map(|i| experiment(&nth_uuid(i), VAR_A)).collect();
    assert_eq!(
        accept(&with("experiments", json!(at_limit)))
            .experiments
            .len(),
        32
    );
    let over: Vec<Value> = (0..33).map(|i| experiment(&nth_uuid(i), VAR_A)).collect();
    assert_eq!(
        reject(&with("experiments", json!(over))),
        Code::InvalidExperiments
    );
}

#[test]
fn experiment_and_variant_ids_must_be_uuids() {
    for bad in [
        json!("x"),
        json!(1),
        json!(null),
        json!(""),
        json!("a\u{0}"),
    ] {
        let e = json!([{"experiment_id": bad, "variant_id": VAR_A}]);
        assert_eq!(
            reject(&with("experiments", e)),
            Code::InvalidExperimentId,
            "{bad}"
        );
        let v = json!([{"experiment_id": EXP_A, "variant_id": bad}]);
        assert_eq!(
            reject(&with("experiments", v)),
            Code::InvalidVariantId,
            "{bad}"
        );
    }
}

#[test]
fn the_same_experiment_twice_is_rejected() {
    let twice = json!([
        experiment(EXP_A, VAR_A),
        experiment(EXP_B, VAR_B),
        experiment(EXP_A, VAR_B)
    ]);
    let err = validate(&with("experiments", twice)).expect_err("duplicate");
    assert_eq!(err.code, Code::DuplicateExperiment);
    assert!(err.message.contains("experiments[2]"), "{}", err.message);
    // Same id in another case is the same experiment.
    let cased = json!([
        experiment(EXP_A, VAR_A),
        experiment(&EXP_A.to_uppercase(), VAR_B)
    ]);
    assert_eq!(
        reject(&with("experiments", cased)),
        Code::DuplicateExperiment
    );
}

// ---- context ----------------------------------------------------------------

#[test]
fn context_is_any_object() {
    let ctx =
        json!({"app_version": "4.1.0", "platform": "android", "nested": {"a": [1, 2.5, null]}});
    assert_eq!(
        accept(&with("context", ctx.clone())).context.as_str(),
        canonical(&ctx)
    );
    for bad in [json!([]), json!("ios"), json!(1), json!(true)] {
        assert_eq!(
            reject(&with("context", bad.clone())),
            Code::InvalidContext,
            "{bad}"
        );
    }
}

#[test]
fn policy_version_id_must_be_a_uuid_when_present() {
    accept(&with("context", json!({ "policy_version_id": POLICY })));
    accept(&with("context", json!({ "policy_version_id": null })));
    for bad in [json!("v12"), json!(""), json!(12), json!({"id": POLICY})] {
        assert_eq!(
            reject(&with("context", json!({ "policy_version_id": bad }))),
            Code::InvalidPolicyVersionId,
            "{bad}"
        );
    }
}

// ---- metrics ----------------------------------------------------------------

#[test]
fn metrics_are_finite_numbers() {
    let ev = accept(&with(
        "metrics",
        json!({"latency_ms": 12.5, "token_count": 0, "edit_count": 3, "score": -1.5,
               "big": 9007199254740992u64, "tiny": 5e-324}),
    ));
    assert_eq!(ev.metrics["latency_ms"], 12.5);
    assert_eq!(ev.metrics["score"], -1.5);
    assert_eq!(ev.metrics["big"], 2f64.powi(53));
}

#[test]
fn metrics_must_be_an_object() {
    for bad in [json!([]), json!([1, 2]), json!("1"), json!(3)] {
        assert_eq!(
            reject(&with("metrics", bad.clone())),
            Code::InvalidMetrics,
            "{bad}"
        );
    }
}

#[test]
fn metrics_count_limit_is_inclusive() {
    let at_limit: serde_json::Map<String, Value> =
        (0..64).map(|i| (format!("m{i}"), json!(i))).collect();
    assert_eq!(
        accept(&with("metrics", Value::Object(at_limit)))
            .metrics
            .len(),
        64
    );
    let over: serde_json::Map<String, Value> =
        (0..65).map(|i| (format!("m{i}"), json!(i))).collect();
    assert_eq!(
        reject(&with("metrics", Value::Object(over))),
        Code::InvalidMetrics
    );
}

#[test]
fn bad_metric_values_are_invalid_metric_naming_the_key() {
    for bad in [
        json!("12"),
        json!(null),
        json!(true),
        json!([1]),
        json!({"v": 1}),
    ] {
        let err = validate(&with("metrics", json!({ "latency_ms": bad }))).expect_err("bad");
        assert_eq!(err.code, Code::InvalidMetric, "{bad}");
        assert!(err.message.contains("`latency_ms`"), "{}", err.message);
    }
}

#[test]
fn counting_metrics_must_not_be_negative() {
    for key in ["latency_ms", "token_count", "edit_count"] {
        assert_eq!(
            reject(&with("metrics", json!({ key: -1 }))),
            Code::InvalidMetric
        );
        assert_eq!(
            reject(&with("metrics", json!({ key: -0.001 }))),
            Code::InvalidMetric
        );
        accept(&with("metrics", json!({ key: 0 })));
        accept(&with("metrics", json!({ key: -0.0 })));
    }
}

#[test]
fn out_of_range_numbers_are_invalid_metric_not_invalid_json() {
    for number in ["1e400", "-1e400", "1.8e308"] {
        let raw = format!(
            r#"{{"event_type": "x", "unit_type": "user", "unit_id": "u",
                 "timestamp": "2026-03-01T12:00:00Z", "metrics": {{"huge": {number}}}}}"#
        );
        let err = validate_bytes(raw.as_bytes()).expect_err("out of range");
        assert_eq!(err.code, Code::InvalidMetric, "{number}");
        assert!(err.message.contains("`huge`"), "{}", err.message);
    }
}

#[test]
fn metrics_that_f64_cannot_hold_exactly_are_inexact_metric() {
    let metric = |number: &str| {
        format!(
            r#"{{"event_type": "x", "unit_type": "user", "unit_id": "u",
                 "timestamp": "2026-03-01T12:00:00Z", "metrics": {{"m": {number}}}}}"#
        )
    };
    // 2^64 is exact (u64::MAX, one less, is not: it used to be rounded).
    for (exact, value) in [
        ("450", 450.0),
        ("0.1", 0.1),
        ("1.0", 1.0),
        ("1e2", 100.0),
        ("18446744073709551616", 2f64.powi(64)),
    ] {
        let ev = validate_bytes(metric(exact).as_bytes()).expect("exact metric");
        assert_eq!(ev.metrics["m"], value, "{exact}");
    }
    for inexact in [
        "123456789012345678901234567890",
        "9007199254740993",
        "0.10000000000000001",
        "18446744073709551615",
        "1e-400",
    ] {
        let err = validate_bytes(metric(inexact).as_bytes()).expect_err("inexact");
        assert_eq!(err.code, Code::InexactMetric, "{inexact}");
        assert!(err.message.contains("`m`"), "{}", err.message);
    }
}

#[test]
fn metric_keys_are_1_to_64_bytes() {
    accept(&with("metrics", json!({ "k".repeat(64): 1 })));
    assert_eq!(
        reject(&with("metrics", json!({ "k".repeat(65): 1 }))),
        Code::InvalidMetric
    );
    assert_eq!(
        reject(&with("metrics", json!({ "": 1 }))),
        Code::InvalidMetric
    );
}

#[test]
fn a_repeated_metric_key_is_invalid_metric() {
    let raw = br#"{"event_type": "x", "unit_type": "user", "unit_id": "u",
                   "timestamp": "2026-03-01T12:00:00Z", "metrics": {"a": 1, "a": 2}}"#;
    assert_eq!(reject_bytes(raw), Code::InvalidMetric);
}

#[test]
fn metric_problems_are_reported_in_document_order() {
    let raw = br#"{"event_type": "x", "unit_type": "user", "unit_id": "u",
                   "timestamp": "2026-03-01T12:00:00Z", "metrics": {"z": "bad", "a": -1, "latency_ms": -1}}"#;
    let err = validate_bytes(raw).expect_err("bad metrics");
    assert!(err.message.contains("`z`"), "{}", err.message);
}

// ---- payload ----------------------------------------------------------------

#[test]
fn payload_is_any_object() {
    let payload = json!({"plan_id": "p1", "list": [1, "two", {"three": 3}], "n": -0.5});
    assert_eq!(
        accept(&with("payload", payload.clone())).payload.as_str(),
        canonical(&payload)
    );
    for bad in [json!([]), json!("x"), json!(0), json!(false)] {
        assert_eq!(
            reject(&with("payload", bad.clone())),
            Code::InvalidPayload,
            "{bad}"
        );
    }
}

#[test]
fn unrepresentable_values_in_payload_are_invalid_payload() {
    // 1e400 used to be here; it is now stored exactly (see below).
    for inner in [
        r#"{"s": "\ud800"}"#,
        r#"{"\udc00": 1}"#,
        r#"{"n": 1e1000}"#,
        r#"{"n": [0.1e-1000]}"#,
    ] {
        let raw = format!(
            r#"{{"event_type": "x", "unit_type": "user", "unit_id": "u",
                 "timestamp": "2026-03-01T12:00:00Z", "payload": {inner}}}"#
        );
        assert_eq!(
            reject_bytes(raw.as_bytes()),
            Code::InvalidPayload,
            "{inner}"
        );
    }
    let err = validate_bytes(&with_raw("payload", r#"{"n": 1e1000}"#)).expect_err("too long");
    assert!(err.message.contains("1000 digits"), "{}", err.message);
    let err = validate_bytes(&with_raw("context", r#"{"n": 1e1000}"#)).expect_err("too long");
    assert_eq!(err.code, Code::InvalidContext);
}

#[test]
fn numbers_in_payload_and_context_are_kept_exactly() {
    let cases = [
        (
            "123456789012345678901234567890",
            "123456789012345678901234567890",
        ),
        ("1e400", &*format!("1{}", "0".repeat(400))),
        ("1.50", "1.50"),
        ("-0.0", "0.0"),
        ("1e-7", "0.0000001"),
        ("100e-2", "1.00"),
        ("0.10000000000000001", "0.10000000000000001"),
    ];
    for (given, stored) in cases {
        for field in ["payload", "context"] {
            let raw = with_raw(
                field,
                &format!(r#"{{"order_id": {given}, "b": [ {given} ]}}"#),
            );
            let ev = validate_bytes(&raw).expect("exact numbers are accepted");
            let object = if field == "payload" {
                &ev.payload
            } else {
                &ev.context
            };
            assert_eq!(
                object.as_str(),
                format!(r#"{{"b":[{stored}],"order_id":{stored}}}"#),
                "{field}: {given}"
            );
            // Both decoders agree, and the record keeps the text.
            let record = serde_json::to_string(&ev).expect("serialize");
            let back: eis_contract::Event = serde_json::from_str(&record).expect("read back");
            assert_eq!(back, ev);
        }
    }
}

/// An object nested `levels` deep, the object itself being level 1.
fn nested(levels: usize) -> Value {
    // Wraps alternate so that the outermost level is always an object.
    (1..levels).fold(json!({}), |inner, i| {
        if (levels - i) % 2 == 1 {
            json!({ "k": inner })
        } else {
            json!([inner])
        }
    })
}

#[test]
fn context_and_payload_nest_at_most_64_levels() {
    let ev = accept(&with("payload", nested(64)));
    // The record of the deepest accepted event still reads back.
    let record = serde_json::to_string(&ev).expect("serialize");
    assert_eq!(
        serde_json::from_str::<eis_contract::Event>(&record).expect("read back"),
        ev
    );
    assert_eq!(reject(&with("payload", nested(65))), Code::InvalidPayload);
    accept(&with("context", nested(64)));
    assert_eq!(reject(&with("context", nested(65))), Code::InvalidContext);
}

#[test]
fn deeply_nested_payload_is_rejected_without_overflowing() {
    let depth = 20_000;
    let raw = format!(
        r#"{{"event_type": "x", "unit_type": "user", "unit_id": "u",
             "timestamp": "2026-03-01T12:00:00Z", "payload": {{"deep": {}{}}}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    assert_eq!(reject_bytes(raw.as_bytes()), Code::InvalidPayload);
}

#[test]
fn deep_nesting_in_a_rejected_unknown_field_does_not_overflow() {
    let depth = 30_000;
    let raw = format!(r#"{{"deep": {}{}}}"#, "[".repeat(depth), "]".repeat(depth));
    assert_eq!(reject_bytes(raw.as_bytes()), Code::UnknownField);
}

// ---- U+0000 -----------------------------------------------------------------

fn with_raw(field: &str, json: &str) -> Vec<u8> {
    format!(
        r#"{{"event_type": "x", "unit_type": "user", "unit_id": "u",
             "timestamp": "2026-03-01T12:00:00Z", "{field}": {json}}}"#
    )
    .into_bytes()
}

#[test]
fn nul_characters_are_rejected_under_their_top_level_field() {
    let cases = [
        ("payload", r#"{"note": "a\u0000b"}"#, Code::InvalidPayload),
        (
            "payload",
            r#"{"deep": [{"x": ["\u0000"]}]}"#,
            Code::InvalidPayload,
        ),
        ("payload", r#"{"key\u0000": 1}"#, Code::InvalidPayload),
        ("context", r#"{"platform": "\u0000"}"#, Code::InvalidContext),
        ("metrics", r#"{"m\u0000": 1}"#, Code::InvalidMetrics),
        ("unit_id", r#""u\u0000""#, Code::InvalidUnitId),
        ("event_id", r#""\u0000""#, Code::InvalidEventId),
        (
            "experiments",
            r#"[{"experiment_id": "\u0000", "variant_id": "x"}]"#,
            Code::InvalidExperimentId,
        ),
    ];
    for (field, json, code) in cases {
        // `unit_id` and `event_id` are in the base text already; replace them.
        let raw = if field == "unit_id" {
            format!(
                r#"{{"event_type": "x", "unit_type": "user", "unit_id": {json},
                     "timestamp": "2026-03-01T12:00:00Z"}}"#
            )
            .into_bytes()
        } else {
            with_raw(field, json)
        };
        assert_eq!(reject_bytes(&raw), code, "{field}: {json}");
    }
}

#[test]
fn an_escaped_backslash_before_u0000_is_not_a_nul() {
    let raw = with_raw("payload", r#"{"path": "C:\\u0000"}"#);
    let ev = validate_bytes(&raw).expect("no NUL here");
    assert_eq!(value(&ev.payload)["path"], "C:\\u0000");
}

#[test]
fn nul_in_an_unknown_field_is_still_unknown_field() {
    assert_eq!(
        reject_bytes(&with_raw("bogus", r#""\u0000""#)),
        Code::UnknownField
    );
}

// ---- standard event types ---------------------------------------------------

fn standard(event_type: &str, context: Value, payload: Value) -> Value {
    let mut event = with("event_type", json!(event_type));
    event["context"] = context;
    event["payload"] = payload;
    event
}

#[test]
fn each_standard_type_requires_its_keys() {
    let cases = [
        ("plan_generated", Code::MissingPolicyVersionId),
        ("plan_accepted", Code::MissingPlanId),
        ("plan_rejected", Code::MissingPlanId),
        ("meal_swapped", Code::MissingMealId),
        ("edit_applied", Code::MissingEditType),
        ("validator_intervention", Code::MissingInterventionType),
    ];
    for (event_type, code) in cases {
        assert_eq!(
            reject(&standard(event_type, json!({}), json!({}))),
            code,
            "{event_type}"
        );
    }
}

#[test]
fn required_keys_are_checked_in_listed_order() {
    let second = [
        ("plan_rejected", "plan_id", Code::MissingRejectionReason),
        ("meal_swapped", "meal_id", Code::MissingNewMealId),
        ("edit_applied", "edit_type", Code::MissingEditDetails),
    ];
    for (event_type, first_key, code) in second {
        let event = standard(event_type, json!({ first_key: "x" }), json!({}));
        assert_eq!(reject(&event), code, "{event_type}");
    }
}

#[test]
fn required_keys_may_sit_in_context_or_payload() {
    accept(&standard(
        "plan_generated",
        json!({ "policy_version_id": POLICY }),
        json!({}),
    ));
    accept(&standard(
        "plan_generated",
        json!({}),
        json!({ "policy_version_id": POLICY }),
    ));
    accept(&standard(
        "plan_rejected",
        json!({"plan_id": "p1"}),
        json!({"rejection_reason": "too_expensive"}),
    ));
    accept(&standard(
        "meal_swapped",
        json!({}),
        json!({"meal_id": 17, "new_meal_id": 18}),
    ));
    accept(&standard(
        "edit_applied",
        json!({"edit_type": "servings"}),
        json!({"edit_details": {"from": 2, "to": 4}}),
    ));
    accept(&standard(
        "validator_intervention",
        json!({}),
        json!({"intervention_type": "allergen"}),
    ));
    accept(&standard(
        "plan_accepted",
        json!({}),
        json!({"plan_id": "p1"}),
    ));
}

#[test]
fn null_or_empty_required_values_count_as_missing() {
    for missing in [json!(null), json!("")] {
        let event = standard(
            "plan_accepted",
            json!({ "plan_id": missing }),
            json!({ "plan_id": missing }),
        );
        assert_eq!(reject(&event), Code::MissingPlanId, "{missing}");
    }
    // One place missing, the other present: accepted.
    accept(&standard(
        "plan_accepted",
        json!({"plan_id": ""}),
        json!({"plan_id": "p1"}),
    ));
}

#[test]
fn custom_types_need_no_context() {
    accept(&with("event_type", json!("pantry_updated")));
    accept(&with("event_type", json!("plan_generated_v2")));
}
