//! The archive step of an erasure: every hour folder, in key order from where the last run
//! stopped. A file is read whole only when a row group's `unit_id` bloom filter says the unit
//! may be in it (or the file has no filter: written before they existed); an hour is
//! rewritten only when such a file really holds rows the tombstones cover. What a scan costs
//! is the footers and filters of the archive, not its rows (BENCHMARKS.md, "Finding a unit").

use bytes::Bytes;
use eis_store::erasure::{ErasureRequest, ScanCounts};
use parquet::bloom_filter::Sbbf;
use tokio::time::Instant;
use uuid::Uuid;

use crate::archive::bucket::{ArchiveFile, Tail};
use crate::archive::columns::read_batches;
use crate::archive::event_parquet::{upgrade, FormatError};
use crate::archive::partition::HourPartition;
use crate::compaction::compact::{compact_hour, HourOutcome};
use crate::erasure::job::{advance, has_time, Erasure};
use crate::erasure::rows::erased_rows;
use crate::error::ArchiveError;

/// `YYYY/MM/DD/HH/`.
const FOLDER_LEN: usize = 14;
/// The first hour of an invocation is rewritten whatever its deadline says (a Lambda's
/// timeout cuts it off safely: compaction may be killed at any point).
const FIRST_HOUR_TIME: std::time::Duration = std::time::Duration::from_secs(900);

/// Scans from the request's position. True when the archive is done, false when the
/// deadline came (the position and receipt so far are recorded) or another run moved the
/// request.
pub async fn scan(
    job: &Erasure<'_>,
    request: &mut ErasureRequest,
    deadline: Instant,
    run_id: Uuid,
) -> Result<bool, ArchiveError> {
    let bucket = job.compaction.bucket;
    let prefix = bucket.prefix().to_string();
    // Every invocation finishes at least one hour, however close its deadline.
    let mut first = true;
    loop {
        let (page, more) = bucket.page_after(&prefix, &request.position).await?;
        let more = more && !page.is_empty();
        let mut position = request.position.clone();
        for (key, _) in &page {
            if key.as_str() <= position.as_str() {
                continue;
            }
            let rest = key.strip_prefix(&prefix).unwrap_or(key);
            let Some(hour) = rest.get(..FOLDER_LEN).and_then(HourPartition::parse_folder) else {
                // Not an hour file (the quarantine's prefix, other objects): hour folders
                // sort before anything that is not a year, so past the years the scan ends.
                if rest > "9999/" {
                    return record(job, request, position).await;
                }
                position.clone_from(key);
                continue;
            };
            if !first && !has_time(deadline, job.compaction.safety_margin) {
                record(job, request, position).await?;
                return Ok(false);
            }
            let hour_deadline = if first {
                deadline.max(Instant::now() + job.compaction.safety_margin + FIRST_HOUR_TIME)
            } else {
                deadline
            };
            first = false;
            let Some(counts) =
                erase_hour(job, &request.unit_id, hour, hour_deadline, run_id).await?
            else {
                record(job, request, position).await?;
                return Ok(false);
            };
            request.receipt.archive.add(counts);
            // Past every key of the folder: '~' sorts after any name we write.
            position = format!("{prefix}{}~", hour.folder());
            if counts.rewritten > 0 && !record(job, request, position.clone()).await? {
                return Ok(false);
            }
        }
        if !record(job, request, position).await? {
            return Ok(false);
        }
        if !more {
            return Ok(true);
        }
    }
}

/// Records the position (and the receipt so far); false when another run moved the request.
async fn record(
    job: &Erasure<'_>,
    request: &mut ErasureRequest,
    position: String,
) -> Result<bool, ArchiveError> {
    let step = request.step;
    advance(job, request, step, position).await
}

