//! One scheduled run, following the data: sweep PostgreSQL, receive from SQS, group by hour,
//! encode and upload the files, then delete the messages and mark the swept rows whose files
//! are all stored (the `Ledger`); then the compaction of settled hours and the partition
//! maintenance. The counts go to the `Tally`.
//! (Over 400 lines: one state machine whose stages share the run's state; its parts with a
//! job of their own are ledger.rs, summary.rs, queue.rs, bucket.rs and batcher.rs.)
//!
//! At-least-once: nothing is acknowledged before every object holding its events is stored,
//! so a crash or timeout at any point loses nothing and at worst archives an event twice.
//! Memory stays bounded however long the queue: buffers become files at the file limits,
//! and receiving pauses while the bytes held reach `max_held_bytes` or files wait for an
//! upload slot.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use eis_contract::Tombstones;
use eis_handoff::message::{self, Message};
use eis_store::maintenance::{self, MaintenancePolicy};
use eis_store::{ArchiveHours, Db, PendingHandoffs, StoreError};
use tokio::task::{JoinError, JoinSet};
use tokio::time::Instant;
use uuid::Uuid;

use crate::archive::bucket::ArchiveBucket;
use crate::archive::event_parquet;
use crate::archive::partition::{by_partition, HourPartition};
use crate::archive::quarantine_parquet;
use crate::compaction::compact::{self, Compaction};
use crate::compaction::CompactionPolicy;
use crate::drain::batcher::{Batcher, BufferLimits, Chunk, ChunkId, SourceId};
use crate::drain::fanout::{self, Fanout};
use crate::drain::ledger::{Ledger, Origin, Seen};
use crate::drain::queue::{ArchiveQueue, Deleted, Received, MAX_DELETE_BATCH};
use crate::drain::summary::{Stop, Summary, Tally};
use crate::erasure::quarantine_text;
use crate::error::ArchiveError;

/// SQS's long-polling wait is counted in whole seconds: a shorter budget cannot receive.
const MIN_RECEIVE_BUDGET: Duration = Duration::from_secs(1);
/// How long after the run's deadline its sweep's claim lasts.
const SWEEP_LEASE_MARGIN: Duration = Duration::from_secs(60);
/// Quarantine records held before they are written (their messages are at most 256 KiB).
const QUARANTINE_HELD_BYTES: usize = 16 * 1024 * 1024;

/// A run's settings (config.rs names the variable of each).
#[derive(Clone, Copy)]
pub struct DrainPolicy {
    pub safety_margin: Duration,
    pub sweep_grace: Duration,
    pub sweep_limit: i64,
    pub limits: BufferLimits,
    pub receive_concurrency: usize,
    pub receive_wait: Duration,
    pub upload_concurrency: usize,
    pub maintenance: MaintenancePolicy,
    pub compaction: CompactionPolicy,
}

/// What a run works with: the queue and the bucket, the database's pending hand-offs, record
/// of hours and partitions, its settings, and the fan-out (None: a drain worker's run, or no
/// function to invoke outside Lambda).
pub struct Drain<'a> {
    pub queue: &'a ArchiveQueue,
    pub bucket: &'a ArchiveBucket,
    pub pending: &'a PendingHandoffs,
    pub hours: &'a ArchiveHours,
    pub db: &'a Db,
    pub quarantine_prefix: &'a str,
    pub policy: DrainPolicy,
    pub fanout: Option<Fanout<'a>>,
    /// Erased units: their covered events and quarantine records are not archived. None when
    /// they could not be loaded: the run archives what it receives unfiltered and compacts
    /// nothing (a later compaction, with the tombstones, leaves those rows out).
    pub tombstones: Option<&'a Arc<Tombstones>>,
}

/// What a run did, and what went wrong on the way (a run goes on after most errors).
#[derive(Debug)]
pub struct RunOutcome {
    pub summary: Summary,
    pub errors: Vec<ArchiveError>,
}

impl RunOutcome {
    /// The summary when nothing went wrong, else the first error (each one is logged).
    pub fn into_result(self) -> Result<Summary, ArchiveError> {
        match self.errors.into_iter().next() {
            Some(first) => Err(first),
            None => Ok(self.summary),
        }
    }
}

struct UploadDone {
    chunk: ChunkId,
    partition: HourPartition,
    key: String,
    events: usize,
    earliest_received: Option<DateTime<Utc>>,
    /// Recording the hour for compaction failed (the file was still written).
    touch_error: Option<StoreError>,
    result: Result<usize, ArchiveError>,
}

