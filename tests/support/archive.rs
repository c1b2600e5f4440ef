//! For the compaction and audit tests: one test's stack (database, queue, bucket) removed
//! when the test ends, pass or fail; raw archive files written exactly as a run writes them;
//! and the archive read back.

use std::collections::BTreeMap;
use std::time::Duration;

use archiver::app::Archiver;
use archiver::archive::event_parquet::{self, EventColumns};
use archiver::archive::partition::HourPartition;
use archiver::compaction::CompactionPolicy;
use archiver::config::Config;
use archiver::drain::batcher::BufferLimits;
use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::TimestampMicrosecondType;
use chrono::{DateTime, Utc};
use eis_contract::Event;
use eis_store::maintenance::MaintenancePolicy;
use eis_store::DbConfig;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::{test_bucket, BucketGuard, TestDb, TestQueue};

/// The health job of the tests: no lag (the tests' inserts are over before it runs).
pub const HEALTH_POLICY: archiver::health::HealthPolicy = archiver::health::HealthPolicy {
    watermark: eis_store::WatermarkPolicy {
        lag: Duration::ZERO,
        max_window: Duration::from_secs(3600),
        statement_timeout: Duration::from_secs(60),
        retention_days: 90,
    },
    min_units: 100,
};

/// The archiver's configuration of the tests: small deadlines, generous buffers.
pub fn archiver_config(
    db: DbConfig,
    queue_url: &str,
    bucket: &str,
    compaction: CompactionPolicy,
) -> Config {
    Config {
        db,
        queue_url: queue_url.to_string(),
        bucket: bucket.to_string(),
        prefix: String::new(),
        quarantine_prefix: "rejected/".into(),
        registry_mode: eis_contract::RegistryMode::Flag,
        contract_limits: eis_contract::Limits::default(),
        safety_margin: Duration::from_secs(2),
        sweep_grace: Duration::from_secs(300),
        sweep_limit: 10_000,
        maintenance: MaintenancePolicy::default(),
        limits: BufferLimits {
            max_file_events: 100_000,
            max_file_bytes: 64 * 1024 * 1024,
            max_held_bytes: 192 * 1024 * 1024,
        },
        receive_concurrency: 4,
        receive_wait: Duration::from_secs(1),
        upload_concurrency: 2,
        local_deadline: Duration::from_secs(60),
        compaction,
        // No function to invoke: the local stack cannot run Lambda.
        fanout: archiver::drain::fanout::FanoutPolicy {
            max_concurrency: 4,
            run_capacity_messages: 5000,
            function: None,
        },
        health: HEALTH_POLICY,
        metrics_namespace: Default::default(),
        // Tests take requests at once: no run of theirs outlives the request.
        erasure: archiver::erasure::ErasurePolicy {
            grace: Duration::ZERO,
            ..Default::default()
        },
    }
}

/// A test's database, queue and bucket. Dropping it (also when the test panics) deletes them.
pub struct Stack {
    pub db: TestDb,
    pub queue: TestQueue,
    pub s3: aws_sdk_s3::Client,
    pub bucket: String,
    _bucket_guard: BucketGuard,
}

impl Stack {
    pub async fn create() -> Stack {
        let db = TestDb::create().await;
        let queue = TestQueue::create(5, 30).await;
        let (s3, bucket, guard) = test_bucket().await;
        Stack {
            db,
            queue,
            s3,
            bucket,
            _bucket_guard: guard,
        }
    }

    pub fn db(&self) -> &TestDb {
        &self.db
    }

    /// The stack's bucket as the archiver sees it (no prefix).
    pub fn archive(&self) -> archiver::archive::bucket::ArchiveBucket {
        archiver::archive::bucket::ArchiveBucket::new(
            self.s3.clone(),
            self.bucket.clone(),
            String::new(),
        )
    }

    pub fn queue(&self) -> &TestQueue {
        &self.queue
    }

    /// The archiver's configuration for this stack, with `compaction` as given.
    pub fn config(&self, compaction: CompactionPolicy) -> Config {
        archiver_config(
            self.db().config(),
            &self.queue().url,
            &self.bucket,
            compaction,
        )
    }

    pub async fn archiver(&self, compaction: CompactionPolicy) -> Archiver {
        Archiver::from_config(self.config(compaction))
            .await
            .expect("archiver")
    }

    /// Every archive object: key and rows.
    pub async fn objects(&self) -> Vec<(String, RecordBatch)> {
        let mut out = Vec::new();
        for key in keys(&self.s3, &self.bucket).await {
            let body = get(&self.s3, &self.bucket, &key).await;
            let batches: Vec<RecordBatch> = ParquetRecordBatchReaderBuilder::try_new(body)
                .expect("a parquet file")
                .build()
                .expect("reader")
                .collect::<Result<_, _>>()
                .expect("batches");
            let rows =
                arrow::compute::concat_batches(&event_parquet::schema(), &batches).expect("rows");
            out.push((key, rows));
        }
        out
    }

