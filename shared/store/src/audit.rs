//! The archive's bookkeeping in PostgreSQL: which hours hold files that still need compacting
//! (`exp.archive_hours`), and the audit's view of exp.events per hour (digests of the
//! distinct event ids, the ids themselves).
//!
//! The id digest is a count plus the sum, modulo 2^63, of a 60-bit hash of each distinct id
//! (the first 15 hex digits of the md5 of its lowercase hyphenated text). Order-independent,
//! so PostgreSQL and the archiver compute it the same way from sets read in any order; the
//! archiver's twin is `archiver::digest`.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::db::Db;
use crate::error::StoreError;

const TOUCH: &str = r#"
INSERT INTO exp.archive_hours AS h (hour) VALUES ($1)
ON CONFLICT (hour) DO UPDATE SET version = h.version + 1, touched_at = now()
"#;

/// Settled hours that need compacting, oldest first. `clearable`: recorded long enough ago
/// that the raw upload that followed the record has ended (see [`ArchiveHours::clear`]).
const PENDING: &str = r#"
SELECT hour, version, touched_at < now() - make_interval(secs => $3)
FROM exp.archive_hours
WHERE hour < $1
ORDER BY hour
LIMIT $2
"#;

const CLEAR: &str = "DELETE FROM exp.archive_hours WHERE hour = $1 AND version = $2";

const DIGEST: &str = r#"
SELECT count(*),
       (coalesce(sum(('x' || substr(md5(event_id::text), 1, 15))::bit(60)::bigint), 0)
        % 9223372036854775808)::bigint
FROM (SELECT DISTINCT event_id FROM exp.events WHERE "timestamp" >= $1 AND "timestamp" < $2) d
"#;

const IDS: &str = r#"
SELECT event_id, min(received_at) FROM exp.events
WHERE "timestamp" >= $1 AND "timestamp" < $2
GROUP BY event_id
"#;

/// One hour waiting for compaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingHour {
    pub hour: DateTime<Utc>,
    pub version: i64,
    /// Whether compaction may delete the row once done (see [`ArchiveHours::pending`]).
    pub clearable: bool,
}

/// Count and order-independent hash of a set of distinct event ids.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IdDigest {
    pub count: u64,
    pub sum: u64,
}

#[derive(Clone)]
pub struct ArchiveHours {
    db: Arc<Db>,
}

impl ArchiveHours {
    pub fn new(db: Arc<Db>) -> Self {
        Self { db }
    }

    /// Records that a raw file is about to be written into the hour starting at `hour`.
    pub async fn touch(&self, hour: DateTime<Utc>) -> Result<(), StoreError> {
        let client = self.db.client().await?;
        self.db
            .within_timeout(client.execute(TOUCH, &[&hour]))
            .await?;
        Ok(())
    }

    /// Hours starting before `before` that need compacting, oldest first, at most `limit`.
    /// A row is clearable when it was recorded more than `write_window` ago (by the database
    /// clock): the upload that followed its record has then ended, so the listing that comes
    /// after this query sees its file.
    pub async fn pending(
        &self,
        before: DateTime<Utc>,
        limit: i64,
        write_window: Duration,
    ) -> Result<Vec<PendingHour>, StoreError> {
        let client = self.db.client().await?;
        let window = write_window.as_secs_f64();
        let rows = self
            .db
            .within_timeout(client.query(PENDING, &[&before, &limit, &window]))
            .await?;
        Ok(rows
            .iter()
            .map(|r| PendingHour {
                hour: r.get(0),
                version: r.get(1),
                clearable: r.get(2),
            })
            .collect())
    }

    /// Deletes the hour's row unless it was recorded again since `pending` read it.
    pub async fn clear(&self, hour: &PendingHour) -> Result<bool, StoreError> {
        let client = self.db.client().await?;
        let n = self
            .db
            .within_timeout(client.execute(CLEAR, &[&hour.hour, &hour.version]))
            .await?;
        Ok(n > 0)
    }

    /// The digest of the distinct event ids of exp.events in `[from, to)` (by `timestamp`).
    pub async fn digest(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<IdDigest, StoreError> {
        let client = self.db.client().await?;
        let row = self
            .db
            .within_timeout(client.query_one(DIGEST, &[&from, &to]))
            .await?;
        let count: i64 = row.get(0);
        let sum: i64 = row.get(1);
        Ok(IdDigest {
            count: u64::try_from(count).unwrap_or_default(),
            sum: u64::try_from(sum).unwrap_or_default(),
        })
    }

    /// The distinct event ids in `[from, to)`, each with its earliest `received_at`.
    pub async fn ids(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(Uuid, DateTime<Utc>)>, StoreError> {
        let client = self.db.client().await?;
        let rows = self
            .db
            .within_timeout(client.query(IDS, &[&from, &to]))
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}
