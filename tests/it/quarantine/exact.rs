//! Replay and restore exact at the edges (docs/quarantine.md): lossy text is marked and never
//! replayed; a replayed event is received when it is stored; replay judges with the ingest's
//! limits; files from other Parquet writers (large, view and dictionary strings, large lists)
//! are read, and a file of other types is an error naming it, not a panic.

use std::sync::Arc;

use archiver::archive::event_parquet::{self, EventColumns};
use archiver::archive::partition::{hours_between, HourPartition};
use archiver::archive::quarantine_parquet;
use archiver::handler;
use archiver::recovery::restore;
use arrow::array::{ArrayRef, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema};
use chrono::{DateTime, Utc};
use eis_contract::{Arrival, Limits, Quarantined};
use eis_tests::archive::{distinct_events, hour_ago, policy, Stack};
use eis_tests::events::seed_request;
use eis_tests::pairs;
use serde_json::json;
use tokio::time::Instant;
use uuid::Uuid;

use super::{archive_now, deadline, quarantined, replay_at, CLOCK_MICROS};

fn hour_of(t: DateTime<Utc>) -> Vec<HourPartition> {
    let start = HourPartition::of(t).start();
    hours_between(start, start + chrono::Duration::hours(1)).expect("hours")
}

#[tokio::test]
async fn lossy_text_is_marked_and_never_replayed() {
    let stack = Stack::create().await;
    let now = Utc::now();
    let (url, server) = super::api(&stack, now, |_| {}).await;
    // A valid event but for one byte that is not UTF-8: replaced, it would pass the contract.
    let mut body = seed_request("user-@", now).to_string().into_bytes();
    let at = body.iter().position(|b| *b == b'@').expect("marker");
    body[at] = 0xff;
    let response = reqwest::Client::new()
        .post(format!("{url}/events"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 400);
    archive_now(&stack).await;
    let records = quarantined(&stack).await;
    assert_eq!(records.len(), 1);
    let record = &records[0].1;
    assert!(
        record.raw_lossy && record.raw.contains('\u{fffd}'),
        "{record:?}"
    );
    assert!(
        eis_contract::validate_event(record.raw.as_bytes(), Utc::now(), &Limits::default()).is_ok(),
        "the replaced text would pass: only the mark keeps it out"
    );

    let summary = replay_at(&stack, &hour_of(now), None, Utc::now()).await;
    let counts = &summary.by_code[&record.code];
    assert_eq!(
        (counts.lossy, counts.replayed, counts.still_invalid),
        (1, 0, 0)
    );
    assert_eq!(
        eis_tests::stored_counts(&stack.db).await.0,
        0,
        "nothing stored"
    );
    server.abort();
}

/// A clock that moves a minute on each reading (the replay's injected clock).
fn ticking() -> DateTime<Utc> {
    let micros = CLOCK_MICROS.fetch_add(60_000_000, std::sync::atomic::Ordering::SeqCst);
    DateTime::from_timestamp_micros(micros).unwrap_or_default()
}

/// Puts one quarantine file of `records` in `hour`'s folder.
async fn put_rejected(stack: &Stack, hour: HourPartition, records: &[Quarantined]) {
    let key = quarantine_parquet::key("rejected/", hour, Uuid::now_v7());
    let body = quarantine_parquet::encode(records).expect("encode");
    stack
        .archive()
        .put(&key, body, Uuid::now_v7(), records.len())
        .await
        .expect("put");
}

/// A record of the example event of `unit` at `at`, refused two hours before `at` (then
/// `future_timestamp`, valid at `at`), and the hour it is kept in.
fn refused(unit: &str, at: DateTime<Utc>, index: usize) -> (Quarantined, HourPartition) {
    let text = seed_request(unit, at).to_string();
    let received_at = at - chrono::Duration::hours(2);
    let rejection = eis_contract::validate_event(text.as_bytes(), received_at, &Limits::default())
        .expect_err("ahead then");
    let request_id = format!("req-{}", at.timestamp_micros());
    let arrival = Arrival {
        request_id: &request_id,
        route: "POST /events/batch",
        received_at,
    };
    let record = Quarantined::event(
        arrival,
        Some(index),
        text.as_bytes(),
        &rejection,
        65_536,
        32,
    );
    (record, HourPartition::of(received_at))
}

fn refused_many(n: usize, at: DateTime<Utc>) -> (Vec<Quarantined>, HourPartition) {
    let records: Vec<_> = (0..n).map(|i| refused(&format!("u-{i}"), at, i)).collect();
    let hour = records[0].1;
    (records.into_iter().map(|(r, _)| r).collect(), hour)
}

#[tokio::test]
async fn a_replayed_event_is_received_when_it_is_stored() {
    let stack = Stack::create().await;
    let now = Utc::now();
    // Two hours of quarantine files: two chunks, stored one after the other.
    let (earlier, first_hour) = refused_many(2, now - chrono::Duration::hours(1));
    let (later, second_hour) = refused_many(3, now);
    put_rejected(&stack, first_hour, &earlier).await;
    put_rejected(&stack, second_hour, &later).await;
    CLOCK_MICROS.store(now.timestamp_micros(), std::sync::atomic::Ordering::SeqCst);
    let started = ticking();
    let archiver = stack.archiver(policy()).await;
    let (registry, limits) = (eis_contract::Registry::default(), Limits::default());
    let judge = archiver::recovery::replay::Judge {
        registry: &registry,
        tombstones: &Default::default(),
        plan: &Default::default(),
        mode: eis_contract::RegistryMode::Flag,
        limits: &limits,
        clock: ticking,
    };
    let hours = hours_between(
        first_hour.start(),
        second_hour.start() + chrono::Duration::hours(1),
    )
    .expect("hours");
    let summary = archiver::recovery::replay::replay(
        &archiver.replay_job(),
        &hours,
        None,
        None,
        &judge,
        deadline(),
    )
    .await
    .expect("replay");
    assert_eq!(summary.by_code["future_timestamp"].replayed, 5);
    let stored: Vec<(DateTime<Utc>, i64)> = pairs(
        &stack.db.client().await,
        "SELECT received_at, count(*) FROM exp.events GROUP BY 1 ORDER BY 1",
    )
    .await;
    // The clock moves on while the replay runs: each chunk carries the reading taken for
    // the statement that stored it, later than the replay's start, later for the later chunk.
    let counts: Vec<i64> = stored.iter().map(|(_, n)| *n).collect();
    assert_eq!(counts, [2, 3], "one reading per stored chunk: {stored:?}");
    for (at, _) in stored {
        assert!(
            at > started,
            "received_at {at} is the replay's start {started}"
        );
    }
}

#[tokio::test]
async fn replay_judges_with_the_configured_limits() {
    let stack = Stack::create().await;
    let now = Utc::now();
    let (record, hour) = refused("user-1", now, 0);
    let text_bytes = record.raw.len();
    put_rejected(&stack, hour, &[record]).await;
    let input = json!({"action": "replay", "from": hour.start(),
                       "to": hour.start() + chrono::Duration::hours(1)});
    let input = handler::Input::parse(&input).expect("input");

    // The deployment allows smaller events than the contract's default: still too large.
    let mut config = stack.config(policy());
    config.contract_limits.max_event_bytes = text_bytes - 1;
    let archiver = archiver::app::Archiver::from_config(config)
        .await
        .expect("archiver");
    let out = handler::handle(&archiver, input.clone(), deadline(), false)
        .await
        .expect("replay");
    let handler::Output::Replay(summary) = out else {
        panic!("a replay summary");
    };
    let counts = &summary.by_code["future_timestamp"];
    assert_eq!((counts.replayed, counts.still_invalid), (0, 1));

    let archiver = stack.archiver(policy()).await;
    let Ok(handler::Output::Replay(summary)) =
        handler::handle(&archiver, input, deadline(), false).await
    else {
        panic!("a replay summary");
    };
    assert_eq!(summary.by_code["future_timestamp"].replayed, 1);
}

/// `batch` with each column cast to what another writer may use for it.
fn as_other_writer(batch: &RecordBatch, types: &[(&str, DataType)]) -> RecordBatch {
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        let column = match types.iter().find(|(name, _)| name == field.name()) {
            Some((_, to)) => cast(column, to).expect("cast"),
            None => Arc::clone(column),
        };
        fields.push(Field::new(
            field.name(),
            column.data_type().clone(),
            field.is_nullable(),
        ));
        columns.push(column);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("batch")
}

fn large_list_of(batch: &RecordBatch, name: &str, item: DataType) -> DataType {
    let DataType::List(field) = batch
        .schema()
        .field_with_name(name)
        .expect("column")
        .data_type()
        .clone()
    else {
        panic!("{name} is a list");
    };
    DataType::LargeList(Arc::new(Field::new(
        field.name(),
        item,
        field.is_nullable(),
    )))
}

#[tokio::test]
async fn files_from_other_writers_are_read_or_refused_by_name() {
    let stack = Stack::create().await;
    let archiver = stack.archiver(policy()).await;
    let at = hour_ago(3, 30);
    stack
        .db
        .client()
        .await
        .execute("SELECT exp.ensure_day_partition($1)", &[&at.date_naive()])
        .await
        .expect("partition");
    let hour = HourPartition::of(at);
    let events = distinct_events(20, at);
    let mut columns = EventColumns::new();
    for e in &events {
        columns.push(e).expect("push");
    }
    let ours = columns.finish().expect("batch");
    let experiments_item = {
        let DataType::List(f) = ours
            .schema()
            .field_with_name("experiments")
            .expect("col")
            .data_type()
            .clone()
        else {
            panic!("a list")
        };
        let DataType::Struct(fields) = f.data_type().clone() else {
            panic!("a struct")
        };
        DataType::Struct(
            fields
                .iter()
                .map(|f| Arc::new(Field::new(f.name(), DataType::LargeUtf8, f.is_nullable())))
                .collect(),
        )
    };
    let theirs = as_other_writer(
        &ours,
        &[
            ("event_id", DataType::LargeUtf8),
            ("unit_id", DataType::Utf8View),
            (
                "unit_type",
                DataType::Dictionary(Box::new(DataType::Int8), Box::new(DataType::Utf8)),
            ),
            (
                "event_type",
                DataType::Dictionary(Box::new(DataType::Int16), Box::new(DataType::LargeUtf8)),
            ),
            ("context_rest", DataType::LargeUtf8),
            ("payload_plan_id", DataType::Utf8View),
            (
                "experiments",
                large_list_of(&ours, "experiments", experiments_item),
            ),
            ("flags", large_list_of(&ours, "flags", DataType::LargeUtf8)),
        ],
    );
    let folder = archiver.bucket.folder(hour);
    let key = archiver::archive::bucket::compacted_key(&folder, "f0reign", 0, 1);
    let body = event_parquet::write_parquet(&theirs).expect("write");
    archiver
        .bucket
        .put(&key, body, Uuid::now_v7(), events.len())
        .await
        .expect("put");
    let out = restore::restore(
        &archiver.restore_job(),
        &hour_of(at),
        None,
        Utc::now(),
        deadline(),
    )
    .await
    .expect("another writer's types are read");
    assert_eq!(out.restored.restored, events.len() as u64);

    // The same for a quarantine file.
    let now = Utc::now();
    let (records, hour) = refused_many(2, now);
    let file = quarantine_parquet::encode(&records).expect("encode");
    let ours = archiver::archive::columns::read_batches(bytes::Bytes::from(file)).expect("read");
    let theirs = as_other_writer(
        &ours[0],
        &[
            ("record_id", DataType::LargeUtf8),
            ("raw", DataType::Utf8View),
            (
                "code",
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
            ),
        ],
    );
    let body = event_parquet::write_parquet(&theirs).expect("write");
    let back = quarantine_parquet::decode(bytes::Bytes::from(body)).expect("decoded");
    let micros = |r: &Quarantined| (r.record_id, r.raw.clone(), r.code.clone());
    assert_eq!(
        back.iter().map(micros).collect::<Vec<_>>(),
        records.iter().map(micros).collect::<Vec<_>>()
    );

    // A column of a type no writer uses for it: an error naming the file.
    let wrong = as_other_writer(&ours[0], &[("raw_bytes", DataType::Utf8)]);
    let odd = quarantine_parquet::key("rejected/", hour, Uuid::now_v7());
    let body = event_parquet::write_parquet(&wrong).expect("write");
    stack
        .archive()
        .put(&odd, body, Uuid::now_v7(), 2)
        .await
        .expect("put");
    let err = archiver::recovery::replay::replay(
        &archiver.replay_job(),
        &hour_of(hour.start()),
        None,
        None,
        &archiver::recovery::replay::Judge {
            registry: &eis_contract::Registry::default(),
            tombstones: &Default::default(),
            plan: &Default::default(),
            mode: eis_contract::RegistryMode::Flag,
            limits: &Limits::default(),
            clock: Utc::now,
        },
        Instant::now(),
    )
    .await
    .expect_err("not a quarantine file");
    assert!(err.to_string().contains(&odd), "{err}");
}
