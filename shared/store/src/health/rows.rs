//! The health rows (exp.experiment_health, exp.variant_health): what the job knows of each
//! experiment, read from the assignments, the registry and the hourly context counts, and the
//! rows written back whole, one writer at a time.

use chrono::{DateTime, Utc};

use crate::db::Db;
use crate::error::StoreError;

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

/// Every experiment seen or registered, with what its health row is computed from.
pub(super) async fn counts(db: &Db) -> Result<Vec<ExperimentCounts>, StoreError> {
    let client = db.client().await?;
    let (variants, experiments) = db
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
pub(super) async fn write(
    db: &Db,
    rows: &[ExperimentHealth],
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut client = db.connect().await?;
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
