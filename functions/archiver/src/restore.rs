//! `{"action":"restore","from":…,"to":…}`: the archived events of an hour range (hours of
//! the event `timestamp`, as the archive is laid out) back into exp.events, after a
//! PostgreSQL loss. Idempotent and safe beside live ingest: an event already stored is left
//! alone, events past the retention are skipped (retention would drop them again), and
//! nothing restored is handed to the archive again.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use eis_store::Restored;
use serde::Serialize;
use tokio::time::Instant;
use uuid::Uuid;

use crate::app::Archiver;
use crate::archived;
use crate::dedupe;
use crate::error::ArchiveError;
use crate::partition::HourPartition;

/// Events restored per statement.
const RESTORE_CHUNK: usize = 5_000;

#[derive(Debug, Default, Serialize)]
pub struct RestoreSummary {
    pub action: &'static str,
    /// Hours read completely.
    pub hours: usize,
    pub files: usize,
    /// Distinct events read from the archive.
    pub events: u64,
    #[serde(flatten)]
    pub restored: Restored,
    /// Older than the retention: not restored.
    pub expired: u64,
    /// The first hour not read, when the deadline came first (run again from there).
    pub unfinished_from: Option<DateTime<Utc>>,
}

pub async fn restore(
    archiver: &Archiver,
    hours: &[HourPartition],
    now: DateTime<Utc>,
    deadline: Instant,
) -> Result<RestoreSummary, ArchiveError> {
    let retention = Duration::days(i64::from(archiver.config.maintenance.retention_days));
    let oldest = now - retention;
    let mut summary = RestoreSummary {
        action: "restore",
        ..Default::default()
    };
    for hour in hours {
        let left = deadline.saturating_duration_since(Instant::now());
        if left < archiver.config.safety_margin {
            summary.unfinished_from = Some(hour.start());
            break;
        }
        // Raw and compacted files of an hour may both hold an event: each id once.
        let mut seen: HashSet<Uuid> = HashSet::new();
        for file in archiver.bucket.list(&archiver.bucket.folder(*hour)).await? {
            let Some(body) = archiver.bucket.get(&file.key, None).await? else {
                continue; // compacted away meanwhile: its events are in the new files.
            };
            summary.files += 1;
            let mut events = Vec::new();
            for batch in dedupe::read_rows(body)? {
                events.extend(archived::events(&batch)?);
            }
            events.retain(|e| seen.insert(e.event_id));
            summary.events += events.len() as u64;
            let before = events.len();
            events.retain(|e| e.timestamp >= oldest);
            summary.expired += (before - events.len()) as u64;
            for chunk in events.chunks(RESTORE_CHUNK) {
                summary.restored.add(archiver.restore.restore(chunk).await?);
            }
        }
        summary.hours += 1;
    }
    Ok(summary)
}
