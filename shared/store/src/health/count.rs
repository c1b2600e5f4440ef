//! Counting one window of received_at (docs/health.md, "Cost"): the window's exposures go
//! into exp.assignments, its events into exp.context_hourly, and the contributions that the
//! window adds (its own events, and the earlier events of units whose first exposure it moves
//! earlier) are added to the rollups by exp.health_add_counted (migration V7). Nothing is
//! recomputed from a whole day: a window costs its events plus the back-filled units' events.
//!
//! Also the aging of what has left retention, in bounded chunks.

use chrono::{DateTime, Utc};
use tokio_postgres::Transaction;

use crate::error::StoreError;

/// The window's events (with what the plan's health counts: plan.rs), and their exposures
/// (one row per unit and variant named).
const BATCH: &str = r#"
CREATE TEMP TABLE health_batch ON COMMIT DROP AS
SELECT event_type, unit_type, unit_id, experiments, metrics, "timestamp" AS ts, received_at,
       schema_version, schema_violation, 'schema_violation' = ANY (flags) AS violation
FROM exp.events WHERE received_at >= $1 AND received_at < $2
"#;

const EXPOSURES: &str = r#"
CREATE TEMP TABLE health_exposures ON COMMIT DROP AS
SELECT x ->> 'experiment_id' AS experiment_id, x ->> 'variant_id' AS variant_id,
       b.unit_type, b.unit_id, min(b.ts) AS first_at, max(b.ts) AS last_at, count(*) AS events
FROM health_batch b, jsonb_array_elements(b.experiments) x
GROUP BY 1, 2, 3, 4
"#;

/// The (experiment, unit, variant) whose first exposure the window makes earlier (or new),
/// with the old one (NULL: none): the unit's earlier-received events in [new, old) now count.
/// Recorded before the assignments change. Nothing before `$1` (the floor) is back-filled.
const EARLIER: &str = r#"
CREATE TEMP TABLE health_earlier ON COMMIT DROP AS
SELECT e.experiment_id, e.variant_id, e.unit_type, e.unit_id,
       greatest(e.first_at, $1) AS back_from, coalesce(a.first_exposure_at, 'infinity') AS back_to
FROM health_exposures e
LEFT JOIN exp.assignments a USING (experiment_id, unit_type, unit_id, variant_id)
WHERE coalesce(a.first_exposure_at, 'infinity') > greatest(e.first_at, $1)
"#;

const ASSIGN: &str = r#"
INSERT INTO exp.assignments AS a (experiment_id, unit_type, unit_id, variant_id,
                                  first_exposure_at, last_exposure_at, events)
SELECT experiment_id, unit_type, unit_id, variant_id, first_at, last_at, events
FROM health_exposures
ON CONFLICT (experiment_id, unit_type, unit_id, variant_id) DO UPDATE
SET first_exposure_at = least(a.first_exposure_at, EXCLUDED.first_exposure_at),
    last_exposure_at = greatest(a.last_exposure_at, EXCLUDED.last_exposure_at),
    events = a.events + EXCLUDED.events
"#;

