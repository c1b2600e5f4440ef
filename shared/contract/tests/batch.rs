//! `parse_batch`: splitting a batch body into each event's raw JSON.

mod common;

use common::*;
use eis_contract::{parse_batch, validate_event, Code, Limits};

fn code(body: &str) -> Code {
    match parse_batch(body.as_bytes(), &Limits::default()) {
        Ok(events) => panic!("expected a rejection, got {} events", events.len()),
        Err(r) => r.code,
    }
}

#[test]
fn elements_are_borrowed_raw_json_in_order() {
    let body = br#" { "events" : [ {"a": 1} , "x", 3, {"nested": [1, {"b": null}]} ] } "#;
    let events = parse_batch(body, &Limits::default()).expect("valid batch");
    let texts: Vec<&str> = events.iter().map(|e| e.get()).collect();
    assert_eq!(
        texts,
        [
            r#"{"a": 1}"#,
            r#""x""#,
            "3",
            r#"{"nested": [1, {"b": null}]}"#
        ]
    );
    // Borrowed: each slice points into the body.
    let range = body.as_ptr_range();
    for e in &events {
        assert!(range.contains(&e.get().as_ptr()));
    }
}

#[test]
fn each_element_validates_on_its_own() {
    let fixture = std::str::from_utf8(FIXTURE).expect("utf-8");
    let body = format!(r#"{{"events": [{fixture}, {{"event_type": "x"}}, [1]]}}"#);
    let events = parse_batch(body.as_bytes(), &Limits::default()).expect("valid batch");
    let limits = Limits::default();
    let now = at("2026-03-01T11:00:00Z");
    let codes: Vec<Option<Code>> = events
        .iter()
        .map(|e| {
            validate_event(e.get().as_bytes(), now, &limits)
                .err()
                .map(|r| r.code)
        })
        .collect();
    assert_eq!(
        codes,
        [None, Some(Code::MissingUnitType), Some(Code::InvalidEvent)]
    );
}

#[test]
fn malformed_bodies_are_invalid_json() {
    for body in [
        "",
        "{",
        r#"{"events": [}"#,
        r#"{"events": [1,]}"#,
        r#"{"events": []} x"#,
        "\u{feff}{}",
    ] {
        assert_eq!(code(body), Code::InvalidJson, "{body}");
    }
    assert_eq!(
        parse_batch(b"{\"events\": [\"\xff\"]}", &Limits::default())
            .map_err(|r| r.code)
            .err(),
        Some(Code::InvalidJson)
    );
}

#[test]
fn a_body_without_events_is_missing_events() {
    for body in [
        "{}",
        "[]",
        "[{}]",
        "\"events\"",
        "null",
        "1",
        r#"{"evnts": []}"#,
        r#"{"events": null}"#,
    ] {
        assert_eq!(code(body), Code::MissingEvents, "{body}");
    }
}

#[test]
fn events_must_be_an_array_given_once() {
    for body in [
        r#"{"events": {}}"#,
        r#"{"events": "x"}"#,
        r#"{"events": 1}"#,
        r#"{"events": [{}], "events": [{}]}"#,
    ] {
        assert_eq!(code(body), Code::InvalidEvents, "{body}");
    }
}

#[test]
fn other_top_level_keys_are_unknown_fields() {
    let err = parse_batch(br#"{"events": [{}], "source": "ios"}"#, &Limits::default())
        .expect_err("unknown key");
    assert_eq!(err.code, Code::UnknownField);
    assert!(err.message.contains("`source`"), "{}", err.message);
}

#[test]
fn batch_size_limit_is_inclusive() {
    let body = |n: usize| format!(r#"{{"events": [{}]}}"#, vec!["{}"; n].join(","));
    let full = body(1000);
    let events = parse_batch(full.as_bytes(), &Limits::default()).expect("at the limit");
    assert_eq!(events.len(), 1000);
    assert_eq!(code(&body(1001)), Code::BatchTooLarge);
    let small = Limits {
        max_batch_events: 2,
        ..Limits::default()
    };
    assert!(parse_batch(body(2).as_bytes(), &small).is_ok());
    let err = parse_batch(body(3).as_bytes(), &small).expect_err("too many");
    assert_eq!(err.code, Code::BatchTooLarge);
}

#[test]
fn an_empty_list_is_empty_batch() {
    assert_eq!(code(r#"{"events": []}"#), Code::EmptyBatch);
    assert_eq!(code(r#"{"events": [ ]}"#), Code::EmptyBatch);
}

#[test]
fn batch_errors_follow_the_documented_order() {
    // missing_events before unknown_field.
    assert_eq!(code(r#"{"evnts": [{}]}"#), Code::MissingEvents);
    // invalid_events before unknown_field.
    assert_eq!(code(r#"{"events": 1, "x": 1}"#), Code::InvalidEvents);
    // unknown_field before batch_too_large and empty_batch.
    assert_eq!(code(r#"{"events": [], "x": 1}"#), Code::UnknownField);
    // batch_too_large is counted even when elements are not events.
    let many = format!(r#"{{"events": [{}]}}"#, vec!["1"; 1001].join(","));
    assert_eq!(code(&many), Code::BatchTooLarge);
}
