//! The archiver's dependencies, built once per container from its configuration. No network
//! I/O here: the database connection opens on first use.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use eis_contract::Tombstones;
use eis_handoff::{SqsPublisher, Storage, SQS_MAX_MESSAGE_BYTES};
use eis_runtime::aws;
use eis_store::{ArchiveHours, Db, ErasureStore, HealthStore, PendingHandoffs, RestoreStore};

use crate::archive::bucket::ArchiveBucket;
use crate::compaction::audit::Audit;
use crate::compaction::compact::Compaction;
use crate::config::Config;
use crate::drain::fanout::{Fanout, LambdaWorkers, StartWorker};
use crate::drain::queue::ArchiveQueue;
use crate::drain::run::{Drain, DrainPolicy, RunOutcome};
use crate::erasure::Erasure;
use crate::error::ArchiveError;
use crate::recovery::replay::Replay;
use crate::recovery::restore::Restore;

/// AWS calls: the SDK retries up to this many attempts (standard mode, backoff with jitter).
const AWS_MAX_ATTEMPTS: u32 = 3;
/// Above the longest long-poll wait (20 s) and enough for a large object upload.
const AWS_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);

/// The composition root: every client and setting, built once per container. Each job gets
/// only its parts (`drain_job`, `compaction_job`, `audit_job`, `replay_job`, `restore_job`,
/// `erasure_job`); only the handler sees the whole.
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
    /// Erasure requests and the tombstones every job leaves out (`{"action":"erase"}`).
    pub erasure: ErasureStore,
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
            erasure: ErasureStore::new(Arc::clone(&db)),
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

    /// A scheduled run: it may start drain workers first (the fan-out).
    pub async fn run(&self, now: DateTime<Utc>, deadline: Instant) -> RunOutcome {
        let tombstones = self.tombstones_if_any().await;
        self.drain_job(true, tombstones.as_ref())
            .run(now, deadline)
            .await
    }

    /// A drain worker's run: the same run without the fan-out, so workers start no workers.
    pub async fn drain(&self, now: DateTime<Utc>, deadline: Instant) -> RunOutcome {
        let tombstones = self.tombstones_if_any().await;
        self.drain_job(false, tombstones.as_ref())
            .run(now, deadline)
            .await
    }

    /// The tombstones for a drain run; None when the database cannot give them (the run
    /// goes on without the database, as it does for the sweep).
    async fn tombstones_if_any(&self) -> Option<Arc<Tombstones>> {
        match self.erasure.tombstones().await {
            Ok(t) => Some(Arc::new(t)),
            Err(e) => {
                tracing::warn!(code = e.code(), error = %e, "the erased units could not be loaded");
                None
            }
        }
    }

    fn drain_job<'a>(
        &'a self,
        fan_out: bool,
        tombstones: Option<&'a Arc<Tombstones>>,
    ) -> Drain<'a> {
        let c = &self.config;
        let fanout = self.workers.as_deref().filter(|_| fan_out);
        Drain {
            queue: &self.queue,
            bucket: &self.bucket,
            pending: &self.pending,
            hours: &self.hours,
            db: &self.db,
            quarantine_prefix: &c.quarantine_prefix,
            policy: DrainPolicy {
                safety_margin: c.safety_margin,
                sweep_grace: c.sweep_grace,
                sweep_limit: c.sweep_limit,
                limits: c.limits,
                receive_concurrency: c.receive_concurrency,
                receive_wait: c.receive_wait,
                upload_concurrency: c.upload_concurrency,
                maintenance: c.maintenance,
                compaction: c.compaction,
            },
            fanout: fanout.map(|workers| Fanout {
                queue: &self.queue,
                workers,
                policy: &c.fanout,
            }),
            tombstones,
        }
    }

    pub fn compaction_job(&self) -> Compaction<'_> {
        Compaction {
            bucket: &self.bucket,
            hours: &self.hours,
            policy: self.config.compaction,
            safety_margin: self.config.safety_margin,
        }
    }

    pub fn audit_job(&self) -> Audit<'_> {
        Audit {
            compaction: self.compaction_job(),
            pending: &self.pending,
        }
    }

    pub fn replay_job(&self) -> Replay<'_> {
        Replay {
            bucket: &self.bucket,
            quarantine_prefix: &self.config.quarantine_prefix,
            storage: &self.storage,
            safety_margin: self.config.safety_margin,
        }
    }

    pub fn restore_job(&self) -> Restore<'_> {
        Restore {
            bucket: &self.bucket,
            store: &self.restore,
            erasure: &self.erasure,
            retention_days: self.config.maintenance.retention_days,
            safety_margin: self.config.safety_margin,
        }
    }

    pub fn erasure_job<'a>(&'a self, tombstones: &'a Arc<Tombstones>) -> Erasure<'a> {
        Erasure {
            store: &self.erasure,
            compaction: self.compaction_job(),
            tombstones,
            quarantine_prefix: &self.config.quarantine_prefix,
            retention_days: i32::try_from(self.config.maintenance.retention_days)
                .unwrap_or(i32::MAX),
            policy: self.config.erasure,
        }
    }
}
