//! The experiment-health job's storage (migrations V6, V7, V13, docs/health.md): it counts new
//! events into exp.assignments, exp.context_hourly, the daily rollups and the plan's health
//! by a watermark on received_at, off the ingest path (`count`, `plan`), and rewrites the
//! health tables from them (`rows`).
//!
//! One window of received_at is one transaction, serialised by an advisory lock (a run that
//! finds it taken does nothing), so overlapping runs are safe and a run that dies counts
//! nothing twice: the watermark moves in the same commit as the counts.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::db::Db;
use crate::error::StoreError;

mod count;
mod plan;
mod rows;

pub use count::AGE_CHUNK;
pub use plan::{PlanViolations, MAX_PATHS, OTHER_PATH};
pub use rows::{ExperimentCounts, ExperimentHealth, SrmFigures, VariantUnits};

/// How far the watermark may move in one run.
#[derive(Debug, Clone, Copy)]
pub struct WatermarkPolicy {
    /// The longest time between an event's received_at (the ingest's clock) and its insert's
    /// start in the database: the ingest function's timeout plus clock skew. The watermark
    /// stays this far behind what the database has proven finished.
    pub lag: Duration,
    /// The most received_at one transaction covers; a backlog takes several.
    pub max_window: Duration,
    /// Statement timeout inside the job's transactions.
    pub statement_timeout: Duration,
    /// Days exp.events keeps (`EIS_RETENTION_DAYS`): the job never changes the rollups of a
    /// day before today minus this (their events are gone; they keep their rows), and ages
    /// out what is older (docs/health.md, "Bounds").
    pub retention_days: u32,
}

/// What one call of [`HealthStore::advance`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Advance {
    /// Another run holds the job's lock.
    Busy,
    /// Nothing could be counted yet: the watermark stays at `at` (None: nothing counted ever).
    Unchanged { at: Option<DateTime<Utc>> },
    /// Events with received_at in `[from, to)` were counted.
    Counted {
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        events: u64,
        /// (experiment, day) rollups changed.
        days: u64,
        /// More is already safe to count: call again.
        more: bool,
    },
}

/// One job at a time; the others return at once.
const LOCK: &str = "SELECT pg_try_advisory_xact_lock(hashtext('exp.health'))";

/// The proof that finished transactions provide (exp.health_horizons): the current horizon is
/// recorded, and the latest recorded time before which every transaction id handed out is
/// now finished comes back (NULL when none is yet). Run as the transaction's first statement,
/// before it has a transaction id of its own.
const HORIZON: &str = r#"
WITH now AS (
    SELECT clock_timestamp() AS taken_at,
           pg_snapshot_xmin(pg_current_snapshot()) AS oldest_running,
           pg_snapshot_xmax(pg_current_snapshot()) AS next_xid
), recorded AS (
    INSERT INTO exp.health_horizons (taken_at, next_xid)
    SELECT taken_at, next_xid FROM now
    ON CONFLICT DO NOTHING
)
SELECT greatest(
    (SELECT max(h.taken_at) FROM exp.health_horizons h, now WHERE h.next_xid <= now.oldest_running),
    (SELECT taken_at FROM now WHERE next_xid <= oldest_running)),
    (SELECT processed_to FROM exp.health_progress)
"#;

/// Where a first run starts: the oldest stored event.
const OLDEST: &str = "SELECT min(received_at) FROM exp.events";

/// Moves the watermark and forgets the horizons older than the one just used.
const PROGRESS: &str = r#"
UPDATE exp.health_progress SET processed_to = $1;
"#;
const PRUNE_HORIZONS: &str = "DELETE FROM exp.health_horizons WHERE taken_at < $1";

#[derive(Clone)]
pub struct HealthStore {
    db: Arc<Db>,
}

impl HealthStore {
    pub fn new(db: Arc<Db>) -> Self {
        Self { db }
    }

