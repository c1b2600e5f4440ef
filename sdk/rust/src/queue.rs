//! The bounded queue between `capture` and the sender. One mutex, held only to push, pop or
//! count (never across I/O or an await), so that capture returns at once. The bounds count
//! every event without a final result, waiting or in flight, so memory stays bounded while
//! the server is down.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::batch::{BODY_OVERHEAD, MAX_BATCH_EVENTS_BOUND};
use crate::error::{CaptureError, QueueBound};

/// An event in the client's hands until its final result.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Item {
    /// Capture order: `flush` waits for the events captured before it by this number.
    pub seq: u64,
    pub id: Uuid,
    pub json: Bytes,
    /// The spool segment that holds it, when there is a spool.
    pub segment: Option<u64>,
    pub queued_at: Instant,
}

/// When the sender should take a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ready {
    Now,
    At(Instant),
    Idle,
}

#[derive(Debug, Default)]
struct State {
    waiting: VecDeque<Item>,
    /// Every admitted event without a final result, by `seq`: waiting, being spooled, or in
    /// a request.
    outstanding: BTreeMap<u64, Uuid>,
    bytes: usize,
    next_seq: u64,
    closed: bool,
}

#[derive(Debug)]
pub(crate) struct Queue {
    state: Mutex<State>,
    max_events: usize,
    max_bytes: usize,
    flush_at: usize,
    /// Wakes the sender: a first waiting event (its interval starts), `flush_at` reached, a
    /// flush or a close.
    pub wake: Notify,
}

