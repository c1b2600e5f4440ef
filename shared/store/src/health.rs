//! The experiment-health job's storage (migration V6, docs/health.md): it counts new events
//! into exp.assignments, exp.context_hourly and the daily rollups by a watermark on
//! received_at, off the ingest path, and rewrites the health tables from them.
//!
//! One window of received_at is one transaction, serialised by an advisory lock (a run that
//! finds it taken does nothing), so overlapping runs are safe and a run that dies counts
//! nothing twice: the watermark moves in the same commit as the counts.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_postgres::Transaction;

use crate::db::Db;
use crate::error::StoreError;

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
        /// (experiment, day) rollups recomputed.
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

/// The window's events, and their exposures (one row per unit and variant named).
const BATCH: &str = r#"
CREATE TEMP TABLE health_batch ON COMMIT DROP AS
SELECT unit_type, unit_id, experiments, "timestamp" AS ts
FROM exp.events WHERE received_at >= $1 AND received_at < $2
"#;

const EXPOSURES: &str = r#"
CREATE TEMP TABLE health_exposures ON COMMIT DROP AS
SELECT x ->> 'experiment_id' AS experiment_id, x ->> 'variant_id' AS variant_id,
       b.unit_type, b.unit_id, min(b.ts) AS first_at, max(b.ts) AS last_at, count(*) AS events
FROM health_batch b, jsonb_array_elements(b.experiments) x
GROUP BY 1, 2, 3, 4
"#;

/// The (experiment, day) rollups to recompute. First those that a new or earlier first
/// exposure changes (a unit's events from that exposure on now count, up to the old first
/// exposure or today); recorded before the assignments change.
const TOUCHED_BY_EXPOSURES: &str = r#"
CREATE TEMP TABLE health_touched (experiment_id text, day date, PRIMARY KEY (experiment_id, day))
ON COMMIT DROP;
INSERT INTO health_touched
SELECT DISTINCT e.experiment_id, d::date
FROM health_exposures e
LEFT JOIN exp.assignments a USING (experiment_id, unit_type, unit_id, variant_id)
CROSS JOIN LATERAL generate_series(
    date_trunc('day', e.first_at AT TIME ZONE 'UTC'),
    date_trunc('day', coalesce(a.first_exposure_at, greatest(now(), e.last_at)) AT TIME ZONE 'UTC'),
    interval '1 day') d
WHERE a.first_exposure_at IS NULL OR e.first_at < a.first_exposure_at
ON CONFLICT DO NOTHING;
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

/// Then the days of the window's events, for every experiment their unit was exposed to by
/// then.
const TOUCHED_BY_EVENTS: &str = r#"
INSERT INTO health_touched
SELECT DISTINCT a.experiment_id, (b.ts AT TIME ZONE 'UTC')::date
FROM health_batch b
JOIN exp.assignments a
  ON a.unit_type = b.unit_type AND a.unit_id = b.unit_id AND a.first_exposure_at <= b.ts
ON CONFLICT DO NOTHING
"#;

