//! `{"action":"erase"[,"requests":[…]]}` (docs/privacy.md): erasure requests recorded, then
//! carried through every store in order, each step resumable where it stopped:
//! 1. PostgreSQL: exp.erase_unit (migration V11) removes the unit's covered rows and keeps
//!    the rollups equal to a recount without them, in one transaction with the move on;
//! 2. the archive: the hour files that may hold the unit are found by their `unit_id` bloom
//!    filters, confirmed by their rows, and rewritten by compaction without the erased rows;
//!    the rewritten hours' older versions are deleted (`archive_scan`);
//! 3. the quarantine: files whose records name the unit are rewritten without them
//!    (`quarantine_scan`).
//!
//! A request is taken only once its grace has passed (`EIS_ERASURE_GRACE_SECS`): by then
//! every run that started before it (drain, compaction, ingest copies of the tombstones) has
//! ended, and everything started after it leaves the unit's covered events out.

pub mod archive_scan;
pub mod job;
pub mod quarantine_scan;
pub mod quarantine_text;
pub mod rows;

use chrono::{DateTime, Utc};
use eis_runtime::telemetry::{Emf, Namespace};
use eis_store::erasure::{ErasureRequest, RequestStatus, Step};
use serde::Serialize;
use tokio::time::Instant;
use uuid::Uuid;

use crate::erasure::job::{advance, has_time, moved};
use crate::error::ArchiveError;

pub use crate::erasure::job::{Erasure, ErasurePolicy};

/// How a run ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stopped {
    /// No request it could take is left (some may wait for their grace).
    #[default]
    Done,
    /// The deadline came: the next run goes on where this one stopped.
    Deadline,
}

/// The answer of `{"action":"erase"}`.
#[derive(Debug, Default, Serialize)]
pub struct ErasureSummary {
    pub action: &'static str,
    /// Requests completed by this run.
    pub completed: usize,
    /// Requests still pending after it, and the age of the oldest (the alarm's metric).
    pub pending: usize,
    pub oldest_pending_seconds: f64,
    pub stopped: Stopped,
    /// The requests this invocation recorded, as they now are: their receipts.
    pub requests: Vec<RequestStatus>,
}

impl ErasureSummary {
    /// CloudWatch metrics without dimensions: the alarm reads the oldest pending request's
    /// age (docs/privacy.md, "Deadline"). No unit is ever a dimension.
    pub fn emf(&self, namespace: &Namespace) -> serde_json::Value {
        let mut emf = Emf::new(namespace);
        emf.metric(
            "ErasureOldestPendingSeconds",
            self.oldest_pending_seconds,
            "Seconds",
        );
        emf.metric("ErasureRequestsCompleted", self.completed, "Count");
        emf.metric("ErasureRequestsPending", self.pending, "Count");
        emf.document(&[])
    }
}

/// Carries the pending requests whose grace has passed, oldest first, as far as time allows.
/// `recorded`: the requests this invocation recorded, reported with their receipts.
pub async fn run(
    job: &Erasure<'_>,
    recorded: &[Uuid],
    now: DateTime<Utc>,
    deadline: Instant,
) -> Result<ErasureSummary, ArchiveError> {
    let mut summary = ErasureSummary {
        action: "erase",
        ..Default::default()
    };
    let grace = chrono::Duration::from_std(job.policy.grace).unwrap_or_default();
    let requests = job
        .store
        .pending(now - grace, job.policy.max_requests)
        .await?;
    let run_id = Uuid::now_v7();
    for (i, mut request) in requests.into_iter().enumerate() {
        // The first request moves on in every invocation, however close its deadline.
        if i > 0 && !has_time(deadline, job.compaction.safety_margin) {
            summary.stopped = Stopped::Deadline;
            break;
        }
        match carry(job, &mut request, deadline, run_id).await {
            Ok(true) => summary.completed += 1,
            Ok(false) => {
                summary.stopped = Stopped::Deadline;
                break;
            }
            Err(e) => {
                tracing::warn!(request = %request.id, step = ?request.step, code = e.code(),
                    error = %e, "erasure request left for a later run");
                job.store.failed(&request, e.code()).await?;
                return Err(e);
            }
        }
    }
    let (pending, oldest) = job.store.backlog().await?;
    summary.pending = usize::try_from(pending).unwrap_or(usize::MAX);
    summary.oldest_pending_seconds = oldest
        .map(|at| (Utc::now() - at).as_seconds_f64().max(0.0))
        .unwrap_or(0.0);
    summary.requests = job.store.show(recorded).await?;
    Ok(summary)
}

/// Takes one request through its remaining steps. True when it completed; false when the
/// deadline came, or another run moved it first (it carries it on).
async fn carry(
    job: &Erasure<'_>,
    request: &mut ErasureRequest,
    deadline: Instant,
    run_id: Uuid,
) -> Result<bool, ArchiveError> {
    let first_step = request.step;
    loop {
        // Between steps the deadline is heeded; the first step of an invocation always runs.
        if request.step != first_step
            && request.step != Step::Done
            && !has_time(deadline, job.compaction.safety_margin)
        {
            return Ok(false);
        }
        match request.step {
            Step::Postgres => {
                let Some(receipt) = job
                    .store
                    .erase_postgres(request, job.retention_days)
                    .await?
                else {
                    return Ok(false);
                };
                moved(request, Step::Archive, String::new(), receipt);
            }
            Step::Archive => {
                if job.compaction.bucket.is_locked().await? {
                    return Err(ArchiveError::ArchiveLocked);
                }
                if !archive_scan::scan(job, request, deadline, run_id).await? {
                    return Ok(false);
                }
                if !advance(job, request, Step::Quarantine, String::new()).await? {
                    return Ok(false);
                }
            }
            Step::Quarantine => {
                if !quarantine_scan::scan(job, request, deadline, run_id).await? {
                    return Ok(false);
                }
                if !advance(job, request, Step::Done, String::new()).await? {
                    return Ok(false);
                }
            }
            Step::Done => {
                let done = job.store.complete(request, Utc::now()).await?;
                if done {
                    tracing::info!(request = %request.id, receipt = ?request.receipt,
                        "erasure request completed");
                }
                return Ok(done);
            }
        }
    }
}
