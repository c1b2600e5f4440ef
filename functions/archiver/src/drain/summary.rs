//! What one run did: returned to the caller, logged as one JSON line, and turned into
//! CloudWatch metrics (Embedded Metric Format) once, when the run ends.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use eis_runtime::telemetry::{Emf, Namespace};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::archive::partition::HourPartition;
use crate::compaction::compact::CompactionSummary;
use crate::drain::fanout::FanoutSummary;
use crate::drain::queue::Deleted;

/// Why the run stopped receiving.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stop {
    /// A receive found no message it had not seen: the queue is drained.
    #[default]
    Drained,
    /// Less than the safety margin remained before the deadline.
    Deadline,
    /// Receiving or storing failed; the rest is left for the next run.
    Error,
}

impl Stop {
    pub fn as_str(self) -> &'static str {
        match self {
            Stop::Drained => "drained",
            Stop::Deadline => "deadline",
            Stop::Error => "error",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Time-ordered id of the run; also in each object's `eis-run-id` metadata.
    pub run_id: Uuid,
    /// Distinct messages received and decoded.
    pub messages: usize,
    /// Events in the objects stored by this run (from messages and from the sweep).
    pub events: usize,
    /// Objects stored.
    pub files: usize,
    /// Bytes of the objects stored.
    pub bytes: u64,
    /// Distinct hour partitions written to.
    pub partitions: usize,
    /// Distinct undecodable messages seen: left in the queue, for its redrive policy to move
    /// to the dead-letter queue.
    pub dead_lettered: usize,
    /// Quarantine records written under the rejected prefix, and their files.
    pub rejected_records: usize,
    pub rejected_files: usize,
    /// Events and quarantine records of erased units received (from the queue or the sweep)
    /// and not archived (docs/privacy.md).
    pub erased: usize,
    /// Events read from PostgreSQL by the sweep (not handed to SQS by the ingest function).
    pub swept: usize,
    /// Swept keys settled in exp.pending_handoffs (their objects are stored, or their event is gone).
    pub marked: u64,
    /// Messages deleted from the queue (their objects are stored).
    pub deleted: usize,
    /// Objects that could not be stored (their messages stay in the queue).
    pub failed_files: usize,
    /// Archived messages whose delete failed (they will be archived again).
    pub failed_deletes: usize,
    pub partitions_created: usize,
    pub partitions_dropped: usize,
    /// Expired days kept: they hold an event not yet archived (dropped once it is).
    pub partitions_kept_pending: usize,
    /// Expired days kept: their lock was not granted within `EIS_RETENTION_LOCK_TIMEOUT_MS`
    /// (a long reader); tried again next run.
    pub partitions_kept_locked: usize,
    /// Age, at the end of the run, of the earliest `received_at` among the events stored:
    /// how far the archive lags behind ingestion.
    pub oldest_event_age_seconds: Option<f64>,
    pub seconds: f64,
    pub stopped: Stop,
    /// Settled hours rewritten to hold each event once.
    pub compaction: CompactionSummary,
    /// Drain workers this (scheduled) run started.
    pub fanout: FanoutSummary,
    /// Codes of the errors met, in order (see `ArchiveError::code`).
    pub errors: Vec<&'static str>,
}

/// A run's counts as it goes; the summary once it ends.
pub struct Tally {
    pub summary: Summary,
    partitions: BTreeSet<HourPartition>,
    earliest_received: Option<DateTime<Utc>>,
}

impl Tally {
    pub fn new(run_id: Uuid) -> Self {
        Tally {
            summary: Summary {
                run_id,
                ..Summary::default()
            },
            partitions: BTreeSet::new(),
            earliest_received: None,
        }
    }

    /// A file stored: `earliest_received` is its earliest event's.
    pub fn stored(
        &mut self,
        partition: HourPartition,
        events: usize,
        bytes: usize,
        earliest_received: Option<DateTime<Utc>>,
    ) {
        self.summary.files += 1;
        self.summary.bytes += bytes as u64;
        self.summary.events += events;
        self.partitions.insert(partition);
        self.earliest_received = match (self.earliest_received, earliest_received) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }

    pub fn deleted(&mut self, deleted: &Deleted) {
        self.summary.deleted += deleted.deleted;
        self.summary.failed_deletes += deleted.failed;
    }

