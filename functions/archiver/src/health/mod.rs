//! The `{"action":"health"}` input (docs/health.md): counts new events into the assignments
//! and rollups (eis_store::health, by a watermark), then recomputes every experiment's
//! health row, with the sample-ratio test of `srm`, and reports each registered experiment in
//! the log and as EMF metrics (dimension `Experiment`) for the template's alarms; unregistered
//! ones are summed under one `other` (docs/health.md, "Metrics and alarms": the metrics'
//! cardinality never depends on the strings clients send). It also reports the tracking
//! plan's violation share per planned event type (`plan`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use eis_runtime::telemetry::{Emf, Namespace};
use eis_store::{Advance, ExperimentCounts, ExperimentHealth, HealthStore, SrmFigures};
use serde::Serialize;
use serde_json::Value;
use tokio::time::Instant;

pub mod plan;
pub mod srm;

use crate::error::ArchiveError;

/// The job's settings (crate::config).
#[derive(Debug, Clone, Copy)]
pub struct HealthPolicy {
    pub watermark: eis_store::WatermarkPolicy,
    /// The sample-ratio test counts (its p-value is reported to the alarm) only once every
    /// variant has at least this many units (`EIS_SRM_MIN_UNITS`, 100).
    pub min_units: i64,
}

/// Time kept before the deadline for the health rows and the report.
const REPORT_MARGIN: Duration = Duration::from_secs(5);
/// A first look often finds a transaction still running from before; one more look after
/// this pause usually proves it finished.
const SECOND_LOOK: Duration = Duration::from_millis(200);

/// What one health run did.
#[derive(Debug, Default, Serialize)]
pub struct HealthSummary {
    pub action: &'static str,
    /// Transactions that counted a window of received_at.
    pub windows: u32,
    pub events: u64,
    /// (experiment, day) rollups changed.
    pub rollup_days: u64,
    /// Rows aged out past retention (assignments of experiments with no exposure in it, and
    /// the counting state of its days), at most `eis_store::AGE_CHUNK` of each kind per run.
    pub aged_rows: u64,
    /// Every event received before this is counted.
    pub processed_to: Option<DateTime<Utc>>,
    /// Another run held the job: this one counted nothing and wrote no health rows.
    pub busy: bool,
    pub experiments: usize,
    /// Experiments whose sample-ratio test counts (every variant at the minimum of units).
    pub srm_checked: usize,
    /// Per event type the plan names, its violation share in the last 24 hours counted
    /// (`plan`); empty when the run was busy or nothing of the plan was counted.
    pub plan: Vec<plan::PlanShare>,
    pub seconds: f64,
}

/// One health run: counts until caught up (or the deadline), then rewrites the health rows.
pub async fn run(
    store: &HealthStore,
    policy: &HealthPolicy,
    now: DateTime<Utc>,
    deadline: Instant,
) -> Result<(HealthSummary, Vec<ExperimentHealth>), ArchiveError> {
    let started = Instant::now();
    let mut summary = HealthSummary {
        action: "health",
        ..HealthSummary::default()
    };
    let mut looks = 0;
    while Instant::now() + REPORT_MARGIN < deadline {
        match store.advance(policy.watermark).await? {
            Advance::Busy => {
                summary.busy = true;
                break;
            }
            Advance::Unchanged { at } => {
                summary.processed_to = at;
                looks += 1;
                if looks > 1 {
                    break;
                }
                tokio::time::sleep(SECOND_LOOK).await;
            }
            Advance::Counted {
                to,
                events,
                days,
                more,
                ..
            } => {
                summary.windows += 1;
                summary.events += events;
                summary.rollup_days += days;
                summary.processed_to = Some(to);
                if !more {
                    break;
                }
            }
        }
    }
    let mut rows = Vec::new();
    if !summary.busy {
        summary.aged_rows = store.age(policy.watermark).await?;
        rows = store
            .counts()
            .await?
            .into_iter()
            .map(|c| assess(c, policy.min_units))
            .collect();
        store.write(&rows, now).await?;
        summary.plan = plan::shares(store).await?;
    }
    summary.experiments = rows.len();
    summary.srm_checked = rows.iter().filter(|r| r.srm_checked).count();
    summary.seconds = started.elapsed().as_secs_f64();
    Ok((summary, rows))
}

