//! What an erasure reads to find one unit (issue 27, BENCHMARKS.md "Finding a unit"): an
//! archive of HOURS hours before now, FILES raw files per hour of FILE_EVENTS generated
//! events each, drawn from UNITS units, and one more unit present in only three of the hours
//! (a few events in every file of those hours). One erasure request for that unit, recorded
//! through `ErasureStore::record` and carried by `archiver::erasure::run` as the scheduled
//! run carries it (grace 0: taken at once). Prints the receipt's archive counts against the
//! archive's size: the bytes read to find the unit (footers and `unit_id` bloom filters of
//! every file, plus the candidate files read whole) against reading every file whole.
//!
//! Needs the archiver's environment (DATABASE_URL of a migrated database of its own,
//! EIS_QUEUE_URL, EIS_BUCKET of its own, AWS_*).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use archiver::app::Archiver;
use archiver::archive::bucket::ArchiveFile;
use archiver::archive::event_parquet::{self, EventColumns, UNIT_BLOOM_FPP};
use archiver::archive::partition::HourPartition;
use archiver::config::Config;
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use eis_contract::{validate_event, Event, Limits};
use eis_store::erasure::UnitToErase;
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::workload;

/// Events of the erased unit in each file of its hours.
const TARGET_EVENTS_PER_FILE: usize = 2;

/// The archive's shape.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub hours: usize,
    pub files_per_hour: usize,
    pub file_events: usize,
    pub units: usize,
}

pub async fn measure(shape: Shape) -> anyhow::Result<Value> {
    anyhow::ensure!(
        shape.hours >= 3 && shape.files_per_hour >= 1 && shape.file_events >= 16,
        "at least 3 hours, 1 file per hour and 16 events per file"
    );
    anyhow::ensure!(shape.units >= 1, "at least one unit");
    let mut config = Config::from_env()?;
    // Taken at once, as the tests take it: no run of this process outlives the request.
    config.erasure.grace = Duration::ZERO;
    let archiver = Archiver::from_config(config).await?;

    let now = Utc::now();
    let this_hour = now
        .duration_trunc(TimeDelta::hours(1))
        .context("truncating now to the hour")?;
    let target = format!("usr_{:016x}", shape.units as u64 + 1);
    // Three hours spread over the archive: a sixth, half and five sixths of the way back.
    let target_hours: Vec<usize> = [shape.hours / 6, shape.hours / 2, shape.hours * 5 / 6]
        .iter()
        .map(|h| (*h).max(1))
        .collect();
    anyhow::ensure!(
        target_hours[0] < target_hours[1] && target_hours[1] < target_hours[2],
        "three distinct hours for the erased unit"
    );

    let written = std::time::Instant::now();
    let mut target_events = 0usize;
    let mut unit_type = String::new();
    let mut seed = 0u64;
    let step_us = 3_600_000_000 / (shape.files_per_hour * shape.file_events) as i64;
    for hours_ago in 1..=shape.hours {
        let start = this_hour - TimeDelta::hours(hours_ago as i64);
        let hour = HourPartition::of(start);
        let holds_target = target_hours.contains(&hours_ago);
        archiver.hours.touch(hour.start()).await?;
        for file in 0..shape.files_per_hour {
            let mut columns = EventColumns::new();
            for i in 0..shape.file_events {
                // Each file spans its share of the hour, as one scheduled run's file does.
                let n = file * shape.file_events + i;
                let at = start + TimeDelta::microseconds(step_us * n as i64);
                let unit = if holds_target && i % (shape.file_events / TARGET_EVENTS_PER_FILE) == 7
                {
                    target_events += 1;
                    target.clone()
                } else {
                    unit_of(seed, shape.units)
                };
                let event = event(seed, at, &unit)?;
                unit_type.clone_from(&event.unit_type);
                columns.push(&event)?;
                seed += 1;
            }
            let key = archiver.bucket.raw_key(hour, uuid::Uuid::now_v7());
            let body = event_parquet::encode(columns)?;
            archiver
                .bucket
                .put(&key, body, uuid::Uuid::now_v7(), shape.file_events)
                .await?;
        }
    }
    let write_seconds = written.elapsed().as_secs_f64();

    // The archive as the erasure finds it, and what its footer and filters are per file.
    let mut files = Vec::new();
    for hours_ago in 1..=shape.hours {
        let hour = HourPartition::of(this_hour - TimeDelta::hours(hours_ago as i64));
        files.extend(archiver.bucket.list(&archiver.bucket.folder(hour)).await?);
    }
    anyhow::ensure!(
        files.len() == shape.hours * shape.files_per_hour,
        "{} hour files listed, {} written",
        files.len(),
        shape.hours * shape.files_per_hour
    );
    let archive_bytes: u64 = files.iter().map(|f| f.size).sum();
    let metadata = metadata_of(&archiver, &files).await?;

    let requested_at = Utc::now();
    let ids = archiver
        .erasure
        .record(
            &[UnitToErase {
                unit_type: unit_type.clone(),
                unit_id: target.clone(),
                suppress: false,
            }],
            requested_at,
        )
        .await?;
    let tombstones = Arc::new(archiver.erasure.tombstones().await?);
    let started = std::time::Instant::now();
    let summary = archiver::erasure::run(
        &archiver.erasure_job(&tombstones),
        &ids,
        Utc::now(),
        Instant::now() + Duration::from_secs(900),
    )
    .await?;
    let erasure_seconds = started.elapsed().as_secs_f64();
    let [request] = &summary.requests[..] else {
        anyhow::bail!("one request recorded, {} reported", summary.requests.len());
    };
    anyhow::ensure!(
        request.status == "completed",
        "the erasure did not complete: {request:?}"
    );
    let archive = request.receipt.archive;
    anyhow::ensure!(
        archive.removed == target_events as u64 && archive.rewritten == target_hours.len() as u64,
        "the erasure removed {} events in {} hours; the unit had {target_events} in {}",
        archive.removed,
        archive.rewritten,
        target_hours.len()
    );

    let n = files.len() as f64;
    let sizes: Vec<u64> = files.iter().map(|f| f.size).collect();
    // Every file's footer and filters are fetched; the rest of bytes_read is files read whole.
    let whole_bytes = archive.bytes_read.saturating_sub(metadata.fetched);
    Ok(json!({
        "hours": shape.hours,
        "files_per_hour": shape.files_per_hour,
        "file_events": shape.file_events,
        "units": shape.units,
        "archive_events": shape.hours * shape.files_per_hour * shape.file_events,
        "archive_files": files.len(),
        "archive_bytes": archive_bytes,
        "bloom_fpp": UNIT_BLOOM_FPP,
        "target": {
            "hours_ago": target_hours,
            "events": target_events,
        },
        "write_seconds": write_seconds,
        "erasure_seconds": erasure_seconds,
        "files_checked": archive.files_checked,
        "files_read": archive.files_read,
        "bytes_read": archive.bytes_read,
        "rewritten": archive.rewritten,
        "removed": archive.removed,
        "noncurrent_versions": archive.noncurrent_versions,
        // The unit's hours are each confirmed by their first candidate (every file of them
        // holds it): the other files read whole were the filters' false positives.
        "false_positive_files": archive.files_read.saturating_sub(target_hours.len() as u64),
        "metadata_bytes_read": metadata.fetched,
        "whole_file_bytes_read": whole_bytes,
        "bytes_read_ratio": archive.bytes_read as f64 / archive_bytes.max(1) as f64,
        "metadata_ratio": metadata.fetched as f64 / archive_bytes.max(1) as f64,
        "per_file": {
            "bytes_mean": archive_bytes as f64 / n,
            "bytes_min": sizes.iter().min(),
            "bytes_max": sizes.iter().max(),
            "footer_bytes_mean": metadata.footer as f64 / n,
            "bloom_filter_bytes_mean": metadata.filters as f64 / n,
            "footer_and_filter_bytes_mean": (metadata.footer + metadata.filters) as f64 / n,
            "fetched_bytes_mean": metadata.fetched as f64 / n,
        },
    }))
}