/// The calls in flight.
#[derive(Default)]
struct InFlight {
    receives: JoinSet<Result<Vec<Received>, ArchiveError>>,
    uploads: JoinSet<UploadDone>,
    deletes: JoinSet<Deleted>,
}

struct Run<'a> {
    job: &'a Drain<'a>,
    now: DateTime<Utc>,
    deadline: Instant,
    batcher: Batcher<Origin>,
    ledger: Ledger,
    in_flight: InFlight,
    stop: Option<Stop>,
    /// Hours recorded in `exp.archive_hours` by this run (before their first upload).
    touched: BTreeSet<HourPartition>,
    tally: Tally,
    errors: Vec<ArchiveError>,
    /// The pending hand-off rows this run's sweep claimed, settled at the end.
    swept_rows: Vec<eis_store::PendingId>,
    /// Quarantine messages received and not yet written under the quarantine prefix.
    quarantine: HeldQuarantine,
}

/// Quarantine records and the receipt handles of the messages that carried them.
#[derive(Default)]
struct HeldQuarantine {
    records: Vec<eis_contract::Quarantined>,
    handles: Vec<String>,
    bytes: usize,
}

impl Drain<'_> {
    /// One run: `now` is the run's clock (sweep grace, maintenance, lag metric); no receive
    /// starts once less than the safety margin remains before `deadline`. With a fan-out, it
    /// first starts drain workers if the queue holds more than it can drain alone.
    pub async fn run(&self, now: DateTime<Utc>, deadline: Instant) -> RunOutcome {
        let started = Instant::now();
        let mut run = Run {
            job: self,
            now,
            deadline,
            batcher: Batcher::new(self.policy.limits),
            ledger: Ledger::default(),
            in_flight: InFlight::default(),
            stop: None,
            touched: BTreeSet::new(),
            tally: Tally::new(Uuid::now_v7()),
            errors: Vec::new(),
            swept_rows: Vec::new(),
            quarantine: HeldQuarantine::default(),
        };
        if let Some(fanout) = &self.fanout {
            run.tally.summary.fanout = fanout::fan_out(fanout).await;
        }
        run.sweep().await;
        run.drain().await;
        run.finish().await;
        run.compact().await;
        run.maintain().await;
        run.outcome(started)
    }
}

impl Drain<'_> {
    /// Compaction of the hours this run's bucket and record hold.
    fn compaction(&self) -> Compaction<'_> {
        Compaction {
            bucket: self.bucket,
            hours: self.hours,
            policy: self.policy.compaction,
            safety_margin: self.policy.safety_margin,
        }
    }
}

