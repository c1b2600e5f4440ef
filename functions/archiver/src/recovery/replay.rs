//! `{"action":"replay","from":…,"to":…[,"code":…]}`: the quarantined input of an hour range
//! (hours of `received_at`), judged again by the current contract (with the ingest's limits)
//! and registry; what passes now is stored through the ingest's own path
//! (`eis_handoff::Storage`: commit, then hand-off), received when it is stored. Replaying twice
//! stores nothing twice: a client `event_id` is kept, and an event without one gets an id
//! derived from its record (`Quarantined::replay_event_id`). The files of an hour are read in
//! chunks of `REPLAY_CHUNK` records (`hour_stream`), resumably.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use eis_contract::plan::{Plan, PlanVerdict};
use eis_contract::{
    parse_batch, validate_replayed_event, Event, Limits, Quarantined, Registry, RegistryMode,
    Scope, Tombstones,
};
use std::time::Duration;

use eis_handoff::Storage;
use eis_store::InsertOutcome;
use serde::Serialize;
use tokio::time::Instant;

use crate::archive::bucket::ArchiveBucket;
use crate::archive::partition::HourPartition;
use crate::archive::quarantine_parquet;
use crate::error::ArchiveError;
use crate::recovery::hour_stream::{in_file, read_hours, HourFiles, RangeProgress, Resume};

/// What a replay works with: the bucket and the quarantine's prefix in it, the ingest's
/// storage path, and the time it leaves before a deadline.
pub struct Replay<'a> {
    pub bucket: &'a ArchiveBucket,
    pub quarantine_prefix: &'a str,
    pub storage: &'a Storage,
    pub safety_margin: Duration,
}

/// Records read at a time: a record holds at most one body refused whole (192 KiB by
/// default), so a chunk holds at most some tens of MiB of text.
pub const REPLAY_CHUNK: usize = 256;
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
    /// Events of erased units, left out (docs/privacy.md).
    pub erased: u64,
    /// Records whose text was cut at quarantine: they cannot be judged again.
    pub truncated: u64,
    /// Records whose text was not valid UTF-8 (`raw_lossy`): what is kept is not what the
    /// client sent, so it is never replayed.
    pub lossy: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct ReplaySummary {
    pub action: &'static str,
    #[serde(flatten)]
    pub progress: RangeProgress,
    /// Quarantine records read (of the chosen code, if any). A record in two copies of a
    /// file is read twice; its events are `already_stored` the second time.
    pub records: u64,
    pub by_code: BTreeMap<String, CodeCounts>,
    /// Stored events that SQS did not confirm (the sweep archives them).
    pub publish_failures: usize,
}

/// What replay judges: the tracking plan, the registry and mode, the limits (the ingest's), and the clock. The
/// clock is read for each chunk just before it is stored: that reading is the events'
/// `received_at`, so the health job's watermark (which trails the clock by its lag) cannot
/// have passed them when they commit.
pub struct Judge<'a> {
    pub registry: &'a Registry,
    /// Erased units: their events received or timestamped before the erasure stay out.
    pub tombstones: &'a Tombstones,
    /// The tracking plan now: a `schema_violation` refused before a plan fix passes now, and is
    /// stamped with the version it matches.
    pub plan: &'a Plan,
    pub mode: RegistryMode,
    pub limits: &'a Limits,
    pub clock: fn() -> DateTime<Utc>,
}

/// One record judged again: its events that pass now, how many do not, and how many are of
/// erased units.
struct Judged {
    events: Vec<Event>,
    still_invalid: u64,
    erased: u64,
}

impl Judge<'_> {
    fn event(
        &self,
        record: &Quarantined,
        text: &[u8],
        position: usize,
        now: DateTime<Utc>,
    ) -> Option<Event> {
        let missing_id = record.replay_event_id(position);
        let event = validate_replayed_event(text, now, self.limits, missing_id).ok()?;
        match self.plan.check(event) {
            PlanVerdict::Accepted(event) => self.registry.admit(event, self.mode).ok(),
            PlanVerdict::Quarantined(_) | PlanVerdict::Refused(_) => None,
        }
    }

    /// A record's text as its route reads it: one event, or a batch body of events. A cut or
    /// lossy text is not judged (the caller counts it).
    fn record(&self, record: &Quarantined, now: DateTime<Utc>) -> Judged {
        let mut judged = Judged {
            events: Vec::new(),
            still_invalid: 0,
            erased: 0,
        };
        if record.raw_truncated || record.raw_lossy {
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
            match self.event(record, text, position, now) {
                // Erased if the unit's erasure came after the record first arrived.
                Some(e)
                    if self.tombstones.erased(
                        &e.unit_type,
                        &e.unit_id,
                        e.timestamp,
                        record.received_at,
                    ) =>
                {
                    judged.erased += 1
                }
                Some(event) => judged.events.push(event),
                None => judged.still_invalid += 1,
            }
        }
        judged
    }
}

