//! Quarantine, replay and restore (docs/quarantine.md) against real PostgreSQL and moto: a
//! 207 batch's rejected events are kept under rejected/ and replayed once the clock has moved
//! on, exactly once however often the replay runs; the bounds of what is kept; a failing
//! quarantine never changes an answer; a dropped day comes back from the archive. Modules:
//! `resume` (an hour over several invocations, vanished files), `exact` (lossy text,
//! received_at, the configured limits, other writers' files).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use archiver::archive::partition::{hours_between, HourPartition};
use archiver::recovery::replay::{self, Judge};
use archiver::recovery::restore;
use chrono::{DateTime, SecondsFormat, Utc};
use eis_contract::{Limits, Quarantined, Registry, RegistryMode};
use eis_handoff::message::{self, Message};
use eis_tests::api::answer;
use eis_tests::archive::{get, keys, policy, Stack};
use eis_tests::events::{seed_request, EXPERIMENT, VARIANT};
use eis_tests::*;
use ingest::routes::router;
use serde_json::{json, Value};
use tokio::time::Instant;
use uuid::Uuid;

mod exact;
mod resume;

/// The ingest's clock in these tests (the API state takes a plain `fn`).
static CLOCK_MICROS: AtomicI64 = AtomicI64::new(0);

fn clock() -> DateTime<Utc> {
    DateTime::from_timestamp_micros(CLOCK_MICROS.load(Ordering::SeqCst)).unwrap_or_default()
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

fn at(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The ingest API of `stack`, its clock set to `now`, with `adjust` applied to its config.
async fn api(
    stack: &Stack,
    now: DateTime<Utc>,
    adjust: impl FnOnce(&mut ingest::config::Config),
) -> (String, tokio::task::JoinHandle<()>) {
    CLOCK_MICROS.store(now.timestamp_micros(), Ordering::SeqCst);
    let mut config = ingest_config(&stack.db, &stack.queue.url);
    adjust(&mut config);
    let mut state = ingest::app::state(&config).await.expect("state");
    state.now = clock;
    serve(router(state)).await
}

async fn post(url: &str, path: &str, body: String) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{url}{path}"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("request");
    answer(response).await
}

/// Every quarantine record under the stack's rejected/ prefix.
async fn quarantined(stack: &Stack) -> Vec<(String, Quarantined)> {
    let mut out = Vec::new();
    for key in keys(&stack.s3, &stack.bucket).await {
        if key.starts_with("rejected/") {
            let body = get(&stack.s3, &stack.bucket, &key).await;
            for r in archiver::archive::quarantine_parquet::decode(body).expect("a quarantine file")
            {
                out.push((key.clone(), r));
            }
        }
    }
    out
}

async fn stored_ids(db: &TestDb) -> BTreeSet<Uuid> {
    db.client()
        .await
        .query("SELECT event_id FROM exp.events", &[])
        .await
        .expect("ids")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// One archiver run now, which must meet no error.
async fn archive_now(stack: &Stack) -> archiver::drain::run::RunOutcome {
    let run = stack
        .archiver(policy())
        .await
        .run(Utc::now(), deadline())
        .await;
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    run
}

async fn replay_at(
    stack: &Stack,
    hours: &[HourPartition],
    code: Option<&str>,
    now: DateTime<Utc>,
) -> replay::ReplaySummary {
    let archiver = stack.archiver(policy()).await;
    let (registry, limits) = (Registry::default(), Limits::default());
    CLOCK_MICROS.store(now.timestamp_micros(), Ordering::SeqCst);
    let judge = Judge {
        registry: &registry,
        tombstones: &Default::default(),
        plan: &Default::default(),
        mode: RegistryMode::Flag,
        limits: &limits,
        clock,
    };
    replay::replay(
        &archiver.replay_job(),
        hours,
        None,
        code,
        &judge,
        deadline(),
    )
    .await
    .expect("replay")
}

#[tokio::test]
async fn a_batch_s_rejections_are_kept_and_replayed_exactly_once() {
    let stack = Stack::create().await;
    let now = Utc::now();
    let (url, server) = api(&stack, now, |_| {}).await;
    let later = now + chrono::Duration::hours(1);
    let with_id = Uuid::now_v7();
    let mut future_with_id = seed_request("user-3", later);
    future_with_id["event_id"] = json!(with_id);
    let batch = json!({"events": [
        seed_request("user-1", now),
        seed_request("user-2", now),
        future_with_id,
        seed_request("user-4", later),
        {"event_type": "plan_generated", "unit_id": "user-5", "timestamp": at(now),
         "experiments": [{"experiment_id": EXPERIMENT, "variant_id": VARIANT}]},
    ]});
    let elements: Vec<String> = batch["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(Value::to_string)
        .collect();
    let (status, body) = post(&url, "/events/batch", batch.to_string()).await;
    assert_eq!(status, 207, "{body}");
    assert_eq!(
        (body["accepted"].as_u64(), body["rejected"].as_u64()),
        (Some(2), Some(3))
    );

    // The archiver writes them under rejected/, in the hour they were received.
    let run = archive_now(&stack).await;
    assert_eq!(
        (run.summary.rejected_records, run.summary.rejected_files),
        (3, 1)
    );
    let records = quarantined(&stack).await;
    let folder = HourPartition::of(now).folder();
    assert_eq!(records.len(), 3);
    for (i, (key, r)) in records.iter().enumerate() {
        let index = i + 2;
        assert!(
            key.starts_with(&format!("rejected/{folder}rejected_")),
            "{key}"
        );
        assert_eq!(r.batch_index, Some(index as u32));
        assert_eq!(r.raw, elements[index], "the text as sent");
        assert!(!r.raw_truncated && r.raw_bytes == elements[index].len() as u64);
        assert_eq!(r.request_id, records[0].1.request_id);
        assert!(!r.request_id.is_empty());
        assert_eq!(r.route, "POST /events/batch");
        assert_eq!(r.experiments.len(), 1);
        assert_eq!(r.experiments[0].experiment_id, EXPERIMENT);
        assert_eq!(r.experiments[0].variant_id, VARIANT);
        let expected = if index < 4 {
            "future_timestamp"
        } else {
            "missing_unit_type"
        };
        assert_eq!(r.code, expected);
        assert_eq!(
            r.message,
            body["errors"][i]["message"].as_str().unwrap_or_default()
        );
    }
    let before = stored_ids(&stack.db).await;
    assert_eq!(before.len(), 2);

    // Two hours on, the future events pass; the one without unit_type still does not.
    let hours = hours_between(
        now - chrono::Duration::minutes(1),
        Utc::now() + chrono::Duration::minutes(1),
    )
    .expect("hours");
    let replayed_at = now + chrono::Duration::hours(2);
    let first = replay_at(&stack, &hours, None, replayed_at).await;
    assert_eq!(first.records, 3);
    let future = &first.by_code["future_timestamp"];
    assert_eq!((future.replayed, future.already_stored), (2, 0));
    assert_eq!(first.by_code["missing_unit_type"].still_invalid, 1);
    let after = stored_ids(&stack.db).await;
    let without_id = records[1].1.replay_event_id(0);
    let expected: BTreeSet<Uuid> = before
        .iter()
        .copied()
        .chain([with_id, without_id])
        .collect();
    assert_eq!(
        after, expected,
        "the client's id kept, the other derived from its record"
    );

    // Replaying again stores nothing more, and so does a replay of one code.
    let second = replay_at(
        &stack,
        &hours,
        None,
        replayed_at + chrono::Duration::minutes(5),
    )
    .await;
    let future = &second.by_code["future_timestamp"];
    assert_eq!((future.replayed, future.already_stored), (0, 2));
    assert_eq!(stored_ids(&stack.db).await, expected);
    let one_code = replay_at(&stack, &hours, Some("missing_unit_type"), replayed_at).await;
    assert_eq!(one_code.records, 1);
    assert_eq!(stored_ids(&stack.db).await, expected);

    // The replayed events were handed to the archive once: the first replay published
    // them, the second found them stored and published nothing.
    let queued: Vec<Uuid> = queued_events(&stack.queue, &stack.queue.url)
        .await
        .iter()
        .map(|e| e.event_id)
        .collect();
    assert_eq!(queued.len(), 2, "{queued:?}");
    assert_eq!(
        queued.iter().copied().collect::<BTreeSet<_>>(),
        BTreeSet::from([with_id, without_id])
    );
    server.abort();
}

/// The quarantine messages on the queue (received, not deleted).
async fn queued_records(queue: &TestQueue) -> Vec<Quarantined> {
    let mut records = Vec::new();
    for m in queue.receive_all(&queue.url).await {
        if let Message::Quarantined(r) =
            message::decode(m.body().unwrap_or_default()).expect("decodes")
        {
            records.extend(r);
        }
    }
    records
}

#[tokio::test]
async fn what_is_kept_is_bounded() {
    let stack = Stack::create().await;
    let now = Utc::now();
    let (url, server) = api(&stack, now, |c| c.max_body_bytes = 200 * 1024).await;

    let (status, body) = post(&url, "/events/batch", "{not json".into()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_json"))
    );
    let mut large = seed_request("user-1", now);
    large["payload"]["note"] = json!("x".repeat(70 * 1024));
    let batch = json!({"events": [large, seed_request("user-2", now)]}).to_string();
    let (status, body) = post(&url, "/events/batch", batch).await;
    assert_eq!(
        (status, body["errors"][0]["error"].as_str()),
        (207, Some("event_too_large"))
    );
    let (status, body) = post(&url, "/events", "x".repeat(300 * 1024)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (413, Some("payload_too_large"))
    );

    let mut records = queued_records(&stack.queue).await;
    records.sort_by_key(|r| r.scope.as_str());
    assert_eq!(records.len(), 2, "the oversized body is counted, not kept");
    let (event, request) = (&records[0], &records[1]);
    assert_eq!(
        (request.code.as_str(), request.raw.as_str()),
        ("invalid_json", "{not json")
    );
    assert_eq!(request.batch_index, None);
    assert_eq!(event.code, "event_too_large");
    assert!(event.raw_truncated && event.raw.len() == 64 * 1024);
    assert!(event.raw_bytes > 70 * 1024);
    assert_eq!(
        event.experiments.len(),
        1,
        "variants are read from the whole text"
    );
    server.abort();
}

#[tokio::test]
async fn a_quarantine_that_cannot_be_sent_changes_no_answer() {
    let db = TestDb::create().await;
    // Storage and quarantine both on a queue nothing answers for: the valid event is
    // committed (for the sweep), the invalid ones are answered as always.
    let state = api_state(&db.config(), unreachable_publisher());
    let (url, server) = serve(router(state)).await;
    let (status, body) = post(&url, "/events", "{\"unit_type\":\"user\"}".into()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("missing_event_type"))
    );
    let batch = json!({"events": [seed_request("user-1", Utc::now()), {"unit_type": "user"}]});
    let (status, body) = post(&url, "/events/batch", batch.to_string()).await;
    assert_eq!((status, body["accepted"].as_u64()), (207, Some(1)));
    assert_eq!(stored_counts(&db).await, (1, 1));
    server.abort();
}

async fn day_rows(db: &TestDb, day: chrono::NaiveDate) -> Vec<(Uuid, String)> {
    db.client()
        .await
        .query(
            "SELECT event_id, (to_jsonb(e) - 'handed_off_at')::text FROM exp.events e
             WHERE (\"timestamp\" AT TIME ZONE 'UTC')::date = $1 ORDER BY 1",
            &[&day],
        )
        .await
        .expect("rows")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test]
async fn a_dropped_day_is_restored_from_the_archive() {
    let stack = Stack::create().await;
    let now = Utc::now();
    let yesterday = HourPartition::of(now - chrono::Duration::days(1)).start();
    let day = yesterday.date_naive();
    let admin = stack.db.client().await;
    admin
        .execute("SELECT exp.ensure_day_partition($1)", &[&day])
        .await
        .expect("partition");
    let (url, server) = api(&stack, now, |_| {}).await;
    let day_start = day.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
    let mut events: Vec<Value> = (0..48)
        .map(|i| {
            seed_request(
                &format!("user-{i}"),
                day_start + chrono::Duration::minutes(30 * i),
            )
        })
        .collect();
    events.push(seed_request("user-today", now));
    let old = now - chrono::Duration::days(100);
    events.push(seed_request("user-old", old));
    let (status, body) = post(&url, "/events/batch", json!({"events": events}).to_string()).await;
    assert_eq!(status, 200, "{body}");
    archive_now(&stack).await;

    let before = day_rows(&stack.db, day).await;
    assert_eq!(before.len(), 48);
    let partition = format!("exp.events_p{}", day.format("%Y%m%d"));
    admin
        .batch_execute(&format!("DROP TABLE {partition}"))
        .await
        .expect("drop the day");
    assert!(day_rows(&stack.db, day).await.is_empty());

    let archiver = stack.archiver(policy()).await;
    let hours = hours_between(day_start, day_start + chrono::Duration::days(1)).expect("hours");
    let first = restore::restore(
        &archiver.restore_job(),
        &hours,
        None,
        Utc::now(),
        deadline(),
    )
    .await
    .expect("restore");
    assert_eq!(
        (
            first.events,
            first.restored.restored,
            first.restored.present
        ),
        (48, 48, 0)
    );
    assert_eq!(
        day_rows(&stack.db, day).await,
        before,
        "the same ids and rows"
    );
    let again = restore::restore(
        &archiver.restore_job(),
        &hours,
        None,
        Utc::now(),
        deadline(),
    )
    .await
    .expect("restore");
    assert_eq!((again.restored.restored, again.restored.present), (0, 48));
    assert_eq!(day_rows(&stack.db, day).await, before);

    // Past the retention: not restored. Nothing restored is handed to the archive again.
    let old_hours = hours_between(old, old + chrono::Duration::seconds(1)).expect("hours");
    let expired = restore::restore(
        &archiver.restore_job(),
        &old_hours,
        None,
        Utc::now(),
        deadline(),
    )
    .await
    .expect("restore");
    assert_eq!(
        (expired.events, expired.expired, expired.restored.restored),
        (1, 1, 0)
    );
    assert_eq!(stored_counts(&stack.db).await.1, 0, "no pending hand-off");
    assert!(queued_events(&stack.queue, &stack.queue.url)
        .await
        .is_empty());
    server.abort();
}

// --- Variant strings within the bounds (docs/quarantine.md, "Bounds") -------------------------

#[tokio::test]
async fn an_oversized_record_loses_its_variants_not_its_neighbours() {
    let stack = Stack::create().await;
    let now = Utc::now();
    let (url, server) = api(&stack, now, |_| {}).await;
    // Between two small rejections, an event naming 40 pairs of 50 000-byte ids (4 MB of
    // variant strings, far more than one SQS message) and a valid event.
    let huge = "x".repeat(50_000);
    let pairs: Vec<Value> = (0..40)
        .map(|i| json!({"experiment_id": format!("{i}{huge}"), "variant_id": huge}))
        .collect();
    let mut oversized = seed_request("user-2", now);
    oversized["experiments"] = json!(pairs);
    let mut missing_unit = seed_request("user-1", now);
    missing_unit["unit_type"] = Value::Null;
    let batch = json!({"events": [missing_unit.clone(), oversized, seed_request("user-3", now), missing_unit]});
    let (status, body) = post(&url, "/events/batch", batch.to_string()).await;
    assert_eq!(
        (status, body["accepted"].as_u64()),
        (207, Some(1)),
        "{body}"
    );

    let run = archive_now(&stack).await;
    assert_eq!(
        run.summary.rejected_records, 3,
        "every rejection of the request is kept"
    );
    let mut records: Vec<Quarantined> = quarantined(&stack)
        .await
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    records.sort_by_key(|r| r.batch_index);
    let indexes: Vec<Option<u32>> = records.iter().map(|r| r.batch_index).collect();
    assert_eq!(indexes, [Some(0), Some(1), Some(3)]);
    for neighbour in [&records[0], &records[2]] {
        assert_eq!(neighbour.code, "missing_unit_type");
        assert!(!neighbour.raw_truncated && neighbour.raw.contains("user-1"));
        assert_eq!(neighbour.experiments.len(), 1);
    }
    let big = &records[1];
    assert_eq!(big.code, "event_too_large");
    assert!(big.raw_truncated && big.raw_bytes > 4_000_000);
    // At most 32 pairs of ids of at most 128 bytes, within the request's budget.
    assert!(big.experiments.len() <= 32);
    assert!(big.experiments.iter().all(|v| v.experiment_id.len()
        <= eis_contract::MAX_NAMED_ID_BYTES
        && v.variant_id.len() <= eis_contract::MAX_NAMED_ID_BYTES));
    let kept: usize = records
        .iter()
        .map(|r| r.raw.len() + r.variant_bytes())
        .sum();
    assert!(kept <= 256 * 1024, "{kept} bytes kept");
    server.abort();
}
