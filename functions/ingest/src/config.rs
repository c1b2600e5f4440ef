//! The ingest function's settings, read once at start from the environment.

use std::time::Duration;

use eis_contract::{is_name, Limits, RegistryMode, UnitBinding};
use eis_handoff::SQS_MAX_MESSAGE_BYTES;
use eis_runtime::config::{
    contract_limits, metrics_namespace, optional, or_default, registry_mode, required, within,
};
use eis_runtime::telemetry::Namespace;
use eis_runtime::EnvError;
use eis_store::DbConfig;

use crate::quarantine::QuarantineBounds;
use crate::sender::CallerBinding;

#[derive(Debug, Clone)]
pub struct Config {
    pub db: DbConfig,
    /// Queue of the archive hand-off (`EIS_QUEUE_URL`).
    pub queue_url: String,
    /// Request body limit after decompression (`EIS_MAX_BODY_BYTES`, 5 MiB).
    pub max_body_bytes: usize,
    /// Event contract limits (`EIS_MAX_EVENT_BYTES`, `EIS_MAX_BATCH_EVENTS`).
    pub limits: Limits,
    /// The queue's message size limit (`EIS_SQS_MAX_MESSAGE_BYTES`, 256 KiB).
    pub sqs_max_message_bytes: usize,
    /// Port of the local server (`EIS_PORT`, 3000); unused in Lambda.
    pub port: u16,
    /// PostgreSQL connections of the local server (`EIS_DB_CONNECTIONS`, 4, at most 64), so
    /// that concurrent requests do not queue on one backend. Always 1 in Lambda, where an
    /// instance serves one request at a time and the instances are the pool.
    pub db_connections: usize,
    /// What an event that does not fit the experiment registry gets: `flag` (the default) or
    /// `reject` (`EIS_REGISTRY_MODE`).
    pub registry_mode: RegistryMode,
    /// The registry copy, and the erasure tombstones' copy, are reloaded once older than this
    /// (`EIS_REGISTRY_MAX_AGE_SECS`, 60, 1..=3600): the most a registry change, or an erasure,
    /// takes to reach every instance.
    pub registry_max_age: Duration,
    /// What is kept of rejected input (`EIS_QUARANTINE_EVENT_BYTES`,
    /// `EIS_QUARANTINE_REQUEST_BYTES`, `EIS_QUARANTINE_BUDGET_BYTES`,
    /// `EIS_QUARANTINE_TIMEOUT_MS`; see `QuarantineBounds`).
    pub quarantine: QuarantineBounds,
    /// The CloudWatch namespace of the metrics (`EIS_METRICS_NAMESPACE`, `EIS`).
    pub metrics_namespace: Namespace,
    /// Behind a JWT authorizer: events of `EIS_BIND_UNIT_TYPE` must name the caller, the
    /// token's claim `EIS_BIND_UNIT_CLAIM` (`sub`). Unset: no binding.
    pub binding: Option<CallerBinding>,
}

impl Config {
    pub fn from_env() -> Result<Self, EnvError> {
        let limits = contract_limits()?;
        Ok(Self {
            db: DbConfig::from_env()?,
            queue_url: required("EIS_QUEUE_URL")?,
            max_body_bytes: or_default("EIS_MAX_BODY_BYTES", 5 * 1024 * 1024)?,
            limits,
            sqs_max_message_bytes: or_default("EIS_SQS_MAX_MESSAGE_BYTES", SQS_MAX_MESSAGE_BYTES)?,
            port: optional("EIS_PORT")?.unwrap_or(3000),
            db_connections: if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
                1
            } else {
                within("EIS_DB_CONNECTIONS", 4, 1, 64)?
            },
            registry_mode: registry_mode()?,
            registry_max_age: Duration::from_secs(within(
                "EIS_REGISTRY_MAX_AGE_SECS",
                60,
                1,
                3600,
            )?),
            quarantine: quarantine_bounds()?,
            metrics_namespace: metrics_namespace()?,
            binding: caller_binding()?,
        })
    }
}

fn caller_binding() -> Result<Option<CallerBinding>, EnvError> {
    let Some(unit_type) = optional::<String>("EIS_BIND_UNIT_TYPE")? else {
        return Ok(None);
    };
    if !is_name(&unit_type, usize::MAX) {
        return Err(EnvError::Invalid {
            name: "EIS_BIND_UNIT_TYPE",
            reason: format!("{unit_type:?} is not a unit_type ([a-z][a-z0-9_]*)"),
        });
    }
    Ok(Some(CallerBinding {
        unit: UnitBinding { unit_type },
        claim: or_default("EIS_BIND_UNIT_CLAIM", "sub".to_string())?,
    }))
}

fn quarantine_bounds() -> Result<QuarantineBounds, EnvError> {
    let d = QuarantineBounds::default();
    // A body refused whole must fit one message with its record's other fields.
    let max_text = SQS_MAX_MESSAGE_BYTES - 8 * 1024;
    Ok(QuarantineBounds {
        event_bytes: within("EIS_QUARANTINE_EVENT_BYTES", d.event_bytes, 0, max_text)?,
        request_bytes: within("EIS_QUARANTINE_REQUEST_BYTES", d.request_bytes, 0, max_text)?,
        budget_bytes: within(
            "EIS_QUARANTINE_BUDGET_BYTES",
            d.budget_bytes,
            0,
            16 * 1024 * 1024,
        )?,
        timeout: Duration::from_millis(within("EIS_QUARANTINE_TIMEOUT_MS", 2000, 100, 10_000)?),
    })
}
