//! The one answer for input that is not accepted: a stable [`Code`] and a sentence. Every
//! layer of the contract (batch shape, decoding, the rules) returns it.

use serde::Serialize;

use crate::code::Code;

/// Why an event (or a batch) was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{message}")]
pub struct Rejection {
    /// What clients code against.
    pub code: Code,
    /// A human sentence; may name a field or key, never echoes long input.
    pub message: String,
}

impl Rejection {
    pub(crate) fn new(code: Code, message: impl Into<String>) -> Self {
        Rejection {
            code,
            message: message.into(),
        }
    }
}