fn is_quarantine_file(name: &str) -> bool {
    name.ends_with(".parquet")
}

/// Replays the hours, from `resume` in the first hour. At least one chunk is replayed per
/// invocation, however close the deadline: every invocation makes progress.
pub async fn replay(
    parts: &Replay<'_>,
    hours: &[HourPartition],
    resume: Option<Resume>,
    code: Option<&str>,
    judge: &Judge<'_>,
    deadline: Instant,
) -> Result<ReplaySummary, ArchiveError> {
    let mut summary = ReplaySummary {
        action: "replay",
        ..Default::default()
    };
    let prefix = parts.quarantine_prefix;
    let files = HourFiles {
        folder: |hour: &HourPartition| format!("{prefix}{}", hour.folder()),
        accept: is_quarantine_file,
        chunk: REPLAY_CHUNK,
    };
    let progress = read_hours(
        parts.bucket,
        hours,
        &files,
        resume,
        (deadline, parts.safety_margin),
        async |batch, key| {
            let mut records =
                quarantine_parquet::decode_batch(batch).map_err(|e| in_file(key, e))?;
            records.retain(|r| code.is_none_or(|c| r.code == c));
            summary.records += records.len() as u64;
            store(parts.storage, judge, &records, &mut summary).await
        },
    )
    .await?;
    summary.progress = progress;
    Ok(summary)
}

