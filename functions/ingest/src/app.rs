//! Building the application from its configuration: clients and state. No network I/O here,
//! so a cold start costs only this (the database connection opens on first use).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use eis_contract::plan::Plan;
use eis_contract::{Limits, Tombstones};
use eis_handoff::{SqsPublisher, Storage};
use eis_runtime::aws;
use eis_runtime::telemetry::Namespace;
use eis_store::Db;

use crate::cache::Cache;
use crate::config::Config;
use crate::quarantine::{Quarantine, QuarantineBounds};
use crate::registry::RegistryCache;
use crate::sender::CallerBinding;

#[derive(Clone)]
pub struct AppState {
    pub storage: Arc<Storage>,
    /// The experiment registry's copy: accepted events are checked against it.
    pub registry: Arc<RegistryCache>,
    /// The erased units' copy (erasure.rs), reloaded like the registry's: without it no valid
    /// event is taken (intake.rs).
    pub tombstones: Arc<Cache<Tombstones>>,
    /// The tracking plan's compiled copy (plan.rs), reloaded like the registry's: without it
    /// no valid event is taken (intake.rs).
    pub plan: Arc<Cache<Plan>>,
    /// Where rejected input is kept, within `quarantine_bounds`.
    pub quarantine: Arc<Quarantine>,
    pub quarantine_bounds: QuarantineBounds,
    pub limits: Limits,
    pub max_body_bytes: usize,
    /// The CloudWatch namespace of the requests' metrics.
    pub metrics_namespace: Namespace,
    /// The clock, injectable so that tests of time rules neither sleep nor race midnight.
    pub now: fn() -> DateTime<Utc>,
    /// Which events must name their caller (JWT deployments); None: any.
    pub binding: Option<CallerBinding>,
}

/// SQS calls: the SDK retries up to this many attempts (standard mode, backoff with jitter).
const SQS_MAX_ATTEMPTS: u32 = 3;
const SQS_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn state(config: &Config) -> Result<AppState, eis_store::StoreError> {
    let db = Arc::new(Db::with_connections(&config.db, config.db_connections)?);
    let sdk = aws::sdk_config(SQS_MAX_ATTEMPTS, SQS_ATTEMPT_TIMEOUT).await;
    let sqs = aws::sqs_client(&sdk);
    let publisher = SqsPublisher::new(
        sqs.clone(),
        config.queue_url.clone(),
        config.sqs_max_message_bytes,
    );
    let quarantine = Quarantine::new(
        SqsPublisher::new(sqs, config.queue_url.clone(), config.sqs_max_message_bytes),
        config.quarantine.timeout,
    );
    Ok(AppState {
        registry: Arc::new(RegistryCache::new(
            Arc::clone(&db),
            config.registry_max_age,
            config.registry_mode,
        )),
        tombstones: Arc::new(Cache::new(Arc::clone(&db), config.registry_max_age)),
        plan: Arc::new(Cache::new(Arc::clone(&db), config.registry_max_age)),
        storage: Arc::new(Storage::new(db, publisher)),
        quarantine: Arc::new(quarantine),
        quarantine_bounds: config.quarantine,
        limits: config.limits.clone(),
        max_body_bytes: config.max_body_bytes,
        metrics_namespace: config.metrics_namespace.clone(),
        now: Utc::now,
        binding: config.binding.clone(),
    })
}
