//! Compaction: once an hour is settled, its files are rewritten into size-bounded files that
//! hold each `event_id` once (the first stored copy: smallest `received_at`, then smallest
//! object key, then row order), and the old files are deleted.
//!
//! Safe to run twice at once and to kill at any point: the outputs are named after a hash of
//! the sorted input keys (two compactions of the same inputs write identical objects), every
//! output is stored before any input is deleted, and an input that vanished while being read
//! aborts the hour without deleting anything. The previous generation is an input of the
//! next, so late raw files are merged by the next compaction.
//!
//! Bounded memory: the hour is split into shards by a hash of `event_id`, their number chosen
//! from the rows and bytes the footers announce; each shard reads every input, keeps its own
//! rows, dedupes and writes one file. See docs/archive.md.
//!
//! Every rewrite leaves out the rows of erased units (docs/privacy.md): a late raw file or an
//! older generation cannot bring them back. Erasure forces the rewrite of an hour that holds
//! a unit (`force`), even one that is already compact.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use parquet::file::metadata::KeyValue;
use serde::Serialize;
use tokio::time::Instant;
use uuid::Uuid;

use eis_contract::Tombstones;
use eis_store::ArchiveHours;

use crate::archive::bucket::{self, ArchiveBucket};
use crate::archive::digest;
use crate::archive::event_parquet::{upgrade, FormatError};
use crate::archive::partition::HourPartition;
use crate::compaction::CompactionPolicy;
use crate::erasure::rows::without_erased;
use crate::error::ArchiveError;

use crate::archive::columns::read_batches;
pub use crate::compaction::dedupe::{
    dedupe, generation, needs_compaction, DIGEST_KEY, DROPPED_KEY, GENERATION_KEY, INPUTS_KEY,
    SHARD_KEY,
};
use crate::compaction::dedupe::{encode_shard, ids_digest, shard_rows};

/// What compaction works with: the bucket, the record of the hours that hold raw files, its
/// policy, and the time it leaves before a deadline.
#[derive(Clone, Copy)]
pub struct Compaction<'a> {
    pub bucket: &'a ArchiveBucket,
    pub hours: &'a ArchiveHours,
    pub policy: CompactionPolicy,
    pub safety_margin: Duration,
}

/// What compaction did in one run (part of the run's summary).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CompactionSummary {
    /// Hours rewritten.
    pub hours: usize,
    /// Hours found already compacted (their record is cleared).
    pub hours_clean: usize,
    /// Hours left for a later run: an input vanished, the deadline came, or an error.
    pub hours_aborted: usize,
    pub files_in: usize,
    pub files_out: usize,
    pub events_in: u64,
    pub events_out: u64,
    pub duplicates_dropped: u64,
    /// Rows of erased units left out.
    pub erased: u64,
}

/// What became of one hour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HourOutcome {
    /// One complete generation and nothing else: nothing to do.
    AlreadyCompact,
    Compacted {
        files_in: usize,
        files_out: usize,
        events_in: u64,
        events_out: u64,
        duplicates_dropped: u64,
        erased: u64,
    },
    /// Nothing deleted; the hour stays pending.
    Aborted(&'static str),
}

/// Whether at least `margin` remains before `deadline`.
fn has_time(deadline: Instant, margin: Duration) -> bool {
    deadline.saturating_duration_since(Instant::now()) > margin
}

