//! The quarantine step of an erasure: every file under the quarantine's prefix, in key order
//! from where the last run stopped, read whole (its records are texts that did not pass the
//! contract: no filter can name their units). A file whose records name the unit is written
//! again without them under the same key (or deleted when none is left), and its older
//! versions are deleted. The quarantine's expiry (`QuarantineRetentionDays`) bounds the scan.

use eis_store::erasure::{ErasureRequest, ScanCounts};
use tokio::time::Instant;
use uuid::Uuid;

use crate::archive::quarantine_parquet;
use crate::erasure::job::{advance, has_time, Erasure};
use crate::erasure::quarantine_text::mentions;
use crate::error::ArchiveError;

/// Scans from the request's position. True when the quarantine is done, false when the
/// deadline came (the position and receipt so far are recorded) or another run moved the
/// request.
pub async fn scan(
    job: &Erasure<'_>,
    request: &mut ErasureRequest,
    deadline: Instant,
    run_id: Uuid,
) -> Result<bool, ArchiveError> {
    let bucket = job.compaction.bucket;
    // Every invocation finishes at least one file, however close its deadline.
    let mut first = true;
    loop {
        let (page, more) = bucket
            .page_after(job.quarantine_prefix, &request.position)
            .await?;
        let more = more && !page.is_empty();
        for (key, _) in &page {
            if !key.ends_with(".parquet") {
                continue;
            }
            if !first && !has_time(deadline, job.compaction.safety_margin) {
                return Ok(false);
            }
            first = false;
            let counts = erase_file(job, request, key, run_id).await?;
            request.receipt.quarantine.add(counts);
            let step = request.step;
            if !advance(job, request, step, key.clone()).await? {
                return Ok(false);
            }
        }
        if !more {
            return Ok(true);
        }
    }
}

/// One file: its records that name the unit removed.
async fn erase_file(
    job: &Erasure<'_>,
    request: &ErasureRequest,
    key: &str,
    run_id: Uuid,
) -> Result<ScanCounts, ArchiveError> {
    let bucket = job.compaction.bucket;
    let mut counts = ScanCounts {
        files_checked: 1,
        ..ScanCounts::default()
    };
    let Some(body) = bucket.get(key, None).await? else {
        return Ok(counts);
    };
    counts.files_read = 1;
    counts.bytes_read = body.len() as u64;
    let records = quarantine_parquet::decode(body)?;
    let before = records.len();
    let kept: Vec<_> = records
        .into_iter()
        .filter(|r| !mentions(r, &request.unit_type, &request.unit_id))
        .collect();
    if kept.len() == before {
        return Ok(counts);
    }
    counts.removed = (before - kept.len()) as u64;
    counts.rewritten = 1;
    if kept.is_empty() {
        bucket.delete(&[key.to_string()]).await?;
    } else {
        let len = kept.len();
        bucket
            .put(key, quarantine_parquet::encode(&kept)?, run_id, len)
            .await?;
    }
    let folder = key.rsplit_once('/').map_or("", |(folder, _)| folder);
    counts.noncurrent_versions = bucket.delete_noncurrent(&format!("{folder}/")).await?;
    Ok(counts)
}