impl Queue {
    pub fn new(max_events: usize, max_bytes: usize, flush_at: usize) -> Queue {
        Queue {
            state: Mutex::new(State::default()),
            max_events,
            max_bytes,
            flush_at,
            wake: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock cannot leave the state half-changed (every
        // change is a push, a pop or a counter), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts an event in, within the bounds (or beyond them when `force`: events recovered
    /// from a spool are never refused), and gives its capture number.
    pub fn admit(&self, id: Uuid, bytes: usize, force: bool) -> Result<u64, CaptureError> {
        let mut s = self.lock();
        if s.closed && !force {
            return Err(CaptureError::Closed);
        }
        if !force && s.outstanding.len() >= self.max_events {
            let bound = QueueBound::Events(self.max_events);
            return Err(CaptureError::QueueFull {
                event_id: id,
                bound,
            });
        }
        if !force && s.bytes + bytes > self.max_bytes {
            let bound = QueueBound::Bytes(self.max_bytes);
            return Err(CaptureError::QueueFull {
                event_id: id,
                bound,
            });
        }
        let seq = s.next_seq;
        s.next_seq += 1;
        s.outstanding.insert(seq, id);
        s.bytes += bytes;
        Ok(seq)
    }

    /// Undoes `admit` for an event that was not queued after all.
    pub fn withdraw(&self, seq: u64, bytes: usize) {
        let mut s = self.lock();
        if s.outstanding.remove(&seq).is_some() {
            s.bytes = s.bytes.saturating_sub(bytes);
        }
    }

    /// Puts an admitted event in line for the sender.
    pub fn push(&self, item: Item) {
        let len = {
            let mut s = self.lock();
            s.waiting.push_back(item);
            s.waiting.len()
        };
        if len == 1 || len == self.flush_at {
            self.wake.notify_one();
        }
    }

    /// Whether a batch should go now: `flush_at` events wait, the oldest has waited
    /// `interval`, a flush asked for events up to `flush_before` (by capture number), or the
    /// queue is closing.
    pub fn ready(&self, interval: std::time::Duration, flush_before: u64) -> Ready {
        let s = self.lock();
        match s.waiting.front() {
            None => Ready::Idle,
            Some(_) if s.waiting.len() >= self.flush_at || s.closed => Ready::Now,
            Some(first) if first.seq < flush_before => Ready::Now,
            Some(first) => Ready::At(first.queued_at + interval),
        }
    }

    /// The next request's events, in capture order: at most `max_events`, and at most
    /// `max_bytes` of body. Never empty while events wait (one event always fits: the config
    /// is validated so).
    pub fn pop_batch(&self, max_events: usize, max_bytes: usize) -> Vec<Item> {
        let mut s = self.lock();
        let mut body = BODY_OVERHEAD;
        let mut batch = Vec::new();
        while let Some(next) = s.waiting.front() {
            let size = next.json.len() + usize::from(!batch.is_empty());
            if batch.len() == max_events.min(MAX_BATCH_EVENTS_BOUND)
                || (!batch.is_empty() && body + size > max_bytes)
            {
                break;
            }
            body += size;
            if let Some(item) = s.waiting.pop_front() {
                batch.push(item);
            }
        }
        batch
    }

    /// Counts out events that reached a final result (or that a closing client leaves).
    pub fn finish(&self, done: impl IntoIterator<Item = (u64, usize)>) {
        let mut s = self.lock();
        for (seq, bytes) in done {
            if s.outstanding.remove(&seq).is_some() {
                s.bytes = s.bytes.saturating_sub(bytes);
            }
        }
    }

    /// The capture number the next event will get.
    pub fn next_seq(&self) -> u64 {
        self.lock().next_seq
    }

    /// Whether every event captured before `seq` has a final result.
    pub fn settled_before(&self, seq: u64) -> bool {
        self.lock()
            .outstanding
            .first_key_value()
            .is_none_or(|(first, _)| *first >= seq)
    }

    /// The ids of every event without a final result, in capture order.
    pub fn pending_ids(&self) -> Vec<Uuid> {
        self.lock().outstanding.values().copied().collect()
    }

    /// Refuses captures from now on; the sender sends what waits without waiting for
    /// `flush_at`.
    pub fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_one();
    }

    #[cfg(test)]
    pub fn counts(&self) -> (usize, usize, usize) {
        let s = self.lock();
        (s.waiting.len(), s.outstanding.len(), s.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn item(q: &Queue, json: &'static str) -> Result<Item, CaptureError> {
        let id = Uuid::now_v7();
        let seq = q.admit(id, json.len(), false)?;
        Ok(Item {
            seq,
            id,
            json: Bytes::from_static(json.as_bytes()),
            segment: None,
            queued_at: Instant::now(),
        })
    }

    #[test]
    fn the_event_bound_counts_events_in_flight_too() {
        let q = Queue::new(2, 1000, 10);
        for _ in 0..2 {
            let i = item(&q, "{}").expect("room");
            q.push(i);
        }
        let sent = q.pop_batch(10, 1000);
        assert_eq!(sent.len(), 2);
        match item(&q, "{}") {
            Err(CaptureError::QueueFull { bound, .. }) => assert_eq!(bound, QueueBound::Events(2)),
            other => panic!("{other:?}"),
        }
        q.finish(sent.iter().map(|i| (i.seq, i.json.len())));
        assert!(item(&q, "{}").is_ok(), "room again once answered");
    }

    #[test]
    fn the_byte_bound_refuses_what_would_pass_it() {
        let q = Queue::new(100, 10, 10);
        let first = item(&q, "{\"a\":1}").expect("7 bytes fit");
        q.push(first);
        match item(&q, "{\"b\":2}") {
            Err(CaptureError::QueueFull { bound, .. }) => assert_eq!(bound, QueueBound::Bytes(10)),
            other => panic!("{other:?}"),
        }
        assert_eq!(q.counts(), (1, 1, 7), "the refusal left no trace");
        assert!(
            q.admit(Uuid::now_v7(), 50, true).is_ok(),
            "recovered events are forced in"
        );
    }

    #[test]
    fn batches_respect_the_event_and_byte_bounds_in_order() {
        let q = Queue::new(100, 10_000, 100);
        let mut ids = Vec::new();
        for _ in 0..7 {
            let i = item(&q, "{\"x\":\"0123456789\"}").expect("room"); // 18 bytes
            ids.push(i.id);
            q.push(i);
        }
        let by_count = q.pop_batch(3, 10_000);
        assert_eq!(by_count.iter().map(|i| i.id).collect::<Vec<_>>(), ids[..3]);
        // 13 bytes of envelope + 18 + 19 + 19 = 69: a fourth would make 88.
        let by_bytes = q.pop_batch(100, 70);
        assert_eq!(by_bytes.len(), 3);
        let rest = q.pop_batch(100, 1);
        assert_eq!(
            rest.len(),
            1,
            "one event always goes, even over a tiny bound"
        );
        assert!(q.pop_batch(100, 10_000).is_empty());
    }

    #[test]
    fn readiness_follows_flush_at_the_interval_and_flushes() {
        let q = Queue::new(100, 10_000, 3);
        assert_eq!(q.ready(Duration::from_secs(1), 0), Ready::Idle);
        let first = item(&q, "{}").expect("room");
        let (queued_at, seq) = (first.queued_at, first.seq);
        q.push(first);
        assert_eq!(
            q.ready(Duration::from_secs(1), 0),
            Ready::At(queued_at + Duration::from_secs(1))
        );
        assert_eq!(
            q.ready(Duration::from_secs(1), seq + 1),
            Ready::Now,
            "a flush"
        );
        for _ in 0..2 {
            let i = item(&q, "{}").expect("room");
            q.push(i);
        }
        assert_eq!(q.ready(Duration::from_secs(1), 0), Ready::Now, "flush_at");
    }

    #[test]
    fn settled_and_pending_follow_outstanding_events() {
        let q = Queue::new(100, 10_000, 3);
        let a = item(&q, "{}").expect("room");
        let b = item(&q, "{}").expect("room");
        assert!(!q.settled_before(b.seq + 1));
        assert_eq!(q.pending_ids(), vec![a.id, b.id]);
        q.finish([(a.seq, 2)]);
        assert!(q.settled_before(b.seq));
        assert!(!q.settled_before(b.seq + 1));
        q.close();
        assert_eq!(item(&q, "{}"), Err(CaptureError::Closed));
    }
}
