//! The tracking plan (docs/plan.md): per event type, versioned JSON Schemas (draft 2020-12)
//! for `payload`, `context` and `metrics`, and a mode for events that fail them. Pure: the
//! document is loaded and cached by the caller; [`Plan::compile`] refuses any schema that does
//! not compile, so that an invalid one never reaches a function's copy.
//!
//! An event naming no version is checked against its type's active versions, newest first,
//! and stamped with the first it matches: every active version is valid at once. An event
//! naming one (`schema`) is checked against that one, active or deprecated.

mod document;

use std::collections::HashMap;

use jsonschema::error::ValidationErrorKind;
use jsonschema::{PatternOptions, ValidationError, Validator};
use serde_json::Value;

use crate::code::{Code, Flag};
use crate::event::Event;
use crate::limits::Limits;
use crate::rejection::{pointer, Rejection};
use crate::validate::is_name;

pub use crate::rejection::Violation;
pub use crate::schema_version::SchemaVersion;
pub use document::{
    PlanDocument, PlanMode, TypeDocument, UnplannedPolicy, VersionDocument, VersionStatus,
};

/// Failures kept per event: a payload can fail many keywords, and the record stays small.
pub const MAX_VIOLATIONS: usize = 32;
/// A pointer longer than this is cut at a token boundary: answers never echo long input.
const MAX_PATH_BYTES: usize = 256;

/// Why a plan document does not compile. Each names the type (and version, and part).
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("`{0}` is not an event type name ([a-z][a-z0-9_]*)")]
    TypeName(String),
    #[error("{0} is given twice")]
    DuplicateType(String),
    #[error("{event_type}: `{version}` is not a version MODEL-REVISION-ADDITION")]
    VersionName { event_type: String, version: String },
    #[error("{event_type}: version {version} is given twice")]
    DuplicateVersion { event_type: String, version: String },
    #[error("{event_type} {version}: the {part} schema is not a valid JSON Schema (draft 2020-12): {reason}")]
    Schema {
        event_type: String,
        version: String,
        part: &'static str,
        reason: String,
    },
}

impl PlanError {
    /// The stable code of every plan error (the loaders' answer).
    pub const CODE: &'static str = "plan_invalid";
}

/// The event as a plan takes it.
#[derive(Debug)]
pub enum PlanVerdict {
    /// Stored: matched and stamped, or flagged (flag mode, an unplanned type's `flag`).
    Accepted(Event),
    /// Refused with `schema_violation` and kept in the quarantine (quarantine mode).
    Quarantined(Rejection),
    /// Refused, not kept (reject mode, an unplanned type's `reject`).
    Refused(Rejection),
}

/// One part of an event a version may check, in checking order.
#[derive(Debug, Clone, Copy)]
enum Part {
    Payload,
    Context,
    Metrics,
}

impl Part {
    const ALL: [Part; 3] = [Part::Payload, Part::Context, Part::Metrics];

    fn name(self) -> &'static str {
        match self {
            Part::Payload => "payload",
            Part::Context => "context",
            Part::Metrics => "metrics",
        }
    }
}

struct CompiledVersion {
    version: SchemaVersion,
    label: String,
    status: VersionStatus,
    /// Indexed like `Part::ALL`.
    schemas: [Option<Validator>; 3],
}

struct PlannedType {
    mode: PlanMode,
    /// Newest first.
    versions: Vec<CompiledVersion>,
    /// Indexed like `Part::ALL`: whether any version has a schema for the part. A part no
    /// version checks is never read into a `Value` (most of a check's cost is that reading).
    checked: [bool; 3],
}

/// A compiled plan. Empty (the default): no checks at all, like an empty registry.
#[derive(Default)]
pub struct Plan {
    unplanned: UnplannedPolicy,
    types: HashMap<String, PlannedType>,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("unplanned", &self.unplanned)
            .field("types", &self.types.len())
            .finish()
    }
}

/// A schema compiled the way every copy compiles it: draft 2020-12 whatever `$schema` says;
/// `format` checked (a plan that writes `"format": "uuid"` means it); and the linear-time
/// `regex` engine for `pattern`, so that no client string can make a check backtrack for long.
fn compile_schema(schema: &Value) -> Result<Validator, ValidationError<'static>> {
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .with_pattern_options(PatternOptions::regex())
        .build(schema)
}

