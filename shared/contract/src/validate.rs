//! `validate_event`: one event's JSON bytes in, an accepted [`Event`] or
//! exactly one [`Rejection`] out.
//!
//! The event is decoded (see `decode.rs`), then each field is checked in the
//! documented precedence order; the first failing check decides the code.
//! (Over 400 lines: every rule of docs/contract.md in its precedence order, one small
//! function each, kept together so that the order reads top to bottom.)

use std::borrow::Cow;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use uuid::{NoContext, Timestamp, Uuid};

use crate::code::{Code, Flag};
use crate::decode::{self, ExperimentText, MetricEntry, Text};
use crate::event::{Event, ExperimentRef};
use crate::json::{is_null, quoted};
use crate::json_object::JsonObject;
use crate::limits::Limits;
use crate::rejection::{pointer, Rejection};
use crate::{number, schema_version, standard, timestamp};

/// Metrics that count or time something, so a negative value is a bug.
const NON_NEGATIVE_METRICS: &[&str] = &["latency_ms", "token_count", "edit_count"];

/// Deepest nesting of arrays and objects allowed in `context` and
/// `payload`, the object itself being level 1. serde_json refuses to parse
/// past 128 levels, and the record (and any envelope around it) puts these
/// objects a few levels down: a fixed, generous limit keeps every accepted
/// event readable back by the archiver.
const MAX_NESTING: usize = 64;

/// Parses and validates one event from its JSON bytes.
///
/// `now` is the server's receive time; the rules never read the clock, so
/// the same bytes and `now` always give the same answer (except that an
/// absent `event_id` gets a fresh UUID v7 whose random bits differ).
pub fn validate_event(raw: &[u8], now: DateTime<Utc>, limits: &Limits) -> Result<Event, Rejection> {
    validate(raw, now, limits, None)
}

/// [`validate_event`] for a replay of quarantined text: an event without `event_id` gets
/// `missing_id` (derived from its quarantine record), so that replaying twice stores it once.
pub fn validate_replayed_event(
    raw: &[u8],
    now: DateTime<Utc>,
    limits: &Limits,
    missing_id: Uuid,
) -> Result<Event, Rejection> {
    validate(raw, now, limits, Some(missing_id))
}

fn validate(
    raw: &[u8],
    now: DateTime<Utc>,
    limits: &Limits,
    missing_id: Option<Uuid>,
) -> Result<Event, Rejection> {
    if raw.len() > limits.max_event_bytes {
        return Err(Rejection::new(
            Code::EventTooLarge,
            format!(
                "the event is {} bytes of JSON; the limit is {}",
                raw.len(),
                limits.max_event_bytes
            ),
        ));
    }
    // Checked up front so that the decoders work on `str`, and no invalid
    // UTF-8 hides inside a value that is only skipped over.
    let text = std::str::from_utf8(raw)
        .map_err(|_| Rejection::new(Code::InvalidJson, "the event is not valid UTF-8"))?;
    let fields = match decode::fast(text) {
        Some(fields) => fields,
        None => decode::exact(text)?,
    };
    let received_at = timestamp::normalise(now);

    let event_type = fields
        .event_type
        .and_then(|text| {
            name(
                text,
                "event_type",
                Code::MissingEventType,
                Code::InvalidEventType,
                limits,
            )
        })
        .map_err(at("/event_type"))?;
    let unit_type = fields
        .unit_type
        .and_then(|text| {
            name(
                text,
                "unit_type",
                Code::MissingUnitType,
                Code::InvalidUnitType,
                limits,
            )
        })
        .map_err(at("/unit_type"))?;
    let unit_id = fields
        .unit_id
        .and_then(|text| unit_id(text, limits))
        .map_err(at("/unit_id"))?;
    let timestamp = fields
        .timestamp
        .and_then(|text| event_timestamp(text, received_at, limits))
        .map_err(at("/timestamp"))?;
    let event_id = fields
        .event_id
        .and_then(|text| event_id(text, received_at, missing_id))
        .map_err(at("/event_id"))?;
    let experiments = fields
        .experiments
        .and_then(|elements| experiments(elements, limits))
        .map_err(at("/experiments"))?;
    let context = fields.context.and_then(context).map_err(at("/context"))?;
    let metrics = fields
        .metrics
        .and_then(|entries| metrics(entries, limits))
        .map_err(at("/metrics"))?;
    let payload = fields
        .payload
        .and_then(|object| shallow(object, "payload", Code::InvalidPayload))
        .map_err(at("/payload"))?;
    required_context(&event_type, &context, &payload)?;
    let schema_version = fields
        .schema
        .and_then(|text| schema(text, &event_type))
        .map_err(at("/schema"))?;

    let mut flags = Vec::new();
    if received_at.signed_duration_since(timestamp) > limits.old_after {
        flags.push(Flag::OldTimestamp);
    }
    if experiments.is_empty() {
        flags.push(Flag::NoExperimentContext);
    }

    Ok(Event {
        event_id,
        event_type: event_type.into_owned(),
        unit_type: unit_type.into_owned(),
        unit_id: unit_id.into_owned(),
        experiments,
        context,
        metrics,
        payload,
        timestamp,
        received_at,
        sent_at: None,
        schema_version,
        schema_violation: None,
        flags,
    })
}

