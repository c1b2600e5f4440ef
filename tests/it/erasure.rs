//! Erasure end to end (issue 27, docs/privacy.md), against PostgreSQL and moto: one unit's
//! events spread over a compacted hour, an hour of raw files, the queue, a pending hand-off
//! and the quarantine, in a versioned bucket; erased through the archiver's own input; then
//! every store read back, every version of every object included.
//! Over 400 lines: one setup shared by the two tests, and the read-back of every store.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use archiver::app::Archiver;
use archiver::archive::partition::{hours_between, HourPartition};
use archiver::archive::quarantine_parquet;
use archiver::handler::{self, Input, Output};
use archiver::health;
use chrono::{DateTime, Utc};
use eis_contract::{Arrival, Event, Quarantined};
use eis_store::erasure::{Receipt, UnitToErase};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use tokio::time::Instant;

use eis_tests::archive::{self, hour_ago, ids_and_units, policy, Stack, HEALTH_POLICY};

const GONE: &str = "gone-user";
const KEPT: [&str; 2] = ["kept-1", "kept-2"];

/// What the setup put where, to compare receipts and leftovers with.
struct Setup {
    /// The erased unit's events in exp.events.
    gone_events: Vec<Event>,
    /// Of those, in hour files when the erasure runs (the compacted and the raw hour).
    gone_archived: u64,
    /// Quarantine records naming the unit.
    gone_quarantined: u64,
    /// (event_id, unit) of the other units per hour, as archived before the erasure.
    kept_by_hour: BTreeMap<String, BTreeSet<(String, String)>>,
}

fn events_at(timestamp: DateTime<Utc>, unit: &str, n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| {
            let at = timestamp + chrono::Duration::seconds(i as i64);
            eis_tests::events::event(Utc::now(), at, unit)
        })
        .collect()
}

fn quarantined(raw: &str, received_at: DateTime<Utc>, index: usize) -> Quarantined {
    let arrival = Arrival {
        request_id: "req-erasure-test",
        route: "/events/batch",
        received_at,
    };
    let rejection = eis_contract::validate_event(raw.as_bytes(), Utc::now(), &Default::default())
        .expect_err("the test's texts are all invalid");
    Quarantined::event(arrival, Some(index), raw.as_bytes(), &rejection, 4096, 32)
}