/// Judges and stores one chunk of records, in file order (the order they arrived in).
async fn store(
    storage: &Storage,
    judge: &Judge<'_>,
    records: &[Quarantined],
    summary: &mut ReplaySummary,
) -> Result<(), ArchiveError> {
    let (mut events, mut codes) = (Vec::new(), Vec::new());
    let mut next = 0;
    while next < records.len() || !events.is_empty() {
        // Judged with the clock of the statement that stores them (see `Judge`).
        let now = (judge.clock)();
        while next < records.len() && events.len() < STORE_CHUNK {
            let record = &records[next];
            next += 1;
            let counts = summary.by_code.entry(record.code.clone()).or_default();
            if record.raw_lossy {
                counts.lossy += 1;
                continue;
            }
            if record.raw_truncated {
                counts.truncated += 1;
                continue;
            }
            let judged = judge.record(record, now);
            counts.still_invalid += judged.still_invalid;
            counts.erased += judged.erased;
            codes.extend(std::iter::repeat_n(
                record.code.clone(),
                judged.events.len(),
            ));
            events.extend(judged.events);
        }
        let take = events.len().min(STORE_CHUNK);
        let chunk: Vec<Event> = events.drain(..take).collect();
        let chunk_codes: Vec<String> = codes.drain(..take).collect();
        if chunk.is_empty() {
            continue;
        }
        let report = storage.save(&chunk).await?;
        summary.publish_failures += report.publish_failures;
        for (outcome, code) in report.outcomes.iter().zip(&chunk_codes) {
            let counts = summary.by_code.entry(code.clone()).or_default();
            match outcome {
                InsertOutcome::Inserted => counts.replayed += 1,
                InsertOutcome::Duplicate => counts.already_stored += 1,
                InsertOutcome::Conflict => counts.conflicts += 1,
                InsertOutcome::Refused(reason) => {
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

    static NO_TOMBSTONES: std::sync::LazyLock<Tombstones> =
        std::sync::LazyLock::new(Tombstones::default);
    static NO_PLAN: std::sync::LazyLock<Plan> = std::sync::LazyLock::new(Plan::default);

    fn judge<'a>(registry: &'a Registry, limits: &'a Limits) -> Judge<'a> {
        Judge {
            registry,
            tombstones: &NO_TOMBSTONES,
            plan: &NO_PLAN,
            mode: RegistryMode::Flag,
            limits,
            clock: Utc::now,
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
        let still = judge(&registry, &limits).record(&record, utc("2026-12-02T10:01:00Z"));
        assert_eq!((still.events.len(), still.still_invalid), (0, 1));
        let judged = judge(&registry, &limits).record(&record, utc("2026-12-02T12:00:00Z"));
        assert_eq!((judged.events.len(), judged.still_invalid), (1, 0));
        // No client event_id: the id comes from the record, the same on every replay.
        let again = judge(&registry, &limits).record(&record, utc("2026-12-02T13:00:00Z"));
        assert_eq!(judged.events[0].event_id, record.replay_event_id(0));
        assert_eq!(again.events[0].event_id, judged.events[0].event_id);
    }

    #[test]
    fn a_body_refused_whole_is_read_as_its_route_reads_it() {
        let (registry, limits) = (Registry::default(), Limits::default());
        let body = format!(r#"{{"events":[{LATER},{{"unit_type":"user"}}]}}"#);
        let judged = judge(&registry, &limits).record(
            &quarantined(Scope::Request, &body, 4096),
            utc("2026-12-02T12:00:00Z"),
        );
        assert_eq!((judged.events.len(), judged.still_invalid), (1, 1));
        let garbage = judge(&registry, &limits).record(
            &quarantined(Scope::Request, "{not json", 4096),
            utc("2026-12-02T12:00:00Z"),
        );
        assert_eq!((garbage.events.len(), garbage.still_invalid), (0, 1));
    }

    #[test]
    fn a_cut_text_is_not_judged_again() {
        let (registry, limits) = (Registry::default(), Limits::default());
        let record = quarantined(Scope::Event, LATER, 10);
        let judged = judge(&registry, &limits).record(&record, utc("2026-12-02T12:00:00Z"));
        assert!(record.raw_truncated && judged.events.is_empty());
    }

    #[test]
    fn lossy_text_is_not_judged_again() {
        let (registry, limits) = (Registry::default(), Limits::default());
        let mut record = quarantined(Scope::Event, LATER, 1024);
        record.raw_lossy = true;
        let judged = judge(&registry, &limits).record(&record, utc("2026-12-02T12:00:00Z"));
        assert_eq!((judged.events.len(), judged.still_invalid), (0, 0));
    }

    /// A plan of pantry_updated in quarantine mode: 1-0-0 takes only `items_added`; with
    /// `fixed`, 1-1-0 also takes `source`.
    fn plan(fixed: bool) -> Plan {
        let version = |v: &str, properties: serde_json::Value| {
            serde_json::json!({"version": v, "payload": {
                "type": "object", "properties": properties, "additionalProperties": false}})
        };
        let mut versions = vec![version("1-0-0", serde_json::json!({"items_added": {}}))];
        if fixed {
            versions.push(version(
                "1-1-0",
                serde_json::json!({"items_added": {}, "source": {"type": "string"}}),
            ));
        }
        let document = serde_json::json!({"types": [
            {"event_type": "pantry_updated", "mode": "quarantine", "versions": versions}]});
        let document = serde_json::from_value(document).expect("a plan document");
        Plan::compile(&document).expect("compiles")
    }

    #[test]
    fn a_schema_violation_passes_after_the_plan_is_fixed_and_is_stamped() {
        let (registry, limits) = (Registry::default(), Limits::default());
        let raw = r#"{"event_type":"pantry_updated","unit_type":"user","unit_id":"u-1","timestamp":"2026-12-02T09:00:00Z","payload":{"items_added":1,"source":"scan"}}"#;
        let arrival = Arrival {
            request_id: "req-1",
            route: "POST /events",
            received_at: utc("2026-12-02T10:00:00Z"),
        };
        let event = eis_contract::validate_event(raw.as_bytes(), arrival.received_at, &limits)
            .expect("contract-valid");
        let PlanVerdict::Quarantined(rejection) = plan(false).check(event) else {
            panic!("quarantined by 1-0-0");
        };
        let record = Quarantined::event(arrival, None, raw.as_bytes(), &rejection, 4096, 32);
        assert_eq!(record.code, "schema_violation");
        assert_eq!(record.violations[0].path, "/payload/source");
        let now = utc("2026-12-02T12:00:00Z");
        for (fixed, want) in [(false, None), (true, Some("1-1-0"))] {
            let plan = plan(fixed);
            let judge = Judge {
                plan: &plan,
                ..judge(&registry, &limits)
            };
            let judged = judge.record(&record, now);
            let stamped: Vec<_> = judged
                .events
                .iter()
                .map(|e| e.schema_version.as_deref())
                .collect();
            match want {
                None => assert_eq!((stamped.len(), judged.still_invalid), (0, 1)),
                Some(v) => assert_eq!((stamped, judged.still_invalid), (vec![Some(v)], 0)),
            }
        }
    }
}