const CONTEXT: &str = r#"
INSERT INTO exp.context_hourly AS c (hour, events, without_context)
SELECT date_trunc('hour', ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', count(*),
       count(*) FILTER (WHERE experiments = '[]'::jsonb)
FROM health_batch GROUP BY 1
ON CONFLICT (hour) DO UPDATE
SET events = c.events + EXCLUDED.events, without_context = c.without_context + EXCLUDED.without_context
"#;

/// The events each touched rollup counts (the rule of docs/health.md): a unit's events of
/// that day at or after its first exposure to the experiment; an event naming the experiment
/// counts for the variant it names, any other for each variant the unit was exposed to.
const COUNTED: &str = r#"
CREATE TEMP TABLE health_counted ON COMMIT DROP AS
SELECT t.experiment_id, a.variant_id, t.day, e.event_type, e.unit_type, e.unit_id, e.metrics
FROM health_touched t
JOIN exp.events e
  ON e."timestamp" >= t.day::timestamp AT TIME ZONE 'UTC'
 AND e."timestamp" < (t.day + 1)::timestamp AT TIME ZONE 'UTC'
JOIN exp.assignments a
  ON a.experiment_id = t.experiment_id AND a.unit_type = e.unit_type AND a.unit_id = e.unit_id
 AND a.first_exposure_at <= e."timestamp"
WHERE NOT e.experiments @> jsonb_build_array(jsonb_build_object('experiment_id', t.experiment_id))
   OR e.experiments @> jsonb_build_array(
          jsonb_build_object('experiment_id', t.experiment_id, 'variant_id', a.variant_id))
"#;

const ROLLUPS: &str = r#"
DELETE FROM exp.variant_daily v USING health_touched t
WHERE v.experiment_id = t.experiment_id AND v.day = t.day;
DELETE FROM exp.variant_daily_metrics v USING health_touched t
WHERE v.experiment_id = t.experiment_id AND v.day = t.day;
INSERT INTO exp.variant_daily (experiment_id, variant_id, day, event_type, events, units)
SELECT experiment_id, variant_id, day, event_type, count(*), count(DISTINCT (unit_type, unit_id))
FROM health_counted GROUP BY 1, 2, 3, 4;
INSERT INTO exp.variant_daily_metrics
    (experiment_id, variant_id, day, event_type, metric, count, mean, p50, p95)
SELECT c.experiment_id, c.variant_id, c.day, c.event_type, m.key, count(*), avg(m.value::numeric),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY m.value::float8),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY m.value::float8)
FROM health_counted c, jsonb_each(c.metrics) m
WHERE jsonb_typeof(m.value) = 'number'
GROUP BY 1, 2, 3, 4, 5;
"#;

/// Moves the watermark and forgets the horizons older than the one just used.
const PROGRESS: &str = r#"
UPDATE exp.health_progress SET processed_to = $1;
"#;
const PRUNE_HORIZONS: &str = "DELETE FROM exp.health_horizons WHERE taken_at < $1";

/// Per experiment, its variants: the registry's (with weights) and those seen, with the units
/// seen in exactly one variant (the sample-ratio test's input).
const VARIANTS: &str = r#"
WITH per_unit AS (
    SELECT experiment_id, min(variant_id) AS variant_id, count(*) AS variants
    FROM exp.assignments GROUP BY experiment_id, unit_type, unit_id
), single AS (
    SELECT experiment_id, variant_id, count(*) AS units
    FROM per_unit WHERE variants = 1 GROUP BY 1, 2
), seen AS (
    SELECT DISTINCT experiment_id, variant_id FROM exp.assignments
), variants AS (
    SELECT experiment_id, variant_id, r.weight
    FROM seen FULL JOIN exp.experiment_variants r USING (experiment_id, variant_id)
)
SELECT v.experiment_id, v.variant_id, v.weight, x.experiment_id IS NOT NULL AS registered,
       coalesce(s.units, 0) AS units
FROM variants v
LEFT JOIN exp.experiments x USING (experiment_id)
LEFT JOIN single s USING (experiment_id, variant_id)
ORDER BY 1, 2
"#;

/// Per experiment: units, crossover units, events and those of unknown variants, the window
/// and the events without context in its hours.
const EXPERIMENTS: &str = r#"
WITH per_unit AS (
    SELECT experiment_id, count(*) AS variants
    FROM exp.assignments GROUP BY experiment_id, unit_type, unit_id
), units AS (
    SELECT experiment_id, count(*) AS units, count(*) FILTER (WHERE variants > 1) AS crossover
    FROM per_unit GROUP BY 1
), seen AS (
    SELECT a.experiment_id, sum(a.events)::bigint AS events,
           coalesce(sum(a.events) FILTER (WHERE x.experiment_id IS NOT NULL AND v.variant_id IS NULL), 0)::bigint AS unknown,
           min(a.first_exposure_at) AS first_at, max(a.last_exposure_at) AS last_at
    FROM exp.assignments a
    LEFT JOIN exp.experiments x USING (experiment_id)
    LEFT JOIN exp.experiment_variants v USING (experiment_id, variant_id)
    GROUP BY 1
), ids AS (
    SELECT experiment_id FROM seen UNION SELECT experiment_id FROM exp.experiments
), windows AS (
    SELECT ids.experiment_id, x.experiment_id IS NOT NULL AS registered,
           coalesce(x.status = 'stopped', false) AS stopped,
           coalesce(x.starts_at, s.first_at) AS window_start,
           CASE WHEN x.experiment_id IS NULL THEN s.last_at ELSE coalesce(x.ends_at, now()) END AS window_end
    FROM ids
    LEFT JOIN exp.experiments x USING (experiment_id)
    LEFT JOIN seen s USING (experiment_id)
)
SELECT w.experiment_id, w.registered, w.stopped, coalesce(u.units, 0), coalesce(u.crossover, 0),
       coalesce(s.events, 0), coalesce(s.unknown, 0), w.window_start, w.window_end,
       coalesce(c.events, 0)::bigint, coalesce(c.without_context, 0)::bigint
