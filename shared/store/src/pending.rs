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
use crate::keys::{EventKey, PendingId};

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
/// the claim's expiry keep concurrent runs on disjoint rows): at most `$5` rows, whole rows,
/// as many as fit in `$2` keys (it stops at the first row that does not fit; SPLIT cuts a row
/// bigger than the sweep's limit). Returns their events; a key whose event is gone comes back
/// with NULL columns.
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
        SELECT id, sum(n) OVER (ORDER BY received_at, id) AS upto FROM candidates
    ) c
    WHERE upto <= $2
), claimed AS (
    UPDATE exp.pending_handoffs p SET claimed_until = $4 + make_interval(secs => $3)
    FROM taken WHERE p.id = taken.id
    RETURNING p.id, p.event_ids, p.timestamps
)
SELECT c.id, k.id, k.ts, e.event_id IS NOT NULL,
       e.event_id, e.event_type, e.unit_type, e.unit_id, e.experiments::text, e.context::text,
       e.metrics::text, e.payload::text, e."timestamp", e.received_at, e.flags, e.sent_at,
       e.schema_version, e.schema_violation
FROM claimed c
CROSS JOIN LATERAL unnest(c.event_ids, c.timestamps) AS k(id, ts)
LEFT JOIN exp.events e ON e.event_id = k.id AND e."timestamp" = k.ts
ORDER BY e.received_at
"#;

/// Cuts the oldest claimable row, when it holds more than `$3` keys, into rows of at most
/// `$3` keys (its received_at, its keys in order, ids in that order): one statement, so that no
/// key is lost or doubled, and the row is locked (SKIP LOCKED) so that no other sweep claims
/// or cuts it meanwhile. Returns one row per piece.
const SPLIT: &str = r#"
WITH head AS (
    SELECT id FROM exp.pending_handoffs
    WHERE received_at < $1 AND (claimed_until IS NULL OR claimed_until < $2)
    ORDER BY received_at, id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
), big AS (
    DELETE FROM exp.pending_handoffs p USING head
    WHERE p.id = head.id AND cardinality(p.event_ids) > $3
    RETURNING p.received_at, p.event_ids, p.timestamps
)
INSERT INTO exp.pending_handoffs (received_at, event_ids, timestamps)
SELECT big.received_at, big.event_ids[s : s + $3 - 1], big.timestamps[s : s + $3 - 1]
FROM big CROSS JOIN LATERAL generate_series(1, cardinality(big.event_ids), $3) AS s
ORDER BY s
RETURNING id
"#;

/// Makes these stored events pending again, in rows of at most `$4` keys (oldest received
/// first), so that the next sweeps archive them.
const REQUEUE: &str = r#"
WITH found AS (
    SELECT event_id, "timestamp", received_at,
           (row_number() OVER (ORDER BY received_at, event_id) - 1) / $4 AS piece
    FROM exp.events
    WHERE event_id = ANY($1) AND "timestamp" >= $2 AND "timestamp" < $3
)
INSERT INTO exp.pending_handoffs (received_at, event_ids, timestamps)
SELECT min(received_at), array_agg(event_id ORDER BY received_at, event_id),
       array_agg("timestamp" ORDER BY received_at, event_id)
FROM found
GROUP BY piece
ORDER BY piece
RETURNING cardinality(event_ids)
"#;

/// Most keys in one row the audit's requeue writes: the size of a large ingest request's row,
/// so that a requeued hour never makes a row bigger than what the sweep already meets.
pub const REQUEUE_ROW_KEYS: i64 = 1000;

/// A sweep limit above this is taken as this (keeps SPLIT's slice bounds within int4).
const MAX_SWEEP_LIMIT: i64 = 1 << 30;

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

    /// Claims pending rows received more than `grace` before `now`, at most `limit` keys in
    /// all, until `now + lease` (then another run may take what this one did not settle). A
    /// few whole rows per statement, until the limit, a row that does not fit, or none is
    /// left. A first row bigger than `limit` is cut into rows of `limit` keys, and the first
    /// of them taken: a row of any size drains, `limit` keys a sweep.
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
        let limit = limit.min(MAX_SWEEP_LIMIT);
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
                // Nothing fit: when nothing is taken yet, the oldest row may be bigger than
                // the limit. A piece of `limit` keys fits only an untaken budget.
                if remaining == limit && self.split(&client, now - grace, now, limit).await? {
                    continue;
                }
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

    /// Cuts the oldest claimable row into rows of at most `limit` keys if it is bigger;
    /// whether it did.
    async fn split(
        &self,
        client: &tokio_postgres::Client,
        received_before: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<bool, StoreError> {
        let piece = i32::try_from(limit)
            .map_err(|e| StoreError::config("sweep limit out of range").caused_by(e))?;
        let pieces = self
            .db
            .within_timeout(client.query(SPLIT, &[&received_before, &now, &piece]))
            .await?;
        Ok(!pieces.is_empty())
    }

    /// Makes these events of `[from, to)` pending again, in rows of at most
    /// [`REQUEUE_ROW_KEYS`] keys, so that the next runs' sweeps write them to the archive.
    /// Returns how many were found.
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
            .within_timeout(client.query(REQUEUE, &[&ids, &from, &to, &REQUEUE_ROW_KEYS]))
            .await?;
        Ok(rows
            .iter()
            .map(|r| u64::try_from(r.get::<_, i32>(0)).unwrap_or(0))
            .sum())
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
        sent_at: row.get(at + 11),
        schema_version: row.get(at + 12),
        schema_violation: row.get(at + 13),
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
