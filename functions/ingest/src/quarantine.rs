//! Keeping what a request had rejected: each rejection becomes an `eis_contract::Quarantined`
//! record, sent on the archive queue (marked, `{"rejected":[…]}`), which the archiver writes
//! under `rejected/`. Bounded per event, per refused body and per request, so that a flood of
//! garbage costs a known amount; best effort, so that it never changes an answer: a record
//! that cannot be sent in time is counted (`QuarantineFailures`) and dropped.

use std::time::Duration;

use eis_contract::{Arrival, Quarantined, Rejection};
use eis_runtime::SqsPublisher;

/// What one request may keep (docs/quarantine.md, "Bounds").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuarantineBounds {
    /// Text kept of one rejected event (`EIS_QUARANTINE_EVENT_BYTES`, 64 KiB).
    pub event_bytes: usize,
    /// Text kept of a body refused as a whole (`EIS_QUARANTINE_REQUEST_BYTES`, 192 KiB, so
    /// that the record fits one SQS message).
    pub request_bytes: usize,
    /// Text kept of all the rejections of one request (`EIS_QUARANTINE_BUDGET_BYTES`,
    /// 256 KiB); the records past it keep their code, index and variants, not their text.
    pub budget_bytes: usize,
    /// How long a request waits for the send (`EIS_QUARANTINE_TIMEOUT_MS`, 2000).
    pub timeout: Duration,
}

impl Default for QuarantineBounds {
    fn default() -> Self {
        QuarantineBounds {
            event_bytes: 64 * 1024,
            request_bytes: 192 * 1024,
            budget_bytes: 256 * 1024,
            timeout: Duration::from_secs(2),
        }
    }
}

/// A request's rejections, collected while it is judged, within its bounds.
pub struct Rejects {
    bounds: QuarantineBounds,
    max_experiments: usize,
    budget_left: usize,
    pub records: Vec<Quarantined>,
}

impl Rejects {
    pub fn new(bounds: QuarantineBounds, max_experiments: usize) -> Self {
        Rejects {
            bounds,
            max_experiments,
            budget_left: bounds.budget_bytes,
            records: Vec::new(),
        }
    }

    /// A rejected event (`batch_index` None for `POST /events`).
    pub fn event(
        &mut self,
        arrival: Arrival<'_>,
        batch_index: Option<usize>,
        raw: &[u8],
        rejection: &Rejection,
    ) {
        let cap = self.bounds.event_bytes.min(self.budget_left);
        let record = Quarantined::event(
            arrival,
            batch_index,
            raw,
            rejection,
            cap,
            self.max_experiments,
        );
        self.keep(record);
    }

    /// A body refused as a whole.
    pub fn request(&mut self, arrival: Arrival<'_>, raw: &[u8], rejection: &Rejection) {
        let cap = self.bounds.request_bytes.min(self.budget_left);
        self.keep(Quarantined::request(arrival, raw, rejection, cap));
    }

    fn keep(&mut self, record: Quarantined) {
        self.budget_left -= record.raw.len().min(self.budget_left);
        self.records.push(record);
    }
}

/// What became of a request's records.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct QuarantineReport {
    pub kept: usize,
    pub failed: usize,
    /// Bytes of text sent (after the cuts).
    pub raw_bytes: usize,
}

pub struct Quarantine {
    publisher: SqsPublisher,
    timeout: Duration,
}

impl Quarantine {
    pub fn new(publisher: SqsPublisher, timeout: Duration) -> Self {
        Quarantine { publisher, timeout }
    }

    /// Sends the records; never fails the request (errors are logged and counted).
    pub async fn keep(&self, mut records: Vec<Quarantined>) -> QuarantineReport {
        if records.is_empty() {
            return QuarantineReport::default();
        }
        let total = records.len();
        let sent =
            tokio::time::timeout(self.timeout, self.publisher.publish_rejected(&mut records)).await;
        let outcome = match sent {
            Ok(outcome) => outcome,
            Err(_) => {
                tracing::warn!(
                    records = total,
                    "quarantine send timed out; records dropped"
                );
                return QuarantineReport {
                    failed: total,
                    ..Default::default()
                };
            }
        };
        for error in &outcome.errors {
            let error = eis_runtime::telemetry::chain(error);
            tracing::warn!(%error, "quarantine send failed; records dropped");
        }
        QuarantineReport {
            kept: outcome.published.len(),
            failed: total - outcome.published.len(),
            raw_bytes: outcome
                .published
                .iter()
                .filter_map(|&i| records.get(i))
                .map(|r| r.raw.len())
                .sum(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn rejection() -> Rejection {
        eis_contract::validate_event(b"{}", Utc::now(), &eis_contract::Limits::default())
            .expect_err("an empty object is invalid")
    }

    #[test]
    fn texts_are_cut_per_event_per_body_and_per_request() {
        let bounds = QuarantineBounds {
            event_bytes: 10,
            request_bytes: 25,
            budget_bytes: 30,
            timeout: Duration::from_secs(1),
        };
        let arrival = Arrival {
            request_id: "r",
            route: "POST /events/batch",
            received_at: Utc::now(),
        };
        let mut rejects = Rejects::new(bounds, 32);
        let text = [b'x'; 40];
        rejects.event(arrival, Some(0), &text, &rejection());
        rejects.request(arrival, &text, &rejection());
        rejects.event(arrival, Some(1), &text, &rejection());
        let kept: Vec<usize> = rejects.records.iter().map(|r| r.raw.len()).collect();
        // 10 (event cap), then 20 of the request cap's 25 (the budget's rest), then nothing.
        assert_eq!(kept, [10, 20, 0]);
        assert!(rejects
            .records
            .iter()
            .all(|r| r.raw_truncated && r.raw_bytes == 40));
    }
}
