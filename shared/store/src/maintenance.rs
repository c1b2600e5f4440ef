//! Partition upkeep for exp.events, run by the archiver's schedule: creates the coming days'
//! partitions ahead of time and applies retention by dropping whole days. Idempotent.
//!
//! Retention never holds up ingest for longer than its lock timeout (`lock_timeout`): a day
//! whose lock is not granted in time (a long reader of exp.events) is kept and tried again by
//! the next run. A day is checked for pending hand-offs under that lock, so an event stored
//! meanwhile is never dropped with its hand-off pending (migrations/V8).

use std::time::Duration;

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
    /// Longest wait for the lock that dropping a day takes on exp.events, during which
    /// inserts queue behind it (`EIS_RETENTION_LOCK_TIMEOUT_MS`, 1 s by default).
    pub lock_timeout: Duration,
}

impl Default for MaintenancePolicy {
    fn default() -> Self {
        Self {
            retention_days: 90,
            days_ahead: 7,
            lock_timeout: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, Default, Serialize, PartialEq)]
pub struct MaintenanceReport {
    pub partitions_created: Vec<String>,
    pub partitions_dropped: Vec<String>,
    /// Expired days kept because they hold an event not yet archived.
    pub partitions_pending: Vec<String>,
    /// Expired days kept because their lock was not granted within the lock timeout.
    pub partitions_locked: Vec<String>,
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
    let lock_timeout_ms = i32::try_from(policy.lock_timeout.as_millis())
        .map_err(|_| StoreError::config("retention lock timeout too large"))?
        .max(1);
    let rows = db
        .within_timeout(client.query(
            "SELECT partition_name, outcome FROM exp.drop_expired_partitions($1, $2, $3)",
            &[&retention, &now, &lock_timeout_ms],
        ))
        .await?;
    for row in &rows {
        let (name, outcome): (String, String) = (row.get(0), row.get(1));
        match outcome.as_str() {
            "dropped" => report.partitions_dropped.push(name),
            "pending" => report.partitions_pending.push(name),
            "locked" => report.partitions_locked.push(name),
            other => {
                return Err(StoreError::other(format!(
                    "retention answered {other:?} for {name}"
                )))
            }
        }
    }
    Ok(report)
}

fn days(first: NaiveDate, last: NaiveDate) -> impl Iterator<Item = NaiveDate> {
    first.iter_days().take_while(move |d| *d <= last)
}