FROM windows w
LEFT JOIN units u USING (experiment_id)
LEFT JOIN seen s USING (experiment_id)
LEFT JOIN LATERAL (
    SELECT sum(events) AS events, sum(without_context) AS without_context
    FROM exp.context_hourly
    WHERE hour >= date_trunc('hour', w.window_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
      AND hour < w.window_end
) c ON true
ORDER BY 1
"#;

/// The health rows are replaced whole, one writer at a time.
const CLEAR_HEALTH: &str = r#"
SELECT pg_advisory_xact_lock(hashtext('exp.experiment_health'));
DELETE FROM exp.variant_health;
DELETE FROM exp.experiment_health;
"#;
const WRITE_HEALTH: &str = r#"
INSERT INTO exp.experiment_health
SELECT * FROM unnest($1::text[], $2::bool[], $3::timestamptz[], $4::int8[], $5::float8[],
                     $6::float8[], $7::int4[], $8::bool[], $9::int8[], $10::float8[],
                     $11::int8[], $12::int8[], $13::float8[], $14::timestamptz[],
                     $15::timestamptz[], $16::int8[], $17::int8[], $18::float8[])
"#;
const WRITE_VARIANTS: &str = r#"
INSERT INTO exp.variant_health
SELECT * FROM unnest($1::text[], $2::text[], $3::bool[], $4::int8[], $5::float8[], $6::float8[])
"#;

/// A variant of an experiment, as the health tables see it.
#[derive(Debug, Clone, PartialEq)]
pub struct VariantUnits {
    pub variant_id: String,
    /// Listed by the registry, or the experiment is not registered.
    pub known: bool,
    /// The registry's weight (None when not listed or not registered).
    pub weight: Option<f64>,
    /// Units seen in this variant only.
    pub units: i64,
}

/// What the job knows of one experiment: the inputs of its health row.
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentCounts {
    pub experiment_id: String,
    pub registered: bool,
    pub stopped: bool,
    pub variants: Vec<VariantUnits>,
    /// Distinct units, crossover ones included.
    pub units: i64,
    pub crossover_units: i64,
    pub events: i64,
    pub unknown_variant_events: i64,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub window_events: i64,
    pub no_context_events: i64,
}

/// The sample-ratio test's outcome, as stored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SrmFigures {
    pub chi_squared: f64,
    pub p_value: f64,
    pub degrees_of_freedom: u32,
}

/// One row of exp.experiment_health with its variants' rows.
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentHealth {
    pub counts: ExperimentCounts,
    pub srm: Option<SrmFigures>,
    /// Every known variant has at least the minimum of units.
    pub srm_checked: bool,
    /// Each variant's expected share of units (same order as `counts.variants`; None for an
    /// unknown variant).
    pub expected_shares: Vec<Option<f64>>,
}

impl ExperimentCounts {
    /// Units in exactly one known variant: the sample-ratio test's input.
    pub fn srm_units(&self) -> i64 {
        self.variants
            .iter()
            .filter(|v| v.known)
            .map(|v| v.units)
            .sum()
    }
    pub fn crossover_share(&self) -> f64 {
        share(self.crossover_units, self.units)
    }
    pub fn unknown_variant_share(&self) -> f64 {
        share(self.unknown_variant_events, self.events)
    }
    pub fn no_context_share(&self) -> f64 {
        share(self.no_context_events, self.window_events)
    }
}

