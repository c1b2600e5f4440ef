//! Erased units (docs/privacy.md): the keyed hash that names a unit outside the request that
//! erases it, and the tombstones that keep its erased events from coming back. Pure: the
//! key and the tombstones are loaded by the caller (eis_store::erasure).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::code::Code;
use crate::event::Event;
use crate::rejection::Rejection;

/// HMAC-SHA256 of a unit: 32 bytes.
pub type UnitHash = [u8; 32];

/// The keyed hash of (`unit_type`, `unit_id`): HMAC-SHA256 of `unit_type`, a zero byte (which
/// no valid `unit_type` holds) and `unit_id`.
pub fn unit_hash(key: &[u8], unit_type: &str, unit_id: &str) -> UnitHash {
    // HMAC takes a key of any length: new_from_slice cannot fail for it.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap_or_else(|_| {
        unreachable!("HMAC accepts keys of every length");
    });
    mac.update(unit_type.as_bytes());
    mac.update(&[0]);
    mac.update(unit_id.as_bytes());
    mac.finalize().into_bytes().into()
}

/// One erased unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tombstone {
    /// When its latest erasure was requested.
    pub erased_at: DateTime<Utc>,
    /// Later events are refused too.
    pub suppress: bool,
}

impl Tombstone {
    /// Whether an event of the unit with these times is erased (see [`Tombstones::erases`]).
    pub fn covers(&self, timestamp: DateTime<Utc>, received_at: DateTime<Utc>) -> bool {
        self.suppress || received_at < self.erased_at || timestamp < self.erased_at
    }
}

/// Every erased unit, by keyed hash, with the key.
#[derive(Debug, Clone, Default)]
pub struct Tombstones {
    key: Vec<u8>,
    units: HashMap<UnitHash, Tombstone>,
}

impl Tombstones {
    pub fn new(key: Vec<u8>, units: HashMap<UnitHash, Tombstone>) -> Self {
        Self { key, units }
    }

    /// No unit was ever erased: nothing to hash.
    pub fn is_empty(&self) -> bool {
        self.units.is_empty()
    }

    pub fn len(&self) -> usize {
        self.units.len()
    }

    /// The tombstone of a unit, if it was erased.
    pub fn of(&self, unit_type: &str, unit_id: &str) -> Option<Tombstone> {
        if self.units.is_empty() {
            return None;
        }
        self.units
            .get(&unit_hash(&self.key, unit_type, unit_id))
            .copied()
    }

    /// Whether a stored event (its `received_at` is when EIS first took it) is erased: its
    /// unit is suppressed, or it was received or timestamped before the erasure. Replay,
    /// restore, the drain and compaction drop such events.
    pub fn erases(&self, event: &Event) -> bool {
        self.erased(
            &event.unit_type,
            &event.unit_id,
            event.timestamp,
            event.received_at,
        )
    }

    /// [`Tombstones::erases`] for an event known by its parts (a row of a file, or a
    /// quarantined text with the time it was first received).
    pub fn erased(
        &self,
        unit_type: &str,
        unit_id: &str,
        timestamp: DateTime<Utc>,
        received_at: DateTime<Utc>,
    ) -> bool {
        self.of(unit_type, unit_id)
            .is_some_and(|t| t.covers(timestamp, received_at))
    }

    /// The ingest's check of a new event: refused when its unit is suppressed
    /// (`unit_suppressed`), or when it is timestamped before its unit's erasure
    /// (`unit_erased`: a client's retry of an erased event). Neither is quarantined.
    pub fn check(&self, event: &Event) -> Result<(), Rejection> {
        let Some(t) = self.of(&event.unit_type, &event.unit_id) else {
            return Ok(());
        };
        if t.suppress {
            return Err(Rejection::new(
                Code::UnitSuppressed,
                "this unit's data was erased and its events are no longer accepted",
            )
            .at("/unit_id"));
        }
        if event.timestamp < t.erased_at {
            return Err(Rejection::new(
                Code::UnitErased,
                "this unit's data was erased: an event timestamped before the erasure is not stored again",
            )
            .at("/timestamp"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::{validate_event, Limits};

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 4, 10, minute, 0)
            .single()
            .expect("time")
    }

    fn event(unit_id: &str, timestamp: u32, received: u32) -> Event {
        let raw = format!(
            r#"{{"event_type":"custom","unit_type":"user","unit_id":"{unit_id}",
                "timestamp":"{}"}}"#,
            at(timestamp).to_rfc3339()
        );
        let mut event =
            validate_event(raw.as_bytes(), at(59), &Limits::default()).expect("valid event");
        event.received_at = at(received);
        event
    }

    fn tombstones(suppress: bool) -> Tombstones {
        let key = b"k".repeat(32);
        let units = HashMap::from([(
            unit_hash(&key, "user", "u-1"),
            Tombstone {
                erased_at: at(30),
                suppress,
            },
        )]);
        Tombstones::new(key, units)
    }

    #[test]
    fn the_hash_is_keyed_and_separates_type_from_id() {
        let a = unit_hash(b"key-a", "user", "u-1");
        assert_ne!(a, unit_hash(b"key-b", "user", "u-1"));
        assert_ne!(a, unit_hash(b"key-a", "use", "ru-1"));
        assert_eq!(a, unit_hash(b"key-a", "user", "u-1"));
    }

    #[test]
    fn stored_events_are_erased_by_the_rule() {
        // (unit, timestamp minute, received minute, suppress, erased)
        let cases = [
            ("u-1", 10, 20, false, true),
            ("u-1", 40, 20, false, true),
            ("u-1", 20, 40, false, true),
            ("u-1", 40, 45, false, false),
            ("u-1", 40, 45, true, true),
            ("u-2", 10, 20, true, false),
        ];
        for (unit, ts, received, suppress, erased) in cases {
            let e = event(unit, ts, received);
            assert_eq!(
                tombstones(suppress).erases(&e),
                erased,
                "{unit} {ts} {received} {suppress}"
            );
        }
        assert!(!Tombstones::default().erases(&event("u-1", 10, 20)));
    }

    #[test]
    fn the_ingest_refuses_retries_and_suppressed_units() {
        let code = |t: &Tombstones, e: &Event| t.check(e).err().map(|r| r.code);
        let (open, suppressed) = (tombstones(false), tombstones(true));
        assert_eq!(code(&open, &event("u-1", 10, 45)), Some(Code::UnitErased));
        assert_eq!(code(&open, &event("u-1", 40, 45)), None);
        assert_eq!(
            code(&suppressed, &event("u-1", 40, 45)),
            Some(Code::UnitSuppressed)
        );
        assert_eq!(code(&suppressed, &event("u-2", 10, 45)), None);
    }
}
