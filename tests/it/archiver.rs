//! The archiver against the real local stack: events posted to the ingest API end up in the
//! right hour folders of a bucket exactly once; faults (S3 gone, a deadline, a crash, a poison
//! message, events the ingest never published) lose nothing. Files are read back with the
//! parquet crate and checked against `archiver::archive::event_parquet::schema()`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use archiver::app::Archiver;
use archiver::archive::bucket::ArchiveBucket;
use archiver::archive::event_parquet;
use archiver::archive::partition::HourPartition;
use archiver::config::Config;
use archiver::drain::summary::Stop;
use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::TimestampMicrosecondType;
use chrono::{DateTime, SecondsFormat, Utc};
use eis_contract::Event;
use eis_handoff::SqsPublisher;
use eis_store::{InsertOutcome, PgEventStore};
use eis_tests::events::{event, EXPERIMENT, POLICY, VARIANT};
use eis_tests::*;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{json, Value};
use tokio::time::Instant;

/// Small messages, so that a few hundred events make many messages and many receives.
const SMALL_MESSAGES: usize = 8 * 1024;

fn config(db: &TestDb, queue: &TestQueue, bucket: &str) -> Config {
    config_for(db.config(), queue, bucket)
}

fn config_for(db: eis_store::DbConfig, queue: &TestQueue, bucket: &str) -> Config {
    // These tests look at the raw files a run writes: compaction off (tests/it/compaction.rs).
    let compaction = archiver::compaction::CompactionPolicy {
        max_hours: 0,
        ..Default::default()
    };
    archive::archiver_config(db, &queue.url, bucket, compaction)
}

async fn archiver(config: Config) -> Archiver {
    Archiver::from_config(config).await.expect("archiver")
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

fn events(n: usize, timestamp: DateTime<Utc>) -> Vec<Event> {
    (0..n)
        .map(|i| event(Utc::now(), timestamp, &format!("user-{i}")))
        .collect()
}

async fn publish(queue: &TestQueue, events: &[Event]) -> usize {
    let publisher = SqsPublisher::new(queue.client.clone(), queue.url.clone(), SMALL_MESSAGES);
    let out = publisher.publish(events).await;
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.published.len(), events.len());
    out.messages
}

/// Waits until no message is in flight (each is deleted or visible again).
async fn settled(queue: &TestQueue) -> (u64, u64) {
    eventually(Duration::from_secs(30), || async {
        let d = depth(queue, &queue.url).await;
        (d.1 == 0).then_some(d)
    })
    .await
    .expect("in-flight messages come back after their visibility timeout")
}

/// One archive object, read back with the parquet crate.
struct Object {
    key: String,
    rows: RecordBatch,
}

impl Object {
    fn ids(&self) -> Vec<String> {
        let col = self.rows.column_by_name("event_id").expect("event_id");
        col.as_string::<i32>()
            .iter()
            .map(|v| v.unwrap_or_default().to_string())
            .collect()
    }

    fn timestamps(&self) -> Vec<DateTime<Utc>> {
        let col = self.rows.column_by_name("timestamp").expect("timestamp");
        col.as_primitive::<TimestampMicrosecondType>()
            .iter()
            .map(|v| DateTime::from_timestamp_micros(v.unwrap_or_default()).expect("time"))
            .collect()
    }
}

async fn keys(s3: &aws_sdk_s3::Client, bucket: &str) -> Vec<String> {
    let listed = s3
        .list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .expect("list objects");
    assert!(
        !listed.is_truncated().unwrap_or(false),
        "tests write few objects"
    );
    listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect()
}

async fn archived(s3: &aws_sdk_s3::Client, bucket: &str) -> Vec<Object> {
    let mut objects = Vec::new();
    for key in keys(s3, bucket).await {
        let body = s3
            .get_object()
            .bucket(bucket)
            .key(&key)
            .send()
            .await
            .expect("get object")
            .body
            .collect()
            .await
            .expect("object body")
            .into_bytes();
        let reader = ParquetRecordBatchReaderBuilder::try_new(body)
            .expect("a parquet file")
            .build()
            .expect("reader");
        let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>().expect("batches");
        let rows =
            arrow::compute::concat_batches(&event_parquet::schema(), &batches).expect("rows");
        assert_eq!(rows.schema(), event_parquet::schema(), "{key}");
        objects.push(Object { key, rows });
    }
    objects
}

/// How many times each event id was archived.
fn id_counts(objects: &[Object]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for id in objects.iter().flat_map(Object::ids) {
        *counts.entry(id).or_default() += 1;
    }
    counts
}

