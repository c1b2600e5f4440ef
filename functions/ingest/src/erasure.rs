//! Erased units at ingest (docs/privacy.md, issue 27): the function's copy of the tombstones
//! (exp.erasure_tombstones with the key that names units), an `AppState` field reloaded like
//! the registry's copy (cache.rs); intake.rs checks each accepted event against it with
//! `Tombstones::check`.
//!
//! An event of an erased unit timestamped before its erasure (a client's retry of an erased
//! event) is refused with `unit_erased`; any event of a unit erased with suppression with
//! `unit_suppressed`. Neither is kept in the quarantine: it would hold the erased unit's data
//! again. Without a copy (the first load failed), intake.rs stores no event at all.

use std::sync::Arc;

use eis_contract::Tombstones;
use eis_store::{Db, ErasureStore, StoreError};

use crate::cache::Load;

impl Load for Tombstones {
    const WHAT: &'static str = "the erasure tombstones";

    async fn load(db: &Arc<Db>) -> Result<Self, StoreError> {
        ErasureStore::new(Arc::clone(db)).tombstones().await
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use chrono::{Duration, Utc};
    use eis_contract::{unit_hash, Code, Event, Tombstone};

    use super::*;

    fn event(unit_id: &str, minutes_ago: i64) -> Event {
        let now = Utc::now();
        let text = serde_json::json!({
            "event_type": "custom", "unit_type": "user", "unit_id": unit_id,
            "timestamp": (now - Duration::minutes(minutes_ago)).to_rfc3339(),
        });
        let bytes = serde_json::to_vec(&text).expect("json");
        eis_contract::validate_event(&bytes, now, &Default::default()).expect("valid")
    }

    #[test]
    fn only_the_erased_units_events_are_refused() {
        let key = vec![3u8; 32];
        let erased = |suppress| Tombstone {
            erased_at: Utc::now() - Duration::minutes(30),
            suppress,
        };
        let units = HashMap::from([
            (unit_hash(&key, "user", "u-1"), erased(false)),
            (unit_hash(&key, "user", "u-2"), erased(true)),
        ]);
        let tombstones = Tombstones::new(key, units);
        // (unit, minutes before now, the refusal's code and field)
        let cases = [
            ("u-1", 60, Some((Code::UnitErased, "/timestamp"))),
            ("u-1", 1, None),
            ("u-2", 60, Some((Code::UnitSuppressed, "/unit_id"))),
            ("u-2", 1, Some((Code::UnitSuppressed, "/unit_id"))),
            ("u-3", 60, None),
        ];
        for (unit, ago, want) in cases {
            let got = tombstones.check(&event(unit, ago)).err();
            let got = got.as_ref().map(|r| (r.code, r.field.as_str()));
            assert_eq!(got, want, "{unit}, {ago} minutes ago");
        }
        assert!(Tombstones::default().check(&event("u-1", 60)).is_ok());
    }
}
