//! The audit (`{"action":"audit"}`): per settled hour within PostgreSQL's retention, compares
//! the distinct event ids of exp.events with those of the archive. Cheap digests first (a
//! PostgreSQL aggregate; for a compacted hour the digests in its files' footers); ids are
//! listed only where the digests differ. Events the archive misses are handed back to the
//! sweep (the next run writes them as a raw file of their hour, which compaction then merges);
//! hours holding raw files or several generations are recorded for compaction.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use eis_runtime::telemetry::{Emf, Namespace};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;
use serde::Serialize;
use tokio::time::Instant;
use uuid::Uuid;

use eis_store::PendingHandoffs;

use crate::archive::bucket::{self, ArchiveFile};
use crate::archive::digest::{self, IdDigest};
use crate::archive::event_parquet::FormatError;
use crate::archive::partition::HourPartition;
use crate::compaction::compact::{self, Compaction, DIGEST_KEY};
use crate::error::ArchiveError;

/// What the audit works with: compaction's bucket, record of hours and policy, and the
/// pending hand-offs that missing events are handed back to.
pub struct Audit<'a> {
    pub compaction: Compaction<'a>,
    pub pending: &'a PendingHandoffs,
}

/// Hours with a finding listed in the answer at most (the counts cover all).
const MAX_FINDINGS: usize = 50;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HourFinding {
    /// The hour's folder, `YYYY/MM/DD/HH/`.
    pub hour: String,
    pub missing: u64,
    pub pending: u64,
    pub extra: u64,
    pub duplicates: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AuditSummary {
    pub action: &'static str,
    pub run_id: Uuid,
    pub hours_checked: usize,
    /// Hours whose digests matched (or that are empty on both sides).
    pub hours_clean: usize,
    /// Hours whose digests differed: their ids were listed.
    pub hours_mismatched: usize,
    /// Events in PostgreSQL, received before the hour settled, missing from the archive.
    pub missing: u64,
    /// Of those, marked not handed off for the next run's sweep to archive again.
    pub requeued: u64,
    /// Events missing from the archive but received recently (possibly still on their way).
    pub pending: u64,
    /// Events in the archive that PostgreSQL does not hold.
    pub extra: u64,
    /// Hours holding an id more than once, and the surplus copies.
    pub duplicate_hours: usize,
    pub duplicates: u64,
    /// Hours holding raw files or several generations, recorded for compaction.
    pub recorded_for_compaction: usize,
    /// The deadline came before every hour was checked.
    pub incomplete: bool,
    pub findings: Vec<HourFinding>,
    pub seconds: f64,
    pub errors: Vec<&'static str>,
}

impl AuditSummary {
    /// What the alarm watches: missing events, duplicates, events PostgreSQL lacks.
    pub fn findings_count(&self) -> u64 {
        self.missing + self.duplicates + self.extra
    }

    pub fn log(&self) {
        tracing::info!(
            run_id = %self.run_id,
            hours_checked = self.hours_checked,
            hours_clean = self.hours_clean,
            hours_mismatched = self.hours_mismatched,
            missing = self.missing,
            requeued = self.requeued,
            pending = self.pending,
            extra = self.extra,
            duplicate_hours = self.duplicate_hours,
            duplicates = self.duplicates,
            recorded_for_compaction = self.recorded_for_compaction,
            incomplete = self.incomplete,
            seconds = self.seconds,
            errors = ?self.errors,
            "archive audit"
        );
    }

    pub fn emf(&self, namespace: &Namespace) -> serde_json::Value {
        let mut emf = Emf::new(namespace);
        emf.metric("AuditHoursChecked", self.hours_checked, "Count");
        emf.metric("AuditMissing", self.missing, "Count");
        emf.metric("AuditDuplicates", self.duplicates, "Count");
        emf.metric("AuditExtra", self.extra, "Count");
        emf.metric("AuditFindings", self.findings_count(), "Count");
        emf.metric("AuditErrors", self.errors.len(), "Count");
        emf.property("Function", "archiver");
        emf.property("RunId", self.run_id.to_string());
        emf.document(&["Function"])
    }
}

#[derive(Debug)]
pub struct AuditOutcome {
    pub summary: AuditSummary,
    pub errors: Vec<ArchiveError>,
}

impl AuditOutcome {
    pub fn into_result(self) -> Result<AuditSummary, ArchiveError> {
        match self.errors.into_iter().next() {
            Some(first) => Err(first),
            None => Ok(self.summary),
        }
    }
}

/// Audits the settled hours of the last `audit_days` days, newest first, while time remains.
pub async fn audit(parts: &Audit<'_>, now: DateTime<Utc>, deadline: Instant) -> AuditOutcome {
    let started = Instant::now();
    let policy = parts.compaction.policy;
    let mut summary = AuditSummary {
        action: "audit",
        run_id: Uuid::now_v7(),
        ..AuditSummary::default()
    };
    let mut errors = Vec::new();
    let settled = policy.settled_before(now);
    // Missing events received before this are reported and re-archived; later ones may
    // still be on their way (queue backlog, sweep grace) and are only counted as pending.
    let received_before = now - chrono::Duration::from_std(policy.after).unwrap_or_default();
    let oldest = now - chrono::Duration::days(policy.audit_days.into());
    let mut hour = HourPartition::of(settled - chrono::Duration::microseconds(1)).start();
    while hour >= oldest {
        if deadline.saturating_duration_since(Instant::now()) <= parts.compaction.safety_margin {
            summary.incomplete = true;
            break;
        }
        match audit_hour(parts, HourPartition::of(hour), received_before).await {
            Ok(report) => summary.add(report),
            Err(e) => {
                tracing::warn!(%hour, code = e.code(), error = %e, "hour not audited");
                errors.push(e);
            }
        }
        hour -= chrono::Duration::hours(1);
    }
    summary.seconds = started.elapsed().as_secs_f64();
    summary.errors = errors.iter().map(ArchiveError::code).collect();
    AuditOutcome { summary, errors }
}

#[derive(Debug, Default)]
struct HourReport {
    finding: HourFinding,
    mismatched: bool,
    requeued: u64,
    recorded: bool,
}

impl AuditSummary {
    fn add(&mut self, r: HourReport) {
        self.hours_checked += 1;
        if r.mismatched {
            self.hours_mismatched += 1;
        } else {
            self.hours_clean += 1;
        }
        let f = &r.finding;
        self.missing += f.missing;
        self.pending += f.pending;
        self.extra += f.extra;
        self.requeued += r.requeued;
        if f.duplicates > 0 {
            self.duplicate_hours += 1;
            self.duplicates += f.duplicates;
        }
        self.recorded_for_compaction += usize::from(r.recorded);
        let found = f.missing + f.pending + f.extra + f.duplicates > 0;
        if found && self.findings.len() < MAX_FINDINGS {
            self.findings.push(r.finding);
        }
    }
}

/// The ids of the hour's files, each with the number of copies.
async fn archive_ids(
    parts: &Audit<'_>,
    files: &[ArchiveFile],
) -> Result<HashMap<String, u64>, ArchiveError> {
    let mut ids: HashMap<String, u64> = HashMap::new();
    for file in files {
        // A file compacted away meanwhile: its rows are in the new generation, which this
        // listing lacks; the hour is simply checked again by the next audit.
        let Some(body) = parts.compaction.bucket.get(&file.key, None).await? else {
            return Err(ArchiveError::StorageUnavailable(format!(
                "{} vanished during the audit",
                file.key
            )));
        };
        let file_ids = tokio::task::spawn_blocking(move || read_ids(body))
            .await
            .map_err(|e| ArchiveError::Internal(e.to_string()))??;
        for id in file_ids {
            *ids.entry(id).or_default() += 1;
        }
    }
    Ok(ids)
}

/// Only the `event_id` column of a file.
fn read_ids(body: Bytes) -> Result<Vec<String>, FormatError> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(body)?;
    let mask = ProjectionMask::columns(builder.parquet_schema(), ["event_id"]);
    let mut ids = Vec::new();
    for batch in builder.with_projection(mask).build()? {
        let batch = batch?;
        // Any string type another writer may use; another type is an error, not "no ids".
        let col = crate::archive::columns::Text::of(batch.column(0).as_ref()).ok_or_else(|| {
            FormatError::Parquet(parquet::errors::ParquetError::General(
                "event_id is not a string column".into(),
            ))
        })?;
        ids.extend((0..col.len()).map(|i| col.get(i).unwrap_or_default().to_string()));
    }
    Ok(ids)
}

