//! Writing events to exp.events (their hand-off to the archive is crate::pending).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use eis_contract::{in_batch, ContentDigest, Encoded, Event, InBatch};
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::db::Db;
use crate::error::StoreError;
use crate::keys::PendingId;

/// What became of each event of a batch, by input position.
#[derive(Debug, Clone, PartialEq)]
pub enum InsertOutcome {
    /// Stored now.
    Inserted,
    /// Already stored with the same content (a client retry): nothing new written.
    Duplicate,
    /// Its event_id is already stored with other content: the stored event is kept.
    Conflict,
    /// The database refused this event; the others of the batch are unaffected.
    Refused(String),
}

/// The input arrays as rows, and the claim of each id in exp.event_ids (`claimed`: the ids
/// free until now): the start of both the ingest's insert and the restore's.
macro_rules! claim_input {
    () => {
        r#"
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
                         $6::text[], $7::text[], $8::text[], $9::timestamptz[],
                         $10::timestamptz[], $11::text[], $12::bytea[], $13::timestamptz[],
                         $14::timestamptz[], $15::text[], $16::text[])
         AS t(id, et, ut, ui, ex, cx, mx, pl, ts, ra, fl, dg, sa, at, sv, sx)
), claimed AS (
    INSERT INTO exp.event_ids (event_id, "timestamp", digest)
    SELECT id, ts, dg FROM input
    ON CONFLICT (event_id) DO NOTHING
    RETURNING event_id
)"#
    };
}
pub(crate) use claim_input;

/// One statement for a whole batch: each column travels as one array and UNNEST turns them
/// into rows, so N events cost one round trip. Each event first claims its id in
/// exp.event_ids; only the claimed ones are inserted, so an id is stored once however many
/// requests race on it (a racing claim waits for the first writer's commit, then yields).
/// Flags travel comma-joined (they are fixed codes). The stored events' keys become one row
/// of exp.pending_handoffs (see crate::pending), whose id comes back with each stored event.
const INSERT_BATCH: &str = concat!(
    claim_input!(),
    r#", stored AS (
    INSERT INTO exp.events (event_id, event_type, unit_type, unit_id, experiments, context,
                            metrics, payload, "timestamp", received_at, flags, sent_at,
                            adjusted_timestamp, schema_version, schema_violation)
    SELECT id, et, ut, ui, ex::jsonb, cx::jsonb, mx::jsonb, pl::jsonb, ts, ra,
           string_to_array(fl, ','), sa, at, sv, sx
    FROM input JOIN claimed ON claimed.event_id = input.id
    RETURNING event_id, "timestamp", received_at
), pending AS (
    INSERT INTO exp.pending_handoffs (received_at, event_ids, timestamps)
    SELECT min(received_at), array_agg(event_id), array_agg("timestamp") FROM stored
    HAVING count(*) > 0
    RETURNING id
)
SELECT stored.event_id, pending.id FROM stored CROSS JOIN pending
"#
);

/// The stored digests of ids that were already claimed (run after the claim, in a statement
/// of its own: it must see what the racing writer committed).
const STORED_DIGESTS: &str = r#"
SELECT event_id, digest FROM exp.event_ids WHERE event_id = ANY($1)
"#;

pub struct PgEventStore {
    db: Arc<Db>,
}

/// The batch as column arrays, in the order of INSERT_BATCH's parameters.
pub(crate) struct Columns<'e> {
    ids: Vec<Uuid>,
    event_types: Vec<String>,
    unit_types: Vec<String>,
    unit_ids: Vec<String>,
    experiments: Vec<&'e str>,
    contexts: Vec<&'e str>,
    metrics: Vec<&'e str>,
    payloads: Vec<&'e str>,
    timestamps: Vec<DateTime<Utc>>,
    received: Vec<DateTime<Utc>>,
    flags: Vec<String>,
    digests: Vec<&'e [u8]>,
    sent: Vec<Option<DateTime<Utc>>>,
    adjusted: Vec<Option<DateTime<Utc>>>,
    schema_versions: Vec<Option<&'e str>>,
    schema_violations: Vec<Option<&'e str>>,
}