/// Event `seed` of `unit` at `at`, received a second later: the workload's varied body with
/// the unit replaced.
fn event(seed: u64, at: DateTime<Utc>, unit: &str) -> anyhow::Result<Event> {
    let mut body = workload::request_body(seed, at);
    body["unit_id"] = unit.into();
    let body = body.to_string();
    validate_event(
        body.as_bytes(),
        at + TimeDelta::seconds(1),
        &Limits::default(),
    )
    .map_err(|r| anyhow::anyhow!("generated event {seed} invalid: {}", r.message))
}

/// One of `units` units, spread by a multiplicative hash of the event's number.
fn unit_of(seed: u64, units: usize) -> String {
    let mixed = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 17;
    format!("usr_{:016x}", mixed % units as u64)
}

/// Sums over the files: footer bytes (the Thrift metadata and its 8-byte trailer), the
/// `unit_id` bloom filters' bytes, and what finding the unit fetches of each file without
/// reading it whole (its tail, and its filters when they lie before the tail) — the same
/// ranged reads as the erasure's scan.
#[derive(Debug, Default)]
struct Metadata {
    footer: u64,
    filters: u64,
    fetched: u64,
}

async fn metadata_of(archiver: &Archiver, files: &[ArchiveFile]) -> anyhow::Result<Metadata> {
    let mut sum = Metadata::default();
    for file in files {
        let tail = archiver
            .bucket
            .tail(file)
            .await?
            .with_context(|| format!("{} vanished", file.key))?;
        let bytes = &tail.bytes[..];
        let trailer = bytes
            .len()
            .checked_sub(8)
            .and_then(|at| bytes.get(at..at + 4))
            .context("a tail shorter than the trailer")?;
        let footer = u32::from_le_bytes(trailer.try_into().context("footer length")?);
        sum.footer += u64::from(footer) + 8;
        sum.fetched += tail.fetched;
        let schema = tail.meta.file_metadata().schema_descr();
        let Some(column) =
            (0..schema.num_columns()).find(|i| schema.column(*i).name() == "unit_id")
        else {
            anyhow::bail!("{}: no unit_id column", file.key);
        };
        for group in tail.meta.row_groups() {
            let chunk = group.column(column);
            let (Some(offset), Some(length)) =
                (chunk.bloom_filter_offset(), chunk.bloom_filter_length())
            else {
                anyhow::bail!("{}: no unit_id bloom filter", file.key);
            };
            let (offset, length) = (u64::try_from(offset)?, u64::try_from(length)?);
            sum.filters += length;
            if offset < tail.start {
                sum.fetched += length;
            }
        }
    }
    Ok(sum)
}