/// The sum of the digests in the footers of one complete generation; None when a file lacks it.
async fn footer_digest(
    parts: &Audit<'_>,
    files: &[ArchiveFile],
) -> Result<Option<IdDigest>, ArchiveError> {
    let mut total = IdDigest::default();
    for file in files {
        let meta = parts.compaction.bucket.footer(file).await?;
        let Some(d) = meta
            .as_ref()
            .and_then(|m| bucket::metadata_value(m, DIGEST_KEY))
            .and_then(digest::from_text)
        else {
            return Ok(None);
        };
        total = digest::merge(total, d);
    }
    Ok(Some(total))
}

async fn audit_hour(
    parts: &Audit<'_>,
    hour: HourPartition,
    received_before: DateTime<Utc>,
) -> Result<HourReport, ArchiveError> {
    let (from, to) = (hour.start(), hour.start() + chrono::Duration::hours(1));
    let mut report = HourReport::default();
    report.finding.hour = hour.folder();
    let pg = parts.compaction.hours.digest(from, to).await?;
    let files = parts
        .compaction
        .bucket
        .list(&parts.compaction.bucket.folder(hour))
        .await?;
    if files.is_empty() && pg.count == 0 {
        return Ok(report);
    }
    let needs_compaction = compact::needs_compaction(&files);
    if needs_compaction {
        parts.compaction.hours.touch(from).await?;
        report.recorded = true;
    }
    let mut ids = None;
    let archive = match needs_compaction {
        false => footer_digest(parts, &files).await?,
        true => None,
    };
    let archive = match archive {
        Some(d) => d,
        None => {
            let found = archive_ids(parts, &files).await?;
            let mut d = IdDigest::default();
            for (id, copies) in &found {
                digest::add(&mut d, id);
                report.finding.duplicates += copies - 1;
            }
            ids = Some(found);
            d
        }
    };
    if archive == pg {
        return Ok(report);
    }
    report.mismatched = true;
    let archived = match ids {
        Some(ids) => ids,
        None => archive_ids(parts, &files).await?,
    };
    let stored = parts.compaction.hours.ids(from, to).await?;
    let in_pg: HashSet<String> = stored.iter().map(|(id, _)| id.to_string()).collect();
    let mut missing = Vec::new();
    for (id, received_at) in &stored {
        if !archived.contains_key(&id.to_string()) {
            if *received_at < received_before {
                missing.push(*id);
            } else {
                report.finding.pending += 1;
            }
        }
    }
    report.finding.missing = missing.len() as u64;
    report.finding.extra = archived.keys().filter(|id| !in_pg.contains(*id)).count() as u64;
    report.requeued = parts.pending.requeue(&missing, from, to).await?;
    tracing::warn!(
        hour = %report.finding.hour,
        missing = report.finding.missing,
        requeued = report.requeued,
        extra = report.finding.extra,
        "archive differs from the database"
    );
    Ok(report)
}
