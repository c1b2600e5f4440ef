//! Erasure requests and tombstones (migrations V10, V11; docs/privacy.md): recording a
//! request with its tombstone, the scheduled run's queue, each step's progress and receipt,
//! and the PostgreSQL step itself (exp.erase_unit). The archive's and the quarantine's steps
//! are the archiver's; this records where they stopped.
//!
//! Every move of a request is guarded by the step and position it was read at: two runs that
//! picked the same request cannot both count the same work into its receipt.
//! Over 400 lines: the statements, the receipt types and the store are one unit; split, the
//! guards (step, position) would be far from the statements that use them.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use eis_contract::{unit_hash, Tombstone, Tombstones, UnitHash};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::db::Db;
use crate::error::StoreError;

const KEY: &str = "SELECT key FROM exp.erasure_key";
/// The key and every tombstone in one round trip (one row, arrays in step).
const TOMBSTONES: &str = r#"
SELECT (SELECT key FROM exp.erasure_key),
       coalesce(array_agg(unit_hash), '{}'), coalesce(array_agg(erased_at), '{}'),
       coalesce(array_agg(suppress), '{}')
FROM exp.erasure_tombstones
"#;

const RECORD: &str = r#"
INSERT INTO exp.erasure_requests (id, unit_type, unit_id, unit_hash, suppress, requested_at)
VALUES ($1, $2, $3, $4, $5, $6)
"#;

/// A later request moves the erasure later (it covers what arrived meanwhile); suppression,
/// once asked for, stays.
const TOMBSTONE: &str = r#"
INSERT INTO exp.erasure_tombstones AS t (unit_hash, erased_at, suppress) VALUES ($1, $2, $3)
ON CONFLICT (unit_hash) DO UPDATE
SET erased_at = greatest(t.erased_at, EXCLUDED.erased_at), suppress = t.suppress OR EXCLUDED.suppress
"#;

const PENDING: &str = r#"
SELECT id, unit_type, unit_id, unit_hash, suppress, requested_at, step, position, receipt
FROM exp.erasure_requests
WHERE status = 'pending' AND requested_at <= $1
ORDER BY requested_at, id
LIMIT $2
"#;

const ADVANCE: &str = r#"
UPDATE exp.erasure_requests
SET step = $4, position = $5, receipt = $6, last_error = NULL
WHERE id = $1 AND step = $2 AND position = $3 AND status = 'pending'
"#;

/// Completion forgets the unit: only its keyed hash stays.
const COMPLETE: &str = r#"
UPDATE exp.erasure_requests
SET status = 'completed', step = 'done', unit_type = NULL, unit_id = NULL, completed_at = $3,
    last_error = NULL
WHERE id = $1 AND step = $2 AND status = 'pending'
"#;

const FAILED: &str = "UPDATE exp.erasure_requests SET last_error = $2 WHERE id = $1";

const BACKLOG: &str =
    "SELECT count(*), min(requested_at) FROM exp.erasure_requests WHERE status = 'pending'";

const SHOW: &str = r#"
SELECT id, unit_hash, suppress, requested_at, status, step, receipt, completed_at, last_error
FROM exp.erasure_requests WHERE id = ANY($1) ORDER BY requested_at, id
"#;

const ERASE_UNIT: &str = "SELECT exp.erase_unit($1, $2, $3, $4, $5)";
const TOMBSTONE_OF: &str =
    "SELECT erased_at, suppress FROM exp.erasure_tombstones WHERE unit_hash = $1";

/// What a request asks: one unit, and whether its later events are refused too.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitToErase {
    pub unit_type: String,
    pub unit_id: String,
    #[serde(default)]
    pub suppress: bool,
}

/// Where a request is: each step runs after the previous one finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Postgres,
    Archive,
    Quarantine,
    Done,
}

impl Step {
    fn as_str(self) -> &'static str {
        match self {
            Step::Postgres => "postgres",
            Step::Archive => "archive",
            Step::Quarantine => "quarantine",
            Step::Done => "done",
        }
    }

    fn parse(text: &str) -> Result<Self, StoreError> {
        match text {
            "postgres" => Ok(Step::Postgres),
            "archive" => Ok(Step::Archive),
            "quarantine" => Ok(Step::Quarantine),
            "done" => Ok(Step::Done),
            other => Err(StoreError::other(format!("unknown erasure step {other}"))),
        }
    }
}

/// What was removed from PostgreSQL (exp.erase_unit's answer).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PostgresCounts {
    pub events: u64,
    pub event_ids: u64,
    pub pending_keys: u64,
    pub assignments: u64,
    pub rollup_days: u64,
    pub context_hours: u64,
}

/// What the scan of a store (the archive, or the quarantine) looked at and removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ScanCounts {
    /// Files whose footer (and bloom filters) were read.
    pub files_checked: u64,
    /// Files read whole because they might hold the unit.
    pub files_read: u64,
    /// Bytes fetched for both.
    pub bytes_read: u64,
    /// Hours (the archive) or files (the quarantine) rewritten without the unit.
    pub rewritten: u64,
    /// Events (archive) or quarantine records removed.
    pub removed: u64,
    /// Older versions of rewritten files deleted (a versioned bucket).
    pub noncurrent_versions: u64,
}

