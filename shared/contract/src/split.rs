//! Exact first pass over an event: split the top-level object into its
//! fields, each kept as raw JSON borrowed from the input, so that each one
//! can be decoded on its own and blamed for its own problems.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::json::Str;

/// The top-level fields of an event. A JSON `null` is still present here.
#[derive(Default)]
pub(crate) struct Fields<'a> {
    pub(crate) event_id: Option<&'a RawValue>,
    pub(crate) event_type: Option<&'a RawValue>,
    pub(crate) unit_type: Option<&'a RawValue>,
    pub(crate) unit_id: Option<&'a RawValue>,
    pub(crate) timestamp: Option<&'a RawValue>,
    pub(crate) experiments: Option<&'a RawValue>,
    pub(crate) context: Option<&'a RawValue>,
    pub(crate) metrics: Option<&'a RawValue>,
    pub(crate) payload: Option<&'a RawValue>,
}

/// The outcome of splitting syntactically valid JSON.
pub(crate) enum Split<'a> {
    Object {
        fields: Fields<'a>,
        /// The first contract key given twice, if any.
        repeated: Option<Cow<'a, str>>,
        /// The first key the contract does not define, if any.
        unknown: Option<Cow<'a, str>>,
    },
    NotObject,
}

/// Splits `text`; `Err` is a JSON syntax error.
pub(crate) fn split(text: &str) -> Result<Split<'_>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let split = SplitVisitor.deserialize(&mut de)?;
    de.end()?;
    Ok(split)
}

struct SplitVisitor;

impl<'de> DeserializeSeed<'de> for SplitVisitor {
    type Value = Split<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for SplitVisitor {
    type Value = Split<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = Fields::default();
        let mut repeated = None;
        let mut unknown = None;
        // Repeated and unknown keys are only recorded, not raised, so that
        // a syntax error later in the text still wins (syntax comes first).
        while let Some(Str(key)) = map.next_key()? {
            let value = map.next_value::<&'de RawValue>()?;
            let Some(slot) = fields.slot(&key) else {
                unknown.get_or_insert(key);
                continue;
            };
            if slot.replace(value).is_some() && repeated.is_none() {
                repeated = Some(key);
            }
        }
        Ok(Split::Object {
            fields,
            repeated,
            unknown,
        })
    }

    // Non-objects are consumed to the end so that a syntax error anywhere in
    // the text is still reported as such.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<&'de RawValue>()?.is_some() {}
        Ok(Split::NotObject)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Split::NotObject)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Split::NotObject)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Split::NotObject)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Split::NotObject)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Split::NotObject)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Split::NotObject)
    }
}

impl<'a> Fields<'a> {
    fn slot(&mut self, key: &str) -> Option<&mut Option<&'a RawValue>> {
        match key {
            "event_id" => Some(&mut self.event_id),
            "event_type" => Some(&mut self.event_type),
            "unit_type" => Some(&mut self.unit_type),
            "unit_id" => Some(&mut self.unit_id),
            "timestamp" => Some(&mut self.timestamp),
            "experiments" => Some(&mut self.experiments),
            "context" => Some(&mut self.context),
            "metrics" => Some(&mut self.metrics),
            "payload" => Some(&mut self.payload),
            _ => None,
        }
    }
}
