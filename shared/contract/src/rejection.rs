//! The one answer for input that is not accepted: a stable [`Code`], a sentence and the field
//! at fault as a JSON pointer. Every layer of the contract (batch shape, decoding, the rules,
//! the registry) returns it.

use serde::Serialize;

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
}

impl Rejection {
    pub(crate) fn new(code: Code, message: impl Into<String>) -> Self {
        Rejection {
            code,
            message: message.into(),
            field: String::new(),
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