impl Run<'_> {
    /// Time for one more receive, if more than the margin remains.
    fn receive_budget(&self) -> Option<Duration> {
        self.deadline
            .saturating_duration_since(Instant::now())
            .checked_sub(self.job.policy.safety_margin)
            .filter(|budget| *budget >= MIN_RECEIVE_BUDGET)
    }

    /// An error after which receiving more would not help: the rest waits for the next run.
    fn fail(&mut self, err: ArchiveError) {
        self.stop.get_or_insert(Stop::Error);
        self.errors.push(log_error(err));
    }

    /// Events the ingest function stored but could not hand to SQS: archived in the same
    /// files as the queue's, acknowledged per hour partition.
    async fn sweep(&mut self) {
        if self.receive_budget().is_none() {
            return;
        }
        let policy = &self.job.policy;
        // Claimed until shortly after this run's deadline: a run cut off by its timeout
        // leaves what it took to the next one.
        let lease = self.deadline.saturating_duration_since(Instant::now()) + SWEEP_LEASE_MARGIN;
        let swept = self
            .job
            .pending
            .sweep(self.now, policy.sweep_grace, policy.sweep_limit, lease)
            .await;
        match swept {
            Ok(swept) => {
                self.tally.summary.swept = swept.events.len();
                self.swept_rows = swept.rows;
                self.ledger.completed(Origin::Swept(swept.gone));
                for (_, events) in by_partition(swept.events) {
                    let keys = events.iter().map(|e| (e.event_id, e.timestamp)).collect();
                    self.add(Origin::Swept(keys), &events);
                }
            }
            // The queue does not need the database: the run goes on without the sweep.
            Err(e) => self.errors.push(log_error(e.into())),
        }
    }

    /// Buffers a source's events, but for those of erased units (the source still completes
    /// and is acknowledged: they are meant to be gone).
    fn add(&mut self, origin: Origin, events: &[eis_contract::Event]) -> Option<SourceId> {
        // Copied only when one of them is erased: the usual source passes through as it is.
        let erased: Vec<bool> = match self.job.tombstones {
            Some(t) if !t.is_empty() => events.iter().map(|e| t.erases(e)).collect(),
            _ => Vec::new(),
        };
        let kept: Vec<eis_contract::Event>;
        let events = if erased.contains(&true) {
            kept = events
                .iter()
                .zip(&erased)
                .filter(|(_, erased)| !**erased)
                .map(|(e, _)| e.clone())
                .collect();
            self.tally.summary.erased += events.len() - kept.len();
            &kept[..]
        } else {
            events
        };
        let added = self.batcher.add(origin, events);
        self.acknowledge_completed();
        match added {
            Ok(id) => Some(id),
            Err(e) => {
                self.errors.push(log_error(e.into()));
                None
            }
        }
    }

    async fn drain(&mut self) {
        loop {
            if self.quarantine.bytes >= QUARANTINE_HELD_BYTES {
                self.store_quarantine().await;
            }
            self.start_uploads();
            self.start_receives();
            if self.stop.is_some() && self.in_flight.receives.is_empty() {
                return;
            }
            tokio::select! {
                Some(joined) = self.in_flight.receives.join_next() => self.received(joined),
                Some(joined) = self.in_flight.uploads.join_next() => self.uploaded(joined),
                Some(joined) = self.in_flight.deletes.join_next() => self.deleted(joined),
                // Nothing in flight and nothing startable: only a panicked upload (whose
                // bytes stay held) leads here; that error already stopped the run.
                else => return,
            }
        }
    }

    /// Receiving waits while the held bytes are at their bound or cut files wait for an
    /// upload slot: memory is freed by uploads, not by receiving more.
    fn paused(&self) -> bool {
        self.batcher.under_pressure() || self.batcher.has_ready()
    }

    fn start_receives(&mut self) {
        let policy = &self.job.policy;
        while self.stop.is_none()
            && self.in_flight.receives.len() < policy.receive_concurrency
            && !self.paused()
        {
            let Some(budget) = self.receive_budget() else {
                self.stop = Some(Stop::Deadline);
                return;
            };
            let queue = self.job.queue.clone();
            self.in_flight
                .receives
                .spawn(queue.receive(policy.receive_wait.min(budget)));
        }
    }

    fn received(&mut self, joined: Result<Result<Vec<Received>, ArchiveError>, JoinError>) {
        match joined {
            Err(e) => self.fail(ArchiveError::Internal(e.to_string())),
            Ok(Err(e)) => self.fail(e),
            Ok(Ok(messages)) => {
                let mut new = 0;
                for m in messages {
                    new += usize::from(self.accept(m));
                }
                if new == 0 {
                    self.stop.get_or_insert(Stop::Drained);
                }
            }
        }
    }

    /// Buffers a message's events; true when the message is new to this run.
    fn accept(&mut self, m: Received) -> bool {
        match self.ledger.seen(&m.message_id) {
            Some(Seen::Pending(id)) => {
                // A re-delivery: only its newest receipt handle can delete it.
                if let Some(Origin::Message { receipt_handle, .. }) =
                    self.batcher.pending_payload(*id)
                {
                    *receipt_handle = m.receipt_handle;
                }
                false
            }
            Some(Seen::Done) => {
                self.ledger.delete_again(m.receipt_handle);
                self.start_deletes(false);
                false
            }
            Some(Seen::Ignored) => false,
            None => {
                let seen = match message::decode(&m.body) {
                    Err(e) => {
                        // Left alone: the queue's redrive policy moves it to the DLQ.
                        tracing::warn!(
                            message_id = %m.message_id,
                            receive_count = m.receive_count,
                            error = %e,
                            "undecodable message left for the dead-letter queue"
                        );
                        self.tally.summary.dead_lettered += 1;
                        Seen::Ignored
                    }
                    Ok(Message::Quarantined(records)) => {
                        self.tally.summary.messages += 1;
                        self.quarantine.bytes += m.body.len();
                        self.quarantine.records.extend(records);
                        self.quarantine.handles.push(m.receipt_handle);
                        Seen::Ignored
                    }
                    Ok(Message::Events(events)) => {
                        self.tally.summary.messages += 1;
                        let origin = Origin::Message {
                            message_id: m.message_id.clone(),
                            receipt_handle: m.receipt_handle,
                        };
                        match self.add(origin, &events) {
                            Some(id) => Seen::Pending(id),
                            None => Seen::Ignored,
                        }
                    }
                };
                self.ledger.met(m.message_id, seen);
                true
            }
        }
    }

    /// Origins whose files are all stored: delete their messages, mark their rows.
    fn acknowledge_completed(&mut self) {
        for origin in self.batcher.take_completed() {
            self.ledger.completed(origin);
        }
        self.start_deletes(false);
    }

    fn start_deletes(&mut self, all: bool) {
        while let Some(handles) = self.ledger.next_deletes(all) {
            let queue = self.job.queue.clone();
            self.in_flight.deletes.spawn(queue.delete(handles));
        }
    }

    fn start_uploads(&mut self) {
        while self.in_flight.uploads.len() < self.job.policy.upload_concurrency {
            if !self.batcher.has_ready() && self.batcher.under_pressure() {
                self.batcher.cut_largest();
            }
            let Some(chunk) = self.batcher.next_ready() else {
                return;
            };
            self.spawn_upload(chunk);
        }
    }

    /// Encoding is CPU-bound (zstd): it runs on the blocking pool while receiving goes on.
    fn spawn_upload(&mut self, chunk: Chunk) {
        let Chunk {
            id,
            partition,
            columns,
        } = chunk;
        let bucket = self.job.bucket.clone();
        let key = bucket.raw_key(partition, Uuid::now_v7());
        let events = columns.len();
        let earliest_received = columns.earliest_received();
        let run_id = self.tally.summary.run_id;
        // The hour is recorded before its first file: a run killed after the upload still
        // leaves the hour to compact. A failed record does not stop the upload (the audit
        // records any hour it finds raw files in).
        let hours = self
            .touched
            .insert(partition)
            .then(|| self.job.hours.clone());
        self.in_flight.uploads.spawn(async move {
            let touch_error = match hours {
                Some(hours) => hours.touch(partition.start()).await.err(),
                None => None,
            };
            let result = async {
                let body = tokio::task::spawn_blocking(move || event_parquet::encode(columns))
                    .await
                    .map_err(|e| ArchiveError::Internal(e.to_string()))??;
                let bytes = body.len();
                bucket.put(&key, body, run_id, events).await?;
                Ok(bytes)
            }
            .await;
            UploadDone {
                chunk: id,
                partition,
                key,
                events,
                earliest_received,
                touch_error,
                result,
            }
        });
    }

    fn uploaded(&mut self, joined: Result<UploadDone, JoinError>) {
        let done = match joined {
            Ok(done) => done,
            // The chunk's sources stay pending: never acknowledged, archived again next run.
            Err(e) => return self.fail(ArchiveError::Internal(e.to_string())),
        };
        if let Some(e) = done.touch_error {
            self.touched.remove(&done.partition);
            self.errors.push(log_error(e.into()));
        }
        match done.result {
            Ok(bytes) => {
                tracing::info!(key = %done.key, events = done.events, bytes, "stored");
                self.batcher.stored(done.chunk);
                self.tally
                    .stored(done.partition, done.events, bytes, done.earliest_received);
            }
            Err(e) => {
                tracing::warn!(key = %done.key, events = done.events, "not stored");
                self.batcher.failed(done.chunk);
                self.tally.summary.failed_files += 1;
                self.fail(e);
            }
        }
        self.acknowledge_completed();
    }

    fn deleted(&mut self, joined: Result<Deleted, JoinError>) {
        match joined {
            Ok(d) => {
                self.tally.deleted(&d);
                if let Some(e) = d.error {
                    self.errors.push(log_error(e));
                }
            }
            Err(e) => self
                .errors
                .push(log_error(ArchiveError::Internal(e.to_string()))),
        }
    }

    /// Writes the held quarantine records, one file per hour of `received_at`, then deletes
    /// their messages. A failed upload leaves every held message in the queue, to come back
    /// after its visibility timeout (a file written twice holds the same record ids).
    async fn store_quarantine(&mut self) {
        let held = std::mem::take(&mut self.quarantine);
        if held.handles.is_empty() {
            return;
        }
        let mut hours: std::collections::BTreeMap<HourPartition, Vec<_>> = Default::default();
        for record in held.records {
            if self
                .job
                .tombstones
                .is_some_and(|t| quarantine_text::erased(&record, t))
            {
                self.tally.summary.erased += 1;
                continue;
            }
            hours
                .entry(HourPartition::of(record.received_at))
                .or_default()
                .push(record);
        }
        for (hour, records) in hours {
            let key = quarantine_parquet::key(self.job.quarantine_prefix, hour, Uuid::now_v7());
            let stored = async {
                let body = quarantine_parquet::encode(&records)?;
                let bytes = body.len();
                let run_id = self.tally.summary.run_id;
                self.job
                    .bucket
                    .put(&key, body, run_id, records.len())
                    .await?;
                Ok::<usize, ArchiveError>(bytes)
            }
            .await;
            match stored {
                Ok(bytes) => {
                    tracing::info!(%key, records = records.len(), bytes, "quarantine stored");
                    self.tally.summary.rejected_records += records.len();
                    self.tally.summary.rejected_files += 1;
                }
                Err(e) => {
                    tracing::warn!(%key, records = records.len(), "quarantine not stored");
                    self.tally.summary.failed_files += 1;
                    return self.fail(e);
                }
            }
        }
        for handles in held.handles.chunks(MAX_DELETE_BATCH) {
            let deleted = self.job.queue.clone().delete(handles.to_vec()).await;
            self.deleted(Ok(deleted));
        }
    }

    /// The end of the drain: every buffer becomes a file, then the acknowledgements.
    async fn finish(&mut self) {
        self.store_quarantine().await;
        self.batcher.cut_all();
        loop {
            self.start_uploads();
            tokio::select! {
                Some(joined) = self.in_flight.uploads.join_next() => self.uploaded(joined),
                Some(joined) = self.in_flight.deletes.join_next() => self.deleted(joined),
                else => break,
            }
        }
        self.start_deletes(true);
        while let Some(joined) = self.in_flight.deletes.join_next().await {
            self.deleted(joined);
        }
        let marks = self.ledger.take_marks();
        if !self.swept_rows.is_empty() {
            match self.job.pending.settle(&self.swept_rows, &marks).await {
                Ok(()) => self.tally.summary.marked = marks.len() as u64,
                // They stay pending: a later sweep archives them again (duplicates only).
                Err(e) => self.errors.push(log_error(e.into())),
            }
        }
    }

    /// Settled hours rewritten to hold each event once, while time remains before the margin.
    async fn compact(&mut self) {
        if self.receive_budget().is_none() {
            return;
        }
        let Some(tombstones) = self.job.tombstones else {
            tracing::warn!("no compaction this run: the erased units could not be loaded");
            return;
        };
        let (summary, errors) = compact::compact_settled(
            &self.job.compaction(),
            tombstones,
            self.now,
            self.deadline,
            self.tally.summary.run_id,
        )
        .await;
        self.tally.summary.compaction = summary;
        for e in errors {
            self.errors.push(log_error(e));
        }
    }

    /// Partition upkeep: idempotent, so a failure here is simply redone next run.
    async fn maintain(&mut self) {
        let policy = self.job.policy.maintenance;
        match maintenance::upkeep(self.job.db, self.now, policy).await {
            Ok(report) => {
                if report != maintenance::MaintenanceReport::default() {
                    tracing::info!(
                        created = ?report.partitions_created,
                        dropped = ?report.partitions_dropped,
                        kept_pending = ?report.partitions_pending,
                        kept_locked = ?report.partitions_locked,
                        "partition maintenance"
                    );
                }
                let summary = &mut self.tally.summary;
                summary.partitions_created = report.partitions_created.len();
                summary.partitions_dropped = report.partitions_dropped.len();
                summary.partitions_kept_pending = report.partitions_pending.len();
                summary.partitions_kept_locked = report.partitions_locked.len();
            }
            Err(e) => self.errors.push(log_error(e.into())),
        }
    }

    fn outcome(self, started: Instant) -> RunOutcome {
        let codes = self.errors.iter().map(ArchiveError::code).collect();
        let summary = self.tally.finish(
            self.now,
            started.elapsed().as_secs_f64(),
            self.stop.unwrap_or_default(),
            codes,
        );
        RunOutcome {
            summary,
            errors: self.errors,
        }
    }
}

fn log_error(err: ArchiveError) -> ArchiveError {
    let error = eis_runtime::telemetry::chain(&err);
    tracing::warn!(code = err.code(), %error, "archive run error");
    err
}
