//! The archiver's settings, read once at start from the environment; every error names the
//! variable at fault.

use std::time::Duration;

use eis_runtime::config::{millis, optional, or_default, required, within};
use eis_runtime::telemetry::Namespace;
use eis_runtime::EnvError;
use eis_store::maintenance::MaintenancePolicy;
use eis_store::{DbConfig, WatermarkPolicy};

use crate::compaction::CompactionPolicy;
use crate::drain::batcher::BufferLimits;
use crate::drain::fanout::FanoutPolicy;
use crate::erasure::ErasurePolicy;
use crate::health::HealthPolicy;

const MIB: usize = 1024 * 1024;

#[derive(Debug, Clone)]
pub struct Config {
    pub db: DbConfig,
    /// The archive queue (`EIS_QUEUE_URL`).
    pub queue_url: String,
    /// The archive bucket (`EIS_BUCKET`).
    pub bucket: String,
    /// Key prefix inside the bucket: empty or ending with `/` (`EIS_ARCHIVE_PREFIX`).
    pub prefix: String,
    /// Key prefix of the quarantined (rejected) input: a folder, never empty, so that it
    /// cannot be mistaken for the archive's hours (`EIS_REJECTED_PREFIX`, `rejected/`).
    pub quarantine_prefix: String,
    /// How a replay judges events against the experiment registry, as the API does
    /// (`EIS_REGISTRY_MODE`, `flag`).
    pub registry_mode: eis_contract::RegistryMode,
    /// The contract limits a replay judges with: the ingest's (`EIS_MAX_EVENT_BYTES`,
    /// `EIS_MAX_BATCH_EVENTS`).
    pub contract_limits: eis_contract::Limits,
    /// No new receive starts once less than this remains before the deadline: the time kept
    /// for writing the last files and deleting their messages (`EIS_SAFETY_MARGIN_MS`, 10 s).
    pub safety_margin: Duration,
    /// Rows younger than this are left to the ingest function, which may still be publishing
    /// them (`EIS_SWEEP_GRACE_SECS`, 300).
    pub sweep_grace: Duration,
    /// Most rows swept in one run; the rest wait for the next run (`EIS_SWEEP_LIMIT`, 10 000).
    pub sweep_limit: i64,
    /// `EIS_RETENTION_DAYS` (90), `EIS_PARTITIONS_AHEAD_DAYS` (7) and
    /// `EIS_RETENTION_LOCK_TIMEOUT_MS` (1000).
    pub maintenance: MaintenancePolicy,
    /// `EIS_MAX_FILE_EVENTS` (100 000), `EIS_MAX_FILE_BYTES` (64 MiB of column data) and
    /// `EIS_MAX_BUFFERED_BYTES` (192 MiB).
    pub limits: BufferLimits,
    /// ReceiveMessage calls in flight at once (`EIS_RECEIVE_CONCURRENCY`, 4).
    pub receive_concurrency: usize,
    /// Long-polling wait of each receive, 1..=20 s (`EIS_RECEIVE_WAIT_SECS`, 2): long enough
    /// that an empty answer means an empty queue, short enough not to idle at the end of a run.
    pub receive_wait: Duration,
    /// Files encoded and uploaded at once (`EIS_UPLOAD_CONCURRENCY`, 2).
    pub upload_concurrency: usize,
    /// Outside Lambda there is no invocation deadline: a local run gets this long
    /// (`EIS_LOCAL_DEADLINE_SECS`, 60).
    pub local_deadline: Duration,
    /// `EIS_COMPACT_AFTER_SECS` (7200), `EIS_COMPACT_SHARD_EVENTS` (400 000),
    /// `EIS_COMPACT_SHARD_BYTES` (64 MiB), `EIS_COMPACT_MAX_HOURS` (48),
    /// `EIS_RAW_WRITE_WINDOW_SECS` (900) and `EIS_AUDIT_DAYS` (`EIS_RETENTION_DAYS`).
    pub compaction: CompactionPolicy,
    /// `EIS_MAX_ARCHIVER_CONCURRENCY` (4), `EIS_RUN_CAPACITY_MESSAGES` (5000) and the
    /// function to invoke (`AWS_LAMBDA_FUNCTION_NAME`, `EIS_FANOUT_QUALIFIER`).
    pub fanout: FanoutPolicy,
    /// The health job (`{"action":"health"}`): `EIS_HEALTH_LAG_SECS` (120),
    /// `EIS_HEALTH_WINDOW_SECS` (3600), `EIS_HEALTH_STATEMENT_TIMEOUT_SECS` (120) and
    /// `EIS_SRM_MIN_UNITS` (100).
    pub health: HealthPolicy,
    /// The CloudWatch namespace of the metrics (`EIS_METRICS_NAMESPACE`, `EIS`).
    pub metrics_namespace: Namespace,
    /// Erasure (`{"action":"erase"}`): `EIS_ERASURE_GRACE_SECS` (900) and
    /// `EIS_ERASURE_MAX_REQUESTS` (100).
    pub erasure: ErasurePolicy,
}

