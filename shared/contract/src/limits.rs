//! The numeric bounds of the contract, in one place so the API, the docs and
//! the tests agree. `Limits::default()` is the published contract.

use chrono::Duration;

/// Bounds applied by [`crate::validate_event`] and [`crate::parse_batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted JSON text of one event, in bytes -> `event_too_large`.
    pub max_event_bytes: usize,
    /// Most events in one batch -> `batch_too_large`.
    pub max_batch_events: usize,
    /// Longest `event_type`, `unit_type` and metric key, in bytes.
    pub max_name_bytes: usize,
    /// Longest `unit_id`, in bytes.
    pub max_unit_id_bytes: usize,
    /// Most entries in `experiments` -> `invalid_experiments`.
    pub max_experiments: usize,
    /// Most keys in `metrics` -> `invalid_metrics`.
    pub max_metrics: usize,
    /// A timestamp STRICTLY further ahead of `now` than this -> `future_timestamp`.
    pub max_future: Duration,
    /// A timestamp STRICTLY older than `now` minus this -> flag `old_timestamp`.
    pub old_after: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_event_bytes: 65_536,
            max_batch_events: 1_000,
            max_name_bytes: 64,
            max_unit_id_bytes: 256,
            max_experiments: 32,
            max_metrics: 64,
            max_future: Duration::minutes(5),
            old_after: Duration::days(7),
        }
    }
}