fn ids_of(events: &[Event]) -> BTreeSet<String> {
    events.iter().map(|e| e.event_id.to_string()).collect()
}

fn assert_each_once(objects: &[Object], expected: &BTreeSet<String>) {
    let counts = id_counts(objects);
    let archived: BTreeSet<String> = counts.keys().cloned().collect();
    assert_eq!(&archived, expected, "archived ids differ from the ids sent");
    let repeated: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(repeated.is_empty(), "archived more than once: {repeated:?}");
}

/// Every event sent is archived exactly once, in its hour folder (no prefix).
fn assert_archived_once(objects: &[Object], sent: &[Event]) {
    assert_each_once(objects, &ids_of(sent));
    assert_in_their_hour_folder(objects, "");
}

/// The end of a test that drained its queue: nothing visible or in flight.
async fn assert_drained(queue: &TestQueue) {
    assert_eq!(depth(queue, &queue.url).await, (0, 0));
}

/// `{prefix}YYYY/MM/DD/HH/events_{uuid v7}.parquet`, in the folder of every row's timestamp.
fn assert_in_their_hour_folder(objects: &[Object], prefix: &str) {
    for o in objects {
        let name = o.key.rsplit('/').next().unwrap_or_default();
        let folder = &o.key[..o.key.len() - name.len()];
        let batch_id = name
            .strip_prefix("events_")
            .and_then(|n| n.strip_suffix(".parquet"))
            .and_then(|id| uuid::Uuid::parse_str(id).ok())
            .unwrap_or_else(|| panic!("unexpected object name {}", o.key));
        assert_eq!(batch_id.get_version_num(), 7, "{}", o.key);
        for ts in o.timestamps() {
            let expected = format!("{prefix}{}", HourPartition::of(ts).folder());
            assert_eq!(folder, expected, "row at {ts} is in {}", o.key);
        }
    }
}

fn moto_addr() -> SocketAddr {
    let url = stack_var("AWS_ENDPOINT_URL");
    let host = url.trim_start_matches("http://").trim_end_matches('/');
    host.replace("localhost", "127.0.0.1")
        .parse()
        .expect("AWS_ENDPOINT_URL is http://host:port")
}

#[tokio::test]
async fn events_posted_to_the_api_land_once_in_their_hour_folders() {
    let db = TestDb::create().await;
    let queue = TestQueue::create(5, 30).await;
    let (s3, bucket, _bucket_guard) = test_bucket().await;
    let state = ingest::app::state(&ingest_config(&db, &queue.url))
        .await
        .expect("ingest state");
    let (url, server) = serve(ingest::routes::router(state)).await;

    let now = Utc::now();
    let three_days_ago = now - chrono::Duration::days(3);
    let body: Vec<Value> = (0..100)
        .map(|i| {
            let ts = if i < 60 { now } else { three_days_ago };
            let (event_type, payload) = if i % 2 == 0 {
                ("plan_generated", json!({"policy_version_id": POLICY}))
            } else {
                (
                    "meal_swapped",
                    json!({"meal_id": format!("meal-{i}"), "new_meal_id": "meal-0"}),
                )
            };
            json!({
                "event_type": event_type,
                "unit_type": "user",
                "unit_id": format!("user-{i}"),
                "experiments": [{
                    "experiment_id": EXPERIMENT,
                    "variant_id": VARIANT,
                }],
                "metrics": {"latency_ms": i},
                "payload": payload,
                "timestamp": ts.to_rfc3339_opts(SecondsFormat::Micros, true),
            })
        })
        .collect();
    let answer: Value = reqwest::Client::new()
        .post(format!("{url}/events/batch"))
        .json(&json!({ "events": body }))
        .send()
        .await
        .expect("POST /events/batch")
        .json()
        .await
        .expect("batch answer");
    assert_eq!(answer["accepted"], 100, "{}", answer["errors"][0]);
    let sent: BTreeSet<String> = answer["event_ids"]
        .as_array()
        .expect("event_ids")
        .iter()
        .filter_map(|id| id.as_str().map(str::to_string))
        .collect();
    assert_eq!(sent.len(), 100);

    let mut cfg = config(&db, &queue, &bucket);
    cfg.prefix = "archive/".into();
    let outcome = archiver(cfg).await.run(Utc::now(), deadline()).await;
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    let summary = outcome.summary;
    assert_eq!(summary.events, 100);
    assert_eq!(
        (summary.files, summary.partitions),
        (2, 2),
        "one file per hour"
    );
    assert_eq!(summary.deleted, summary.messages);
    assert!(summary.messages >= 1);
    assert_eq!((summary.dead_lettered, summary.swept), (0, 0));
    assert_eq!(summary.stopped, Stop::Drained);

    let objects = archived(&s3, &bucket).await;
    assert_each_once(&objects, &sent);
    assert_in_their_hour_folder(&objects, "archive/");
    let folders: BTreeSet<String> = objects
        .iter()
        .map(|o| {
            o.key
                .rsplit_once('/')
                .map(|(f, _)| f.to_string())
                .unwrap_or_default()
        })
        .collect();
    let expected: BTreeSet<String> = [now, three_days_ago]
        .iter()
        .map(|t| {
            format!(
                "archive/{}",
                HourPartition::of(*t).folder().trim_end_matches('/')
            )
        })
        .collect();
    assert_eq!(folders, expected);
    let rows: BTreeMap<String, usize> = objects
        .iter()
        .map(|o| (o.key.clone(), o.rows.num_rows()))
        .collect();
    assert_eq!(
        rows.values().copied().collect::<BTreeSet<_>>(),
        BTreeSet::from([40, 60])
    );

    assert_eq!(
        depth(&queue, &queue.url).await,
        (0, 0),
        "the queue is empty"
    );
    server.abort();
}

