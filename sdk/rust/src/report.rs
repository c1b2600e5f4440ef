//! What the client hands back: the final answer per event, the report of `flush` and `close`,
//! and the counters. The same five outcomes as the Python SDK (sdk/python/eis_client/model.py).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use uuid::Uuid;

/// The final answer for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Stored now; `warnings` are the server's flags.
    Stored { warnings: Vec<String> },
    /// Already stored with the same content (e.g. by a retry whose first answer was lost).
    Duplicate { warnings: Vec<String> },
    /// A final refusal of the event: `code` from docs/contract.md (or `storage_rejected`),
    /// `field` a JSON pointer such as `/experiments/0/variant_id` when the server names one.
    /// Never resent.
    Rejected {
        code: String,
        message: String,
        field: Option<String>,
    },
    /// The `event_id` is stored with other content; the stored event is kept. Never resent.
    Conflict { message: String },
    /// No final answer within the retry budget (or `send`'s timeout), or an answer that no
    /// retry can change (e.g. 404 for a wrong URL): the event may or may not be stored.
    GivenUp { reason: String },
}

impl Outcome {
    /// Stored, now or earlier.
    pub fn delivered(&self) -> bool {
        matches!(self, Outcome::Stored { .. } | Outcome::Duplicate { .. })
    }

    /// `stored`, `duplicate`, `rejected`, `conflict` or `given_up`.
    pub fn status(&self) -> &'static str {
        match self {
            Outcome::Stored { .. } => "stored",
            Outcome::Duplicate { .. } => "duplicate",
            Outcome::Rejected { .. } => "rejected",
            Outcome::Conflict { .. } => "conflict",
            Outcome::GivenUp { .. } => "given_up",
        }
    }
}

/// One event's final answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventResult {
    pub event_id: Uuid,
    pub outcome: Outcome,
}

/// What `flush` and `close` return: the final results reached since the previous report (the
/// most recent `max_queue_events` of them; `omitted` counts older ones left out, which were
/// still passed to `on_result` and counted in [`Stats`]), and the ids of the events still
/// without a final result (queued, or in a request or its retry).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub results: Vec<EventResult>,
    pub omitted: u64,
    pub pending_ids: Vec<Uuid>,
}

impl Report {
    pub fn pending(&self) -> usize {
        self.pending_ids.len()
    }

    /// Results of `status` in this report (see [`Outcome::status`]).
    pub fn count(&self, status: &str) -> usize {
        self.results
            .iter()
            .filter(|r| r.outcome.status() == status)
            .count()
    }
}

/// Counters since the client was made. `delivered` includes `duplicates`; `rejected` includes
/// `conflicts`; `refused` counts captures refused because the queue was full (or the client
/// closed), `invalid` those refused for the event's own fault; `retries` counts requests sent
/// again; `recovered` counts events taken over from a spool at start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub captured: u64,
    pub delivered: u64,
    pub duplicates: u64,
    pub refused: u64,
    pub invalid: u64,
    pub rejected: u64,
    pub conflicts: u64,
    pub given_up: u64,
    pub retries: u64,
    pub recovered: u64,
}

/// The live counters behind [`Stats`]: atomics, so that capture never waits for them.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub captured: AtomicU64,
    pub delivered: AtomicU64,
    pub duplicates: AtomicU64,
    pub refused: AtomicU64,
    pub invalid: AtomicU64,
    pub rejected: AtomicU64,
    pub conflicts: AtomicU64,
    pub given_up: AtomicU64,
    pub retries: AtomicU64,
    pub recovered: AtomicU64,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn count(&self, outcome: &Outcome) {
        let add = |c: &AtomicU64| Counters::add(c, 1);
        match outcome {
            Outcome::Stored { .. } => add(&self.delivered),
            Outcome::Duplicate { .. } => {
                add(&self.delivered);
                add(&self.duplicates);
            }
            Outcome::Rejected { .. } => add(&self.rejected),
            Outcome::Conflict { .. } => {
                add(&self.rejected);
                add(&self.conflicts);
            }
            Outcome::GivenUp { .. } => add(&self.given_up),
        }
    }

    pub fn snapshot(&self) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            captured: get(&self.captured),
            delivered: get(&self.delivered),
            duplicates: get(&self.duplicates),
            refused: get(&self.refused),
            invalid: get(&self.invalid),
            rejected: get(&self.rejected),
            conflicts: get(&self.conflicts),
            given_up: get(&self.given_up),
            retries: get(&self.retries),
            recovered: get(&self.recovered),
        }
    }
}

/// The results since the last report, at most `keep` of them (the newest).
#[derive(Debug)]
pub(crate) struct ResultLog {
    keep: usize,
    state: Mutex<(VecDeque<EventResult>, u64)>,
}

impl ResultLog {
    pub fn new(keep: usize) -> ResultLog {
        ResultLog {
            keep: keep.max(1),
            state: Mutex::new((VecDeque::new(), 0)),
        }
    }

    pub fn record(&self, results: impl IntoIterator<Item = EventResult>) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        for result in results {
            if state.0.len() == self.keep {
                state.0.pop_front();
                state.1 += 1;
            }
            state.0.push_back(result);
        }
    }

    /// Takes the results and the omitted count, leaving the log empty.
    pub fn take(&self) -> (Vec<EventResult>, u64) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let results = state.0.drain(..).collect();
        let omitted = std::mem::take(&mut state.1);
        (results, omitted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored() -> EventResult {
        EventResult {
            event_id: Uuid::now_v7(),
            outcome: Outcome::Stored { warnings: vec![] },
        }
    }

    #[test]
    fn the_log_keeps_the_newest_and_counts_the_rest() {
        let log = ResultLog::new(3);
        let all: Vec<EventResult> = (0..5).map(|_| stored()).collect();
        log.record(all.clone());
        let (kept, omitted) = log.take();
        assert_eq!(kept, all[2..].to_vec());
        assert_eq!(omitted, 2);
        assert_eq!(log.take(), (vec![], 0), "taken means emptied");
    }

    #[test]
    fn counters_follow_the_outcomes() {
        let c = Counters::default();
        for o in [
            Outcome::Stored { warnings: vec![] },
            Outcome::Duplicate { warnings: vec![] },
            Outcome::Conflict {
                message: "x".into(),
            },
            Outcome::GivenUp { reason: "x".into() },
        ] {
            c.count(&o);
        }
        let s = c.snapshot();
        assert_eq!(
            (
                s.delivered,
                s.duplicates,
                s.rejected,
                s.conflicts,
                s.given_up
            ),
            (2, 1, 1, 1, 1)
        );
    }
}
