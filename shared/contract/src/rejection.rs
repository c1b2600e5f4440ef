//! The one answer for input that is not accepted: a stable [`Code`], a sentence and the field
//! at fault as a JSON pointer. Every layer of the contract (batch shape, decoding, the rules,
//! the registry) returns it.

use serde::{Deserialize, Serialize};

use crate::code::Code;

/// A key longer than this is not spelled out in a pointer: the pointer names the object that
/// holds it, so that an answer never echoes long input.
const MAX_POINTER_KEY_BYTES: usize = 64;

/// Why an event (or a batch) was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{message}")]
pub struct Rejection {
    /// What clients code against.
    pub code: Code,
    /// A human sentence; may name a field or key, never echoes long input.
    pub message: String,
    /// The JSON pointer (RFC 6901) of the value at fault, within the event (or the batch body
    /// for a batch refused whole): `/experiments/0/variant_id`; `""` is the whole document.
    pub field: String,
    /// `schema_violation`: where in the plan's schema the first failing keyword is
    /// (`/properties/meal_count/type`). None for every other code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema_path: Option<String>,
    /// `schema_violation`: every failure found (bounded), for the quarantine record.
    #[serde(skip)]
    pub violations: Vec<Violation>,
}

/// One failure of an event against a version of its type's schema in the tracking plan
/// (`plan::Plan::check`), as a `schema_violation` rejection carries them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Violation {
    /// The version checked; `""` when the event named a version the plan lacks.
    pub version: String,
    /// The JSON pointer of the failing value within the event (`/payload/meal_count`).
    pub path: String,
    /// Where the failing keyword is within the version's schemas (`/payload/properties/…`).
    pub schema_path: String,
    pub message: String,
}

impl Rejection {
    pub(crate) fn new(code: Code, message: impl Into<String>) -> Self {
        Rejection {
            code,
            message: message.into(),
            field: String::new(),
            schema_path: None,
            violations: Vec::new(),
        }
    }

    /// Blames `pointer`, unless a deeper step already named the field more precisely.
    pub(crate) fn at(mut self, pointer: &str) -> Self {
        if self.field.is_empty() {
            self.field = pointer.to_string();
        }
        self
    }
}

/// `parent` followed by the token of `key` (`~` and `/` escaped), or `parent` itself when the
/// key is too long to echo.
pub(crate) fn pointer(parent: &str, key: &str) -> String {
    if key.len() > MAX_POINTER_KEY_BYTES {
        return parent.to_string();
    }
    format!("{parent}/{}", key.replace('~', "~0").replace('/', "~1"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointer_tokens_are_escaped_and_bounded() {
        for (parent, key, expected) in [
            ("", "event_type", "/event_type"),
            ("/metrics", "a/b~c", "/metrics/a~1b~0c"),
            ("/context", "", "/context/"),
            ("/metrics", &"k".repeat(65), "/metrics"),
        ] {
            assert_eq!(pointer(parent, key), expected, "{key}");
        }
    }

    #[test]
    fn the_deepest_blame_wins() {
        let deep = Rejection::new(Code::InvalidVariantId, "x").at("/experiments/0/variant_id");
        assert_eq!(deep.at("/experiments").field, "/experiments/0/variant_id");
        assert_eq!(Rejection::new(Code::InvalidJson, "x").field, "");
    }
}
