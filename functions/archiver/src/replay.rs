//! `{"action":"replay","from":…,"to":…[,"code":…]}`: the quarantined input of an hour range
//! (hours of `received_at`), judged again by the current contract and registry; what passes
//! now is stored through the ingest's own path (`eis_store::Storage`: commit, then hand-off),
//! received now. Replaying twice stores nothing twice: each record is read once per replay
//! (records are deduplicated by id), a client `event_id` is kept, and an event without one
//! gets an id derived from its record (`Quarantined::replay_event_id`).

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use eis_contract::{
    parse_batch, validate_replayed_event, Event, Limits, Quarantined, Registry, RegistryMode, Scope,
};
use eis_store::InsertOutcome;
use serde::Serialize;
use tokio::time::Instant;
use uuid::Uuid;

use crate::app::Archiver;
use crate::error::ArchiveError;
use crate::partition::HourPartition;
use crate::rejected;

/// Events stored per call, as a batch request would.
const STORE_CHUNK: usize = 1_000;

/// Per original code: what became of its events.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct CodeCounts {
    /// Stored now.
    pub replayed: u64,
    /// Rejected again (the contract still refuses them).
    pub still_invalid: u64,
    /// Already stored with the same content (an earlier replay, or a client retry).
    pub already_stored: u64,
    /// Their event_id is stored with other content: the stored event is kept.
    pub conflicts: u64,
    /// Records whose text was cut at quarantine: they cannot be judged again.
    pub truncated: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct ReplaySummary {
    pub action: &'static str,
    pub hours: usize,
    pub files: usize,
    /// Distinct quarantine records read (of the chosen code, if any).
    pub records: u64,
    pub by_code: BTreeMap<String, CodeCounts>,
    /// Stored events that SQS did not confirm (the sweep archives them).
    pub publish_failures: usize,
    /// The first hour not read, when the deadline came first (run again from there).
    pub unfinished_from: Option<DateTime<Utc>>,
}

/// What replay judges: the registry and mode, the limits, and the clock.
pub struct Judge<'a> {
    pub registry: &'a Registry,
    pub mode: RegistryMode,
    pub limits: &'a Limits,
    pub now: DateTime<Utc>,
}

/// One record judged again: its events that pass now, and how many do not.
struct Judged {
    events: Vec<Event>,
    still_invalid: u64,
    truncated: bool,
}

impl Judge<'_> {
    fn event(&self, record: &Quarantined, text: &[u8], position: usize) -> Option<Event> {
        let missing_id = record.replay_event_id(position);
        validate_replayed_event(text, self.now, self.limits, missing_id)
            .and_then(|event| self.registry.admit(event, self.mode))
            .ok()
    }

    /// A record's text as its route reads it: one event, or a batch body of events.
    fn record(&self, record: &Quarantined) -> Judged {
        let mut judged = Judged {
            events: Vec::new(),
            still_invalid: 0,
            truncated: record.raw_truncated,
        };
        if record.raw_truncated {
            return judged;
        }
        let raw = record.raw.as_bytes();
        let texts: Vec<&[u8]> = match record.scope {
            Scope::Request if record.route.ends_with("/batch") => {
                match parse_batch(raw, self.limits) {
                    Ok(items) => items.iter().map(|t| t.get().as_bytes()).collect(),
                    Err(_) => {
                        judged.still_invalid = 1;
                        return judged;
                    }
                }
            }
            Scope::Request | Scope::Event => vec![raw],
        };
        for (position, text) in texts.into_iter().enumerate() {
            match self.event(record, text, position) {
                Some(event) => judged.events.push(event),
                None => judged.still_invalid += 1,
            }
        }
        judged
    }
}

pub async fn replay(
    archiver: &Archiver,
    hours: &[HourPartition],
    code: Option<&str>,
    judge: &Judge<'_>,
    deadline: Instant,
) -> Result<ReplaySummary, ArchiveError> {
    let mut summary = ReplaySummary {
        action: "replay",
        ..Default::default()
    };
    let prefix = &archiver.config.rejected_prefix;
    for hour in hours {
        if deadline.saturating_duration_since(Instant::now()) < archiver.config.safety_margin {
            summary.unfinished_from = Some(hour.start());
            break;
        }
        let mut records = Vec::new();
        let mut seen: HashSet<Uuid> = HashSet::new();
        for (key, _) in archiver
            .bucket
            .objects(&format!("{prefix}{}", hour.folder()))
            .await?
        {
            if !key.ends_with(".parquet") {
                continue;
            }
            let Some(body) = archiver.bucket.get(&key, None).await? else {
                continue;
            };
            summary.files += 1;
            records.extend(
                rejected::decode(body)?
                    .into_iter()
                    .filter(|r| code.is_none_or(|c| r.code == c))
                    .filter(|r| seen.insert(r.record_id)),
            );
        }
        // In arrival order, so that a replay stores a client's events in the order it sent.
        records.sort_by(|a, b| {
            (a.received_at, &a.request_id, a.batch_index).cmp(&(
                b.received_at,
                &b.request_id,
                b.batch_index,
            ))
        });
        summary.records += records.len() as u64;
        store(archiver, judge, &records, &mut summary).await?;
        summary.hours += 1;
    }
    Ok(summary)
}

