//! Writing events to exp.events and tracking their hand-off to the archive.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use eis_contract::{Event, Flag};
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::db::Db;
use crate::error::StoreError;

/// The primary key of a stored event.
pub type EventKey = (Uuid, DateTime<Utc>);

/// What became of each event of a batch, by input position.
#[derive(Debug, Clone, PartialEq)]
pub enum InsertOutcome {
    /// Stored now.
    Inserted,
    /// Already stored by an earlier request (a client retry): nothing new written.
    Duplicate,
    /// The database refused this event; the others of the batch are unaffected.
    Rejected(String),
}

/// One INSERT for a whole batch: each column travels as one array and UNNEST turns them into
/// rows, so N events cost one round trip. Flags travel comma-joined (they are fixed codes).
const INSERT_BATCH: &str = r#"
INSERT INTO exp.events (event_id, event_type, unit_type, unit_id, experiments, context,
                        metrics, payload, "timestamp", received_at, flags)
SELECT id, et, ut, ui, ex::jsonb, cx::jsonb, mx::jsonb, pl::jsonb, ts, ra, string_to_array(fl, ',')
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
            $7::text[], $8::text[], $9::timestamptz[], $10::timestamptz[], $11::text[])
     AS t(id, et, ut, ui, ex, cx, mx, pl, ts, ra, fl)
ON CONFLICT DO NOTHING
RETURNING event_id, "timestamp"
"#;

const MARK_HANDED_OFF: &str = r#"
UPDATE exp.events e SET handed_off_at = now()
FROM unnest($1::uuid[], $2::timestamptz[]) AS k(id, ts)
WHERE e.event_id = k.id AND e."timestamp" = k.ts AND e.handed_off_at IS NULL
"#;

const NOT_HANDED_OFF: &str = r#"
SELECT event_id, event_type, unit_type, unit_id, experiments::text, context::text,
       metrics::text, payload::text, "timestamp", received_at, flags
FROM exp.events
WHERE handed_off_at IS NULL AND received_at < $1
ORDER BY received_at
LIMIT $2
"#;

pub struct PgEventStore {
    db: Arc<Db>,
}

/// The batch as column arrays, in the order of INSERT_BATCH's parameters.
struct Columns {
    ids: Vec<Uuid>,
    event_types: Vec<String>,
    unit_types: Vec<String>,
    unit_ids: Vec<String>,
    experiments: Vec<String>,
    contexts: Vec<String>,
    metrics: Vec<String>,
    payloads: Vec<String>,
    timestamps: Vec<DateTime<Utc>>,
    received: Vec<DateTime<Utc>>,
    flags: Vec<String>,
}

impl Columns {
    fn new(events: &[Event]) -> Result<Self, StoreError> {
        let json =
            |v: Result<String, serde_json::Error>| v.map_err(|e| StoreError::Other(e.to_string()));
        let mut c = Columns {
            ids: Vec::with_capacity(events.len()),
            event_types: Vec::with_capacity(events.len()),
            unit_types: Vec::with_capacity(events.len()),
            unit_ids: Vec::with_capacity(events.len()),
            experiments: Vec::with_capacity(events.len()),
            contexts: Vec::with_capacity(events.len()),
            metrics: Vec::with_capacity(events.len()),
            payloads: Vec::with_capacity(events.len()),
            timestamps: Vec::with_capacity(events.len()),
            received: Vec::with_capacity(events.len()),
            flags: Vec::with_capacity(events.len()),
        };
        for e in events {
            c.ids.push(e.event_id);
            c.event_types.push(e.event_type.clone());
            c.unit_types.push(e.unit_type.clone());
            c.unit_ids.push(e.unit_id.clone());
            c.experiments
                .push(json(serde_json::to_string(&e.experiments))?);
            c.contexts.push(e.context.as_str().to_owned());
            c.metrics.push(json(serde_json::to_string(&e.metrics))?);
            c.payloads.push(e.payload.as_str().to_owned());
            c.timestamps.push(e.timestamp);
            c.received.push(e.received_at);
            let flags: Vec<&str> = e.flags.iter().map(|f| f.as_str()).collect();
            c.flags.push(flags.join(","));
        }
        Ok(c)
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 11] {
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
        ]
    }
}

