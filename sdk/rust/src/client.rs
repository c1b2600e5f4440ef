//! The client: `capture` (never waits), `flush` and `close` (bounded by their timeout),
//! `send` (confirmed delivery, for callers that must know before they return, such as a
//! Lambda handler), and the counters.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant as StdInstant};

use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::config::Config;
use crate::deliver::deliver;
use crate::error::{CaptureError, ConfigError};
use crate::event::{prepare, IntoEvent};
use crate::queue::{Item, Queue};
use crate::report::{Counters, EventResult, Outcome, Report, ResultLog, Stats};
use crate::sender::{self, Settings, Shared, BATCH_PATH};
use crate::spool::Spool;
use crate::transport::Transport;

/// An EIS client. Cheap to clone (the clones share one queue and one sender task); the sender
/// stops when the last clone is dropped, abandoning what it holds: call [`Client::close`]
/// first, or use a spool, so that nothing is lost.
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
    sender: Arc<SenderHandle>,
}

/// Owns the sender task; dropping the last client handle aborts it and frees the spool.
struct SenderHandle {
    task: Mutex<Option<JoinHandle<()>>>,
    shared: Arc<Shared>,
}

impl Drop for SenderHandle {
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().unwrap_or_else(|p| p.into_inner()).take() {
            task.abort();
        }
        if let Some(spool) = &self.shared.spool {
            spool.close();
        }
    }
}

