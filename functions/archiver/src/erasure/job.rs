//! What an erasure run works with, and the moves of a request that every step makes: the
//! steps (`archive_scan`, `quarantine_scan`) and the run (`erasure::run`) share them.

use std::sync::Arc;
use std::time::Duration;

use eis_contract::Tombstones;
use eis_store::erasure::{ErasureRequest, ErasureStore, Receipt, Step};
use tokio::time::Instant;

use crate::compaction::compact::Compaction;
use crate::error::ArchiveError;

/// When a request may be worked on, and how many one run reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErasurePolicy {
    /// Time after a request before its stores are touched (`EIS_ERASURE_GRACE_SECS`, 900:
    /// a Lambda's longest run).
    pub grace: Duration,
    /// Pending requests read per run (`EIS_ERASURE_MAX_REQUESTS`, 100).
    pub max_requests: i64,
}

impl Default for ErasurePolicy {
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(900),
            max_requests: 100,
        }
    }
}

/// What an erasure run works with. The compaction carries the bucket and the safety margin;
/// the tombstones are loaded after this invocation's requests were recorded.
pub struct Erasure<'a> {
    pub store: &'a ErasureStore,
    pub compaction: Compaction<'a>,
    pub tombstones: &'a Arc<Tombstones>,
    pub quarantine_prefix: &'a str,
    /// PostgreSQL's retention: the rollups of older days are not touched.
    pub retention_days: i32,
    pub policy: ErasurePolicy,
}

/// Whether more than the margin remains before the deadline.
pub fn has_time(deadline: Instant, margin: Duration) -> bool {
    deadline.saturating_duration_since(Instant::now()) > margin
}

/// The request as the store now holds it after a move.
pub fn moved(request: &mut ErasureRequest, step: Step, position: String, receipt: Receipt) {
    request.step = step;
    request.position = position;
    request.receipt = receipt;
}

/// Records `request`'s receipt at (`step`, `position`); false when another run moved it.
pub async fn advance(
    job: &Erasure<'_>,
    request: &mut ErasureRequest,
    step: Step,
    position: String,
) -> Result<bool, ArchiveError> {
    let receipt = request.receipt;
    if !job
        .store
        .advance(request, step, &position, &receipt)
        .await?
    {
        return Ok(false);
    }
    moved(request, step, position, receipt);
    Ok(true)
}
