//! Partition upkeep for exp.events, run by the archiver's schedule: creates the coming days'
//! partitions ahead of time and applies retention by dropping whole days. Idempotent.

use chrono::{DateTime, Days, NaiveDate, Utc};
use serde::Serialize;

use crate::db::Db;
use crate::error::StoreError;

#[derive(Debug, Clone, Copy)]
pub struct MaintenancePolicy {
    /// Days of events kept in PostgreSQL (`EIS_RETENTION_DAYS`, 90 by default).
    pub retention_days: u32,
    /// Partitions created ahead of today (`EIS_PARTITIONS_AHEAD_DAYS`, 7 by default).
    pub days_ahead: u32,
}

impl Default for MaintenancePolicy {
    fn default() -> Self {
        Self {
            retention_days: 90,
            days_ahead: 7,
        }
    }
}

#[derive(Debug, Default, Serialize, PartialEq)]
pub struct MaintenanceReport {
    pub partitions_created: Vec<String>,
    pub partitions_dropped: Vec<String>,
}

/// Ensures a partition for every day from yesterday (late events) to `days_ahead` days after
/// `now`, then drops the days past retention.
pub async fn upkeep(
    db: &Db,
    now: DateTime<Utc>,
    policy: MaintenancePolicy,
) -> Result<MaintenanceReport, StoreError> {
    let client = db.client().await?;
    let today = now.date_naive();
    let mut report = MaintenanceReport::default();
    for day in days(
        today.pred_opt().unwrap_or(today),
        today + Days::new(policy.days_ahead.into()),
    ) {
        let created: bool = db
            .within_timeout(client.query_one("SELECT exp.ensure_day_partition($1)", &[&day]))
            .await?
            .get(0);
        if created {
            report
                .partitions_created
                .push(format!("events_p{}", day.format("%Y%m%d")));
        }
    }
    let retention = i32::try_from(policy.retention_days)
        .map_err(|_| StoreError::config("retention_days too large"))?;
    let rows = db
        .within_timeout(client.query(
            "SELECT exp.drop_expired_partitions($1, $2)",
            &[&retention, &now],
        ))
        .await?;
    report.partitions_dropped = rows.iter().map(|r| r.get(0)).collect();
    Ok(report)
}

fn days(first: NaiveDate, last: NaiveDate) -> impl Iterator<Item = NaiveDate> {
    first.iter_days().take_while(move |d| *d <= last)
}