impl ScanCounts {
    pub fn add(&mut self, other: ScanCounts) {
        self.files_checked += other.files_checked;
        self.files_read += other.files_read;
        self.bytes_read += other.bytes_read;
        self.rewritten += other.rewritten;
        self.removed += other.removed;
        self.noncurrent_versions += other.noncurrent_versions;
    }
}

/// The counts per store, accumulated across runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Receipt {
    pub postgres: PostgresCounts,
    pub archive: ScanCounts,
    pub quarantine: ScanCounts,
}

/// A pending request as a run reads it.
#[derive(Debug, Clone)]
pub struct ErasureRequest {
    pub id: Uuid,
    pub unit_type: String,
    pub unit_id: String,
    pub unit_hash: UnitHash,
    pub suppress: bool,
    pub requested_at: DateTime<Utc>,
    pub step: Step,
    /// The last object key the current step's scan finished (`""`: none yet).
    pub position: String,
    pub receipt: Receipt,
}

/// A request as reported: no unit id, only its keyed hash.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestStatus {
    pub id: Uuid,
    /// The keyed hash, hex.
    pub unit_hash: String,
    pub suppress: bool,
    pub requested_at: DateTime<Utc>,
    pub status: String,
    pub step: Step,
    pub completed_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub receipt: Receipt,
}

pub struct ErasureStore {
    db: Arc<Db>,
}

fn hash_of(bytes: &[u8]) -> Result<UnitHash, StoreError> {
    bytes
        .try_into()
        .map_err(|_| StoreError::other("a unit hash that is not 32 bytes"))
}

fn receipt_of(value: serde_json::Value) -> Result<Receipt, StoreError> {
    serde_json::from_value(value)
        .map_err(|e| StoreError::other("an unreadable receipt").caused_by(e))
}

fn json(receipt: &Receipt) -> Result<serde_json::Value, StoreError> {
    serde_json::to_value(receipt).map_err(|e| StoreError::other("a receipt").caused_by(e))
}

impl ErasureStore {
    pub fn new(db: Arc<Db>) -> Self {
        Self { db }
    }

    /// Every tombstone, with the key that names units. Small: one row per erased unit.
    pub async fn tombstones(&self) -> Result<Tombstones, StoreError> {
        let client = self.db.client().await?;
        let row = self
            .db
            .within_timeout(client.query_one(TOMBSTONES, &[]))
            .await?;
        let (key, hashes): (Vec<u8>, Vec<Vec<u8>>) = (row.get(0), row.get(1));
        let (erased_at, suppress): (Vec<DateTime<Utc>>, Vec<bool>) = (row.get(2), row.get(3));
        let mut units = HashMap::with_capacity(hashes.len());
        for ((hash, erased_at), suppress) in hashes.iter().zip(erased_at).zip(suppress) {
            let tombstone = Tombstone {
                erased_at,
                suppress,
            };
            units.insert(hash_of(hash)?, tombstone);
        }
        Ok(Tombstones::new(key, units))
    }

    /// Records the requests and their tombstones in one transaction, all or none, as
    /// requested at `now`. From the commit on, the units' events received or timestamped
    /// before `now` are dropped wherever they still travel. Returns the requests' ids.
    pub async fn record(
        &self,
        units: &[UnitToErase],
        now: DateTime<Utc>,
    ) -> Result<Vec<Uuid>, StoreError> {
        if units.is_empty() {
            return Ok(Vec::new());
        }
        let pg = StoreError::from_pg;
        let mut client = self.db.connect().await?;
        let tx = client.transaction().await.map_err(pg)?;
        let key: Vec<u8> = tx.query_one(KEY, &[]).await.map_err(pg)?.get(0);
        let mut ids = Vec::with_capacity(units.len());
        for unit in units {
            let id = Uuid::now_v7();
            let hash = unit_hash(&key, &unit.unit_type, &unit.unit_id);
            let hash = hash.as_slice();
            tx.execute(
                RECORD,
                &[
                    &id,
                    &unit.unit_type,
                    &unit.unit_id,
                    &hash,
                    &unit.suppress,
                    &now,
                ],
            )
            .await
            .map_err(pg)?;
            tx.execute(TOMBSTONE, &[&hash, &now, &unit.suppress])
                .await
                .map_err(pg)?;
            ids.push(id);
        }
        self.db.within_timeout(tx.commit()).await?;
        Ok(ids)
    }

