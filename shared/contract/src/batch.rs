//! `parse_batch`: split a batch body `{"events": [...]}` into each event's
//! raw JSON, so every event gets its own size check and its own answer.

use serde_json::value::RawValue;

use crate::code::Code;
use crate::json::{self, is_null, quoted, Elements, Shape};
use crate::limits::Limits;
use crate::rejection::{pointer, Rejection};

/// Parses a batch body into the raw JSON of each element of `events`,
/// borrowed from `body`.
///
/// Checked in this order: JSON syntax (`invalid_json`), a body object with
/// an `events` key (`missing_events`), `events` an array given once
/// (`invalid_events`), no other top-level key (`unknown_field`), at most
/// `limits.max_batch_events` elements (`batch_too_large`), at least one
/// (`empty_batch`). The elements themselves are not checked here.
pub fn parse_batch<'a>(body: &'a [u8], limits: &Limits) -> Result<Vec<&'a RawValue>, Rejection> {
    let text = std::str::from_utf8(body)
        .map_err(|_| Rejection::new(Code::InvalidJson, "the body is not valid UTF-8"))?;
    let parsed = json::shape(text).map_err(|e| {
        Rejection::new(
            Code::InvalidJson,
            format!("the body is not valid JSON: {e}"),
        )
    })?;
    let missing = || {
        Rejection::new(
            Code::MissingEvents,
            "the body must be a JSON object with an `events` array",
        )
    };
    let Shape::Object(entries) = parsed else {
        return Err(missing());
    };

    let mut events = None;
    let mut unknown = None;
    for (key, value) in &entries {
        if key == "events" {
            if events.replace(*value).is_some() {
                return Err(Rejection::new(
                    Code::InvalidEvents,
                    "the key `events` appears more than once",
                )
                .at("/events"));
            }
        } else if unknown.is_none() {
            unknown = Some(key);
        }
    }
    // As for an event's required fields, `null` counts as absent.
    let events = events.filter(|v| !is_null(v)).ok_or_else(missing)?;

    let (kept, total) = match json::elements(events.get(), limits.max_batch_events) {
        Ok(Elements::Array { kept, total }) => (kept, total),
        // The body already parsed, so only "not an array" reaches here.
        Ok(Elements::NotArray) | Err(_) => {
            return Err(Rejection::new(
                Code::InvalidEvents,
                "`events` must be an array of event objects",
            )
            .at("/events"))
        }
    };
    if let Some(key) = unknown {
        return Err(
            Rejection::new(Code::UnknownField, format!("unknown field {}", quoted(key)))
                .at(&pointer("", key)),
        );
    }
    if total > limits.max_batch_events {
        return Err(Rejection::new(
            Code::BatchTooLarge,
            format!(
                "the batch has {total} events; the limit is {}",
                limits.max_batch_events
            ),
        )
        .at("/events"));
    }
    if total == 0 {
        return Err(
            Rejection::new(Code::EmptyBatch, "`events` must hold at least one event").at("/events"),
        );
    }
    Ok(kept)
}
