//! The test event: the canonical event (events/plan_generated.json, which the contract's tests
//! and the benchmarks read too) with its first experiment only, so that each event counts
//! once per variant; and its variants for the tests that need many events.

use std::sync::LazyLock;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{json, Value};

/// The canonical event's first experiment, its variant and its policy version.
pub const EXPERIMENT: &str = "0191e3b2-7a10-7c44-8f0e-2b9d6a1c3e58";
pub const VARIANT: &str = "0191e3b2-7a10-7c44-8f0e-2b9d6a1c3e5a";
pub const POLICY: &str = "0192a1b0-55e3-7f01-8c2d-3e4f5a6b7c8d";

/// The canonical event, parsed once.
static CANONICAL: LazyLock<Value> = LazyLock::new(|| {
    serde_json::from_str(include_str!("../../events/plan_generated.json"))
        .expect("the canonical event is JSON")
});

/// Now plus `offset`, as a client writes it.
pub fn ts(offset: Duration) -> String {
    (Utc::now() + offset).to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The canonical event as a client sends it for `unit_id` at `timestamp`: no `event_id` (the
/// API assigns one), one experiment.
pub fn seed_request(unit_id: &str, timestamp: DateTime<Utc>) -> Value {
    let mut event = CANONICAL.clone();
    let fields = event
        .as_object_mut()
        .expect("the canonical event is an object");
    fields.remove("event_id");
    fields.insert("unit_id".into(), unit_id.into());
    fields.insert(
        "timestamp".into(),
        timestamp
            .to_rfc3339_opts(SecondsFormat::Millis, true)
            .into(),
    );
    if let Some(Value::Array(experiments)) = fields.get_mut("experiments") {
        experiments.truncate(1);
    }
    event
}

/// The test event as a client sends it now.
pub fn seed_event() -> Value {
    seed_request("user-123", Utc::now())
}

/// The test event through the real contract, received at `now`.
pub fn event(now: DateTime<Utc>, timestamp: DateTime<Utc>, unit_id: &str) -> eis_contract::Event {
    eis_contract::validate_event(
        seed_request(unit_id, timestamp).to_string().as_bytes(),
        now,
        &eis_contract::Limits::default(),
    )
    .expect("test event is valid")
}

/// A meal swap of user `i` now: a second event type, small.
pub fn swap_event(i: usize) -> Value {
    json!({
        "event_type": "meal_swapped", "unit_type": "user", "unit_id": format!("user-{i}"),
        "experiments": [{"experiment_id": EXPERIMENT, "variant_id": VARIANT}],
        "payload": {"meal_id": format!("meal-{i}"), "new_meal_id": format!("meal-{}", i + 1)},
        "timestamp": ts(Duration::zero()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_constants_are_the_canonical_events() {
        let event = seed_event();
        assert_eq!(
            event["experiments"],
            json!([{"experiment_id": EXPERIMENT, "variant_id": VARIANT}])
        );
        assert_eq!(event["context"]["policy_version_id"], POLICY);
        assert!(event.get("event_id").is_none());
        assert_eq!(event["unit_id"], "user-123");
    }
}