impl<'e> Columns<'e> {
    pub(crate) fn new(events: impl ExactSizeIterator<Item = (&'e Event, &'e Encoded)>) -> Self {
        let n = events.len();
        let mut c = Columns {
            ids: Vec::with_capacity(n),
            event_types: Vec::with_capacity(n),
            unit_types: Vec::with_capacity(n),
            unit_ids: Vec::with_capacity(n),
            experiments: Vec::with_capacity(n),
            contexts: Vec::with_capacity(n),
            metrics: Vec::with_capacity(n),
            payloads: Vec::with_capacity(n),
            timestamps: Vec::with_capacity(n),
            received: Vec::with_capacity(n),
            flags: Vec::with_capacity(n),
            digests: Vec::with_capacity(n),
            sent: Vec::with_capacity(n),
            adjusted: Vec::with_capacity(n),
            schema_versions: Vec::with_capacity(n),
            schema_violations: Vec::with_capacity(n),
        };
        for (e, encoded) in events {
            c.ids.push(e.event_id);
            c.event_types.push(e.event_type.clone());
            c.unit_types.push(e.unit_type.clone());
            c.unit_ids.push(e.unit_id.clone());
            c.experiments.push(encoded.experiments_json());
            c.contexts.push(e.context.as_str());
            c.metrics.push(encoded.metrics_json());
            c.payloads.push(e.payload.as_str());
            c.timestamps.push(e.timestamp);
            c.received.push(e.received_at);
            let flags: Vec<&str> = e.flags.iter().map(|f| f.as_str()).collect();
            c.flags.push(flags.join(","));
            c.digests.push(&encoded.digest[..]);
            c.sent.push(e.sent_at);
            c.adjusted.push(e.adjusted_timestamp());
            c.schema_versions.push(e.schema_version.as_deref());
            c.schema_violations.push(e.schema_violation.as_deref());
        }
        c
    }

    pub(crate) fn params(&self) -> [&(dyn ToSql + Sync); 16] {
        [
            &self.ids,
            &self.event_types,
            &self.unit_types,
            &self.unit_ids,
            &self.experiments,
            &self.contexts,
            &self.metrics,
            &self.payloads,
            &self.timestamps,
            &self.received,
            &self.flags,
            &self.digests,
            &self.sent,
            &self.adjusted,
            &self.schema_versions,
            &self.schema_violations,
        ]
    }
}

/// What [`PgEventStore::insert`] did: per input event, in order, and the pending hand-off
/// rows that hold the keys of the events stored now (see crate::pending).
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub outcomes: Vec<InsertOutcome>,
    pub pending: Vec<PendingId>,
}

/// Each event written once ([`Encoded::new`]), as [`PgEventStore::insert_encoded`] takes them.
pub fn encode(events: &[Event]) -> Result<Vec<Encoded>, StoreError> {
    events
        .iter()
        .map(Encoded::new)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| StoreError::other("cannot write JSON").caused_by(e))
}

/// What the insert statement did with one event: stored it, found its id already claimed
/// (retry or conflict: the stored digest tells), or had the database refuse it.
enum Written {
    Inserted,
    Claimed,
    Refused(String),
}