/// The unit and two others: a compacted hour (5 h ago), an hour of raw files (this hour),
/// events still in the queue (1 h ago), a pending hand-off row, quarantined texts, and the
/// health job's assignments and rollups.
async fn set_up(stack: &Stack, archiver: &Archiver) -> Setup {
    stack
        .s3
        .put_bucket_versioning()
        .bucket(&stack.bucket)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .expect("versioning");
    let mut archived = Vec::new();
    for unit in [GONE, KEPT[0], KEPT[1]] {
        archived.extend(events_at(hour_ago(5, 10), unit, 3));
        archived.extend(events_at(hour_ago(0, 0), unit, 2));
    }
    archiver.storage.save(&archived).await.expect("stored");
    let run = archiver.run(Utc::now(), deadline()).await;
    assert_eq!(run.summary.compaction.hours, 1, "{:?}", run.summary);
    // The compaction of the settled hour left versions behind: raw files now noncurrent.
    let mut queued = Vec::new();
    for unit in [GONE, KEPT[0]] {
        queued.extend(events_at(hour_ago(1, 20), unit, 2));
    }
    archiver.storage.save(&queued).await.expect("stored");
    // A pending hand-off naming one event of each (as if SQS had not confirmed them).
    let db = stack.db().client().await;
    db.execute(
        "INSERT INTO exp.pending_handoffs (received_at, event_ids, timestamps) VALUES (now(), $1, $2)",
        &[
            &vec![queued[0].event_id, queued[2].event_id],
            &vec![queued[0].timestamp, queued[2].timestamp],
        ],
    )
    .await
    .expect("pending row");
    // Quarantined texts: one event of the unit, a batch body naming it and another, one of
    // another unit only, and a broken text holding its id.
    let received = hour_ago(2, 5);
    let gone_event = format!(r#"{{"unit_type":"user","unit_id":"{GONE}","oops":1}}"#);
    let batch = format!(
        r#"{{"events":[{{"unit_type":"user","unit_id":"{}"}},{{"unit_type":"user","unit_id":"{GONE}"}}]}}"#,
        KEPT[0]
    );
    let kept_event = format!(r#"{{"unit_type":"user","unit_id":"{}","oops":1}}"#, KEPT[1]);
    let broken = format!(r#"{{"unit_type":"user","unit_id":"{GONE}""#);
    let records: Vec<Quarantined> = [&gone_event, &batch, &kept_event, &broken]
        .iter()
        .enumerate()
        .map(|(i, raw)| quarantined(raw, received, i))
        .collect();
    let key = quarantine_parquet::key(
        "rejected/",
        HourPartition::of(received),
        uuid::Uuid::now_v7(),
    );
    let body = quarantine_parquet::encode(&records).expect("encode");
    archiver
        .bucket
        .put(&key, body, uuid::Uuid::now_v7(), records.len())
        .await
        .expect("put");
    // Until it has counted what was stored (its watermark may stop short of the last insert).
    let mut counted = 0;
    for _ in 0..5 {
        let (summary, _) = health::run(&archiver.health, &HEALTH_POLICY, Utc::now(), deadline())
            .await
            .expect("health run");
        counted += summary.events;
        if counted >= (archived.len() + queued.len()) as u64 {
            break;
        }
    }
    assert_eq!(counted, (archived.len() + queued.len()) as u64);
    let mut gone_events: Vec<Event> = archived.iter().chain(&queued).cloned().collect();
    gone_events.retain(|e| e.unit_id == GONE);
    Setup {
        gone_archived: archived.iter().filter(|e| e.unit_id == GONE).count() as u64,
        gone_events,
        gone_quarantined: 3,
        kept_by_hour: kept_by_hour(stack).await,
    }
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(120)
}

/// The other units' archived rows per hour folder (current versions).
async fn kept_by_hour(stack: &Stack) -> BTreeMap<String, BTreeSet<(String, String)>> {
    let mut by_hour: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
    for key in archive::keys(&stack.s3, &stack.bucket).await {
        if key.starts_with("rejected/") {
            continue;
        }
        let body = archive::get(&stack.s3, &stack.bucket, &key).await;
        let hour = key
            .rsplit_once('/')
            .map(|(h, _)| h.to_string())
            .unwrap_or_default();
        let rows = by_hour.entry(hour).or_default();
        for batch in ParquetRecordBatchReaderBuilder::try_new(body)
            .expect("parquet")
            .build()
            .expect("reader")
        {
            let batch = batch.expect("rows");
            rows.extend(ids_and_units(&batch).into_iter().filter(|(_, u)| u != GONE));
        }
    }
    by_hour
}

/// Every version of every object in the bucket: its key and bytes.
async fn every_version(stack: &Stack) -> Vec<(String, bytes::Bytes)> {
    let listed = stack
        .s3
        .list_object_versions()
        .bucket(&stack.bucket)
        .send()
        .await
        .expect("versions");
    assert_ne!(listed.is_truncated(), Some(true), "one page in a test");
    let mut out = Vec::new();
    for v in listed.versions() {
        let (Some(key), Some(id)) = (v.key(), v.version_id()) else {
            continue;
        };
        let body = stack
            .s3
            .get_object()
            .bucket(&stack.bucket)
            .key(key)
            .version_id(id)
            .send()
            .await
            .expect("get version")
            .body
            .collect()
            .await
            .expect("body")
            .into_bytes();
        out.push((key.to_string(), body));
    }
    out
}

/// No trace of the unit: in any table, in any version of any hour file or quarantine file.
async fn assert_no_trace(stack: &Stack, setup: &Setup) {
    let db = stack.db().client().await;
    for (table, column) in [
        ("exp.events", "unit_id"),
        ("exp.assignments", "unit_id"),
        ("exp.variant_daily_units", "unit_id"),
    ] {
        let n: i64 = db
            .query_one(
                &format!("SELECT count(*) FROM {table} WHERE {column} = $1"),
                &[&GONE],
            )
            .await
            .expect("count")
            .get(0);
        assert_eq!(n, 0, "{table}");
    }
    let ids: Vec<uuid::Uuid> = setup.gone_events.iter().map(|e| e.event_id).collect();
    let left: i64 = db
        .query_one(
            "SELECT count(*) FROM exp.event_ids WHERE event_id = ANY($1)",
            &[&ids],
        )
        .await
        .expect("ids")
        .get(0);
    let pending: i64 = db
        .query_one(
            "SELECT count(*) FROM exp.pending_handoffs WHERE event_ids && $1",
            &[&ids],
        )
        .await
        .expect("pending")
        .get(0);
    assert_eq!((left, pending), (0, 0));
    for (key, body) in every_version(stack).await {
        if key.starts_with("rejected/") {
            let records = quarantine_parquet::decode(body).expect("a quarantine file");
            assert!(records.iter().all(|r| !r.raw.contains(GONE)), "{key}");
        } else {
            let reader = ParquetRecordBatchReaderBuilder::try_new(body)
                .expect("parquet")
                .build()
                .expect("reader");
            for batch in reader {
                let batch = batch.expect("rows");
                assert!(
                    ids_and_units(&batch).iter().all(|(_, u)| u != GONE),
                    "{key} holds the erased unit"
                );
            }
        }
    }
}

async fn erase(archiver: &Archiver, units: Vec<UnitToErase>, deadline: Instant) -> Receipts {
    let output = handler::handle(archiver, Input::Erase { units }, deadline, false)
        .await
        .expect("erase");
    let Output::Erase(summary) = output else {
        panic!("an erasure's answer");
    };
    Receipts {
        pending: summary.pending,
        receipts: summary
            .requests
            .iter()
            .map(|r| (r.status.clone(), r.receipt))
            .collect(),
    }
}

struct Receipts {
    pending: usize,
    receipts: Vec<(String, Receipt)>,
}

fn gone() -> UnitToErase {
    UnitToErase {
        unit_type: "user".into(),
        unit_id: GONE.into(),
        suppress: false,
    }
}

/// The receipt's counts are what was removed, store by store.
fn assert_receipt(receipt: &Receipt, setup: &Setup) {
    assert_eq!(receipt.postgres.events, setup.gone_events.len() as u64);
    assert_eq!(receipt.postgres.event_ids, setup.gone_events.len() as u64);
    assert_eq!(receipt.postgres.pending_keys, 1);
    assert!(receipt.postgres.assignments >= 1, "{receipt:?}");
    assert_eq!(receipt.archive.removed, setup.gone_archived);
    assert_eq!(
        receipt.archive.rewritten, 2,
        "the compacted hour and the raw hour"
    );
    assert!(receipt.archive.noncurrent_versions >= 2, "{receipt:?}");
    assert_eq!(receipt.quarantine.removed, setup.gone_quarantined);
    assert_eq!(receipt.quarantine.rewritten, 1);
}

#[tokio::test]
async fn a_unit_is_erased_from_every_store_and_stays_erased() {
    let stack = Stack::create().await;
    let archiver = stack.archiver(policy()).await;
    let setup = set_up(&stack, &archiver).await;

    let first = erase(&archiver, vec![gone()], deadline()).await;
    assert_eq!(first.pending, 0);
    let [(status, receipt)] = &first.receipts[..] else {
        panic!("one request");
    };
    assert_eq!(status, "completed");
    // Shown with --nocapture: docs/privacy.md's example is this run's.
    println!("receipt: {}", serde_json::to_string(receipt).expect("json"));
    assert_receipt(receipt, &setup);
    // The queue still held two of its events: the next run does not archive them.
    let run = archiver.run(Utc::now(), deadline()).await;
    assert_eq!(run.summary.erased, 2, "{:?}", run.summary);
    assert_no_trace(&stack, &setup).await;
    assert_eq!(
        kept_by_hour(&stack).await,
        with_queued_kept(&stack, &setup).await
    );

    // Again: nothing left to remove.
    let again = erase(&archiver, vec![gone()], deadline()).await;
    let [(status, receipt)] = &again.receipts[..] else {
        panic!("one request");
    };
    assert_eq!(status, "completed");
    assert_eq!(
        (
            receipt.postgres.events,
            receipt.archive.removed,
            receipt.quarantine.removed
        ),
        (0, 0, 0)
    );

    // Replay of the quarantine and restore of the archive bring nothing of it back; a
    // late file holding one of its old events is restored without it.
    let late = &setup.gone_events[0];
    archive::write_raw(
        &archiver,
        std::slice::from_ref(late),
        late.received_at,
        GONE,
    )
    .await;
    let hours = hours_between(hour_ago(6, 0), Utc::now()).expect("hours");
    let restored = archiver::recovery::restore::restore(
        &archiver.restore_job(),
        &hours,
        None,
        Utc::now(),
        deadline(),
    )
    .await
    .expect("restore");
    assert_eq!(restored.erased, 1, "{restored:?}");
    let tombstones = archiver.erasure.tombstones().await.expect("tombstones");
    let replayed = replay_everything(&archiver, &tombstones, &hours).await;
    assert_eq!(replayed, 0);
    let db = stack.db().client().await;
    let n: i64 = db
        .query_one(
            "SELECT count(*) FROM exp.events WHERE unit_id = $1",
            &[&GONE],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(n, 0);
}

/// The other units' rows per hour after the erasure: those before it, plus the queued hour
/// the last run archived.
async fn with_queued_kept(
    stack: &Stack,
    setup: &Setup,
) -> BTreeMap<String, BTreeSet<(String, String)>> {
    let mut expected = setup.kept_by_hour.clone();
    let now = kept_by_hour(stack).await;
    for (hour, rows) in &now {
        expected.entry(hour.clone()).or_insert_with(|| rows.clone());
    }
    expected
}

/// Replays every quarantined record of `hours`; returns the events stored of the unit.
async fn replay_everything(
    archiver: &Archiver,
    tombstones: &eis_contract::Tombstones,
    hours: &[HourPartition],
) -> u64 {
    let registry = eis_contract::Registry::default();
    let limits = eis_contract::Limits::default();
    let judge = archiver::recovery::replay::Judge {
        registry: &registry,
        tombstones,
        plan: &Default::default(),
        mode: eis_contract::RegistryMode::Flag,
        limits: &limits,
        clock: Utc::now,
    };
    let summary = archiver::recovery::replay::replay(
        &archiver.replay_job(),
        hours,
        None,
        None,
        &judge,
        deadline(),
    )
    .await
    .expect("replay");
    summary.by_code.values().map(|c| c.replayed).sum()
}

#[tokio::test]
async fn an_erasure_cut_off_after_every_step_completes_with_the_same_receipt() {
    let stack = Stack::create().await;
    let archiver = stack.archiver(policy()).await;
    let setup = set_up(&stack, &archiver).await;
    let recorded = archiver
        .erasure
        .record(&[gone()], Utc::now())
        .await
        .expect("recorded");
    // A deadline already past: each invocation does one step, one hour or one file.
    let mut invocations = 0;
    let receipt = loop {
        invocations += 1;
        assert!(invocations <= 20, "an erasure that never completes");
        let tombstones = Arc::new(archiver.erasure.tombstones().await.expect("tombstones"));
        let summary = archiver::erasure::run(
            &archiver.erasure_job(&tombstones),
            &recorded,
            Utc::now(),
            Instant::now(),
        )
        .await
        .expect("an erasure run");
        let [status] = &summary.requests[..] else {
            panic!("one request");
        };
        if status.status == "completed" {
            break status.receipt;
        }
    };
    assert!(
        invocations >= 4,
        "postgres, two hours, the quarantine: {invocations}"
    );
    assert_receipt(&receipt, &setup);
    archiver.run(Utc::now(), deadline()).await;
    assert_no_trace(&stack, &setup).await;
}