impl Client {
    /// Makes a client and spawns its sender task on the current tokio runtime. With a spool,
    /// opens it (blocking file I/O, once) and queues the events an earlier client left without
    /// a final result, with their original ids.
    pub fn new(config: Config) -> Result<Client, ConfigError> {
        config.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| ConfigError::NoRuntime)?;
        let transport = Transport::new(
            &config.url,
            config.auth.clone(),
            config.gzip_above,
            config.request_timeout,
        )?;
        let (spool, replay) = match &config.spool {
            Some(dir) => {
                let (spool, replay) = Spool::open(dir).map_err(|e| ConfigError::Spool {
                    path: dir.display().to_string(),
                    message: e.to_string(),
                })?;
                (Some(spool), Some(replay))
            }
            None => (None, None),
        };
        let shared = Arc::new(Shared {
            queue: Queue::new(
                config.max_queue_events,
                config.max_queue_bytes,
                config.flush_at,
            ),
            transport,
            spool,
            counters: Counters::default(),
            results: ResultLog::new(config.max_queue_events),
            progress: tokio::sync::Notify::new(),
            flush_before: 0.into(),
            stop: tokio::sync::Notify::new(),
            settings: Settings {
                flush_interval: config.flush_interval,
                max_batch_events: config.max_batch_events,
                max_batch_bytes: config.max_batch_bytes,
                max_event_bytes: config.max_event_bytes,
                max_in_flight: config.max_in_flight,
                max_retry_after: config.max_retry_after,
                retry_budget: config.retry_budget,
                spool_sync_interval: config.spool_sync_interval,
            },
            on_result: config.on_result.clone(),
            on_refusal: config.on_refusal.clone(),
        });
        if let Some(replay) = replay {
            if replay.skipped_lines > 0 {
                tracing::warn!(
                    lines = replay.skipped_lines,
                    "eis-client: unreadable spool lines skipped (a write cut by a crash)"
                );
            }
            let n = replay.events.len() as u64;
            for event in replay.events {
                let len = event.json.len();
                // Forced in: events already captured are never refused for the bounds.
                if let Ok(seq) = shared.queue.admit(event.id, len, true) {
                    shared.queue.push(Item {
                        seq,
                        id: event.id,
                        json: event.json,
                        segment: Some(replay.segment),
                        queued_at: StdInstant::now(),
                    });
                }
            }
            Counters::add(&shared.counters.recovered, n);
        }
        let task = runtime.spawn(sender::run(Arc::clone(&shared)));
        Ok(Client {
            sender: Arc::new(SenderHandle {
                task: Mutex::new(Some(task)),
                shared: Arc::clone(&shared),
            }),
            shared,
        })
    }

    /// Queues an event and returns its id at once (set to a new UUIDv7 when absent; the
    /// `timestamp` is set to now when absent). Never waits on the network or the sender;
    /// with a spool, the event is written (not fsynced) before this returns. Refusals are
    /// counted and passed to `on_refusal`.
    pub fn capture(&self, event: impl IntoEvent) -> Result<uuid::Uuid, CaptureError> {
        let shared = &self.shared;
        let refuse = |error: CaptureError| {
            let counter = match error {
                CaptureError::QueueFull { .. } | CaptureError::Closed => &shared.counters.refused,
                _ => &shared.counters.invalid,
            };
            Counters::add(counter, 1);
            if let Some(callback) = &shared.on_refusal {
                callback(&error);
            }
            Err(error)
        };
        let event = match prepare(event, shared.settings.max_event_bytes) {
            Ok(event) => event,
            Err(e) => return refuse(e),
        };
        let len = event.json.len();
        let seq = match shared.queue.admit(event.id, len, false) {
            Ok(seq) => seq,
            Err(e) => return refuse(e),
        };
        let segment = match &shared.spool {
            None => None,
            Some(spool) => match spool.append(&event.json) {
                Ok(segment) => Some(segment),
                Err(e) => {
                    shared.queue.withdraw(seq, len);
                    return refuse(CaptureError::Spool {
                        event_id: event.id,
                        message: e.to_string(),
                    });
                }
            },
        };
        shared.queue.push(Item {
            seq,
            id: event.id,
            json: event.json,
            segment,
            queued_at: StdInstant::now(),
        });
        Counters::add(&shared.counters.captured, 1);
        Ok(event.id)
    }

    /// Sends what is queued now and waits until every event captured before this call has a
    /// final result, or `timeout` passes (the server may be down: this still returns). The
    /// report holds the results since the previous report and the ids still pending.
    pub async fn flush(&self, timeout: Duration) -> Report {
        let deadline = Instant::now() + timeout;
        self.wait_settled(deadline).await;
        self.report()
    }

    /// Refuses further captures, sends what is queued, waits as `flush` does, then stops the
    /// sender (requests still in flight are abandoned). Pending events are reported; with a
    /// spool they stay on disk for the next client. Returns within `timeout`.
    pub async fn close(&self, timeout: Duration) -> Report {
        let deadline = Instant::now() + timeout;
        self.shared.queue.close();
        self.wait_settled(deadline).await;
        self.shared.stop.notify_one();
        let task = self
            .sender
            .task
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(task) = task {
            // Stopping aborts the deliveries and syncs the spool: quick, but bounded anyway.
            let left = deadline.saturating_duration_since(Instant::now());
            let stopping = Duration::from_millis(100).max(left);
            if tokio::time::timeout(stopping, task).await.is_err() {
                tracing::warn!("eis-client: the sender did not stop in time");
            }
        }
        if let Some(spool) = &self.shared.spool {
            spool.close();
        }
        self.report()
    }

    /// Sends `events` now, apart from the queue, and waits for their final results (at most
    /// `timeout`): one result per event, in order. `Err` is an event refused before sending
    /// (as by `capture`); `Ok` holds the server's answer, or `GivenUp` when none came in time
    /// (resend with the same ids: the server stores each once). Not spooled, not passed to
    /// `on_result`; counted in the stats.
    pub async fn send<E: IntoEvent>(
        &self,
        events: impl IntoIterator<Item = E>,
        timeout: Duration,
    ) -> Vec<Result<EventResult, CaptureError>> {
        let deadline = Instant::now() + timeout.min(self.shared.settings.retry_budget);
        let mut answers: Vec<Result<EventResult, CaptureError>> = Vec::new();
        // A queue of its own, unbounded, only to cut the events into requests as the sender
        // does.
        let batching = Queue::new(usize::MAX, usize::MAX, usize::MAX);
        for (index, event) in events.into_iter().enumerate() {
            match prepare(event, self.shared.settings.max_event_bytes) {
                Ok(event) => {
                    answers.push(Ok(EventResult {
                        event_id: event.id,
                        outcome: Outcome::GivenUp {
                            reason: format!("no final answer within {timeout:?}"),
                        },
                    }));
                    batching.push(Item {
                        seq: index as u64,
                        id: event.id,
                        json: event.json,
                        segment: None,
                        queued_at: StdInstant::now(),
                    });
                }
                Err(e) => answers.push(Err(e)),
            }
        }
        let results = Arc::new(Mutex::new(Vec::new()));
        let mut requests = JoinSet::new();
        let permits = Arc::new(tokio::sync::Semaphore::new(
            self.shared.settings.max_in_flight,
        ));
        let settings = &self.shared.settings;
        loop {
            let batch = batching.pop_batch(settings.max_batch_events, settings.max_batch_bytes);
            if batch.is_empty() {
                break;
            }
            let (shared, results) = (Arc::clone(&self.shared), Arc::clone(&results));
            let permits = Arc::clone(&permits);
            requests.spawn(async move {
                let Ok(_permit) = permits.acquire_owned().await else {
                    return;
                };
                let transport = shared.transport.clone();
                deliver(
                    batch,
                    |body| {
                        let transport = transport.clone();
                        async move { transport.post(BATCH_PATH, body).await }
                    },
                    shared.settings.max_retry_after,
                    deadline,
                    |settled| {
                        results
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .extend(settled)
                    },
                    || Counters::add(&shared.counters.retries, 1),
                )
                .await;
            });
        }
        let all = async { while requests.join_next().await.is_some() {} };
        if tokio::time::timeout_at(deadline, all).await.is_err() {
            requests.shutdown().await;
        }
        let settled = std::mem::take(&mut *results.lock().unwrap_or_else(|p| p.into_inner()));
        for (item, outcome) in settled {
            if let Some(Ok(slot)) = usize::try_from(item.seq)
                .ok()
                .and_then(|i| answers.get_mut(i))
            {
                slot.outcome = outcome;
            }
        }
        for answer in answers.iter().flatten() {
            self.shared.counters.count(&answer.outcome);
        }
        answers
    }

    /// The counters since this client was made.
    pub fn stats(&self) -> Stats {
        self.shared.counters.snapshot()
    }

    /// Waits until every event captured so far has a final result, or `deadline`.
    async fn wait_settled(&self, deadline: Instant) {
        let queue = &self.shared.queue;
        let target = queue.next_seq();
        self.shared.flush_before.fetch_max(target, Ordering::AcqRel);
        queue.wake.notify_one();
        loop {
            let progress = self.shared.progress.notified();
            tokio::pin!(progress);
            // Registered before the check, so that a settle in between is not missed.
            progress.as_mut().enable();
            if queue.settled_before(target) {
                return;
            }
            tokio::select! {
                () = progress => {}
                () = tokio::time::sleep_until(deadline) => return,
            }
        }
    }

    fn report(&self) -> Report {
        let (results, omitted) = self.shared.results.take();
        Report {
            results,
            omitted,
            pending_ids: self.shared.queue.pending_ids(),
        }
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
