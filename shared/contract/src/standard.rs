//! Standard event types and the context keys each must carry.

use crate::code::Code;

/// Event types with required context keys, and for each key the code
/// reported when it is missing. A key may sit in `context` or in `payload`;
/// a null or empty-string value counts as missing. Keys are checked in the
/// order listed. Any other well-formed event type is a custom type with no
/// required keys.
pub const STANDARD_EVENT_TYPES: &[(&str, &[(&str, Code)])] = &[
    (
        "plan_generated",
        &[("policy_version_id", Code::MissingPolicyVersionId)],
    ),
    ("plan_accepted", &[("plan_id", Code::MissingPlanId)]),
    (
        "plan_rejected",
        &[
            ("plan_id", Code::MissingPlanId),
            ("rejection_reason", Code::MissingRejectionReason),
        ],
    ),
    (
        "meal_swapped",
        &[
            ("meal_id", Code::MissingMealId),
            ("new_meal_id", Code::MissingNewMealId),
        ],
    ),
    (
        "edit_applied",
        &[
            ("edit_type", Code::MissingEditType),
            ("edit_details", Code::MissingEditDetails),
        ],
    ),
    (
        "validator_intervention",
        &[("intervention_type", Code::MissingInterventionType)],
    ),
];

/// The required context keys of `event_type` (empty for a custom type).
pub(crate) fn required_keys(event_type: &str) -> &'static [(&'static str, Code)] {
    STANDARD_EVENT_TYPES
        .iter()
        .find(|(name, _)| *name == event_type)
        .map_or(&[], |(_, keys)| keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_missing_code_is_named_after_its_key() {
        for (_, keys) in STANDARD_EVENT_TYPES {
            for (key, code) in *keys {
                assert_eq!(code.as_str(), format!("missing_{key}"));
            }
        }
    }

    #[test]
    fn custom_types_have_no_required_keys() {
        assert!(required_keys("pantry_updated").is_empty());
        assert_eq!(required_keys("plan_rejected").len(), 2);
    }
}