impl Plan {
    /// Compiles every schema of `document`; the first that does not compile refuses it all.
    pub fn compile(document: &PlanDocument) -> Result<Plan, PlanError> {
        let mut types = HashMap::with_capacity(document.types.len());
        for t in &document.types {
            if !is_name(&t.event_type, Limits::default().max_name_bytes) {
                return Err(PlanError::TypeName(t.event_type.clone()));
            }
            let mut versions = Vec::with_capacity(t.versions.len());
            for v in &t.versions {
                let version =
                    SchemaVersion::parse(&v.version).ok_or_else(|| PlanError::VersionName {
                        event_type: t.event_type.clone(),
                        version: v.version.clone(),
                    })?;
                let compile = |part: Part, schema: Option<&Value>| {
                    schema
                        .map(compile_schema)
                        .transpose()
                        .map_err(|e| PlanError::Schema {
                            event_type: t.event_type.clone(),
                            version: v.version.clone(),
                            part: part.name(),
                            reason: e.to_string(),
                        })
                };
                versions.push(CompiledVersion {
                    version,
                    label: version.to_string(),
                    status: v.status,
                    schemas: [
                        compile(Part::Payload, Some(&v.payload))?,
                        compile(Part::Context, v.context.as_ref())?,
                        compile(Part::Metrics, v.metrics.as_ref())?,
                    ],
                });
            }
            versions.sort_by_key(|v| std::cmp::Reverse(v.version));
            if let Some(twice) = versions.windows(2).find(|w| w[0].version == w[1].version) {
                return Err(PlanError::DuplicateVersion {
                    event_type: t.event_type.clone(),
                    version: twice[0].label.clone(),
                });
            }
            let checked = [0, 1, 2].map(|i| versions.iter().any(|v| v.schemas[i].is_some()));
            let planned = PlannedType {
                mode: t.mode,
                versions,
                checked,
            };
            if types.insert(t.event_type.clone(), planned).is_some() {
                return Err(PlanError::DuplicateType(t.event_type.clone()));
            }
        }
        Ok(Plan {
            unplanned: document.unplanned.unwrap_or_default(),
            types,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.types.is_empty()
    }

    /// How many event types the plan names.
    pub fn len(&self) -> usize {
        self.types.len()
    }

    /// Checks a contract-valid event. Its `schema_version` holds the version it named (from
    /// validation) and is replaced by the version it was checked against (see [`Event`]).
    pub fn check(&self, mut event: Event) -> PlanVerdict {
        let named = event.schema_version.take();
        if self.is_empty() {
            return PlanVerdict::Accepted(event);
        }
        let Some(planned) = self.types.get(&event.event_type) else {
            return match self.unplanned {
                UnplannedPolicy::Allow => PlanVerdict::Accepted(event),
                UnplannedPolicy::Flag => {
                    add_flag(&mut event, Flag::UnplannedEventType);
                    PlanVerdict::Accepted(event)
                }
                UnplannedPolicy::Reject => PlanVerdict::Refused(
                    Rejection::new(
                        Code::UnplannedEventType,
                        format!("the tracking plan has no event type {}", event.event_type),
                    )
                    .at("/event_type"),
                ),
            };
        };
        let parts = match Parts::of(&event, planned.checked) {
            Ok(parts) => parts,
            Err(violation) => return planned.refuse(event, None, vec![violation]),
        };
        match named {
            Some(label) => {
                let Some(v) = planned.versions.iter().find(|v| v.label == label) else {
                    let violation = Violation {
                        version: String::new(),
                        path: "/schema".into(),
                        schema_path: String::new(),
                        message: format!(
                            "the tracking plan has no version {label} of {}",
                            event.event_type
                        ),
                    };
                    return planned.refuse(event, None, vec![violation]);
                };
                if !v.is_valid(&parts) {
                    let violations = v.violations(&parts);
                    return planned.refuse(event, Some(v), violations);
                }
                if v.status == VersionStatus::Deprecated {
                    add_flag(&mut event, Flag::DeprecatedSchema);
                }
                event.schema_version = Some(label);
                PlanVerdict::Accepted(event)
            }
            None => {
                let mut active = planned
                    .versions
                    .iter()
                    .filter(|v| v.status == VersionStatus::Active);
                let Some(newest) = active.next() else {
                    let violation = Violation {
                        version: String::new(),
                        path: String::new(),
                        schema_path: String::new(),
                        message: format!(
                            "{} has no active version: an event must name one in `schema`",
                            event.event_type
                        ),
                    };
                    return planned.refuse(event, None, vec![violation]);
                };
                if let Some(v) = std::iter::once(newest)
                    .chain(active.clone())
                    .find(|v| v.is_valid(&parts))
                {
                    event.schema_version = Some(v.label.clone());
                    return PlanVerdict::Accepted(event);
                }
                // The newest's failures first: its first is the answer's.
                let mut violations = newest.violations(&parts);
                for v in active {
                    if violations.len() >= MAX_VIOLATIONS {
                        break;
                    }
                    violations.extend(v.violations(&parts));
                }
                violations.truncate(MAX_VIOLATIONS);
                planned.refuse(event, Some(newest), violations)
            }
        }
    }
}

fn add_flag(event: &mut Event, flag: Flag) {
    event.flags.push(flag);
    event.flags.sort();
    event.flags.dedup();
}

impl PlannedType {
    /// The event that failed `checked` (None: no version was checked) as the type's mode
    /// takes it.
    fn refuse(
        &self,
        mut event: Event,
        checked: Option<&CompiledVersion>,
        violations: Vec<Violation>,
    ) -> PlanVerdict {
        let first = violations.first().cloned().unwrap_or_else(|| Violation {
            version: String::new(),
            path: String::new(),
            schema_path: String::new(),
            message: String::new(),
        });
        match self.mode {
            PlanMode::Flag => {
                add_flag(&mut event, Flag::SchemaViolation);
                event.schema_version = checked.map(|v| v.label.clone());
                event.schema_violation = Some(first.path);
                PlanVerdict::Accepted(event)
            }
            PlanMode::Quarantine | PlanMode::Reject => {
                let mut rejection = Rejection::new(
                    Code::SchemaViolation,
                    format!("{}: {}", event.event_type, first.message),
                )
                .at(&first.path);
                rejection.schema_path = Some(first.schema_path);
                rejection.violations = violations;
                match self.mode {
                    PlanMode::Quarantine => PlanVerdict::Quarantined(rejection),
                    _ => PlanVerdict::Refused(rejection),
                }
            }
        }
    }
}

/// The parts of an event as JSON values, read once per check; a part no version of the type
/// checks stays `Null` (never validated).
struct Parts {
    values: [Value; 3],
}

impl Parts {
    fn of(event: &Event, checked: [bool; 3]) -> Result<Parts, Violation> {
        let parse = |part: Part, text: &str| {
            serde_json::from_str::<Value>(text).map_err(|_| Violation {
                version: String::new(),
                path: format!("/{}", part.name()),
                schema_path: String::new(),
                // A number beyond f64's range: valid JSON, stored exactly, but no schema
                // check can read it.
                message: format!("the {} holds a number no schema can check", part.name()),
            })
        };
        let metrics = || {
            let entries = event.metrics.iter().map(|(k, v)| {
                let number = serde_json::Number::from_f64(*v).map_or(Value::Null, Value::Number);
                (k.clone(), number)
            });
            Value::Object(entries.collect())
        };
        let [payload, context, with_metrics] = checked;
        Ok(Parts {
            values: [
                match payload {
                    true => parse(Part::Payload, event.payload.as_str())?,
                    false => Value::Null,
                },
                match context {
                    true => parse(Part::Context, event.context.as_str())?,
                    false => Value::Null,
                },
                match with_metrics {
                    true => metrics(),
                    false => Value::Null,
                },
            ],
        })
    }
}

impl CompiledVersion {
    fn checks<'a>(
        &'a self,
        parts: &'a Parts,
    ) -> impl Iterator<Item = (Part, &'a Validator, &'a Value)> {
        Part::ALL
            .iter()
            .zip(&self.schemas)
            .zip(&parts.values)
            .filter_map(|((part, schema), value)| schema.as_ref().map(|s| (*part, s, value)))
    }

    fn is_valid(&self, parts: &Parts) -> bool {
        self.checks(parts)
            .all(|(_, schema, value)| schema.is_valid(value))
    }

    fn violations(&self, parts: &Parts) -> Vec<Violation> {
        let mut out = Vec::new();
        for (part, schema, value) in self.checks(parts) {
            for error in schema.iter_errors(value) {
                if out.len() >= MAX_VIOLATIONS {
                    return out;
                }
                out.push(self.violation(part, &error));
            }
        }
        out
    }

    fn violation(&self, part: Part, error: &ValidationError<'_>) -> Violation {
        let at = format!("/{}{}", part.name(), error.instance_path().as_str());
        let keyword = error.kind().keyword();
        // `required` and `additionalProperties` blame the object; the answer names the key.
        let (path, what) = match error.kind() {
            ValidationErrorKind::Required { property } => {
                let key = property.as_str().unwrap_or_default();
                (pointer(&at, key), "is required".to_string())
            }
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                let key = unexpected.first().map(String::as_str).unwrap_or_default();
                (
                    pointer(&at, key),
                    "is not a property of the schema".to_string(),
                )
            }
            _ => (at, format!("fails `{keyword}`")),
        };
        let path = bounded(path);
        Violation {
            version: self.label.clone(),
            message: format!("{} {what} (version {})", display(&path), self.label),
            path,
            schema_path: bounded(format!("/{}{}", part.name(), error.schema_path().as_str())),
        }
    }
}

/// `path`, cut at a `/` to at most [`MAX_PATH_BYTES`].
fn bounded(path: String) -> String {
    if path.len() <= MAX_PATH_BYTES {
        return path;
    }
    let mut end = MAX_PATH_BYTES;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    let cut = path[..end].rfind('/').unwrap_or(0);
    path[..cut].to_string()
}

fn display(path: &str) -> &str {
    match path {
        "" => "the event",
        p => p,
    }
}

#[cfg(test)]
mod tests;
