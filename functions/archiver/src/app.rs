//! The archiver's dependencies, built once per container from its configuration. No network
//! I/O here: the database connection opens on first use.

use std::sync::Arc;
use std::time::Duration;

use eis_runtime::aws;
use eis_runtime::handoff::SQS_MAX_MESSAGE_BYTES;
use eis_runtime::SqsPublisher;
use eis_store::{ArchiveHours, Db, HealthStore, PendingHandoffs, RestoreStore, Storage};

use crate::bucket::ArchiveBucket;
use crate::config::Config;
use crate::error::ArchiveError;
use crate::fanout::{LambdaWorkers, StartWorker};
use crate::queue::ArchiveQueue;

/// AWS calls: the SDK retries up to this many attempts (standard mode, backoff with jitter).
const AWS_MAX_ATTEMPTS: u32 = 3;
/// Above the longest long-poll wait (20 s) and enough for a large object upload.
const AWS_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Archiver {
    pub config: Config,
    pub queue: ArchiveQueue,
    pub bucket: ArchiveBucket,
    /// The database, for partition upkeep.
    pub db: Arc<Db>,
    /// Events stored but not confirmed by SQS: the sweep's input.
    pub pending: PendingHandoffs,
    /// Which hours hold files still to compact (`exp.archive_hours`), and the audit's queries.
    pub hours: ArchiveHours,
    /// The health job's tables (`{"action":"health"}`).
    pub health: HealthStore,
    /// The ingest's storage path (store, then hand off): a replay stores through it.
    pub storage: Storage,
    /// Archived events back into exp.events (`{"action":"restore"}`).
    pub restore: RestoreStore,
    /// Starts drain workers (the fan-out); None outside Lambda.
    pub workers: Option<Box<dyn StartWorker>>,
}

impl Archiver {
    /// Clients from the environment's AWS settings (`AWS_ENDPOINT_URL` locally).
    pub async fn from_config(config: Config) -> Result<Self, ArchiveError> {
        let db = Arc::new(Db::new(&config.db)?);
        let sdk = aws::sdk_config(AWS_MAX_ATTEMPTS, AWS_ATTEMPT_TIMEOUT).await;
        let workers = config.fanout.function.clone().map(|function| {
            Box::new(LambdaWorkers::new(
                aws_sdk_lambda::Client::new(&sdk),
                function,
            )) as Box<dyn StartWorker>
        });
        let publisher = SqsPublisher::new(
            aws::sqs_client(&sdk),
            config.queue_url.clone(),
            SQS_MAX_MESSAGE_BYTES,
        );
        Ok(Self {
            workers,
            storage: Storage::new(Arc::clone(&db), publisher),
            restore: RestoreStore::new(Arc::clone(&db)),
            queue: ArchiveQueue::new(aws::sqs_client(&sdk), config.queue_url.clone()),
            bucket: ArchiveBucket::new(
                aws::s3_client(&sdk),
                config.bucket.clone(),
                config.prefix.clone(),
            ),
            hours: ArchiveHours::new(Arc::clone(&db)),
            health: HealthStore::new(Arc::clone(&db)),
            pending: PendingHandoffs::new(Arc::clone(&db)),
            db,
            config,
        })
    }
}