impl PgEventStore {
    pub fn new(db: Arc<Db>) -> Self {
        Self { db }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Stores a batch atomically in one round trip (`ON CONFLICT DO NOTHING`) and tells, per
    /// input, whether it was new. When the database refuses the data of some event, the batch
    /// is written again one event at a time inside one transaction, with a savepoint each, so
    /// that the bad events get their own answer and the good ones are still stored.
    pub async fn insert(&self, events: &[Event]) -> Result<Vec<InsertOutcome>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let columns = Columns::new(events)?;
        let client = self.db.client().await?;
        let rows = match self
            .db
            .run(client.query(INSERT_BATCH, &columns.params()))
            .await
        {
            Ok(rows) => rows,
            Err(StoreError::Rejected(reason)) => {
                tracing::warn!(%reason, events = events.len(), "batch refused; retrying event by event");
                return self.insert_one_by_one(events).await;
            }
            Err(e) => return Err(e),
        };
        let inserted: HashSet<EventKey> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        Ok(events
            .iter()
            .map(|e| {
                if inserted.contains(&(e.event_id, e.timestamp)) {
                    InsertOutcome::Inserted
                } else {
                    InsertOutcome::Duplicate
                }
            })
            .collect())
    }

    async fn insert_one_by_one(&self, events: &[Event]) -> Result<Vec<InsertOutcome>, StoreError> {
        let mut client = self.db.connect().await?;
        let tx = self.db.run(client.transaction()).await?;
        let mut outcomes = Vec::with_capacity(events.len());
        for event in events {
            let columns = Columns::new(std::slice::from_ref(event))?;
            self.db.run(tx.batch_execute("SAVEPOINT one_event")).await?;
            let outcome = match self.db.run(tx.query(INSERT_BATCH, &columns.params())).await {
                Ok(rows) if rows.is_empty() => InsertOutcome::Duplicate,
                Ok(_) => InsertOutcome::Inserted,
                Err(StoreError::Rejected(reason)) => {
                    self.db
                        .run(tx.batch_execute("ROLLBACK TO SAVEPOINT one_event"))
                        .await?;
                    InsertOutcome::Rejected(reason)
                }
                Err(e) => return Err(e),
            };
            outcomes.push(outcome);
        }
        self.db.run(tx.commit()).await?;
        Ok(outcomes)
    }

    /// Records that SQS confirmed these events: one statement for the whole set.
    pub async fn mark_handed_off(&self, keys: &[EventKey]) -> Result<u64, StoreError> {
        if keys.is_empty() {
            return Ok(0);
        }
        let (ids, timestamps): (Vec<Uuid>, Vec<DateTime<Utc>>) = keys.iter().copied().unzip();
        let client = self.db.client().await?;
        self.db
            .run(client.execute(MARK_HANDED_OFF, &[&ids, &timestamps]))
            .await
    }

    /// Events received more than `grace` ago and still not handed to the archive, oldest
    /// first: those whose publish failed or whose function died before publishing.
    pub async fn not_handed_off(
        &self,
        now: DateTime<Utc>,
        grace: Duration,
        limit: i64,
    ) -> Result<Vec<Event>, StoreError> {
        let grace =
            chrono::Duration::from_std(grace).map_err(|e| StoreError::Config(e.to_string()))?;
        let client = self.db.client().await?;
        let rows = self
            .db
            .run(client.query(NOT_HANDED_OFF, &[&(now - grace), &limit]))
            .await?;
        rows.iter().map(event_from_row).collect()
    }
}

fn event_from_row(row: &tokio_postgres::Row) -> Result<Event, StoreError> {
    fn json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StoreError> {
        serde_json::from_str(text)
            .map_err(|e| StoreError::Other(format!("stored JSON unreadable: {e}")))
    }
    let flags: Vec<String> = row.get(10);
    Ok(Event {
        event_id: row.get(0),
        event_type: row.get(1),
        unit_type: row.get(2),
        unit_id: row.get(3),
        experiments: json(row.get(4))?,
        context: eis_contract::JsonObject::parse(row.get(5))
            .map_err(|e| StoreError::Other(format!("stored context unreadable: {e}")))?,
        metrics: json(row.get(6))?,
        payload: eis_contract::JsonObject::parse(row.get(7))
            .map_err(|e| StoreError::Other(format!("stored payload unreadable: {e}")))?,
        timestamp: row.get(8),
        received_at: row.get(9),
        flags: flags
            .iter()
            .map(|f| {
                Flag::ALL
                    .iter()
                    .copied()
                    .find(|k| k.as_str() == f)
                    .ok_or_else(|| StoreError::Other(format!("unknown stored flag {f:?}")))
            })
            .collect::<Result<_, _>>()?,
    })
}