/// `schema` (docs/plan.md): absent or `null`, or `event_type/MODEL-REVISION-ADDITION` naming
/// the event's own type; the version, for the plan's check.
fn schema(text: Text<'_>, event_type: &str) -> Result<Option<String>, Rejection> {
    let Some(text) = text else {
        return Ok(None);
    };
    match schema_version::named(&text, event_type) {
        Some(version) => Ok(Some(version.to_string())),
        None => Err(Rejection::new(
            Code::InvalidSchema,
            format!("`schema` must be `{event_type}/MODEL-REVISION-ADDITION`, e.g. `{event_type}/1-0-0`"),
        )),
    }
}

/// A required string: absent, `null` or `""` -> `missing`.
/// Blames a step's rejection on its field (unless the step named a deeper one).
fn at(pointer: &'static str) -> impl Fn(Rejection) -> Rejection {
    move |rejection| rejection.at(pointer)
}

fn required<'a>(text: Text<'a>, field: &str, missing: Code) -> Result<Cow<'a, str>, Rejection> {
    match text {
        Some(text) if !text.is_empty() => Ok(text),
        _ => Err(Rejection::new(missing, format!("`{field}` is required"))),
    }
}

/// `event_type` / `unit_type`: `[a-z][a-z0-9_]*`, at most `max_name_bytes`.
fn name<'a>(
    text: Text<'a>,
    field: &str,
    missing: Code,
    invalid: Code,
    limits: &Limits,
) -> Result<Cow<'a, str>, Rejection> {
    let text = required(text, field, missing)?;
    if !is_name(&text, limits.max_name_bytes) {
        return Err(Rejection::new(
            invalid,
            format!(
                "`{field}` must be 1 to {} lowercase ASCII letters, digits or underscores, \
                 starting with a letter",
                limits.max_name_bytes
            ),
        ));
    }
    Ok(text)
}