    /// Asserts that the archive holds each of `events` exactly once, and nothing else.
    pub async fn assert_each_once(&self, events: &[Event]) {
        let archived = self.archived_ids().await;
        let expected: std::collections::BTreeSet<String> =
            events.iter().map(|e| e.event_id.to_string()).collect();
        let found: std::collections::BTreeSet<String> = archived.keys().cloned().collect();
        assert_eq!(found, expected);
        let repeated: Vec<&String> = archived
            .iter()
            .filter(|(_, (n, _))| *n != 1)
            .map(|(id, _)| id)
            .collect();
        assert!(repeated.is_empty(), "archived more than once: {repeated:?}");
    }

    /// How often each id is archived, and the `unit_id` of its (last read) copy.
    pub async fn archived_ids(&self) -> BTreeMap<String, (usize, String)> {
        let mut ids: BTreeMap<String, (usize, String)> = BTreeMap::new();
        for (_, rows) in self.objects().await {
            for (id, unit) in ids_and_units(&rows) {
                let entry = ids.entry(id).or_insert((0, String::new()));
                entry.0 += 1;
                entry.1 = unit;
            }
        }
        ids
    }
}

pub async fn keys(s3: &aws_sdk_s3::Client, bucket: &str) -> Vec<String> {
    let Ok(listed) = s3.list_objects_v2().bucket(bucket).send().await else {
        return Vec::new();
    };
    let mut keys: Vec<String> = listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect();
    keys.sort();
    keys
}

pub async fn get(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> bytes::Bytes {
    s3.get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .expect("get object")
        .body
        .collect()
        .await
        .expect("object body")
        .into_bytes()
}

pub fn ids_and_units(rows: &RecordBatch) -> Vec<(String, String)> {
    let ids = rows.column_by_name("event_id").expect("event_id");
    let units = rows.column_by_name("unit_id").expect("unit_id");
    ids.as_string::<i32>()
        .iter()
        .zip(units.as_string::<i32>().iter())
        .map(|(i, u)| {
            (
                i.unwrap_or_default().to_string(),
                u.unwrap_or_default().to_string(),
            )
        })
        .collect()
}

pub fn received_at(rows: &RecordBatch) -> Vec<i64> {
    rows.column_by_name("received_at")
        .expect("received_at")
        .as_primitive::<TimestampMicrosecondType>()
        .values()
        .to_vec()
}

/// Copies of `events` as one raw file of their hour, written and recorded as a run does it
/// (the hour recorded first, then the upload). Each copy gets `received_at` and `unit_id`.
pub async fn write_raw(
    archiver: &Archiver,
    events: &[Event],
    received_at: DateTime<Utc>,
    unit_id: &str,
) -> String {
    let hour = HourPartition::of(events.first().expect("some events").timestamp);
    let mut columns = EventColumns::new();
    for e in events {
        let mut copy = e.clone();
        copy.received_at = received_at;
        copy.unit_id = unit_id.to_string();
        assert_eq!(HourPartition::of(copy.timestamp), hour, "one hour per file");
        columns.push(&copy).expect("push");
    }
    archiver
        .hours
        .touch(hour.start())
        .await
        .expect("record hour");
    let key = archiver.bucket.raw_key(hour, uuid::Uuid::now_v7());
    let body = event_parquet::encode(columns).expect("encode");
    archiver
        .bucket
        .put(&key, body, uuid::Uuid::now_v7(), events.len())
        .await
        .expect("put");
    key
}

/// `n` distinct events at `timestamp`.
pub fn distinct_events(n: usize, timestamp: DateTime<Utc>) -> Vec<Event> {
    (0..n)
        .map(|i| crate::events::event(Utc::now(), timestamp, &format!("user-{i}")))
        .collect()
}

/// The start of the hour `hours_ago` hours before now, plus `minutes`.
pub fn hour_ago(hours_ago: i64, minutes: i64) -> DateTime<Utc> {
    let hour = HourPartition::of(Utc::now() - chrono::Duration::hours(hours_ago));
    hour.start() + chrono::Duration::minutes(minutes)
}

/// The compaction settings of the tests: settled after 2 h, records cleared at once.
pub fn policy() -> CompactionPolicy {
    CompactionPolicy {
        write_window: Duration::ZERO,
        ..CompactionPolicy::default()
    }
}

/// Small messages, so that a few events make several messages.
pub const SMALL_MESSAGES: usize = 8 * 1024;

/// Publishes through the ingest function's publisher (all must be accepted).
pub async fn publish_all(queue: &TestQueue, events: &[Event], message_bytes: usize) {
    let publisher =
        eis_handoff::SqsPublisher::new(queue.client.clone(), queue.url.clone(), message_bytes);
    let out = publisher.publish(events).await;
    assert!(out.errors.is_empty(), "{:?}", out.errors);
}
