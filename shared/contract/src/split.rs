//! Exact first pass over an event: split the top-level object into its
//! fields, each kept as raw JSON borrowed from the input, so that each one
//! can be decoded on its own and blamed for its own problems.

use std::borrow::Cow;

use serde::de::MapAccess;
use serde_json::value::RawValue;

use crate::json::{self, OneLevel, Str};

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
    pub(crate) schema: Option<&'a RawValue>,
}

/// The outcome of splitting syntactically valid JSON. A short-lived return value, never
/// collected: the size difference of its variants costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
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
    json::one_level(text, Splitter)
}

struct Splitter;

impl<'de> OneLevel<'de> for Splitter {
    type Value = Split<'de>;

    fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
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

    fn other(self) -> Self::Value {
        Split::NotObject
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
            "schema" => Some(&mut self.schema),
            _ => None,
        }
    }
}