async fn store(
    archiver: &Archiver,
    judge: &Judge<'_>,
    records: &[Quarantined],
    summary: &mut ReplaySummary,
) -> Result<(), ArchiveError> {
    let mut events = Vec::new();
    let mut codes = Vec::new();
    for record in records {
        let judged = judge.record(record);
        let counts = summary.by_code.entry(record.code.clone()).or_default();
        counts.still_invalid += judged.still_invalid;
        counts.truncated += u64::from(judged.truncated);
        codes.extend(std::iter::repeat_n(
            record.code.clone(),
            judged.events.len(),
        ));
        events.extend(judged.events);
    }
    for (chunk, chunk_codes) in events.chunks(STORE_CHUNK).zip(codes.chunks(STORE_CHUNK)) {
        let report = archiver.storage.save(chunk).await?;
        summary.publish_failures += report.publish_failures;
        for (outcome, code) in report.outcomes.iter().zip(chunk_codes) {
            let counts = summary.by_code.entry(code.clone()).or_default();
            match outcome {
                InsertOutcome::Inserted => counts.replayed += 1,
                InsertOutcome::Duplicate => counts.already_stored += 1,
                InsertOutcome::Conflict => counts.conflicts += 1,
                InsertOutcome::Rejected(reason) => {
                    tracing::warn!(%reason, "storage refused a replayed event");
                    counts.still_invalid += 1;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_events::utc;
    use eis_contract::Arrival;

    fn judge_at<'a>(registry: &'a Registry, limits: &'a Limits, now: &str) -> Judge<'a> {
        Judge {
            registry,
            mode: RegistryMode::Flag,
            limits,
            now: utc(now),
        }
    }

    /// A record of `raw` rejected at 10:00 with whatever the contract said then.
    fn quarantined(scope: Scope, raw: &str, cap: usize) -> Quarantined {
        let arrival = Arrival {
            request_id: "req-1",
            route: "POST /events/batch",
            received_at: utc("2026-12-02T10:00:00Z"),
        };
        let limits = Limits::default();
        match scope {
            Scope::Event => {
                let rejection =
                    eis_contract::validate_event(raw.as_bytes(), arrival.received_at, &limits)
                        .expect_err("rejected at 10:00");
                Quarantined::event(arrival, Some(2), raw.as_bytes(), &rejection, cap, 32)
            }
            Scope::Request => {
                let rejection = parse_batch(b"{}", &limits).expect_err("not a batch");
                Quarantined::request(arrival, raw.as_bytes(), &rejection, cap)
            }
        }
    }

    const LATER: &str = r#"{"event_type":"pantry_updated","unit_type":"user","unit_id":"u-1","timestamp":"2026-12-02T11:00:00Z"}"#;

    #[test]
    fn a_future_event_passes_once_the_clock_has_moved_on() {
        let (registry, limits) = (Registry::default(), Limits::default());
        let record = quarantined(Scope::Event, LATER, 1024);
        assert_eq!(record.code, "future_timestamp");
        let still = judge_at(&registry, &limits, "2026-12-02T10:01:00Z").record(&record);
        assert_eq!((still.events.len(), still.still_invalid), (0, 1));
        let judged = judge_at(&registry, &limits, "2026-12-02T12:00:00Z").record(&record);
        assert_eq!((judged.events.len(), judged.still_invalid), (1, 0));
        // No client event_id: the id comes from the record, the same on every replay.
        let again = judge_at(&registry, &limits, "2026-12-02T13:00:00Z").record(&record);
        assert_eq!(judged.events[0].event_id, record.replay_event_id(0));
        assert_eq!(again.events[0].event_id, judged.events[0].event_id);
    }

    #[test]
    fn a_body_refused_whole_is_read_as_its_route_reads_it() {
        let (registry, limits) = (Registry::default(), Limits::default());
        let body = format!(r#"{{"events":[{LATER},{{"unit_type":"user"}}]}}"#);
        let judged = judge_at(&registry, &limits, "2026-12-02T12:00:00Z").record(&quarantined(
            Scope::Request,
            &body,
            4096,
        ));
        assert_eq!((judged.events.len(), judged.still_invalid), (1, 1));
        let garbage = judge_at(&registry, &limits, "2026-12-02T12:00:00Z").record(&quarantined(
            Scope::Request,
            "{not json",
            4096,
        ));
        assert_eq!((garbage.events.len(), garbage.still_invalid), (0, 1));
    }

    #[test]
    fn a_cut_text_is_not_judged_again() {
        let (registry, limits) = (Registry::default(), Limits::default());
        let record = quarantined(Scope::Event, LATER, 10);
        let judged = judge_at(&registry, &limits, "2026-12-02T12:00:00Z").record(&record);
        assert!(judged.truncated && judged.events.is_empty());
    }
}
