//! The tracking plan's health in the health run (docs/health.md, "Plan health"): per event type
//! the plan names, the share of its stored events flagged `schema_violation` in the last 24
//! hours the watermark passed (the watermark's UTC day and the day before, from
//! exp.plan_daily), in the run's answer and as the EMF metric `PlanViolationShare` (dimension
//! `EventType`), which the template alarms on. The dimension's values are the plan's own
//! names, never a string clients chose, so the metric series number the planned types.

use eis_runtime::telemetry::{Emf, Namespace};
use eis_store::{HealthStore, PlanViolations};
use serde::Serialize;
use serde_json::Value;

use crate::error::ArchiveError;

/// One planned type's figures, as the run's answer and the metric carry them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanShare {
    pub event_type: String,
    /// Stored events checked against the plan (stamped with a version, or flagged).
    pub events: i64,
    /// Of those, flagged `schema_violation`.
    pub violations: i64,
    pub share_percent: f64,
}

impl From<PlanViolations> for PlanShare {
    fn from(v: PlanViolations) -> Self {
        PlanShare {
            share_percent: v.share_percent(),
            event_type: v.event_type,
            events: v.events,
            violations: v.violations,
        }
    }
}

/// The planned types' shares (none while the plan is empty or nothing was checked).
pub async fn shares(store: &HealthStore) -> Result<Vec<PlanShare>, ArchiveError> {
    let figures = store.plan_violations().await?;
    Ok(figures.into_iter().map(PlanShare::from).collect())
}

/// One EMF document per planned type with checked events.
pub fn emf_documents(shares: &[PlanShare], namespace: &Namespace) -> Vec<Value> {
    shares
        .iter()
        .map(|s| {
            let mut emf = Emf::new(namespace);
            emf.metric("PlanViolationShare", s.share_percent, "Percent");
            emf.property("EventType", s.event_type.as_str());
            emf.document(&["EventType"])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_planned_type_is_one_series_in_percent() {
        let share = PlanShare::from(PlanViolations {
            event_type: "pantry_updated".into(),
            events: 40,
            violations: 3,
        });
        assert_eq!(share.share_percent, 7.5);
        let docs = emf_documents(&[share], &Namespace::default());
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0]["PlanViolationShare"], 7.5);
        assert_eq!(docs[0]["EventType"], "pantry_updated");
        let metrics = &docs[0]["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(metrics["Dimensions"], serde_json::json!([["EventType"]]));
        assert_eq!(metrics["Metrics"][0]["Unit"], "Percent");
    }

    #[test]
    fn no_checked_events_is_no_share() {
        let share = PlanShare::from(PlanViolations {
            event_type: "plan_generated".into(),
            events: 0,
            violations: 0,
        });
        assert_eq!(share.share_percent, 0.0);
    }
}