fn share(part: i64, whole: i64) -> f64 {
    if whole > 0 {
        part as f64 / whole as f64
    } else {
        0.0
    }
}

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
        let tx = client.transaction().await.map_err(StoreError::from_pg)?;
        tx.batch_execute(&format!(
            "SET LOCAL statement_timeout = {}",
            policy.statement_timeout.as_millis()
        ))
        .await
        .map_err(StoreError::from_pg)?;
        if !tx
            .query_one(LOCK, &[])
            .await
            .map_err(StoreError::from_pg)?
            .get::<_, bool>(0)
        {
            return Ok(Advance::Busy);
        }
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
        let (events, days) = count_window(&tx, from, to).await?;
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

    /// Every experiment seen or registered, with what its health row is computed from.
    pub async fn counts(&self) -> Result<Vec<ExperimentCounts>, StoreError> {
        let client = self.db.client().await?;
        let (variants, experiments) = self
            .db
            .within_timeout(async {
                let v = client.query(VARIANTS, &[]).await?;
                let e = client.query(EXPERIMENTS, &[]).await?;
                Ok((v, e))
            })
            .await?;
        let mut out: Vec<ExperimentCounts> = experiments
            .iter()
            .map(|r| ExperimentCounts {
                experiment_id: r.get(0),
                registered: r.get(1),
                stopped: r.get(2),
                variants: Vec::new(),
                units: r.get(3),
                crossover_units: r.get(4),
                events: r.get(5),
                unknown_variant_events: r.get(6),
                window_start: r.get(7),
                window_end: r.get(8),
                window_events: r.get(9),
                no_context_events: r.get(10),
            })
            .collect();
        // Both queries are ordered by experiment id.
        let mut at = 0;
        for r in &variants {
            let id: &str = r.get(0);
            while at < out.len() && out[at].experiment_id.as_str() < id {
                at += 1;
            }
            let Some(experiment) = out.get_mut(at).filter(|e| e.experiment_id == id) else {
                continue;
            };
            let weight: Option<f64> = r.get(2);
            let registered: bool = r.get(3);
            experiment.variants.push(VariantUnits {
                variant_id: r.get(1),
                known: !registered || weight.is_some(),
                weight,
                units: r.get(4),
            });
        }
        Ok(out)
    }

    /// Replaces the health tables' rows with these.
    pub async fn write(
        &self,
        rows: &[ExperimentHealth],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut client = self.db.connect().await?;
        let tx = client.transaction().await.map_err(StoreError::from_pg)?;
        let c = HealthColumns::new(rows, at);
        tx.batch_execute(CLEAR_HEALTH)
            .await
            .map_err(StoreError::from_pg)?;
        tx.execute(
            WRITE_HEALTH,
            &[
                &c.ids,
                &c.registered,
                &c.computed_at,
                &c.srm_units,
                &c.chi_squared,
                &c.p_value,
                &c.degrees_of_freedom,
                &c.srm_checked,
                &c.crossover_units,
                &c.crossover_share,
                &c.events,
                &c.unknown_variant_events,
                &c.unknown_variant_share,
                &c.window_start,
                &c.window_end,
                &c.window_events,
                &c.no_context_events,
                &c.no_context_share,
            ],
        )
        .await
        .map_err(StoreError::from_pg)?;
        let v = VariantColumns::new(rows);
        tx.execute(
            WRITE_VARIANTS,
            &[
                &v.ids,
                &v.variants,
                &v.known,
                &v.units,
                &v.expected_share,
                &v.expected_units,
            ],
        )
        .await
        .map_err(StoreError::from_pg)?;
        tx.commit().await.map_err(StoreError::from_pg)
    }
}

/// Counts `[from, to)` into the assignments, the hourly context counts and the rollups.
/// Returns the events counted and the (experiment, day) rollups recomputed.
async fn count_window(
    tx: &Transaction<'_>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<(u64, u64), StoreError> {
    let pg = StoreError::from_pg;
    let events = tx.execute(BATCH, &[&from, &to]).await.map_err(pg)?;
    tx.batch_execute(EXPOSURES).await.map_err(pg)?;
    tx.batch_execute(TOUCHED_BY_EXPOSURES).await.map_err(pg)?;
    tx.batch_execute(ASSIGN).await.map_err(pg)?;
    tx.batch_execute(TOUCHED_BY_EVENTS).await.map_err(pg)?;
    tx.batch_execute(CONTEXT).await.map_err(pg)?;
    tx.batch_execute(COUNTED).await.map_err(pg)?;
    tx.batch_execute(ROLLUPS).await.map_err(pg)?;
    let days: i64 = tx
        .query_one("SELECT count(*) FROM health_touched", &[])
        .await
        .map_err(pg)?
        .get(0);
    Ok((events, u64::try_from(days).unwrap_or_default()))
}