/// An experiment's health row from its counts: the sample-ratio test over its known variants
/// (the registry's weights, or equal shares when it is not registered), against the units
/// seen in exactly one variant.
pub fn assess(counts: ExperimentCounts, min_units: i64) -> ExperimentHealth {
    let known: Vec<_> = counts.variants.iter().filter(|v| v.known).collect();
    let weights: Vec<f64> = known.iter().map(|v| v.weight.unwrap_or(1.0)).collect();
    let observed: Vec<u64> = known
        .iter()
        .map(|v| u64::try_from(v.units).unwrap_or(0))
        .collect();
    let mut known_shares = srm::shares(&weights).into_iter();
    let srm = srm::srm(&observed, &weights).map(|s| SrmFigures {
        chi_squared: s.chi_squared,
        p_value: s.p_value,
        degrees_of_freedom: s.degrees_of_freedom,
    });
    let expected_shares = counts
        .variants
        .iter()
        .map(|v| v.known.then(|| known_shares.next().unwrap_or(0.0)))
        .collect();
    ExperimentHealth {
        srm_checked: srm.is_some() && known.iter().all(|v| v.units >= min_units),
        srm,
        expected_shares,
        counts,
    }
}

/// The dimension value under which every unregistered experiment is summed.
pub const OTHER: &str = "other";

/// The EMF documents of one run: one per running registered experiment (operators register
/// them: a bounded set), and one `other` summing every running unregistered experiment, so
/// the number of metric series never follows the experiment ids clients send.
pub fn emf_documents(rows: &[ExperimentHealth], namespace: &Namespace) -> Vec<Value> {
    let mut docs: Vec<Value> = rows
        .iter()
        .filter(|r| r.counts.registered)
        .filter_map(|r| emf(r, namespace))
        .collect();
    let others: Vec<&ExperimentCounts> = rows
        .iter()
        .map(|r| &r.counts)
        .filter(|c| !c.registered && !c.stopped)
        .collect();
    if !others.is_empty() {
        docs.push(other_emf(&others, namespace));
    }
    docs
}

/// The unregistered experiments' sums (no `SrmPValue`: p-values do not add up).
fn other_emf(others: &[&ExperimentCounts], namespace: &Namespace) -> Value {
    let sum = |f: fn(&ExperimentCounts) -> i64| others.iter().map(|c| f(c)).sum::<i64>();
    let summed = ExperimentCounts {
        experiment_id: OTHER.into(),
        units: sum(|c| c.units),
        crossover_units: sum(|c| c.crossover_units),
        events: sum(|c| c.events),
        unknown_variant_events: sum(|c| c.unknown_variant_events),
        registered: false,
        stopped: false,
        variants: Vec::new(),
        window_start: DateTime::<Utc>::UNIX_EPOCH,
        window_end: DateTime::<Utc>::UNIX_EPOCH,
        window_events: 0,
        no_context_events: 0,
    };
    let mut emf = Emf::new(namespace);
    emf.metric("UnregisteredExperiments", others.len(), "Count");
    counts_metrics(&mut emf, &summed);
    emf.property("Experiment", OTHER);
    emf.document(&["Experiment"])
}

fn counts_metrics(emf: &mut Emf, c: &ExperimentCounts) {
    emf.metric("CrossoverUnits", c.crossover_units, "Count");
    emf.metric("CrossoverShare", c.crossover_share(), "None");
    emf.metric("UnknownVariantEvents", c.unknown_variant_events, "Count");
    emf.metric("UnknownVariantShare", c.unknown_variant_share(), "None");
}

