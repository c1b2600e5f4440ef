//! The stable strings of the contract: rejection codes and warning flags.
//!
//! Each enum is declared through one macro invocation so that the variant,
//! its string and its place in `ALL` are written once and cannot drift apart.

use serde::{Deserialize, Serialize};

/// Declares a fieldless enum whose variants map to fixed snake_case strings,
/// with `ALL`, `as_str`, `Display` and serde using those strings.
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[doc = $doc:literal])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $( $(#[doc = $doc])* #[serde(rename = $text)] $variant, )+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[ $( $name::$variant, )+ ];

            /// The stable snake_case string clients see.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum! {
    /// Why an event or a batch was rejected. Clients code against these
    /// strings, so a string never changes meaning once published.
    pub enum Code {
        /// The event's JSON is larger than `Limits::max_event_bytes`.
        EventTooLarge = "event_too_large",
        /// The bytes are not UTF-8 JSON.
        InvalidJson = "invalid_json",
        /// The JSON is not an object, or repeats a top-level key.
        InvalidEvent = "invalid_event",
        /// A top-level key that the contract does not define.
        UnknownField = "unknown_field",
        /// `event_type` is absent, null or empty.
        MissingEventType = "missing_event_type",
        /// `event_type` is not a string of `[a-z][a-z0-9_]*` within the name limit.
        InvalidEventType = "invalid_event_type",
        /// `unit_type` is absent, null or empty.
        MissingUnitType = "missing_unit_type",
        /// `unit_type` is not a string of `[a-z][a-z0-9_]*` within the name limit.
        InvalidUnitType = "invalid_unit_type",
        /// `unit_id` is absent, null or empty.
        MissingUnitId = "missing_unit_id",
        /// `unit_id` is not a string, is too long or holds a control character.
        InvalidUnitId = "invalid_unit_id",
        /// `timestamp` is absent, null or empty.
        MissingTimestamp = "missing_timestamp",
        /// `timestamp` is not an RFC 3339 date-time with an offset.
        InvalidTimestamp = "invalid_timestamp",
        /// `timestamp` is further ahead of the server's clock than `Limits::max_future`.
        FutureTimestamp = "future_timestamp",
        /// `event_id` is not a UUID string, or is the nil UUID.
        InvalidEventId = "invalid_event_id",
        /// `experiments` is not an array of `{experiment_id, variant_id}` objects, or has too many.
        InvalidExperiments = "invalid_experiments",
        /// An `experiment_id` is not a UUID string.
        InvalidExperimentId = "invalid_experiment_id",
        /// A `variant_id` is not a UUID string.
        InvalidVariantId = "invalid_variant_id",
        /// The same `experiment_id` appears twice in one event.
        DuplicateExperiment = "duplicate_experiment",
        /// `context` is not an object, or holds U+0000, a lone surrogate, a number over 1000 digits or too deep nesting.
        InvalidContext = "invalid_context",
        /// `context.policy_version_id` is present but not a UUID string.
        InvalidPolicyVersionId = "invalid_policy_version_id",
        /// `metrics` is not an object, or has too many keys.
        InvalidMetrics = "invalid_metrics",
        /// One metric has a bad key or a value that is not an allowed finite number.
        InvalidMetric = "invalid_metric",
        /// One metric's number is not exactly the 64-bit float it would be stored as (e.g. `9007199254740993`).
        InexactMetric = "inexact_metric",
        /// `payload` is not an object, or holds U+0000, a lone surrogate, a number over 1000 digits or too deep nesting.
        InvalidPayload = "invalid_payload",
        /// A `plan_generated` event without `policy_version_id` in `context` or `payload`.
        MissingPolicyVersionId = "missing_policy_version_id",
        /// A `plan_accepted` or `plan_rejected` event without `plan_id`.
        MissingPlanId = "missing_plan_id",
        /// A `plan_rejected` event without `rejection_reason`.
        MissingRejectionReason = "missing_rejection_reason",
        /// A `meal_swapped` event without `meal_id`.
        MissingMealId = "missing_meal_id",
        /// A `meal_swapped` event without `new_meal_id`.
        MissingNewMealId = "missing_new_meal_id",
        /// An `edit_applied` event without `edit_type`.
        MissingEditType = "missing_edit_type",
        /// An `edit_applied` event without `edit_details`.
        MissingEditDetails = "missing_edit_details",
        /// A `validator_intervention` event without `intervention_type`.
        MissingInterventionType = "missing_intervention_type",
        /// A batch body that is not an object with an `events` key.
        MissingEvents = "missing_events",
        /// A batch whose `events` is not an array (or is given twice).
        InvalidEvents = "invalid_events",
        /// A batch with more than `Limits::max_batch_events` events.
        BatchTooLarge = "batch_too_large",
        /// A batch whose `events` array is empty.
        EmptyBatch = "empty_batch",
        /// Reject mode (`EIS_REGISTRY_MODE=reject`): an `experiment_id` the registry does not hold.
        UnregisteredExperiment = "unregistered_experiment",
        /// Reject mode: a `variant_id` that is not one of the registered experiment's variants.
        UnknownVariant = "unknown_variant",
        /// Reject mode: the event's `unit_type` is not the registered experiment's.
        UnitTypeMismatch = "unit_type_mismatch",
        /// Reject mode: the registered experiment is stopped.
        ExperimentStopped = "experiment_stopped",
        /// Reject mode: `timestamp` is before the experiment's `starts_at` or at/after its `ends_at`.
        OutsideExperimentWindow = "outside_experiment_window",
        /// A deployment that binds units to callers (JWT): an event of the bound `unit_type`
        /// whose `unit_id` is not the caller's own (the configured claim of its token).
        UnitNotAuthorized = "unit_not_authorized",
        /// The event's unit was erased (docs/privacy.md) and the event is timestamped before
        /// the erasure: a client's retry of an erased event is not stored again.
        UnitErased = "unit_erased",
        /// The event's unit was erased with suppression: none of its events is accepted.
        UnitSuppressed = "unit_suppressed",
        /// `schema` is not a string `event_type/MODEL-REVISION-ADDITION` naming the event's own
        /// `event_type` (docs/plan.md).
        InvalidSchema = "invalid_schema",
        /// The tracking plan's `quarantine` or `reject` mode: the event matches no active
        /// version of its type's schema (or not the version it named, or names one the plan
        /// lacks). The answer names the first failing value and the schema's keyword.
        SchemaViolation = "schema_violation",
        /// The plan's policy for unplanned types is `reject`, and the plan has no such type.
        UnplannedEventType = "unplanned_event_type",
    }
}

string_enum! {
    /// A warning attached to an accepted event. Stored with the event and
    /// returned to callers as `warnings`.
    pub enum Flag {
        /// `timestamp` is more than `Limits::old_after` before the server's clock.
        OldTimestamp = "old_timestamp",
        /// The event names no experiment (`experiments` absent, null or empty).
        NoExperimentContext = "no_experiment_context",
        /// The registry (when not empty) does not hold an experiment the event names.
        UnregisteredExperiment = "unregistered_experiment",
        /// A `variant_id` that is not one of its registered experiment's variants.
        UnknownVariant = "unknown_variant",
        /// The event's `unit_type` is not its registered experiment's.
        UnitTypeMismatch = "unit_type_mismatch",
        /// A registered experiment the event names is stopped.
        ExperimentStopped = "experiment_stopped",
        /// `timestamp` is outside a registered experiment's `starts_at`..`ends_at`.
        OutsideExperimentWindow = "outside_experiment_window",
        /// Flag mode: the function has not loaded the registry yet (its first load failed), so
        /// the experiments the event names were not checked.
        RegistryUnavailable = "registry_unavailable",
        /// The tracking plan's `flag` mode: the event matches no version of its type's schema
        /// (docs/plan.md); stored with the version it failed and the failing value's pointer.
        SchemaViolation = "schema_violation",
        /// The plan's policy for unplanned types is `flag`, and the plan has no such type.
        UnplannedEventType = "unplanned_event_type",
        /// The event named a deprecated version of its type's schema, and matched it.
        DeprecatedSchema = "deprecated_schema",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn code_strings_are_unique_snake_case_and_match_serde() {
        let mut seen = BTreeSet::new();
        for code in Code::ALL {
            let text = code.as_str();
            assert!(seen.insert(text), "duplicate code string {text}");
            assert!(text.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
            assert_eq!(code.to_string(), text);
            let json = serde_json::to_string(code).expect("serialize code");
            assert_eq!(json, format!("\"{text}\""));
            let back: Code = serde_json::from_str(&json).expect("deserialize code");
            assert_eq!(back, *code);
        }
    }

    #[test]
    fn flag_strings_match_serde() {
        assert_eq!(
            &Flag::ALL[..2],
            &[Flag::OldTimestamp, Flag::NoExperimentContext]
        );
        for flag in Flag::ALL {
            let json = serde_json::to_string(flag).expect("serialize flag");
            assert_eq!(json, format!("\"{}\"", flag.as_str()));
            assert_eq!(flag.to_string(), flag.as_str());
        }
        assert_eq!(Flag::OldTimestamp.as_str(), "old_timestamp");
        assert_eq!(Flag::NoExperimentContext.as_str(), "no_experiment_context");
    }

    #[test]
    fn unknown_code_string_does_not_deserialize() {
        assert!(serde_json::from_str::<Code>("\"no_such_code\"").is_err());
    }
}
