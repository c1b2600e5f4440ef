//! The tracking plan's health (migration V13, docs/health.md "Plan health"): per UTC day of
//! received_at, event type and version checked, the window's events checked against the plan
//! and those flagged `schema_violation` (exp.plan_daily), with their failing paths, bounded
//! per key (exp.plan_daily_paths). Counted in the window's transaction from its health_batch,
//! so each event is counted once, as the rollups are.

use chrono::{DateTime, Utc};
use tokio_postgres::Transaction;

use crate::db::Db;
use crate::error::StoreError;

/// Distinct paths kept per (day, type, version); the events of any further path are counted
/// under [`OTHER_PATH`]. Paths come from payload keys clients send: this bounds their rows.
pub const MAX_PATHS: i64 = 20;
/// The path the events of paths beyond [`MAX_PATHS`] are counted under (no JSON pointer: a
/// pointer is empty or starts with `/`).
pub const OTHER_PATH: &str = "(other)";
/// Longest path kept (the table's CHECK); the contract cuts longer ones already, this cuts
/// those written around it.
const MAX_PATH_CHARS: i32 = 256;

/// The window's events the plan checked (stamped with a version, or flagged). Nothing before
/// the floor (`$1`): those days are never changed again.
const DAILY: &str = r#"
INSERT INTO exp.plan_daily AS p (day, event_type, schema_version, events, violations)
SELECT (received_at AT TIME ZONE 'UTC')::date, event_type, coalesce(schema_version, ''),
       count(*), count(*) FILTER (WHERE violation)
FROM health_batch
WHERE (schema_version IS NOT NULL OR violation) AND received_at >= $1
GROUP BY 1, 2, 3
ON CONFLICT (day, event_type, schema_version) DO UPDATE
SET events = p.events + EXCLUDED.events, violations = p.violations + EXCLUDED.violations
"#;

/// The flagged events by path: a path the key holds adds to its row; new paths are admitted,
/// most events first, while the key holds fewer than `$2` paths, and the rest go to `$4`.
/// Serialised by the job's lock, so the count of paths held cannot change meanwhile.
const PATHS: &str = r#"
WITH window_paths AS (
    SELECT (received_at AT TIME ZONE 'UTC')::date AS day, event_type,
           coalesce(schema_version, '') AS schema_version,
           left(coalesce(schema_violation, ''), $3) AS path, count(*) AS n
    FROM health_batch
    WHERE violation AND received_at >= $1
    GROUP BY 1, 2, 3, 4
), keys AS (
    SELECT DISTINCT day, event_type, schema_version FROM window_paths
), held AS (
    SELECT p.day, p.event_type, p.schema_version, count(*) AS paths
    FROM exp.plan_daily_paths p JOIN keys USING (day, event_type, schema_version)
    WHERE p.path <> $4
    GROUP BY 1, 2, 3
), ranked AS (
    SELECT w.day, w.event_type, w.schema_version, w.path, w.n, p.path IS NOT NULL AS present,
           coalesce(h.paths, 0) AS paths,
           row_number() OVER (PARTITION BY w.day, w.event_type, w.schema_version, p.path IS NULL
                              ORDER BY w.n DESC, w.path) AS rank
    FROM window_paths w
    LEFT JOIN exp.plan_daily_paths p USING (day, event_type, schema_version, path)
    LEFT JOIN held h USING (day, event_type, schema_version)
)
INSERT INTO exp.plan_daily_paths AS p (day, event_type, schema_version, path, events)
SELECT day, event_type, schema_version,
       CASE WHEN present OR paths + rank <= $2 THEN path ELSE $4 END, sum(n)
FROM ranked
GROUP BY 1, 2, 3, 4
ON CONFLICT (day, event_type, schema_version, path) DO UPDATE SET events = p.events + EXCLUDED.events
"#;

/// Counts the window's health_batch (count.rs) into the plan health tables, days from `floor`.
pub(super) async fn count_window(
    tx: &Transaction<'_>,
    floor: DateTime<Utc>,
) -> Result<(), StoreError> {
    let pg = StoreError::from_pg;
    tx.execute(DAILY, &[&floor]).await.map_err(pg)?;
    tx.execute(PATHS, &[&floor, &MAX_PATHS, &MAX_PATH_CHARS, &OTHER_PATH])
        .await
        .map_err(pg)?;
    Ok(())
}

/// One planned event type's events checked against the plan and those flagged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanViolations {
    pub event_type: String,
    pub events: i64,
    pub violations: i64,
}

impl PlanViolations {
    /// Flagged events in percent of the events checked.
    pub fn share_percent(&self) -> f64 {
        if self.events > 0 {
            100.0 * self.violations as f64 / self.events as f64
        } else {
            0.0
        }
    }
}

/// The last 24 hours the watermark has passed, as whole days: the watermark's UTC day so far
/// and the day before (every version together). Only the types the plan names (the join with
/// exp.event_types: never a type a client chose); none before a first count.
const SHARES: &str = r#"
SELECT d.event_type, sum(d.events)::bigint, sum(d.violations)::bigint
FROM exp.plan_daily d
JOIN exp.event_types USING (event_type), exp.health_progress w
WHERE d.day >= (w.processed_to AT TIME ZONE 'UTC')::date - 1
GROUP BY 1
ORDER BY 1
"#;

/// [`SHARES`].
pub(super) async fn shares(db: &Db) -> Result<Vec<PlanViolations>, StoreError> {
    let client = db.client().await?;
    let rows = db.within_timeout(client.query(SHARES, &[])).await?;
    Ok(rows
        .iter()
        .map(|r| PlanViolations {
            event_type: r.get(0),
            events: r.get(1),
            violations: r.get(2),
        })
        .collect())
}
