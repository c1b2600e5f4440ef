//! The hand-off to the archive, tracked per request instead of per event (migration V5):
//! each insert that stores events records their keys in one row of exp.pending_handoffs, in
//! the same statement. The ingest deletes the row once SQS has confirmed the events; a row
//! still there after the sweep's grace period is taken by an archiver run, which writes its
//! events to the archive and settles it. exp.events itself is never updated.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use eis_contract::{Event, Flag, JsonObject};
use uuid::Uuid;

use crate::db::Db;
use crate::error::StoreError;
use crate::events::EventKey;

/// The id of a row of exp.pending_handoffs.
pub type PendingId = i64;

const FORGET: &str = "DELETE FROM exp.pending_handoffs WHERE id = ANY($1)";

/// Removes the `done` keys from the given rows and deletes the rows left empty; the rows
/// kept are released from any sweep's claim, so that the next sweep retries them.
const SETTLE: &str = r#"
WITH done AS (
    SELECT * FROM unnest($2::uuid[], $3::timestamptz[]) AS d(id, ts)
), rest AS (
    SELECT p.id,
           array_agg(k.id ORDER BY k.n) FILTER (WHERE done.id IS NULL) AS ids,
           array_agg(k.ts ORDER BY k.n) FILTER (WHERE done.id IS NULL) AS tss
    FROM exp.pending_handoffs p
    CROSS JOIN LATERAL unnest(p.event_ids, p.timestamps) WITH ORDINALITY AS k(id, ts, n)
    LEFT JOIN done ON done.id = k.id AND done.ts = k.ts
    WHERE p.id = ANY($1)
    GROUP BY p.id
), kept AS (
    UPDATE exp.pending_handoffs p
    SET event_ids = rest.ids, timestamps = rest.tss, claimed_until = NULL
    FROM rest
    WHERE p.id = rest.id AND rest.ids IS NOT NULL
)
DELETE FROM exp.pending_handoffs p USING rest WHERE p.id = rest.id AND rest.ids IS NULL
"#;

/// Claims the oldest rows past the grace period that no live sweep holds (SKIP LOCKED and
/// the claim's expiry keep concurrent runs on disjoint rows): at most `$5` rows, and whole
/// rows while fewer than `$2` events are taken. Returns their events; a key whose event is
/// gone comes back with NULL columns.
const CLAIM: &str = r#"
WITH candidates AS (
    SELECT id, received_at, cardinality(event_ids) AS n
    FROM exp.pending_handoffs
    WHERE received_at < $1 AND (claimed_until IS NULL OR claimed_until < $4)
    ORDER BY received_at, id
    LIMIT $5
    FOR UPDATE SKIP LOCKED
), taken AS (
    SELECT id FROM (
        SELECT id, sum(n) OVER (ORDER BY received_at, id) - n AS before FROM candidates
    ) c
    WHERE before < $2
), claimed AS (
    UPDATE exp.pending_handoffs p SET claimed_until = $4 + make_interval(secs => $3)
    FROM taken WHERE p.id = taken.id
    RETURNING p.id, p.event_ids, p.timestamps
)
SELECT c.id, k.id, k.ts, e.event_id IS NOT NULL,
       e.event_id, e.event_type, e.unit_type, e.unit_id, e.experiments::text, e.context::text,
       e.metrics::text, e.payload::text, e."timestamp", e.received_at, e.flags
FROM claimed c
CROSS JOIN LATERAL unnest(c.event_ids, c.timestamps) AS k(id, ts)
LEFT JOIN exp.events e ON e.event_id = k.id AND e."timestamp" = k.ts
ORDER BY e.received_at
"#;

/// Makes these stored events pending again (one row), so that the next sweep archives them.
const REQUEUE: &str = r#"
INSERT INTO exp.pending_handoffs (received_at, event_ids, timestamps)
SELECT min(received_at), array_agg(event_id), array_agg("timestamp")
FROM exp.events
WHERE event_id = ANY($1) AND "timestamp" >= $2 AND "timestamp" < $3
HAVING count(*) > 0
RETURNING cardinality(event_ids)
"#;

/// Rows locked per claim statement: few, so that concurrent sweeps share the backlog instead
/// of the first one locking all of it (the lock lasts one statement). A request's row holds
/// up to a batch of events; this many events per row are assumed when choosing the count.
const EVENTS_PER_ROW: i64 = 100;
const MAX_ROWS_PER_CLAIM: i64 = 100;

/// What a sweep took: its rows (to settle at the end), their events, and the keys whose
/// event no longer exists (settled as done: there is nothing to archive).
#[derive(Debug, Default)]
pub struct Swept {
    pub rows: Vec<PendingId>,
    pub events: Vec<Event>,
    pub gone: Vec<EventKey>,
}