impl Config {
    pub fn from_env() -> Result<Self, EnvError> {
        let max_file_bytes = within("EIS_MAX_FILE_BYTES", 64 * MIB, 1, 1024 * MIB)?;
        let limits = BufferLimits {
            max_file_events: within("EIS_MAX_FILE_EVENTS", 100_000, 1, 10_000_000)?,
            max_file_bytes,
            max_held_bytes: within(
                "EIS_MAX_BUFFERED_BYTES",
                192 * MIB,
                max_file_bytes,
                usize::MAX,
            )?,
        };
        let retention_days = within("EIS_RETENTION_DAYS", 90, 1, 36_500)?;
        let d = CompactionPolicy::default();
        let compaction = CompactionPolicy {
            after: Duration::from_secs(within("EIS_COMPACT_AFTER_SECS", 7200, 0, 30 * 86_400)?),
            shard_events: within("EIS_COMPACT_SHARD_EVENTS", d.shard_events, 1, u64::MAX)?,
            shard_bytes: within("EIS_COMPACT_SHARD_BYTES", d.shard_bytes, 1, u64::MAX)?,
            max_hours: within("EIS_COMPACT_MAX_HOURS", d.max_hours, 0, 100_000)?,
            write_window: Duration::from_secs(within("EIS_RAW_WRITE_WINDOW_SECS", 900, 0, 86_400)?),
            audit_days: within("EIS_AUDIT_DAYS", retention_days, 1, 36_500)?,
        };
        Ok(Self {
            db: DbConfig::from_env()?,
            queue_url: required("EIS_QUEUE_URL")?,
            bucket: required("EIS_BUCKET")?,
            prefix: prefix(or_default("EIS_ARCHIVE_PREFIX", String::new())?)?,
            registry_mode: eis_runtime::config::registry_mode()?,
            contract_limits: eis_runtime::config::contract_limits()?,
            quarantine_prefix: quarantine_prefix(or_default(
                "EIS_REJECTED_PREFIX",
                "rejected/".to_string(),
            )?)?,
            safety_margin: millis("EIS_SAFETY_MARGIN_MS", 10_000)?,
            sweep_grace: Duration::from_secs(or_default("EIS_SWEEP_GRACE_SECS", 300)?),
            sweep_limit: within("EIS_SWEEP_LIMIT", 10_000, 1, 1_000_000)?,
            maintenance: MaintenancePolicy {
                retention_days,
                days_ahead: within("EIS_PARTITIONS_AHEAD_DAYS", 7, 0, 366)?,
                lock_timeout: Duration::from_millis(within(
                    "EIS_RETENTION_LOCK_TIMEOUT_MS",
                    1000,
                    1,
                    600_000,
                )?),
            },
            limits,
            receive_concurrency: within("EIS_RECEIVE_CONCURRENCY", 4, 1, 32)?,
            receive_wait: Duration::from_secs(within("EIS_RECEIVE_WAIT_SECS", 2, 1, 20)?),
            upload_concurrency: within("EIS_UPLOAD_CONCURRENCY", 2, 1, 16)?,
            local_deadline: Duration::from_secs(within("EIS_LOCAL_DEADLINE_SECS", 60, 1, 86_400)?),
            compaction,
            fanout: FanoutPolicy {
                max_concurrency: within("EIS_MAX_ARCHIVER_CONCURRENCY", 4, 1, 1000)?,
                run_capacity_messages: within("EIS_RUN_CAPACITY_MESSAGES", 5000, 1, u64::MAX)?,
                function: fanout_function(
                    optional("AWS_LAMBDA_FUNCTION_NAME")?,
                    optional("EIS_FANOUT_QUALIFIER")?,
                ),
            },
            health: HealthPolicy {
                watermark: WatermarkPolicy {
                    lag: Duration::from_secs(within("EIS_HEALTH_LAG_SECS", 120, 0, 3600)?),
                    max_window: Duration::from_secs(within(
                        "EIS_HEALTH_WINDOW_SECS",
                        3600,
                        1,
                        7 * 86_400,
                    )?),
                    statement_timeout: Duration::from_secs(within(
                        "EIS_HEALTH_STATEMENT_TIMEOUT_SECS",
                        120,
                        1,
                        900,
                    )?),
                    // The rollups' floor and the aging follow PostgreSQL's retention.
                    retention_days,
                },
                min_units: within("EIS_SRM_MIN_UNITS", 100, 1, i64::MAX)?,
            },
            metrics_namespace: eis_runtime::config::metrics_namespace()?,
            erasure: ErasurePolicy {
                grace: Duration::from_secs(within("EIS_ERASURE_GRACE_SECS", 900, 0, 86_400)?),
                max_requests: within("EIS_ERASURE_MAX_REQUESTS", 100, 1, 10_000)?,
            },
        })
    }
}