/// The EMF document of one experiment under its own id ([`emf_documents`] decides which get
/// one); stopped experiments get none (nothing to alarm on). `SrmPValue` is present only when
/// the test counts.
pub fn emf(row: &ExperimentHealth, namespace: &Namespace) -> Option<Value> {
    let c = &row.counts;
    if c.stopped {
        return None;
    }
    let mut emf = Emf::new(namespace);
    if let (true, Some(srm)) = (row.srm_checked, row.srm) {
        emf.metric("SrmPValue", srm.p_value, "None");
    }
    counts_metrics(&mut emf, c);
    emf.property("Experiment", c.experiment_id.as_str());
    Some(emf.document(&["Experiment"]))
}

/// One log line per registered experiment, naming it, and one for all unregistered ones (each
/// is in exp.experiment_health): the log's volume does not follow the ids clients send either.
pub fn log(rows: &[ExperimentHealth]) {
    rows.iter()
        .filter(|r| r.counts.registered)
        .for_each(log_one);
    let others = rows.iter().filter(|r| !r.counts.registered);
    let (count, units) = others.fold((0usize, 0i64), |(n, u), r| (n + 1, u + r.counts.units));
    if count > 0 {
        tracing::info!(
            experiments = count,
            units,
            "unregistered experiments health (exp.experiment_health names them)"
        );
    }
}

fn log_one(row: &ExperimentHealth) {
    let c = &row.counts;
    tracing::info!(
        experiment = %c.experiment_id,
        registered = c.registered,
        stopped = c.stopped,
        units = c.units,
        srm_units = c.srm_units(),
        p_value = row.srm.map(|s| s.p_value),
        chi_squared = row.srm.map(|s| s.chi_squared),
        srm_checked = row.srm_checked,
        crossover_units = c.crossover_units,
        unknown_variant_events = c.unknown_variant_events,
        no_context_share = c.no_context_share(),
        "experiment health"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use eis_store::VariantUnits;

    fn counts(variants: &[(&str, bool, Option<f64>, i64)]) -> ExperimentCounts {
        let at = DateTime::<Utc>::UNIX_EPOCH;
        ExperimentCounts {
            experiment_id: "exp_checkout".into(),
            registered: variants.iter().any(|v| v.2.is_some()),
            stopped: false,
            variants: variants
                .iter()
                .map(|&(id, known, weight, units)| VariantUnits {
                    variant_id: id.into(),
                    known,
                    weight,
                    units,
                })
                .collect(),
            units: variants.iter().map(|v| v.3).sum(),
            crossover_units: 0,
            events: 0,
            unknown_variant_events: 0,
            window_start: at,
            window_end: at,
            window_events: 0,
            no_context_events: 0,
        }
    }

    #[test]
    fn unknown_variants_stay_out_of_the_test_and_weights_set_the_expected_shares() {
        let row = assess(
            counts(&[
                ("control", true, Some(3.0), 300),
                ("rogue", false, None, 7),
                ("treatment", true, Some(1.0), 100),
            ]),
            100,
        );
        assert_eq!(row.counts.srm_units(), 400);
        assert_eq!(row.expected_shares, vec![Some(0.75), None, Some(0.25)]);
        let srm = row.srm.expect("two known variants");
        assert_eq!(srm.degrees_of_freedom, 1);
        assert!(srm.chi_squared.abs() < 1e-12, "{srm:?}");
        assert!(row.srm_checked);
    }

    #[test]
    fn the_test_counts_only_once_every_variant_has_the_minimum() {
        let row = assess(
            counts(&[("a", true, None, 150), ("b", true, None, 99)]),
            100,
        );
        assert!(row.srm.is_some());
        assert!(!row.srm_checked);
        let doc = emf(&row, &Namespace::default()).expect("running");
        assert!(doc.get("SrmPValue").is_none(), "{doc}");
        assert_eq!(doc["Experiment"], "exp_checkout");
        assert_eq!(doc["CrossoverUnits"], 0);
    }

    #[test]
    fn a_stopped_experiment_reports_no_metrics() {
        let mut c = counts(&[("a", true, None, 500), ("b", true, None, 500)]);
        c.stopped = true;
        let row = assess(c, 100);
        assert!(row.srm_checked);
        assert!(emf(&row, &Namespace::default()).is_none());
    }
}