    /// Counts the next window of events that is safe to count (see [`WatermarkPolicy`]).
    pub async fn advance(&self, policy: WatermarkPolicy) -> Result<Advance, StoreError> {
        let mut client = self.db.connect().await?;
        let Some(tx) = locked_transaction(&mut client, &policy).await? else {
            return Ok(Advance::Busy);
        };
        let row = tx
            .query_one(HORIZON, &[])
            .await
            .map_err(StoreError::from_pg)?;
        let proven: Option<DateTime<Utc>> = row.get(0);
        let processed_to: Option<DateTime<Utc>> = row.get(1);
        let Some(proven) = proven else {
            tx.commit().await.map_err(StoreError::from_pg)?;
            return Ok(Advance::Unchanged { at: processed_to });
        };
        let safe = proven - chrono_duration(policy.lag)?;
        let from = match processed_to {
            Some(at) => at,
            // A first run starts at the oldest event (or at `safe` when there is none).
            None => {
                let oldest: Option<DateTime<Utc>> = tx
                    .query_one(OLDEST, &[])
                    .await
                    .map_err(StoreError::from_pg)?
                    .get(0);
                oldest.unwrap_or(safe).min(safe)
            }
        };
        let to = safe.min(from + chrono_duration(policy.max_window)?);
        if to <= from {
            tx.commit().await.map_err(StoreError::from_pg)?;
            return Ok(Advance::Unchanged { at: processed_to });
        }
        let (events, days) = count::count_window(&tx, from, to, keep_days(policy)).await?;
        tx.execute(PROGRESS, &[&to])
            .await
            .map_err(StoreError::from_pg)?;
        tx.execute(PRUNE_HORIZONS, &[&proven])
            .await
            .map_err(StoreError::from_pg)?;
        tx.commit().await.map_err(StoreError::from_pg)?;
        Ok(Advance::Counted {
            from,
            to,
            events,
            days,
            more: to < safe,
        })
    }

    /// The watermark: every event received before it has been counted.
    pub async fn processed_to(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let client = self.db.client().await?;
        let row = self
            .db
            .within_timeout(client.query_one("SELECT processed_to FROM exp.health_progress", &[]))
            .await?;
        Ok(row.get(0))
    }

    /// Ages out, in bounded chunks ([`AGE_CHUNK`] rows per kind), the assignments of
    /// experiments with no exposure in the retention window and the counting state of days
    /// before it. Returns the rows deleted.
    pub async fn age(&self, policy: WatermarkPolicy) -> Result<u64, StoreError> {
        let mut client = self.db.connect().await?;
        // Under the counting's lock: a window never upserts what is being aged.
        let Some(tx) = locked_transaction(&mut client, &policy).await? else {
            return Ok(0);
        };
        let aged = count::age(&tx, keep_days(policy)).await?;
        tx.commit().await.map_err(StoreError::from_pg)?;
        Ok(aged)
    }

    /// Every experiment seen or registered, with what its health row is computed from.
    pub async fn counts(&self) -> Result<Vec<ExperimentCounts>, StoreError> {
        rows::counts(&self.db).await
    }

    /// Per type the plan names, its events checked and flagged in the last 24 hours the
    /// watermark passed, as whole UTC days of exp.plan_daily (the watermark's and the one
    /// before). Types without such events are absent.
    pub async fn plan_violations(&self) -> Result<Vec<PlanViolations>, StoreError> {
        plan::shares(&self.db).await
    }

    /// Replaces the health tables' rows with these.
    pub async fn write(
        &self,
        rows: &[ExperimentHealth],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        rows::write(&self.db, rows, at).await
    }
}

fn keep_days(policy: WatermarkPolicy) -> i32 {
    i32::try_from(policy.retention_days).unwrap_or(i32::MAX)
}

/// A transaction with the job's statement timeout that holds the job's lock; None when
/// another run holds it.
async fn locked_transaction<'c>(
    client: &'c mut tokio_postgres::Client,
    policy: &WatermarkPolicy,
) -> Result<Option<tokio_postgres::Transaction<'c>>, StoreError> {
    let tx = client.transaction().await.map_err(StoreError::from_pg)?;
    tx.batch_execute(&format!(
        "SET LOCAL statement_timeout = {}",
        policy.statement_timeout.as_millis()
    ))
    .await
    .map_err(StoreError::from_pg)?;
    let locked: bool = tx
        .query_one(LOCK, &[])
        .await
        .map_err(StoreError::from_pg)?
        .get(0);
    Ok(locked.then_some(tx))
}

fn chrono_duration(d: Duration) -> Result<chrono::Duration, StoreError> {
    chrono::Duration::from_std(d)
        .map_err(|e| StoreError::config("health job duration out of range").caused_by(e))
}
