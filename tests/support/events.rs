//! The one test event: the design document's example request (a generated plan, with
//! experiment context and metrics), and its variants for the tests that need many events.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{json, Value};

pub const EXPERIMENT: &str = "0b7e6a43-2d1e-4f55-9d7c-6f6f6b1f0a01";
pub const VARIANT: &str = "5c0c8f5e-8b4a-4a43-b7c5-0f2f0c0b9a02";
pub const POLICY: &str = "7d9f8e1c-3b2a-4c5d-8e6f-9a0b1c2d3e04";

/// Now plus `offset`, as a client writes it.
pub fn ts(offset: Duration) -> String {
    (Utc::now() + offset).to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The example request for `unit_id` at `timestamp`.
pub fn seed_request(unit_id: &str, timestamp: DateTime<Utc>) -> Value {
    json!({
        "event_type": "plan_generated",
        "unit_type": "user",
        "unit_id": unit_id,
        "experiments": [{"experiment_id": EXPERIMENT, "variant_id": VARIANT}],
        "context": {"policy_version_id": POLICY, "app_version": "1.2.3", "platform": "ios"},
        "metrics": {"latency_ms": 450, "token_count": 1200},
        "payload": {"plan_id": "plan-1", "meal_count": 7},
        "timestamp": timestamp.to_rfc3339_opts(SecondsFormat::Millis, true),
    })
}

/// The example request as a client sends it now.
pub fn seed_event() -> Value {
    seed_request("user-123", Utc::now())
}

/// The example through the real contract, received at `now`.
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
