//! `{"action":"restore","from":…,"to":…}`: the archived events of an hour range (hours of
//! the event `timestamp`, as the archive is laid out) back into exp.events, after a
//! PostgreSQL loss. Idempotent and safe beside live ingest: an event already stored is left
//! alone, events past the retention are skipped (retention would drop them again), and
//! nothing restored is handed to the archive again. Events of erased units stay out.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use eis_store::{ErasureStore, RestoreStore, Restored};
use serde::Serialize;
use tokio::time::Instant;

use crate::archive::bucket::{self, ArchiveBucket};
use crate::archive::event_parquet_reader;
use crate::archive::partition::HourPartition;
use crate::error::ArchiveError;
use crate::recovery::hour_stream::{in_file, read_hours, HourFiles, RangeProgress, Resume};

/// What a restore works with: the bucket, the store it restores into, PostgreSQL's retention
/// (older events are not restored), and the time it leaves before a deadline.
pub struct Restore<'a> {
    pub bucket: &'a ArchiveBucket,
    pub store: &'a RestoreStore,
    /// The erased units, loaded when the restore starts: their events stay out.
    pub erasure: &'a ErasureStore,
    pub retention_days: u32,
    pub safety_margin: std::time::Duration,
}

/// Rows read, and restored in one statement, at a time: the memory of a restore is one file's
/// bytes and this many events, whatever the size of the hour.
pub const RESTORE_CHUNK: usize = 5_000;

#[derive(Debug, Default, Serialize)]
pub struct RestoreSummary {
    pub action: &'static str,
    #[serde(flatten)]
    pub progress: RangeProgress,
    /// Rows read from the archive. An event in two files (a raw file and its compacted copy,
    /// or a file read again after the hour was listed again) is read twice, and counted
    /// `present` the second time.
    pub events: u64,
    #[serde(flatten)]
    pub restored: Restored,
    /// Older than the retention: not restored.
    pub expired: u64,
    /// Of erased units (docs/privacy.md): not restored.
    pub erased: u64,
}

fn is_archive_file(name: &str) -> bool {
    bucket::kind_of(name).is_some()
}

/// Restores the hours, in chunks of `RESTORE_CHUNK` rows, from `resume` in the first hour.
/// At least one chunk is restored per invocation, however close the deadline: every
/// invocation makes progress.
pub async fn restore(
    parts: &Restore<'_>,
    hours: &[HourPartition],
    resume: Option<Resume>,
    now: DateTime<Utc>,
    deadline: Instant,
) -> Result<RestoreSummary, ArchiveError> {
    let tombstones = parts.erasure.tombstones().await?;
    let retention = Duration::days(i64::from(parts.retention_days));
    let oldest = now - retention;
    let mut summary = RestoreSummary {
        action: "restore",
        ..Default::default()
    };
    let files = HourFiles {
        folder: |hour: &HourPartition| parts.bucket.folder(*hour),
        accept: is_archive_file,
        chunk: RESTORE_CHUNK,
    };
    let progress = read_hours(
        parts.bucket,
        hours,
        &files,
        resume,
        (deadline, parts.safety_margin),
        async |batch, key| {
            let mut events = event_parquet_reader::events(batch).map_err(|e| in_file(key, e))?;
            // One statement takes distinct ids: a file holds each id once, but it is not ours.
            let mut seen = HashSet::with_capacity(events.len());
            let before = events.len();
            events.retain(|e| seen.insert(e.event_id));
            summary.restored.present += (before - events.len()) as u64;
            summary.events += before as u64;
            let before = events.len();
            events.retain(|e| e.timestamp >= oldest);
            summary.expired += (before - events.len()) as u64;
            let before = events.len();
            events.retain(|e| !tombstones.erases(e));
            summary.erased += (before - events.len()) as u64;
            summary.restored.add(parts.store.restore(&events).await?);
            Ok(())
        },
    )
    .await?;
    summary.progress = progress;
    Ok(summary)
}
