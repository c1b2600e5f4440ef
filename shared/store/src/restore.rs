//! Putting archived events back into exp.events (a restore after data loss), idempotently:
//! an event already present is left as it is, and nothing restored is handed to the archive
//! again (no exp.pending_handoffs row), since the archive is where it came from.

use std::sync::Arc;

use eis_contract::Event;

use crate::db::Db;
use crate::error::StoreError;
use crate::events::{claim_input, encode, Columns};

/// Like the ingest's insert (one statement, arrays unnested), without the hand-off row. An
/// id is restored when it is free in exp.event_ids (claimed now) or is claimed there by this
/// very event (same timestamp and content: its row was lost, its identity was not); the row
/// itself is inserted unless present. An id claimed by other content is left alone.
const RESTORE_BATCH: &str = concat!(
    claim_input!(),
    r#", ours AS (
    SELECT input.* FROM input
    WHERE input.id IN (SELECT event_id FROM claimed)
       OR EXISTS (SELECT 1 FROM exp.event_ids i
                  WHERE i.event_id = input.id AND i."timestamp" = input.ts
                    AND (i.digest = input.dg OR i.digest = ''::bytea))
), stored AS (
    INSERT INTO exp.events (event_id, event_type, unit_type, unit_id, experiments, context,
                            metrics, payload, "timestamp", received_at, flags, sent_at,
                            adjusted_timestamp, schema_version, schema_violation)
    SELECT id, et, ut, ui, ex::jsonb, cx::jsonb, mx::jsonb, pl::jsonb, ts, ra,
           string_to_array(fl, ','), sa, at, sv, sx
    FROM ours
    ON CONFLICT (event_id, "timestamp") DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM stored), (SELECT count(*) FROM ours)
"#
);

/// What a restore batch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Restored {
    /// Rows written now.
    pub restored: u64,
    /// Already in exp.events.
    pub present: u64,
    /// Their event_id is held by other content (never overwritten).
    pub conflicts: u64,
}

impl Restored {
    pub fn add(&mut self, other: Restored) {
        self.restored += other.restored;
        self.present += other.present;
        self.conflicts += other.conflicts;
    }
}

pub struct RestoreStore {
    db: Arc<Db>,
}

impl RestoreStore {
    pub fn new(db: Arc<Db>) -> Self {
        Self { db }
    }

    /// Restores `events` (distinct ids) in one statement.
    pub async fn restore(&self, events: &[Event]) -> Result<Restored, StoreError> {
        if events.is_empty() {
            return Ok(Restored::default());
        }
        let encoded = encode(events)?;
        let columns = Columns::new(events.iter().zip(&encoded));
        let client = self.db.client().await?;
        let row = self
            .db
            .within_timeout(client.query_one(RESTORE_BATCH, &columns.params()))
            .await?;
        let (stored, ours): (i64, i64) = (row.get(0), row.get(1));
        let count = |n: i64| u64::try_from(n).unwrap_or_default();
        Ok(Restored {
            restored: count(stored),
            present: count(ours - stored),
            conflicts: events.len() as u64 - count(ours),
        })
    }
}