/// One hour: which files may hold the unit, whether they do, and the rewrite if so. None
/// when the rewrite was left for a later run (the deadline, or an input vanished).
async fn erase_hour(
    job: &Erasure<'_>,
    unit_id: &str,
    hour: HourPartition,
    deadline: Instant,
    run_id: Uuid,
) -> Result<Option<ScanCounts>, ArchiveError> {
    let bucket = job.compaction.bucket;
    let folder = bucket.folder(hour);
    let files = bucket.list(&folder).await?;
    let mut counts = ScanCounts::default();
    let mut candidates = Vec::new();
    for file in &files {
        counts.files_checked += 1;
        let Some(tail) = bucket.tail(file).await? else {
            // Gone since the listing (a compaction): its rows are in the new generation.
            candidates.push(file);
            continue;
        };
        counts.bytes_read += tail.fetched;
        let (maybe, fetched) = may_hold(job, file, &tail, unit_id).await?;
        counts.bytes_read += fetched;
        if maybe {
            candidates.push(file);
        }
    }
    let mut holds = false;
    for file in candidates {
        let Some(body) = bucket.get(&file.key, None).await? else {
            holds = true;
            break;
        };
        counts.files_read += 1;
        counts.bytes_read += body.len() as u64;
        if covers_rows(job, body).await? {
            holds = true;
            break;
        }
    }
    if !holds {
        return Ok(Some(counts));
    }
    match compact_hour(
        &job.compaction,
        job.tombstones,
        hour,
        deadline,
        run_id,
        true,
    )
    .await?
    {
        HourOutcome::Compacted { erased, .. } => {
            counts.rewritten += 1;
            counts.removed += erased;
            counts.noncurrent_versions += bucket.delete_noncurrent(&folder).await?;
            Ok(Some(counts))
        }
        HourOutcome::AlreadyCompact => Ok(Some(counts)),
        HourOutcome::Aborted(reason) => {
            tracing::info!(%folder, reason, "erasure's rewrite left for a later run");
            Ok(None)
        }
    }
}

/// Whether a row group's `unit_id` bloom filter may hold the unit (a file or row group
/// without one may), and the bytes fetched beyond the tail for the filters.
async fn may_hold(
    job: &Erasure<'_>,
    file: &ArchiveFile,
    tail: &Tail,
    unit_id: &str,
) -> Result<(bool, u64), ArchiveError> {
    let schema = tail.meta.file_metadata().schema_descr();
    let Some(column) = (0..schema.num_columns()).find(|i| schema.column(*i).name() == "unit_id")
    else {
        return Ok((true, 0));
    };
    let mut fetched = 0u64;
    for group in tail.meta.row_groups() {
        let chunk = group.column(column);
        let (Some(offset), Some(length)) =
            (chunk.bloom_filter_offset(), chunk.bloom_filter_length())
        else {
            return Ok((true, fetched));
        };
        let (Ok(offset), Ok(length)) = (u64::try_from(offset), u64::try_from(length)) else {
            return Ok((true, fetched));
        };
        let end = tail.start + tail.bytes.len() as u64;
        let bytes = if offset >= tail.start && offset + length <= end {
            let from = usize::try_from(offset - tail.start).unwrap_or(usize::MAX);
            tail.bytes.slice(from..from + length as usize)
        } else {
            let range = format!("bytes={offset}-{}", offset + length - 1);
            let Some(bytes) = job.compaction.bucket.get(&file.key, Some(range)).await? else {
                return Ok((true, fetched));
            };
            fetched += bytes.len() as u64;
            bytes
        };
        let filter =
            Sbbf::from_bytes(&bytes).map_err(|e| ArchiveError::Encode(FormatError::Parquet(e)))?;
        if filter.check(unit_id) {
            return Ok((true, fetched));
        }
    }
    Ok((false, fetched))
}

/// Whether a file holds a row that the tombstones cover.
async fn covers_rows(job: &Erasure<'_>, body: Bytes) -> Result<bool, ArchiveError> {
    let tombstones = std::sync::Arc::clone(job.tombstones);
    tokio::task::spawn_blocking(move || -> Result<bool, FormatError> {
        for batch in read_batches(body)? {
            if erased_rows(&upgrade(batch)?, &tombstones)?.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    })
    .await
    .map_err(|e| ArchiveError::Internal(e.to_string()))?
    .map_err(ArchiveError::Encode)
}