fn chrono_duration(d: Duration) -> Result<chrono::Duration, StoreError> {
    chrono::Duration::from_std(d)
        .map_err(|e| StoreError::config("health job duration out of range").caused_by(e))
}

/// exp.experiment_health's rows as column arrays, in WRITE_HEALTH's order.
struct HealthColumns {
    ids: Vec<String>,
    registered: Vec<bool>,
    computed_at: Vec<DateTime<Utc>>,
    srm_units: Vec<i64>,
    chi_squared: Vec<Option<f64>>,
    p_value: Vec<Option<f64>>,
    degrees_of_freedom: Vec<Option<i32>>,
    srm_checked: Vec<bool>,
    crossover_units: Vec<i64>,
    crossover_share: Vec<f64>,
    events: Vec<i64>,
    unknown_variant_events: Vec<i64>,
    unknown_variant_share: Vec<f64>,
    window_start: Vec<DateTime<Utc>>,
    window_end: Vec<DateTime<Utc>>,
    window_events: Vec<i64>,
    no_context_events: Vec<i64>,
    no_context_share: Vec<f64>,
}

impl HealthColumns {
    fn new(rows: &[ExperimentHealth], at: DateTime<Utc>) -> Self {
        let c = |f: fn(&ExperimentCounts) -> i64| rows.iter().map(|r| f(&r.counts)).collect();
        Self {
            ids: rows
                .iter()
                .map(|r| r.counts.experiment_id.clone())
                .collect(),
            registered: rows.iter().map(|r| r.counts.registered).collect(),
            computed_at: vec![at; rows.len()],
            srm_units: rows.iter().map(|r| r.counts.srm_units()).collect(),
            chi_squared: rows.iter().map(|r| r.srm.map(|s| s.chi_squared)).collect(),
            p_value: rows.iter().map(|r| r.srm.map(|s| s.p_value)).collect(),
            degrees_of_freedom: rows
                .iter()
                .map(|r| {
                    r.srm
                        .map(|s| i32::try_from(s.degrees_of_freedom).unwrap_or(i32::MAX))
                })
                .collect(),
            srm_checked: rows.iter().map(|r| r.srm_checked).collect(),
            crossover_units: c(|c| c.crossover_units),
            crossover_share: rows.iter().map(|r| r.counts.crossover_share()).collect(),
            events: c(|c| c.events),
            unknown_variant_events: c(|c| c.unknown_variant_events),
            unknown_variant_share: rows
                .iter()
                .map(|r| r.counts.unknown_variant_share())
                .collect(),
            window_start: rows.iter().map(|r| r.counts.window_start).collect(),
            window_end: rows.iter().map(|r| r.counts.window_end).collect(),
            window_events: c(|c| c.window_events),
            no_context_events: c(|c| c.no_context_events),
            no_context_share: rows.iter().map(|r| r.counts.no_context_share()).collect(),
        }
    }
}

/// exp.variant_health's rows as column arrays, in WRITE_VARIANTS's order.
struct VariantColumns {
    ids: Vec<String>,
    variants: Vec<String>,
    known: Vec<bool>,
    units: Vec<i64>,
    expected_share: Vec<Option<f64>>,
    expected_units: Vec<Option<f64>>,
}

impl VariantColumns {
    fn new(rows: &[ExperimentHealth]) -> Self {
        let mut c = Self {
            ids: Vec::new(),
            variants: Vec::new(),
            known: Vec::new(),
            units: Vec::new(),
            expected_share: Vec::new(),
            expected_units: Vec::new(),
        };
        for row in rows {
            let srm_units = row.counts.srm_units();
            for (v, share) in row.counts.variants.iter().zip(&row.expected_shares) {
                c.ids.push(row.counts.experiment_id.clone());
                c.variants.push(v.variant_id.clone());
                c.known.push(v.known);
                c.units.push(v.units);
                c.expected_share.push(*share);
                c.expected_units.push(share.map(|s| s * srm_units as f64));
            }
        }
        c
    }
}
