//! The tracking plan's document (docs/plan.md, "The format"): the file `make plan` loads, the
//! archiver's `{"action":"plan"}` input, the argument of `exp.load_event_schemas(jsonb)`, and
//! what the functions read back from exp.event_schemas. Serde only; `Plan::compile` checks it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a deployment does with an event that fails its type's schemas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanMode {
    /// Stored, with the flag `schema_violation`, the version it failed and the failing pointer.
    Flag,
    /// Refused with `schema_violation` and kept in the quarantine (`rejected/`), to be
    /// replayed once the plan (or the client) is fixed.
    Quarantine,
    /// Refused with `schema_violation`, not kept.
    Reject,
}

/// What a deployment with a plan does with an event of a type the plan does not name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnplannedPolicy {
    /// Stored as it is.
    #[default]
    Allow,
    /// Stored, with the flag `unplanned_event_type`.
    Flag,
    /// Refused with `unplanned_event_type`, not kept.
    Reject,
}

/// A version's status: only active versions are tried for an event that names none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionStatus {
    #[default]
    Active,
    /// Matched only by events that name it (stamped, with the flag `deprecated_schema`).
    Deprecated,
}

/// The whole plan, or (on load) the part of it to add or change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanDocument {
    /// None on load: unchanged (a new plan starts at `allow`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unplanned: Option<UnplannedPolicy>,
    #[serde(default)]
    pub types: Vec<TypeDocument>,
}

/// One event type's mode and schema versions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypeDocument {
    pub event_type: String,
    pub mode: PlanMode,
    #[serde(default)]
    pub versions: Vec<VersionDocument>,
}

/// One version: a JSON Schema (draft 2020-12) for `payload`, and optionally for `context` and
/// `metrics`. A part without a schema is not checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionDocument {
    /// `MODEL-REVISION-ADDITION`.
    pub version: String,
    #[serde(default)]
    pub status: VersionStatus,
    pub payload: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Value>,
}