/// The rule of `event_type` and `unit_type` names (also a registered experiment's
/// `unit_type`, which must be one an event can carry).
pub fn is_name(text: &str, max_bytes: usize) -> bool {
    let bytes = text.as_bytes();
    bytes.len() <= max_bytes
        && bytes.first().is_some_and(u8::is_ascii_lowercase)
        && bytes
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// `unit_id`: any text of 1..=max_unit_id_bytes bytes without control
/// characters (which also excludes U+0000).
fn unit_id<'a>(text: Text<'a>, limits: &Limits) -> Result<Cow<'a, str>, Rejection> {
    let text = required(text, "unit_id", Code::MissingUnitId)?;
    if text.len() > limits.max_unit_id_bytes {
        return Err(Rejection::new(
            Code::InvalidUnitId,
            format!(
                "`unit_id` is {} bytes; the limit is {}",
                text.len(),
                limits.max_unit_id_bytes
            ),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(Rejection::new(
            Code::InvalidUnitId,
            "`unit_id` must not contain control characters",
        ));
    }
    Ok(text)
}

/// `timestamp`: missing, then invalid, then too far in the future.
fn event_timestamp(
    text: Text<'_>,
    received_at: DateTime<Utc>,
    limits: &Limits,
) -> Result<DateTime<Utc>, Rejection> {
    let text = required(text, "timestamp", Code::MissingTimestamp)?;
    let ts = timestamp::parse(&text).ok_or_else(|| {
        Rejection::new(
            Code::InvalidTimestamp,
            "`timestamp` must be an RFC 3339 date-time with an offset, \
             e.g. 2026-03-01T12:00:00.000Z or 2026-03-01T14:00:00+02:00",
        )
    })?;
    // Compared after both sides are truncated to microseconds, so the
    // decision can be re-checked from the stored record alone.
    if ts.signed_duration_since(received_at) > limits.max_future {
        return Err(Rejection::new(
            Code::FutureTimestamp,
            format!(
                "`timestamp` is more than {} s ahead of the server's clock",
                limits.max_future.num_seconds()
            ),
        ));
    }
    Ok(ts)
}

/// A UUID in its canonical 8-4-4-4-12 hex form (either case). The other
/// forms `uuid` parses (simple, braced, URN) are not part of the contract.
fn parse_uuid(text: &str) -> Option<Uuid> {
    if text.len() != 36 {
        return None;
    }
    Uuid::try_parse(text).ok()
}

/// `event_id`: the client's idempotency key, or a fresh time-ordered v7.
fn event_id(
    text: Text<'_>,
    received_at: DateTime<Utc>,
    missing_id: Option<Uuid>,
) -> Result<Uuid, Rejection> {
    let Some(text) = text else {
        if let Some(id) = missing_id {
            return Ok(id);
        }
        // Pre-1970 is only reachable through a bogus `now`; clamp rather than fail.
        let secs = u64::try_from(received_at.timestamp()).unwrap_or(0);
        let nanos = received_at.timestamp_subsec_nanos();
        return Ok(Uuid::new_v7(Timestamp::from_unix(NoContext, secs, nanos)));
    };
    let id = parse_uuid(&text).ok_or_else(|| {
        Rejection::new(
            Code::InvalidEventId,
            "`event_id` must be a UUID string (8-4-4-4-12 hex digits)",
        )
    })?;
    if id.is_nil() {
        return Err(Rejection::new(
            Code::InvalidEventId,
            "`event_id` must not be the nil UUID",
        ));
    }
    Ok(id)
}

/// `experiments` (shape already decoded): count, then each element's ids in
/// order, then duplicates.
fn experiments(
    elements: Vec<ExperimentText<'_>>,
    limits: &Limits,
) -> Result<Vec<ExperimentRef>, Rejection> {
    if elements.len() > limits.max_experiments {
        return Err(Rejection::new(
            Code::InvalidExperiments,
            format!(
                "`experiments` has {} entries; the limit is {}",
                elements.len(),
                limits.max_experiments
            ),
        ));
    }
    let mut refs: Vec<ExperimentRef> = Vec::with_capacity(elements.len());
    for (i, element) in elements.iter().enumerate() {
        let experiment_id = element
            .experiment_id
            .as_deref()
            .and_then(parse_uuid)
            .ok_or_else(|| {
                Rejection::new(
                    Code::InvalidExperimentId,
                    format!("`experiments[{i}].experiment_id` must be a UUID string"),
                )
                .at(&format!("/experiments/{i}/experiment_id"))
            })?;
        let variant_id = element
            .variant_id
            .as_deref()
            .and_then(parse_uuid)
            .ok_or_else(|| {
                Rejection::new(
                    Code::InvalidVariantId,
                    format!("`experiments[{i}].variant_id` must be a UUID string"),
                )
                .at(&format!("/experiments/{i}/variant_id"))
            })?;
        refs.push(ExperimentRef {
            experiment_id,
            variant_id,
        });
    }

    // At most `max_experiments` entries, so a quadratic scan is cheap.
    for (i, r) in refs.iter().enumerate() {
        if refs[..i].iter().any(|e| e.experiment_id == r.experiment_id) {
            return Err(Rejection::new(
                Code::DuplicateExperiment,
                format!(
                    "`experiments[{i}]` repeats experiment_id {}",
                    r.experiment_id
                ),
            )
            .at(&format!("/experiments/{i}/experiment_id")));
        }
    }
    Ok(refs)
}

/// `context` / `payload`: at most `MAX_NESTING` levels deep.
fn shallow(object: JsonObject, field: &str, code: Code) -> Result<JsonObject, Rejection> {
    if object.depth() > MAX_NESTING {
        return Err(Rejection::new(
            code,
            format!("`{field}` nests more than {MAX_NESTING} levels deep"),
        ));
    }
    Ok(object)
}

/// `context`: not too deep, and its `policy_version_id`, when present and
/// not null, is a UUID string.
fn context(object: JsonObject) -> Result<JsonObject, Rejection> {
    let object = shallow(object, "context", Code::InvalidContext)?;
    let valid = match object.get("policy_version_id") {
        None => true,
        Some(raw) => {
            is_null(raw)
                || decode::string_value(raw).is_some_and(|text| parse_uuid(&text).is_some())
        }
    };
    if !valid {
        return Err(Rejection::new(
            Code::InvalidPolicyVersionId,
            "`context.policy_version_id` must be a UUID string",
        )
        .at("/context/policy_version_id"));
    }
    Ok(object)
}

/// `metrics` (shape already decoded): count, then each key in document
/// order.
fn metrics(
    entries: Vec<MetricEntry<'_>>,
    limits: &Limits,
) -> Result<BTreeMap<String, f64>, Rejection> {
    if entries.len() > limits.max_metrics {
        return Err(Rejection::new(
            Code::InvalidMetrics,
            format!(
                "`metrics` has {} keys; the limit is {}",
                entries.len(),
                limits.max_metrics
            ),
        ));
    }
    let mut out = BTreeMap::new();
    for (key, value) in entries {
        // The pointer is written only for a rejection: this loop runs for every metric.
        let invalid = |why: &str| {
            Rejection::new(
                Code::InvalidMetric,
                format!("metric {}: {why}", quoted(&key)),
            )
            .at(&pointer("/metrics", &key))
        };
        if key.is_empty() || key.len() > limits.max_name_bytes {
            return Err(invalid(&format!(
                "the key must be 1 to {} bytes",
                limits.max_name_bytes
            )));
        }
        let Some(number) = finite_number(value) else {
            return Err(invalid("the value must be a finite number"));
        };
        if !number::is_exact_f64(value.get(), number) {
            return Err(Rejection::new(
                Code::InexactMetric,
                format!(
                    "metric {}: the value {} is not exactly a 64-bit float \
                     (the nearest is {number}); send that, or put the exact value in `payload`",
                    quoted(&key),
                    quoted(value.get())
                ),
            )
            .at(&pointer("/metrics", &key)));
        }
        if number < 0.0 && NON_NEGATIVE_METRICS.contains(&key.as_ref()) {
            return Err(invalid("the value must not be negative"));
        }
        if out.contains_key(key.as_ref()) {
            return Err(invalid("the key appears more than once"));
        }
        out.insert(key.into_owned(), number);
    }
    Ok(out)
}

/// A metric's raw value as a finite f64; `None` if it is not a JSON number
/// or is out of f64 range.
fn finite_number(raw: &RawValue) -> Option<f64> {
    let text = raw.get();
    let is_number = text
        .as_bytes()
        .first()
        .is_some_and(|b| *b == b'-' || b.is_ascii_digit());
    // Rust's parser rounds correctly (as serde_json's float_roundtrip does)
    // and accepts every JSON number; out of range gives an infinity.
    is_number
        .then(|| text.parse::<f64>().ok())
        .flatten()
        .filter(|n| n.is_finite())
}

/// The standard type's required keys, each found in `context` or `payload`.
fn required_context(
    event_type: &str,
    context: &JsonObject,
    payload: &JsonObject,
) -> Result<(), Rejection> {
    for (key, code) in standard::required_keys(event_type) {
        if !has_value(context.get(key)) && !has_value(payload.get(key)) {
            return Err(Rejection::new(
                *code,
                format!("a `{event_type}` event needs `{key}` in `context` or `payload`"),
            )
            .at(&pointer("/context", key)));
        }
    }
    Ok(())
}

/// Null and the empty string count as missing; any other value is present.
/// (Canonical text writes the empty string only as `""`.)
fn has_value(value: Option<&RawValue>) -> bool {
    value.is_some_and(|raw| !is_null(raw) && raw.get() != r#""""#)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lowercase_snake_starting_with_a_letter() {
        for good in ["a", "plan_generated", "x1", "a_", "z9_9"] {
            assert!(is_name(good, 64), "{good}");
        }
        for bad in [
            "",
            "1a",
            "_a",
            "Plan",
            "plan-generated",
            "plan generated",
            "é",
        ] {
            assert!(!is_name(bad, 64), "{bad}");
        }
        assert!(is_name(&"a".repeat(64), 64));
        assert!(!is_name(&"a".repeat(65), 64));
    }

    #[test]
    fn uuids_must_be_hyphenated() {
        let id = "0192f5a8-3c4e-7d21-9b6a-5e2f1c8d4a07";
        assert!(parse_uuid(id).is_some());
        assert!(parse_uuid(&id.to_uppercase()).is_some());
        assert!(parse_uuid(&id.replace('-', "")).is_none());
        assert!(parse_uuid(&format!("{{{id}}}")).is_none());
        assert!(parse_uuid(&format!("urn:uuid:{id}")).is_none());
        assert!(parse_uuid("0192f5a8-3c4e-7d21-9b6a-5e2f1c8d4a0g").is_none());
    }

    #[test]
    fn generated_event_ids_are_v7_from_now() {
        let now = DateTime::parse_from_rfc3339("2026-03-01T12:00:00.123456Z")
            .expect("valid")
            .with_timezone(&Utc);
        let id = event_id(None, now, None).expect("generated");
        assert_eq!(id.get_version_num(), 7);
        let (secs, nanos) = id.get_timestamp().expect("v7 has a timestamp").to_unix();
        assert_eq!(secs, 1_772_366_400);
        assert_eq!(nanos, 123_000_000);
    }
}