    /// Pending requests made at or before `ready` (their grace has passed), oldest first.
    pub async fn pending(
        &self,
        ready: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<ErasureRequest>, StoreError> {
        let client = self.db.client().await?;
        let rows = self
            .db
            .within_timeout(client.query(PENDING, &[&ready, &limit]))
            .await?;
        rows.into_iter()
            .map(|row| {
                let hash: Vec<u8> = row.get(3);
                let step: String = row.get(6);
                Ok(ErasureRequest {
                    id: row.get(0),
                    unit_type: row.get(1),
                    unit_id: row.get(2),
                    unit_hash: hash_of(&hash)?,
                    suppress: row.get(4),
                    requested_at: row.get(5),
                    step: Step::parse(&step)?,
                    position: row.get(7),
                    receipt: receipt_of(row.get(8))?,
                })
            })
            .collect()
    }

    /// The PostgreSQL step: exp.erase_unit with the unit's tombstone as it now is (a later
    /// request may have moved it), and the move to the archive step, in one transaction.
    /// Returns the receipt, or None when another run did this step first.
    pub async fn erase_postgres(
        &self,
        request: &ErasureRequest,
        keep_days: i32,
    ) -> Result<Option<Receipt>, StoreError> {
        let pg = StoreError::from_pg;
        let mut client = self.db.connect().await?;
        let tx = client.transaction().await.map_err(pg)?;
        let hash = request.unit_hash.as_slice();
        let tombstone = tx.query_one(TOMBSTONE_OF, &[&hash]).await.map_err(pg)?;
        let (erased_at, suppress): (DateTime<Utc>, bool) = (tombstone.get(0), tombstone.get(1));
        let counts: serde_json::Value = self
            .db
            .within_timeout(tx.query_one(
                ERASE_UNIT,
                &[
                    &request.unit_type,
                    &request.unit_id,
                    &erased_at,
                    &suppress,
                    &keep_days,
                ],
            ))
            .await?
            .get(0);
        let counts: PostgresCounts = serde_json::from_value(counts)
            .map_err(|e| StoreError::other("exp.erase_unit's answer").caused_by(e))?;
        let receipt = Receipt {
            postgres: counts,
            ..request.receipt
        };
        let moved = tx
            .execute(
                ADVANCE,
                &[
                    &request.id,
                    &Step::Postgres.as_str(),
                    &request.position,
                    &Step::Archive.as_str(),
                    &"",
                    &json(&receipt)?,
                ],
            )
            .await
            .map_err(pg)?;
        if moved == 0 {
            return Ok(None);
        }
        self.db.within_timeout(tx.commit()).await?;
        Ok(Some(receipt))
    }

    /// Records progress: the request, read at (`request.step`, `request.position`), is now
    /// at (`step`, `position`) with `receipt`. False when another run moved it first.
    pub async fn advance(
        &self,
        request: &ErasureRequest,
        step: Step,
        position: &str,
        receipt: &Receipt,
    ) -> Result<bool, StoreError> {
        let client = self.db.client().await?;
        let moved = self
            .db
            .within_timeout(client.execute(
                ADVANCE,
                &[
                    &request.id,
                    &request.step.as_str(),
                    &request.position,
                    &step.as_str(),
                    &position,
                    &json(receipt)?,
                ],
            ))
            .await?;
        Ok(moved == 1)
    }

    /// Completes a request whose every step is done: the unit's type and id are forgotten.
    pub async fn complete(
        &self,
        request: &ErasureRequest,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let client = self.db.client().await?;
        let moved = self
            .db
            .within_timeout(client.execute(COMPLETE, &[&request.id, &request.step.as_str(), &now]))
            .await?;
        Ok(moved == 1)
    }

    /// Why the last run could not go on with a request (the alarm's runbook reads it).
    pub async fn failed(&self, request: &ErasureRequest, error: &str) -> Result<(), StoreError> {
        let client = self.db.client().await?;
        self.db
            .within_timeout(client.execute(FAILED, &[&request.id, &error]))
            .await?;
        Ok(())
    }

    /// How many requests are pending, and when the oldest was made.
    pub async fn backlog(&self) -> Result<(u64, Option<DateTime<Utc>>), StoreError> {
        let client = self.db.client().await?;
        let row = self
            .db
            .within_timeout(client.query_one(BACKLOG, &[]))
            .await?;
        let pending: i64 = row.get(0);
        Ok((u64::try_from(pending).unwrap_or_default(), row.get(1)))
    }

    /// The requests of these ids as they now are.
    pub async fn show(&self, ids: &[Uuid]) -> Result<Vec<RequestStatus>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let client = self.db.client().await?;
        let rows = self.db.within_timeout(client.query(SHOW, &[&ids])).await?;
        rows.into_iter()
            .map(|row| {
                let hash: Vec<u8> = row.get(1);
                let step: String = row.get(5);
                Ok(RequestStatus {
                    id: row.get(0),
                    unit_hash: hash.iter().map(|b| format!("{b:02x}")).collect(),
                    suppress: row.get(2),
                    requested_at: row.get(3),
                    status: row.get(4),
                    step: Step::parse(&step)?,
                    receipt: receipt_of(row.get(6))?,
                    completed_at: row.get(7),
                    last_error: row.get(8),
                })
            })
            .collect()
    }
}
