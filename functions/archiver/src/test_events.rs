//! Events for the unit tests of this crate.

use chrono::{DateTime, Utc};
use eis_contract::Event;
use uuid::Uuid;

pub fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("test timestamp")
        .with_timezone(&Utc)
}

/// Event `n` at `timestamp` (also its `received_at`): no experiments, context, metrics,
/// payload or flags.
pub fn bare(n: u128, timestamp: DateTime<Utc>) -> Event {
    Event {
        event_id: Uuid::from_u128(n),
        event_type: "plan_generated".into(),
        unit_type: "user".into(),
        unit_id: format!("u-{n}"),
        experiments: vec![],
        context: Default::default(),
        metrics: Default::default(),
        payload: Default::default(),
        timestamp,
        received_at: timestamp,
        sent_at: None,
        schema_version: None,
        schema_violation: None,
        flags: vec![],
    }
}

/// Event `n` at the RFC 3339 `timestamp`.
pub fn event(n: u128, timestamp: &str) -> Event {
    bare(n, utc(timestamp))
}

/// Events `range` at the RFC 3339 `timestamp`.
pub fn events(range: std::ops::Range<u128>, timestamp: &str) -> Vec<Event> {
    range.map(|n| event(n, timestamp)).collect()
}