#[tokio::test]
async fn a_large_hour_rolls_over_into_files_within_the_limit() {
    let db = TestDb::create().await;
    let queue = TestQueue::create(5, 30).await;
    let (s3, bucket, _bucket_guard) = test_bucket().await;
    let sent = events(250, Utc::now());
    let messages = publish(&queue, &sent).await;
    assert!(messages > 10, "{messages} messages: more than one receive");

    let mut cfg = config(&db, &queue, &bucket);
    cfg.limits.max_file_events = 100;
    let outcome = archiver(cfg).await.run(Utc::now(), deadline()).await;
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert_eq!(outcome.summary.messages, messages);
    assert_eq!((outcome.summary.files, outcome.summary.partitions), (3, 1));

    let objects = archived(&s3, &bucket).await;
    let mut sizes: Vec<usize> = objects.iter().map(|o| o.rows.num_rows()).collect();
    sizes.sort_unstable();
    assert_eq!(sizes, vec![50, 100, 100]);
    assert_archived_once(&objects, &sent);
    assert_drained(&queue).await;
}

#[tokio::test]
async fn a_tiny_memory_bound_slows_the_drain_but_loses_and_repeats_nothing() {
    let db = TestDb::create().await;
    let queue = TestQueue::create(5, 30).await;
    let (s3, bucket, _bucket_guard) = test_bucket().await;
    let mut sent = events(120, Utc::now());
    sent.extend(events(80, Utc::now() - chrono::Duration::hours(5)));
    let messages = publish(&queue, &sent).await;

    let mut cfg = config(&db, &queue, &bucket);
    // Every receive puts the run over its bound: it must write before it receives again.
    cfg.limits.max_held_bytes = 1;
    cfg.receive_concurrency = 2;
    let outcome = archiver(cfg).await.run(Utc::now(), deadline()).await;
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert_eq!(outcome.summary.messages, messages);
    assert!(outcome.summary.files > 2, "{} files", outcome.summary.files);

    let objects = archived(&s3, &bucket).await;
    assert_archived_once(&objects, &sent);
    assert_drained(&queue).await;
}