/// Compacts one hour if it needs it, or if `force` and it holds any file (see the module's
/// notes), leaving out the rows `tombstones` cover.
pub async fn compact_hour(
    compaction: &Compaction<'_>,
    tombstones: &Arc<Tombstones>,
    hour: HourPartition,
    deadline: Instant,
    run_id: Uuid,
    force: bool,
) -> Result<HourOutcome, ArchiveError> {
    let archive = compaction.bucket;
    let folder = archive.folder(hour);
    let files = archive.list(&folder).await?;
    if !(needs_compaction(&files) || force && !files.is_empty()) {
        return Ok(HourOutcome::AlreadyCompact);
    }
    let mut rows_in = 0u64;
    for file in &files {
        let Some(meta) = archive.footer(file).await? else {
            return Ok(HourOutcome::Aborted("an input vanished"));
        };
        rows_in += u64::try_from(meta.file_metadata().num_rows()).unwrap_or_default();
    }
    let bytes_in: u64 = files.iter().map(|f| f.size).sum();
    let shards = compaction.policy.shards(rows_in, bytes_in);
    let generation = generation(&files);
    let mut outputs = Vec::new();
    let (mut events_out, mut dropped, mut erased) = (0u64, 0u64, 0u64);
    for shard in 0..shards {
        if !has_time(deadline, compaction.safety_margin) {
            return Ok(HourOutcome::Aborted("deadline"));
        }
        let mut parts = Vec::new();
        for file in &files {
            let Some(body) = archive.get(&file.key, None).await? else {
                return Ok(HourOutcome::Aborted("an input vanished"));
            };
            let batches = tokio::task::spawn_blocking(move || -> Result<_, FormatError> {
                read_batches(body)?
                    .into_iter()
                    .map(|b| shard_rows(upgrade(b)?, shard, shards))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await
            .map_err(|e| ArchiveError::Internal(e.to_string()))??;
            parts.extend(batches);
        }
        let key = bucket::compacted_key(&folder, &generation, shard, shards);
        let inputs = files.len();
        let gen = generation.clone();
        let tombstones = Arc::clone(tombstones);
        let (body, deduped_rows, shard_dropped, shard_erased) =
            tokio::task::spawn_blocking(move || -> Result<_, FormatError> {
                let mut d = dedupe(&parts)?;
                let (rows, shard_erased) = without_erased(d.rows, &tombstones)?;
                d.rows = rows;
                if shard_erased > 0 {
                    d.digest = ids_digest(&d.rows)?;
                }
                let metadata = vec![
                    KeyValue::new(GENERATION_KEY.into(), gen),
                    KeyValue::new(SHARD_KEY.into(), format!("{shard}/{shards}")),
                    KeyValue::new(INPUTS_KEY.into(), inputs.to_string()),
                    KeyValue::new(DROPPED_KEY.into(), d.dropped.to_string()),
                    KeyValue::new(DIGEST_KEY.into(), digest::to_text(d.digest)),
                ];
                Ok((
                    encode_shard(&d.rows, metadata)?,
                    d.rows.num_rows(),
                    d.dropped,
                    shard_erased,
                ))
            })
            .await
            .map_err(|e| ArchiveError::Internal(e.to_string()))??;
        archive.put(&key, body, run_id, deduped_rows).await?;
        events_out += deduped_rows as u64;
        dropped += shard_dropped;
        erased += shard_erased;
        outputs.push(key);
    }
    // Every output is stored: the inputs may go. (An output never has an input's name: its
    // generation hashes a set that includes that input.)
    let doomed: Vec<String> = files
        .iter()
        .map(|f| f.key.clone())
        .filter(|k| !outputs.contains(k))
        .collect();
    archive.delete(&doomed).await?;
    tracing::info!(
        folder = %folder,
        files_in = files.len(),
        files_out = outputs.len(),
        events_in = rows_in,
        events_out,
        duplicates_dropped = dropped,
        erased,
        "hour compacted"
    );
    Ok(HourOutcome::Compacted {
        files_in: files.len(),
        files_out: outputs.len(),
        events_in: rows_in,
        events_out,
        duplicates_dropped: dropped,
        erased,
    })
}

/// Compacts the settled hours recorded as pending, oldest first, while time remains.
pub async fn compact_settled(
    compaction: &Compaction<'_>,
    tombstones: &Arc<Tombstones>,
    now: DateTime<Utc>,
    deadline: Instant,
    run_id: Uuid,
) -> (CompactionSummary, Vec<ArchiveError>) {
    let policy = compaction.policy;
    let mut summary = CompactionSummary::default();
    let mut errors = Vec::new();
    if policy.max_hours == 0 {
        return (summary, errors);
    }
    let limit = i64::try_from(policy.max_hours).unwrap_or(i64::MAX);
    let pending = match compaction
        .hours
        .pending(policy.settled_before(now), limit, policy.write_window)
        .await
    {
        Ok(p) => p,
        Err(e) => return (summary, vec![e.into()]),
    };
    for p in pending {
        if !has_time(deadline, compaction.safety_margin) {
            break;
        }
        let outcome = compact_hour(
            compaction,
            tombstones,
            HourPartition::of(p.hour),
            deadline,
            run_id,
            false,
        )
        .await;
        let done = match outcome {
            Ok(HourOutcome::AlreadyCompact) => {
                summary.hours_clean += 1;
                true
            }
            Ok(HourOutcome::Compacted {
                files_in,
                files_out,
                events_in,
                events_out,
                duplicates_dropped,
                erased,
            }) => {
                summary.hours += 1;
                summary.files_in += files_in;
                summary.files_out += files_out;
                summary.events_in += events_in;
                summary.events_out += events_out;
                summary.duplicates_dropped += duplicates_dropped;
                summary.erased += erased;
                true
            }
            Ok(HourOutcome::Aborted(reason)) => {
                tracing::warn!(hour = %p.hour, reason, "compaction left for a later run");
                summary.hours_aborted += 1;
                false
            }
            Err(e) => {
                tracing::warn!(hour = %p.hour, code = e.code(), error = %e, "compaction failed");
                summary.hours_aborted += 1;
                errors.push(e);
                false
            }
        };
        if done && p.clearable {
            if let Err(e) = compaction.hours.clear(&p).await {
                errors.push(e.into());
            }
        }
    }
    (summary, errors)
}