const CONTEXT: &str = r#"
INSERT INTO exp.context_hourly AS c (hour, events, without_context)
SELECT date_trunc('hour', ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', count(*),
       count(*) FILTER (WHERE experiments = '[]'::jsonb)
FROM health_batch GROUP BY 1
ON CONFLICT (hour) DO UPDATE
SET events = c.events + EXCLUDED.events, without_context = c.without_context + EXCLUDED.without_context
"#;

/// What the window adds, by the rule of docs/health.md (an event counts at or after its unit's
/// first exposure to the variant; an event naming the experiment counts for the variant it
/// names, any other for each variant the unit was exposed to), on days from the floor (`$1`):
/// - the window's events, against the assignments as they now are;
/// - the events received before the window (`$2`) of each unit in health_earlier, timed in
///   [back_from, back_to): those the earlier first exposure makes count. Found through
///   events_unit_id_idx, so this costs those units' events, not the days'.
///
/// Each (event, variant) is added exactly once: a window's events here, an earlier event only
/// when the first exposure moves from after it to at or before it, which happens once.
const COUNTED: &str = r#"
CREATE TEMP TABLE health_counted ON COMMIT DROP AS
SELECT a.experiment_id, a.variant_id, (b.ts AT TIME ZONE 'UTC')::date AS day, b.event_type,
       b.unit_type, b.unit_id, b.metrics
FROM health_batch b
JOIN exp.assignments a
  ON a.unit_type = b.unit_type AND a.unit_id = b.unit_id AND a.first_exposure_at <= b.ts
WHERE b.ts >= $1
  AND (NOT b.experiments @> jsonb_build_array(jsonb_build_object('experiment_id', a.experiment_id))
       OR b.experiments @> jsonb_build_array(
              jsonb_build_object('experiment_id', a.experiment_id, 'variant_id', a.variant_id)))
UNION ALL
SELECT c.experiment_id, c.variant_id, (e."timestamp" AT TIME ZONE 'UTC')::date, e.event_type,
       e.unit_type, e.unit_id, e.metrics
FROM health_earlier c
JOIN exp.events e
  ON e.unit_id = c.unit_id AND e.unit_type = c.unit_type
 AND e."timestamp" >= c.back_from AND e."timestamp" < c.back_to
WHERE e.received_at < $2
  AND (NOT e.experiments @> jsonb_build_array(jsonb_build_object('experiment_id', c.experiment_id))
       OR e.experiments @> jsonb_build_array(
              jsonb_build_object('experiment_id', c.experiment_id, 'variant_id', c.variant_id)))
"#;

const ADD: &str = "SELECT exp.health_add_counted()";

/// The first day the job may change: retention's cutoff (exp.drop_expired_partitions keeps
/// the days from today − keep_days on). Older days keep their rollups as they are.
const FLOOR: &str =
    "SELECT ((now() AT TIME ZONE 'UTC')::date - $1::int)::timestamp AT TIME ZONE 'UTC'";

/// Counts `[from, to)` into the assignments, the hourly context counts, the rollups and the
/// plan's health (plan.rs) of the days from today − `keep_days` on. Returns the events counted
/// and the (experiment, day) rollups changed.
pub(super) async fn count_window(
    tx: &Transaction<'_>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    keep_days: i32,
) -> Result<(u64, u64), StoreError> {
    let pg = StoreError::from_pg;
    let floor: DateTime<Utc> = tx.query_one(FLOOR, &[&keep_days]).await.map_err(pg)?.get(0);
    let events = tx.execute(BATCH, &[&from, &to]).await.map_err(pg)?;
    tx.batch_execute(EXPOSURES).await.map_err(pg)?;
    tx.execute(EARLIER, &[&floor]).await.map_err(pg)?;
    tx.batch_execute(ASSIGN).await.map_err(pg)?;
    tx.batch_execute(CONTEXT).await.map_err(pg)?;
    tx.execute(COUNTED, &[&floor, &from]).await.map_err(pg)?;
    let days: i64 = tx.query_one(ADD, &[]).await.map_err(pg)?.get(0);
    super::plan::count_window(tx, floor).await?;
    Ok((events, u64::try_from(days).unwrap_or_default()))
}

/// Most rows each aging statement deletes in one run: a run's cost stays bounded however much
/// has aged (a backlog takes several runs).
pub const AGE_CHUNK: i64 = 10_000;

/// The assignments of experiments with no exposure timed from the floor on (`$1`): such an
/// experiment has no event in the retention window, and its health row goes with them.
const AGE_ASSIGNMENTS: &str = r#"
WITH dead AS (
    SELECT experiment_id FROM exp.assignments GROUP BY 1 HAVING max(last_exposure_at) < $1
), gone AS (
    DELETE FROM exp.assignments
    WHERE ctid = ANY (ARRAY(SELECT a.ctid FROM exp.assignments a JOIN dead USING (experiment_id) LIMIT $2))
    RETURNING 1
)
SELECT count(*) FROM gone
"#;

/// The tables of per-day counting state: days before the floor are never changed by the
/// job again (their rollups stay), so their rows go.
const AGED_BY_DAY: [&str; 3] = [
    "exp.variant_daily_units",
    "exp.variant_daily_metric_buckets",
    // The plan's failing paths (client-chosen keys); exp.plan_daily stays, like the rollups.
    "exp.plan_daily_paths",
];

/// Deletes at most `$2` rows of `table` whose day is before `$1`.
fn age_by_day(table: &str) -> String {
    format!(
        "WITH gone AS (DELETE FROM {table} WHERE ctid = ANY (ARRAY(\
         SELECT ctid FROM {table} WHERE day < $1::date LIMIT $2)) RETURNING 1) \
         SELECT count(*) FROM gone"
    )
}

/// Deletes at most [`AGE_CHUNK`] rows of each kind that retention has passed; returns how many.
pub(super) async fn age(tx: &Transaction<'_>, keep_days: i32) -> Result<u64, StoreError> {
    let pg = StoreError::from_pg;
    let floor: DateTime<Utc> = tx.query_one(FLOOR, &[&keep_days]).await.map_err(pg)?.get(0);
    let day = floor.date_naive();
    let count = |n: i64| u64::try_from(n).unwrap_or_default();
    let assignments: i64 = tx
        .query_one(AGE_ASSIGNMENTS, &[&floor, &AGE_CHUNK])
        .await
        .map_err(pg)?
        .get(0);
    let mut total = count(assignments);
    for table in AGED_BY_DAY {
        let n: i64 = tx
            .query_one(&age_by_day(table), &[&day, &AGE_CHUNK])
            .await
            .map_err(pg)?
            .get(0);
        total += count(n);
    }
    Ok(total)
}