impl PgEventStore {
    pub fn new(db: Arc<Db>) -> Self {
        Self { db }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Stores a batch in one round trip and tells, per input, what became of it. An event_id
    /// already stored (by an earlier request, or earlier in this batch) is a `Duplicate` when
    /// its content is the same and a `Conflict` otherwise; either way the stored event is kept
    /// and nothing new is written. When the database refuses the data of some event, the
    /// batch is written again one event at a time inside one transaction, with a savepoint
    /// each, so that the bad events get their own answer and the good ones are still stored.
    pub async fn insert(&self, events: &[Event]) -> Result<Stored, StoreError> {
        self.insert_encoded(events, &encode(events)?).await
    }

    /// [`Self::insert`] of events already written once ([`Encoded::new`], whose record the
    /// caller also hands to SQS): `encoded[i]` is `events[i]`'s.
    pub async fn insert_encoded(
        &self,
        events: &[Event],
        encoded: &[Encoded],
    ) -> Result<Stored, StoreError> {
        if encoded.len() != events.len() {
            return Err(StoreError::other("one encoding per event is required"));
        }
        let keyed: Vec<(Uuid, ContentDigest)> =
            encoded.iter().map(|e| (e.event_id, e.digest)).collect();
        let places = in_batch(&keyed);
        // The first event of each id, in id order: batches that race on the same ids claim
        // them in one order, so they wait on each other instead of deadlocking.
        let mut firsts: Vec<usize> = (0..events.len())
            .filter(|&i| places[i] == InBatch::First)
            .collect();
        firsts.sort_unstable_by_key(|&i| keyed[i].0);

        let mut outcomes: Vec<Option<InsertOutcome>> = vec![None; events.len()];
        // The digests of the ids that were stored before this batch.
        let mut stored = HashMap::new();
        let mut pending = Vec::new();
        // A stored digest that is empty was stored before digests were kept: a retry.
        let is_stored_copy = |stored: &HashMap<Uuid, Vec<u8>>, i: usize| {
            stored
                .get(&keyed[i].0)
                .is_some_and(|d: &Vec<u8>| d.is_empty() || d[..] == keyed[i].1[..])
        };
        if !firsts.is_empty() {
            let written;
            (written, pending) = self.write(events, encoded, &firsts).await?;
            let claimed: Vec<Uuid> = firsts
                .iter()
                .zip(&written)
                .filter(|(_, w)| matches!(w, Written::Claimed))
                .map(|(&i, _)| keyed[i].0)
                .collect();
            stored = self.stored_digests(&claimed).await?;
            for (&i, w) in firsts.iter().zip(written) {
                outcomes[i] = Some(match w {
                    Written::Inserted => InsertOutcome::Inserted,
                    Written::Refused(reason) => InsertOutcome::Refused(reason),
                    Written::Claimed if is_stored_copy(&stored, i) => InsertOutcome::Duplicate,
                    Written::Claimed if stored.contains_key(&keyed[i].0) => {
                        InsertOutcome::Conflict
                    }
                    // Claimed, then dropped by retention before we looked: the event is
                    // older than what the database keeps.
                    Written::Claimed => InsertOutcome::Refused(
                        "an event with this event_id expired from storage while this one was written".into(),
                    ),
                });
            }
        }
        let outcomes = places
            .iter()
            .enumerate()
            .map(|(i, place)| match place {
                InBatch::First => outcomes[i].clone(),
                InBatch::CopyOf(j) => outcomes[*j].clone().map(|o| match o {
                    InsertOutcome::Inserted => InsertOutcome::Duplicate,
                    other => other,
                }),
                // Other content than the batch's first of this id. When that id was stored
                // before the batch, this one is judged against what is stored (it may be the
                // retry); otherwise the batch's first wins.
                InBatch::ConflictsWith(j) => Some(match outcomes[*j] {
                    Some(InsertOutcome::Duplicate | InsertOutcome::Conflict)
                        if is_stored_copy(&stored, i) =>
                    {
                        InsertOutcome::Duplicate
                    }
                    _ => InsertOutcome::Conflict,
                }),
            })
            .map(|o| o.unwrap_or_else(|| InsertOutcome::Refused("not written".into())))
            .collect();
        Ok(Stored { outcomes, pending })
    }

    /// Runs the insert for `order` (indexes into `events`, unique ids); one answer per index,
    /// and the pending hand-off rows written.
    async fn write(
        &self,
        events: &[Event],
        encoded: &[Encoded],
        order: &[usize],
    ) -> Result<(Vec<Written>, Vec<PendingId>), StoreError> {
        let columns = Columns::new(order.iter().map(|&i| (&events[i], &encoded[i])));
        let client = self.db.client().await?;
        match self
            .db
            .within_timeout(client.query(INSERT_BATCH, &columns.params()))
            .await
        {
            Ok(rows) => {
                let inserted: HashSet<Uuid> = rows.iter().map(|r| r.get(0)).collect();
                let pending = rows.first().map(|r| r.get(1)).into_iter().collect();
                let written = order
                    .iter()
                    .map(|&i| {
                        if inserted.contains(&encoded[i].event_id) {
                            Written::Inserted
                        } else {
                            Written::Claimed
                        }
                    })
                    .collect();
                Ok((written, pending))
            }
            Err(StoreError::DataRefused(reason, _)) => {
                tracing::warn!(%reason, events = order.len(), "batch refused; retrying event by event");
                self.write_one_by_one(events, encoded, order).await
            }
            Err(e) => Err(e),
        }
    }

    async fn write_one_by_one(
        &self,
        events: &[Event],
        encoded: &[Encoded],
        order: &[usize],
    ) -> Result<(Vec<Written>, Vec<PendingId>), StoreError> {
        let mut client = self.db.connect().await?;
        let tx = self.db.within_timeout(client.transaction()).await?;
        let mut written = Vec::with_capacity(order.len());
        let mut pending = Vec::new();
        for &i in order {
            let columns = Columns::new(std::iter::once((&events[i], &encoded[i])));
            self.db
                .within_timeout(tx.batch_execute("SAVEPOINT one_event"))
                .await?;
            let outcome = match self
                .db
                .within_timeout(tx.query(INSERT_BATCH, &columns.params()))
                .await
            {
                Ok(rows) => match rows.first() {
                    Some(row) => {
                        pending.push(row.get(1));
                        Written::Inserted
                    }
                    None => Written::Claimed,
                },
                Err(StoreError::DataRefused(reason, _)) => {
                    self.db
                        .within_timeout(tx.batch_execute("ROLLBACK TO SAVEPOINT one_event"))
                        .await?;
                    Written::Refused(reason)
                }
                Err(e) => return Err(e),
            };
            written.push(outcome);
        }
        self.db.within_timeout(tx.commit()).await?;
        Ok((written, pending))
    }

    /// The stored digests of these ids (only those already claimed: retries and conflicts).
    async fn stored_digests(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, Vec<u8>>, StoreError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let client = self.db.client().await?;
        let rows = self
            .db
            .within_timeout(client.query(STORED_DIGESTS, &[&ids]))
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}