    /// The summary at the end of a run of `seconds` at `now`, stopped for `stopped`, with
    /// the codes of the errors it met.
    pub fn finish(
        mut self,
        now: DateTime<Utc>,
        seconds: f64,
        stopped: Stop,
        errors: Vec<&'static str>,
    ) -> Summary {
        self.summary.partitions = self.partitions.len();
        self.summary.oldest_event_age_seconds = self
            .earliest_received
            .map(|t| ((now - t).num_milliseconds() as f64 / 1000.0).max(0.0));
        self.summary.seconds = seconds;
        self.summary.stopped = stopped;
        self.summary.errors = errors;
        self.summary
    }
}

impl Summary {
    /// The run's log line: one JSON object with every field.
    pub fn log(&self) {
        tracing::info!(
            run_id = %self.run_id,
            messages = self.messages,
            events = self.events,
            files = self.files,
            bytes = self.bytes,
            partitions = self.partitions,
            dead_lettered = self.dead_lettered,
            swept = self.swept,
            marked = self.marked,
            deleted = self.deleted,
            failed_files = self.failed_files,
            failed_deletes = self.failed_deletes,
            partitions_created = self.partitions_created,
            partitions_dropped = self.partitions_dropped,
            partitions_kept_pending = self.partitions_kept_pending,
            partitions_kept_locked = self.partitions_kept_locked,
            oldest_event_age_seconds = self.oldest_event_age_seconds,
            seconds = self.seconds,
            stopped = self.stopped.as_str(),
            compacted_hours = self.compaction.hours,
            compaction_files_in = self.compaction.files_in,
            compaction_files_out = self.compaction.files_out,
            compaction_events_in = self.compaction.events_in,
            compaction_events_out = self.compaction.events_out,
            duplicates_dropped = self.compaction.duplicates_dropped,
            compaction_hours_aborted = self.compaction.hours_aborted,
            queue_depth = self.fanout.queue_depth,
            workers_started = self.fanout.workers_started,
            workers_failed = self.fanout.workers_failed,
            errors = ?self.errors,
            "archive run"
        );
    }

    /// The EMF document: CloudWatch extracts the listed metrics from this log line.
    pub fn emf(&self, namespace: &Namespace) -> Value {
        let mut emf = Emf::new(namespace);
        emf.metric("Messages", self.messages, "Count");
        emf.metric("Events", self.events, "Count");
        emf.metric("Files", self.files, "Count");
        emf.metric("Bytes", self.bytes, "Bytes");
        emf.metric("Partitions", self.partitions, "Count");
        emf.metric("DeadLettered", self.dead_lettered, "Count");
        emf.metric("Swept", self.swept, "Count");
        emf.metric("RejectedRecords", self.rejected_records, "Count");
        emf.metric("Deleted", self.deleted, "Count");
        emf.metric("FailedFiles", self.failed_files, "Count");
        emf.metric("FailedDeletes", self.failed_deletes, "Count");
        emf.metric("RunErrors", self.errors.len(), "Count");
        emf.metric("Duration", self.seconds, "Seconds");
        emf.metric("CompactedHours", self.compaction.hours, "Count");
        emf.metric("CompactionFilesIn", self.compaction.files_in, "Count");
        emf.metric("CompactionFilesOut", self.compaction.files_out, "Count");
        emf.metric(
            "DuplicatesDropped",
            self.compaction.duplicates_dropped,
            "Count",
        );
        emf.metric("WorkersStarted", self.fanout.workers_started, "Count");
        emf.metric("WorkersFailed", self.fanout.workers_failed, "Count");
        if let Some(age) = self.oldest_event_age_seconds {
            emf.metric("OldestEventAge", age, "Seconds");
        }
        emf.property("Function", "archiver");
        emf.property("RunId", self.run_id.to_string());
        emf.document(&["Function"])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_lists_every_metric_it_carries() {
        let summary = Summary {
            messages: 12,
            events: 3400,
            files: 2,
            bytes: 123_456,
            dead_lettered: 1,
            oldest_event_age_seconds: Some(42.5),
            seconds: 3.2,
            errors: vec!["storage_unavailable"],
            ..Summary::default()
        };
        let doc = summary.emf(&Namespace::default());
        let defs = doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(defs.len() >= 12, "{defs:?}");
        for def in &defs {
            let name = def["Name"].as_str().unwrap_or_default();
            assert!(doc.get(name).is_some(), "metric {name} has no value");
        }
        assert_eq!(doc["Events"], 3400);
        assert_eq!(doc["DeadLettered"], 1);
        assert_eq!(doc["OldestEventAge"], 42.5);
        assert_eq!(doc["RunErrors"], 1);
        assert_eq!(doc["Function"], "archiver");
    }

    #[test]
    fn the_stop_reason_reads_the_same_in_the_log_and_the_answer() {
        for stop in [Stop::Drained, Stop::Deadline, Stop::Error] {
            let json = serde_json::to_value(stop).expect("json");
            assert_eq!(json, stop.as_str());
        }
    }

    #[test]
    fn without_archived_events_there_is_no_age() {
        let doc = Summary::default().emf(&Namespace::default());
        assert!(doc.get("OldestEventAge").is_none());
        let names: Vec<&str> = doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .map(|a| a.iter().filter_map(|d| d["Name"].as_str()).collect())
            .unwrap_or_default();
        assert!(!names.contains(&"OldestEventAge"));
    }
}