#[tokio::test]
async fn with_s3_unreachable_nothing_is_deleted_and_the_next_run_archives_everything() {
    let db = TestDb::create().await;
    let queue = TestQueue::create(5, 2).await;
    let (s3, bucket, _bucket_guard) = test_bucket().await;
    let mut sent = events(40, Utc::now());
    sent.extend(events(20, Utc::now() - chrono::Duration::days(3)));
    let messages = publish(&queue, &sent).await as u64;

    let proxy = FaultyProxy::start(moto_addr()).await;
    let mut archiver = archiver(config(&db, &queue, &bucket)).await;
    let sdk = eis_runtime::aws::sdk_config(2, Duration::from_secs(5)).await;
    archiver.bucket = ArchiveBucket::new(
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .endpoint_url(format!("http://{}", proxy.addr))
                .force_path_style(true)
                .build(),
        ),
        bucket.clone(),
        String::new(),
    );

    proxy.cut();
    let first = archiver.run(Utc::now(), deadline()).await;
    assert_eq!(first.summary.messages as u64, messages);
    assert_eq!((first.summary.files, first.summary.events), (0, 0));
    assert_eq!(first.summary.failed_files, 2);
    assert_eq!(first.summary.deleted, 0, "nothing acknowledged");
    assert_eq!(first.summary.errors, vec!["storage_unavailable"; 2]);
    let err = first
        .into_result()
        .expect_err("the run reports the failure");
    assert_eq!(err.code(), "storage_unavailable");
    assert!(err.is_retryable());
    assert!(keys(&s3, &bucket).await.is_empty());
    assert_eq!(
        settled(&queue).await,
        (messages, 0),
        "every message is back"
    );

    proxy.restore();
    let second = archiver.run(Utc::now(), deadline()).await;
    assert!(second.errors.is_empty(), "{:?}", second.errors);
    assert_eq!(second.summary.deleted as u64, messages);
    let objects = archived(&s3, &bucket).await;
    assert_archived_once(&objects, &sent);
    assert_drained(&queue).await;
}

#[tokio::test]
async fn a_run_at_its_deadline_takes_nothing_and_the_next_run_archives_everything() {
    let db = TestDb::create().await;
    let queue = TestQueue::create(5, 30).await;
    let (s3, bucket, _bucket_guard) = test_bucket().await;
    let sent = events(30, Utc::now());
    let messages = publish(&queue, &sent).await as u64;

    let cfg = config(&db, &queue, &bucket);
    let near = Instant::now() + cfg.safety_margin / 2;
    let archiver = archiver(cfg).await;
    let first = archiver.run(Utc::now(), near).await;
    assert!(first.errors.is_empty(), "{:?}", first.errors);
    assert_eq!(first.summary.stopped, Stop::Deadline);
    assert_eq!((first.summary.messages, first.summary.files), (0, 0));
    assert_eq!(
        depth(&queue, &queue.url).await,
        (messages, 0),
        "not even received"
    );

    let second = archiver.run(Utc::now(), deadline()).await;
    assert!(second.errors.is_empty(), "{:?}", second.errors);
    assert_each_once(&archived(&s3, &bucket).await, &ids_of(&sent));
    assert_drained(&queue).await;
}

#[tokio::test]
async fn a_run_killed_mid_way_loses_nothing() {
    let db = TestDb::create().await;
    let queue = TestQueue::create(5, 2).await;
    let (s3, bucket, _bucket_guard) = test_bucket().await;
    let sent = events(600, Utc::now());
    publish(&queue, &sent).await;

    let mut cfg = config(&db, &queue, &bucket);
    // Many small files written one at a time: the kill lands between files and deletes.
    cfg.limits.max_file_events = 5;
    cfg.upload_concurrency = 1;
    let archiver = Arc::new(archiver(cfg).await);
    let run = tokio::spawn({
        let archiver = Arc::clone(&archiver);
        async move { archiver.run(Utc::now(), deadline()).await }
    });
    eventually(Duration::from_secs(30), || async {
        (!keys(&s3, &bucket).await.is_empty()).then_some(())
    })
    .await
    .expect("a first object is stored");
    run.abort();
    assert!(run.await.is_err(), "the run was killed before it ended");

    settled(&queue).await;
    let second = archiver.run(Utc::now(), deadline()).await;
    assert!(second.errors.is_empty(), "{:?}", second.errors);
    let archived_ids: BTreeSet<String> = id_counts(&archived(&s3, &bucket).await)
        .into_keys()
        .collect();
    assert_eq!(
        archived_ids,
        ids_of(&sent),
        "every event archived at least once"
    );
    assert_drained(&queue).await;
}

