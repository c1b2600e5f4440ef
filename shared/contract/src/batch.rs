//! `parse_batch`: split a batch body `{"events": [...]}` into each event's
//! raw JSON, so every event gets its own size check and its own answer.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::code::Code;
use crate::json::{self, is_null, quoted, Elements, OneLevel, Shape, Str};
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
    match fast(text, limits.max_batch_events) {
        Some(events) => Ok(events),
        None => checked(text, limits),
    }
}

/// [`parse_batch`]'s checks in their order, on the body's text.
fn checked<'a>(text: &'a str, limits: &Limits) -> Result<Vec<&'a RawValue>, Rejection> {
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

/// The usual body in one pass: an object whose only key is `events`, an array of 1 to `cap`
/// elements. `None` for anything else (including a syntax error), left to the checks above
/// in their order, so that this is only a shortcut: where it answers, they answer the same.
/// (Those read the body twice: once to split it, once to split `events`.)
fn fast(text: &str, cap: usize) -> Option<Vec<&RawValue>> {
    json::one_level(text, OnlyEvents { cap }).ok().flatten()
}

struct OnlyEvents {
    cap: usize,
}

impl<'de> OneLevel<'de> for OnlyEvents {
    type Value = Option<Vec<&'de RawValue>>;

    fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        // Leaving early (another key, a second `events`) makes the parse fail: the exact
        // checks then run.
        let Some(Str(key)) = map.next_key()? else {
            return Ok(None);
        };
        if key != "events" {
            return Ok(None);
        }
        let events = map.next_value_seed(Capped { cap: self.cap })?;
        if map.next_key::<Str>()?.is_some() {
            return Ok(None);
        }
        Ok(events.filter(|e| !e.is_empty()))
    }

    fn other(self) -> Self::Value {
        None
    }
}

/// An array of at most `cap` elements (`None`: more).
struct Capped {
    cap: usize,
}

impl<'de> DeserializeSeed<'de> for Capped {
    type Value = Option<Vec<&'de RawValue>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Capped {
    type Value = Option<Vec<&'de RawValue>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut kept = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(self.cap));
        while let Some(item) = seq.next_element::<&'de RawValue>()? {
            if kept.len() == self.cap {
                return Ok(None);
            }
            kept.push(item);
        }
        Ok(Some(kept))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `parse_batch` without the one-pass shortcut.
    fn exact(text: &str, limits: &Limits) -> Result<Vec<String>, Rejection> {
        let parsed = checked(text, limits)?;
        Ok(parsed.iter().map(|r| r.get().to_owned()).collect())
    }

    #[test]
    fn the_shortcut_answers_as_the_checks_do() {
        let limits = Limits {
            max_batch_events: 3,
            ..Limits::default()
        };
        for text in [
            r#"{"events": [{"a": 1}, 2, "x"]}"#,
            r#"{"events":[ {"a" : [1, 2]} ]}"#,
            r#"{"\u0065vents": [{}]}"#,
            r#"{"events": []}"#,
            r#"{"events": [1, 2, 3, 4]}"#,
            r#"{"events": [1], "other": 2}"#,
            r#"{"events": [1], "events": [2]}"#,
            r#"{"events": null}"#,
            r#"{"events": {}}"#,
            r#"[{"events": [1]}]"#,
            r#"{"events": [1,]}"#,
            r#"{"events": [1]} x"#,
            r#"{}"#,
        ] {
            let fast = fast(text, limits.max_batch_events);
            let checked = exact(text, &limits);
            if let Some(events) = &fast {
                let events: Vec<String> = events.iter().map(|r| r.get().to_owned()).collect();
                assert_eq!(Ok(events), checked.clone().map_err(|r| r.message), "{text}");
            }
            let answer = parse_batch(text.as_bytes(), &limits).map(|events| {
                events
                    .iter()
                    .map(|r| r.get().to_owned())
                    .collect::<Vec<_>>()
            });
            assert_eq!(answer, checked, "{text}");
        }
        assert!(fast(r#"{"events": [{"a": 1}, 2, "x"]}"#, 3).is_some());
    }
}
