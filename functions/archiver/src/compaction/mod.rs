//! Settled hours rewritten to hold each event once (`compact`, its pure half `dedupe`), and
//! the audit that compares the archive with PostgreSQL hour by hour.

pub mod audit;
pub mod compact;
pub mod dedupe;

use std::time::Duration;

use chrono::{DateTime, Utc};

/// When an hour is compacted and how large its shards may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactionPolicy {
    /// An hour is settled once its end lies this far in the past (`EIS_COMPACT_AFTER_SECS`,
    /// 7200: late events, queue backlog and the sweep's grace are long over by then).
    pub after: Duration,
    /// Rows per shard at most, by the inputs' footers (`EIS_COMPACT_SHARD_EVENTS`, 400 000).
    pub shard_events: u64,
    /// Input bytes (compressed, as stored) per shard at most (`EIS_COMPACT_SHARD_BYTES`, 64 MiB).
    pub shard_bytes: u64,
    /// Hours compacted per run at most (`EIS_COMPACT_MAX_HOURS`, 48; 0 turns compaction off).
    pub max_hours: usize,
    /// Longest a raw upload can follow the record of its hour: a Lambda's longest run
    /// (`EIS_RAW_WRITE_WINDOW_SECS`, 900). A record younger than this is not cleared.
    pub write_window: Duration,
    /// Days of settled hours the audit checks (`EIS_AUDIT_DAYS`, 90: PostgreSQL's retention).
    pub audit_days: u32,
}

impl Default for CompactionPolicy {
    fn default() -> Self {
        Self {
            after: Duration::from_secs(7200),
            shard_events: 400_000,
            shard_bytes: 64 * 1024 * 1024,
            max_hours: 48,
            write_window: Duration::from_secs(900),
            audit_days: 90,
        }
    }
}

impl CompactionPolicy {
    /// Hours starting before this instant are settled at `now`.
    pub fn settled_before(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let after = chrono::Duration::from_std(self.after).unwrap_or_default();
        now - after - chrono::Duration::hours(1)
    }

    /// Shards for an hour of `rows` rows in `bytes` bytes.
    pub fn shards(&self, rows: u64, bytes: u64) -> u32 {
        let by_rows = rows.div_ceil(self.shard_events.max(1));
        let by_bytes = bytes.div_ceil(self.shard_bytes.max(1));
        u32::try_from(by_rows.max(by_bytes).max(1)).unwrap_or(u32::MAX)
    }
}