/// The function a drain worker runs in: this one, under the alias the schedule invokes (its
/// code and its no-retry invoke settings). Without a function name (outside Lambda), none.
fn fanout_function(name: Option<String>, qualifier: Option<String>) -> Option<String> {
    let name = name?;
    Some(match qualifier {
        Some(q) => format!("{name}:{q}"),
        None => name,
    })
}

/// Keys are `{prefix}YYYY/...`: the prefix is a folder (or nothing), never a leading slash.
fn prefix(value: String) -> Result<String, EnvError> {
    folder("EIS_ARCHIVE_PREFIX", value, true)
}

/// The quarantine's folder is never empty: the archive's hours would share its folders.
fn quarantine_prefix(value: String) -> Result<String, EnvError> {
    folder("EIS_REJECTED_PREFIX", value, false)
}

fn folder(name: &'static str, value: String, may_be_empty: bool) -> Result<String, EnvError> {
    let invalid = |reason: &str| EnvError::Invalid {
        name,
        reason: reason.into(),
    };
    if value.starts_with('/') {
        return Err(invalid("must not start with '/'"));
    }
    if value.is_empty() && !may_be_empty {
        return Err(invalid("must not be empty"));
    }
    if !value.is_empty() && !value.ends_with('/') {
        return Err(invalid("must be empty or end with '/'"));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fanout_invokes_this_function_under_its_alias_and_only_in_lambda() {
        let some = |s: &str| Some(s.to_string());
        assert_eq!(fanout_function(None, some("live")), None);
        assert_eq!(
            fanout_function(some("eis-archiver"), None),
            some("eis-archiver")
        );
        assert_eq!(
            fanout_function(some("eis-archiver"), some("live")),
            some("eis-archiver:live")
        );
    }

    #[test]
    fn the_rejected_prefix_is_a_folder() {
        assert_eq!(
            quarantine_prefix("rejected/".into()).ok().as_deref(),
            Some("rejected/")
        );
        for bad in ["", "rejected", "/rejected/"] {
            let err = quarantine_prefix(bad.into()).expect_err(bad);
            assert!(err.to_string().contains("EIS_REJECTED_PREFIX"), "{err}");
        }
    }

    #[test]
    fn the_prefix_is_a_folder_or_nothing() {
        assert_eq!(prefix(String::new()).ok().as_deref(), Some(""));
        assert_eq!(
            prefix("archive/v1/".into()).ok().as_deref(),
            Some("archive/v1/")
        );
        for bad in ["archive", "/archive/"] {
            let err = prefix(bad.into()).expect_err(bad);
            assert!(err.to_string().contains("EIS_ARCHIVE_PREFIX"), "{err}");
        }
    }
}