#[derive(Clone)]
pub struct PendingHandoffs {
    db: Arc<Db>,
}

impl PendingHandoffs {
    pub fn new(db: Arc<Db>) -> Self {
        Self { db }
    }

    /// SQS confirmed every event of these rows.
    pub async fn forget(&self, rows: &[PendingId]) -> Result<u64, StoreError> {
        if rows.is_empty() {
            return Ok(0);
        }
        let client = self.db.client().await?;
        self.db
            .within_timeout(client.execute(FORGET, &[&rows]))
            .await
    }

    /// These events of these rows are in the archive (or on the queue): the rows keep only
    /// the others, are deleted when none is left, and are released for the next sweep.
    pub async fn settle(&self, rows: &[PendingId], done: &[EventKey]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let (ids, timestamps): (Vec<Uuid>, Vec<DateTime<Utc>>) = done.iter().copied().unzip();
        let client = self.db.client().await?;
        self.db
            .within_timeout(client.execute(SETTLE, &[&rows, &ids, &timestamps]))
            .await?;
        Ok(())
    }

    /// Claims pending rows received more than `grace` before `now`, whole rows while fewer
    /// than `limit` events are taken, until `now + lease` (then another run may take what
    /// this one did not settle). A few rows per statement, until the limit or none is left.
    pub async fn sweep(
        &self,
        now: DateTime<Utc>,
        grace: Duration,
        limit: i64,
        lease: Duration,
    ) -> Result<Swept, StoreError> {
        let grace = chrono::Duration::from_std(grace)
            .map_err(|e| StoreError::config("sweep grace out of range").caused_by(e))?;
        let client = self.db.client().await?;
        let mut swept = Swept::default();
        let mut remaining = limit;
        while remaining > 0 {
            let rows_per_claim = (remaining / EVENTS_PER_ROW).clamp(1, MAX_ROWS_PER_CLAIM);
            let rows = self
                .db
                .within_timeout(client.query(
                    CLAIM,
                    &[
                        &(now - grace),
                        &remaining,
                        &lease.as_secs_f64(),
                        &now,
                        &rows_per_claim,
                    ],
                ))
                .await?;
            if rows.is_empty() {
                break;
            }
            remaining -= i64::try_from(rows.len()).unwrap_or(i64::MAX);
            for row in &rows {
                swept.rows.push(row.get(0));
                if row.get::<_, bool>(3) {
                    swept.events.push(event_from_row(row, 4)?);
                } else {
                    swept.gone.push((row.get(1), row.get(2)));
                }
            }
        }
        swept.rows.sort_unstable();
        swept.rows.dedup();
        Ok(swept)
    }

    /// Makes these events of `[from, to)` pending again, so that the next run's sweep writes
    /// them to the archive. Returns how many were found.
    pub async fn requeue(
        &self,
        ids: &[Uuid],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let client = self.db.client().await?;
        let rows = self
            .db
            .within_timeout(client.query(REQUEUE, &[&ids, &from, &to]))
            .await?;
        Ok(rows
            .first()
            .map_or(0, |r| u64::try_from(r.get::<_, i32>(0)).unwrap_or(0)))
    }
}

/// The event in the columns of `row` from `at` on, as CLAIM selects them.
fn event_from_row(row: &tokio_postgres::Row, at: usize) -> Result<Event, StoreError> {
    fn json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StoreError> {
        serde_json::from_str(text)
            .map_err(|e| StoreError::other("stored JSON unreadable").caused_by(e))
    }
    let object = |i: usize, what: &str| {
        JsonObject::parse(row.get(at + i))
            .map_err(|e| StoreError::other(format!("stored {what} unreadable")).caused_by(e))
    };
    let flags: Vec<String> = row.get(at + 10);
    Ok(Event {
        event_id: row.get(at),
        event_type: row.get(at + 1),
        unit_type: row.get(at + 2),
        unit_id: row.get(at + 3),
        experiments: json(row.get(at + 4))?,
        context: object(5, "context")?,
        metrics: json(row.get(at + 6))?,
        payload: object(7, "payload")?,
        timestamp: row.get(at + 8),
        received_at: row.get(at + 9),
        flags: flags
            .iter()
            .map(|f| {
                Flag::ALL
                    .iter()
                    .copied()
                    .find(|k| k.as_str() == f)
                    .ok_or_else(|| StoreError::other(format!("unknown stored flag {f:?}")))
            })
            .collect::<Result<_, _>>()?,
    })
}
