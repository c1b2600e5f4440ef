//! Keeping what a request had rejected: each rejection becomes an `eis_contract::Quarantined`
//! record, sent on the archive queue (marked, `{"rejected":[…]}`), which the archiver writes
//! under `rejected/`. Bounded per event, per refused body and per request, so that a flood of
//! garbage costs a known amount; best effort, so that it never changes an answer: a record
//! that cannot be sent in time is counted (`QuarantineFailures`) and dropped.

use std::time::Duration;

use eis_contract::{named_variants, variant_bytes, Arrival, NamedVariant, Quarantined, Rejection};
use eis_handoff::SqsPublisher;

/// What one request may keep (docs/quarantine.md, "Bounds").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuarantineBounds {
    /// Text kept of one rejected event (`EIS_QUARANTINE_EVENT_BYTES`, 64 KiB).
    pub event_bytes: usize,
    /// Text kept of a body refused as a whole (`EIS_QUARANTINE_REQUEST_BYTES`, 192 KiB, so
    /// that the record fits one SQS message).
    pub request_bytes: usize,
    /// Text and variant strings kept of all the rejections of one request
    /// (`EIS_QUARANTINE_BUDGET_BYTES`, 256 KiB); the records past it keep their code and
    /// index, not their text (nor their variants, once those do not fit either).
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

    /// A rejected event (`batch_index` None for `POST /events`). Its variants (each id capped
    /// at `MAX_NAMED_ID_BYTES`) are paid from the budget first, then its text from the rest;
    /// a record the budget has no room for keeps neither, only its code and index. Returns
    /// every variant the text names, kept or not, for the per-variant metric.
    pub fn event(
        &mut self,
        arrival: Arrival<'_>,
        batch_index: Option<usize>,
        raw: &[u8],
        rejection: &Rejection,
    ) -> Vec<NamedVariant> {
        let named = named_variants(raw, self.max_experiments);
        let kept = if variant_bytes(&named) <= self.budget_left {
            named.clone()
        } else {
            Vec::new()
        };
        let text_left = self.budget_left - variant_bytes(&kept);
        let cap = self.bounds.event_bytes.min(text_left);
        let record = Quarantined::event_naming(arrival, batch_index, raw, rejection, cap, kept);
        self.keep(record);
        named
    }

    /// A body refused as a whole.
    pub fn request(&mut self, arrival: Arrival<'_>, raw: &[u8], rejection: &Rejection) {
        let cap = self.bounds.request_bytes.min(self.budget_left);
        self.keep(Quarantined::request(arrival, raw, rejection, cap));
    }

    fn keep(&mut self, record: Quarantined) {
        let cost = record.raw.len() + record.variant_bytes();
        self.budget_left -= cost.min(self.budget_left);
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
        let sent = tokio::time::timeout(
            self.timeout,
            self.publisher.publish_quarantined(&mut records),
        )
        .await;
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

    /// An event naming `pairs` pairs of ids of `id_len` bytes, padded to `len` bytes of text.
    fn naming(pairs: usize, id_len: usize, len: usize) -> Vec<u8> {
        let id = "v".repeat(id_len);
        let refs: Vec<_> = (0..pairs)
            .map(|i| serde_json::json!({"experiment_id": format!("{i}{id}"), "variant_id": id}))
            .collect();
        let mut event = serde_json::json!({ "experiments": refs, "note": "" });
        let short = serde_json::to_vec(&event).map_or(0, |t| t.len());
        event["note"] = serde_json::json!("n".repeat(len.saturating_sub(short)));
        serde_json::to_vec(&event).unwrap_or_default()
    }

    #[test]
    fn variant_strings_count_against_the_budget_and_are_capped() {
        let cap = eis_contract::MAX_NAMED_ID_BYTES;
        let arrival = Arrival {
            request_id: "r",
            route: "POST /events/batch",
            received_at: Utc::now(),
        };
        // (budget, the events: (pairs, id length, text length)), then per record:
        // (variants kept, text kept).
        type Case = (
            usize,
            &'static [(usize, usize, usize)],
            &'static [(usize, usize)],
        );
        let cases: &[Case] = &[
            // Short ids: 2 pairs of 2+1 bytes, the text gets the other 94.
            (100, &[(2, 1, 300)], &[(2, 94)]),
            // Ids of 1 000 bytes are cut: 32 pairs of 2 x 128 (8 KiB), whatever is sent; the
            // text its 64 KiB cap.
            (
                100_000,
                &[(1000, 1000, 0), (1, 1, 100)],
                &[(32, 65_536), (1, 100)],
            ),
            // Variants that do not fit the budget's rest are left out, the text takes it.
            (300, &[(1, 1, 280), (2, 200, 100)], &[(1, 280), (0, 17)]),
            // A spent budget: code and index only, the neighbours still kept.
            (
                10,
                &[(1, 1, 50), (1, 1, 50), (1, 1, 50)],
                &[(1, 7), (0, 0), (0, 0)],
            ),
        ];
        for (budget, events, want) in cases {
            let bounds = QuarantineBounds {
                budget_bytes: *budget,
                ..QuarantineBounds::default()
            };
            let mut rejects = Rejects::new(bounds, 32);
            let mut named = Vec::new();
            for (i, &(pairs, id_len, len)) in events.iter().enumerate() {
                let text = naming(pairs, id_len, len);
                named.push(rejects.event(arrival, Some(i), &text, &rejection()).len());
            }
            let got: Vec<(usize, usize)> = rejects
                .records
                .iter()
                .map(|r| (r.experiments.len(), r.raw.len()))
                .collect();
            assert_eq!(&got, want, "budget {budget}");
            let spent: usize = rejects
                .records
                .iter()
                .map(|r| r.raw.len() + r.variant_bytes())
                .sum();
            assert!(spent <= *budget, "budget {budget}: spent {spent}");
            assert!(rejects
                .records
                .iter()
                .all(|r| r
                    .experiments
                    .iter()
                    .all(|v| v.experiment_id.len() <= cap && v.variant_id.len() <= cap)));
            // The metric still hears of every variant named (capped in number).
            let expected: Vec<usize> = events.iter().map(|e| e.0.min(32)).collect();
            assert_eq!(named, expected, "budget {budget}");
        }
    }
}