#[tokio::test]
async fn a_poison_message_ends_in_the_dead_letter_queue_and_the_rest_is_archived() {
    let db = TestDb::create().await;
    let queue = TestQueue::create(2, 2).await;
    let (s3, bucket, _bucket_guard) = test_bucket().await;
    let poison = r#"{"v":1,"events":[{"event_id":"not a uuid"}]}"#;
    queue
        .client
        .send_message()
        .queue_url(&queue.url)
        .message_body(poison)
        .send()
        .await
        .expect("send poison");
    let sent = events(30, Utc::now());
    publish(&queue, &sent).await;

    let mut cfg = config(&db, &queue, &bucket);
    // One receive at a time, so that the good messages are deleted well within their
    // visibility timeout and never reach the redrive count themselves.
    cfg.receive_concurrency = 1;
    let archiver = archiver(cfg).await;
    // Each run sees the poison once; after the redrive count SQS moves it instead.
    let mut dead_lettered = Vec::new();
    while depth(&queue, &queue.dlq_url).await.0 == 0 {
        assert!(
            dead_lettered.len() < 6,
            "not in the DLQ after {dead_lettered:?}"
        );
        settled(&queue).await;
        let outcome = archiver.run(Utc::now(), deadline()).await;
        assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
        dead_lettered.push(outcome.summary.dead_lettered);
    }
    assert!(dead_lettered.iter().all(|n| *n <= 1), "{dead_lettered:?}");
    assert_eq!(
        dead_lettered.first(),
        Some(&1),
        "seen and counted by the first run"
    );

    let dlq = queue.receive_all(&queue.dlq_url).await;
    let bodies: Vec<&str> = dlq.iter().filter_map(|m| m.body()).collect();
    assert_eq!(bodies, vec![poison]);
    assert_each_once(&archived(&s3, &bucket).await, &ids_of(&sent));
    assert_drained(&queue).await;
}

#[tokio::test]
async fn events_the_ingest_never_published_are_swept_and_marked_handed_off() {
    let db = TestDb::create().await;
    let queue = TestQueue::create(5, 30).await;
    let (s3, bucket, _bucket_guard) = test_bucket().await;
    let store = PgEventStore::new(db.db());
    let mut stored = events(20, Utc::now());
    stored.extend(events(10, Utc::now() - chrono::Duration::days(3)));
    let outcomes = store.insert(&stored).await.expect("insert").outcomes;
    assert!(outcomes.iter().all(|o| *o == InsertOutcome::Inserted));
    assert_eq!(stored_counts(&db).await, (30, 30));

    let mut cfg = config(&db, &queue, &bucket);
    cfg.sweep_grace = Duration::ZERO;
    let archiver = archiver(cfg).await;
    let first = archiver.run(Utc::now(), deadline()).await;
    assert!(first.errors.is_empty(), "{:?}", first.errors);
    assert_eq!(first.summary.swept, 30);
    assert_eq!(first.summary.marked, 30);
    assert_eq!((first.summary.events, first.summary.files), (30, 2));
    assert_eq!(stored_counts(&db).await, (30, 0), "all handed off");

    let objects = archived(&s3, &bucket).await;
    assert_archived_once(&objects, &stored);

    let second = archiver.run(Utc::now(), deadline()).await;
    assert_eq!((second.summary.swept, second.summary.files), (0, 0));
}

#[tokio::test]
async fn a_scheduled_run_keeps_the_partitions_ahead() {
    let db = TestDb::create().await;
    let queue = TestQueue::create(5, 30).await;
    let (_, bucket, _bucket_guard) = test_bucket().await;
    let archiver = archiver(config(&db, &queue, &bucket)).await;
    let now = Utc::now();
    let first = archiver.run(now, deadline()).await;
    assert!(first.errors.is_empty(), "{:?}", first.errors);
    // Yesterday (late events), today and the 7 days ahead.
    assert_eq!(first.summary.partitions_created, 9);
    let ahead = (now + chrono::Duration::days(7))
        .format("events_p%Y%m%d")
        .to_string();
    let exists: bool = db
        .client()
        .await
        .query_one(
            "SELECT to_regclass('exp.' || $1::text) IS NOT NULL",
            &[&ahead],
        )
        .await
        .expect("query")
        .get(0);
    assert!(exists, "{ahead}");
    let second = archiver.run(now, deadline()).await;
    assert_eq!(second.summary.partitions_created, 0, "idempotent");
}

#[tokio::test]
async fn an_undecodable_body_is_never_deleted() {
    // The same poison, seen alone: received, counted, left in place.
    let db = TestDb::create().await;
    let queue = TestQueue::create(5, 30).await;
    let (_, bucket, _bucket_guard) = test_bucket().await;
    queue
        .client
        .send_message()
        .queue_url(&queue.url)
        .message_body("not an archive message")
        .send()
        .await
        .expect("send");
    let outcome = archiver(config(&db, &queue, &bucket))
        .await
        .run(Utc::now(), deadline())
        .await;
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert_eq!(outcome.summary.dead_lettered, 1);
    assert_eq!((outcome.summary.deleted, outcome.summary.files), (0, 0));
    assert_eq!(
        depth(&queue, &queue.url).await,
        (0, 1),
        "in flight, not deleted"
    );
}
