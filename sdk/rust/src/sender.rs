//! The background sender: one task on the caller's runtime that takes batches off the queue
//! when they are due (`flush_at`, `flush_interval`, a flush, a close) and runs up to
//! `max_in_flight` deliveries at once, each a task of its own; and every
//! `spool_sync_interval`, the spool's fsync. Results are settled in one place
//! ([`Shared::settle`]): the queue's count, the spool, the counters, the report and the
//! callback.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::config::{RefusalCallback, ResultCallback};
use crate::deliver::deliver;
use crate::queue::{Item, Queue, Ready};
use crate::report::{Counters, EventResult, Outcome, ResultLog};
use crate::spool::Spool;
use crate::transport::Transport;

/// The batch route.
pub(crate) const BATCH_PATH: &str = "/events/batch";

/// What the client's handles and its tasks share.
pub(crate) struct Shared {
    pub queue: Queue,
    pub transport: Transport,
    pub spool: Option<Spool>,
    pub counters: Counters,
    pub results: ResultLog,
    /// Notified whenever results are settled (flush and close wait on it).
    pub progress: Notify,
    /// Events captured before this number are due now (a flush asked for them).
    pub flush_before: AtomicU64,
    /// Tells the sender to stop: in-flight requests are abandoned, their events stay pending.
    pub stop: Notify,
    pub settings: Settings,
    pub on_result: Option<ResultCallback>,
    pub on_refusal: Option<RefusalCallback>,
}

/// The sender's part of the config.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub flush_interval: Duration,
    pub max_batch_events: usize,
    pub max_batch_bytes: usize,
    pub max_event_bytes: usize,
    pub max_in_flight: usize,
    pub max_retry_after: Duration,
    pub retry_budget: Duration,
    pub spool_sync_interval: Duration,
}

impl Shared {
    /// Records final results: out of the queue's count, `-<id>` in the spool, counted,
    /// reported, and handed to `on_result`.
    pub fn settle(&self, settled: Vec<(Item, Outcome)>) {
        if settled.is_empty() {
            return;
        }
        self.queue
            .finish(settled.iter().map(|(item, _)| (item.seq, item.json.len())));
        if let Some(spool) = &self.spool {
            let done: Vec<_> = settled
                .iter()
                .filter_map(|(item, _)| Some((item.id, item.segment?)))
                .collect();
            // Not fatal: the event is answered; at worst a next client sends it again and
            // the server answers it as a duplicate.
            if let Err(e) = spool.settle(&done) {
                tracing::warn!(error = %e, "eis-client: the spool could not record results");
            }
        }
        let results: Vec<EventResult> = settled
            .into_iter()
            .map(|(item, outcome)| {
                self.counters.count(&outcome);
                EventResult {
                    event_id: item.id,
                    outcome,
                }
            })
            .collect();
        if let Some(callback) = &self.on_result {
            results.iter().for_each(|r| callback(r));
        }
        self.results.record(results);
        self.progress.notify_waiters();
    }

    /// Delivers one batch from the queue within the retry budget.
    async fn deliver(self: &Arc<Self>, batch: Vec<Item>) {
        let transport = self.transport.clone();
        let deadline = Instant::now() + self.settings.retry_budget;
        deliver(
            batch,
            |body| {
                let transport = transport.clone();
                async move { transport.post(BATCH_PATH, body).await }
            },
            self.settings.max_retry_after,
            deadline,
            |settled| self.settle(settled),
            || Counters::add(&self.counters.retries, 1),
        )
        .await;
    }
}

/// The sender's loop, until `stop` (or the task is aborted when the last client handle goes).
pub(crate) async fn run(shared: Arc<Shared>) {
    let settings = shared.settings.clone();
    let permits = Arc::new(Semaphore::new(settings.max_in_flight));
    let mut deliveries = JoinSet::new();
    let mut next_sync = Instant::now() + settings.spool_sync_interval;
    let syncing = Arc::new(AtomicBool::new(false));
    loop {
        while deliveries.try_join_next().is_some() {}
        // Checked on every turn, so that a sender kept busy by a full queue still syncs.
        if shared.spool.is_some() && Instant::now() >= next_sync {
            start_sync(&shared, &syncing);
            next_sync = Instant::now() + settings.spool_sync_interval;
        }
        let flush_before = shared.flush_before.load(Ordering::Acquire);
        let due = match shared.queue.ready(settings.flush_interval, flush_before) {
            Ready::Now => {
                let permit = tokio::select! {
                    permit = Arc::clone(&permits).acquire_owned() => permit,
                    () = shared.stop.notified() => break,
                };
                // The semaphore is never closed, so a permit always comes.
                let Ok(permit) = permit else { break };
                let batch = shared
                    .queue
                    .pop_batch(settings.max_batch_events, settings.max_batch_bytes);
                if !batch.is_empty() {
                    let shared = Arc::clone(&shared);
                    deliveries.spawn(async move {
                        shared.deliver(batch).await;
                        drop(permit);
                    });
                }
                continue;
            }
            Ready::At(at) => Some(Instant::from_std(at)),
            Ready::Idle => None,
        };
        let wake_at = match (&shared.spool, due) {
            (Some(_), Some(due)) => Some(due.min(next_sync)),
            (Some(_), None) => Some(next_sync),
            (None, due) => due,
        };
        tokio::select! {
            () = shared.queue.wake.notified() => {}
            () = shared.stop.notified() => break,
            () = sleep_until(wake_at) => {}
        }
    }
    // Abandoned requests: their events keep no final result (and stay in the spool).
    deliveries.shutdown().await;
    sync_spool(&shared).await;
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Starts an fsync of the spool on the blocking pool, unless one is still running: the
/// sender goes on taking batches meanwhile.
fn start_sync(shared: &Arc<Shared>, syncing: &Arc<AtomicBool>) {
    if syncing.swap(true, Ordering::AcqRel) {
        return;
    }
    let (shared, syncing) = (Arc::clone(shared), Arc::clone(syncing));
    tokio::task::spawn_blocking(move || {
        if let Some(Err(e)) = shared.spool.as_ref().map(Spool::sync) {
            tracing::warn!(error = %e, "eis-client: the spool could not be synced");
        }
        syncing.store(false, Ordering::Release);
    });
}

/// fsyncs the spool on the blocking pool and waits for it (at the sender's end).
async fn sync_spool(shared: &Arc<Shared>) {
    if shared.spool.is_none() {
        return;
    }
    let shared = Arc::clone(shared);
    let synced = tokio::task::spawn_blocking(move || match &shared.spool {
        Some(spool) => spool.sync(),
        None => Ok(()),
    })
    .await;
    if let Ok(Err(e)) = synced {
        tracing::warn!(error = %e, "eis-client: the spool could not be synced");
    }
}
