//! How to reach PostgreSQL, and the role secrets of the deploy's migration step, from the
//! environment (eis_runtime::config reads the variables).

use std::time::Duration;

use eis_runtime::config::{millis, optional, required, within};
use eis_runtime::EnvError;

/// How to reach PostgreSQL.
#[derive(Debug, Clone)]
pub struct DbConfig {
    /// libpq-style URL; `sslmode` may be disable, prefer, require, verify-ca or verify-full,
    /// `sslrootcert` a CA file (the RDS bundle in AWS).
    pub url: String,
    /// CA file for verify-ca / verify-full when the URL names none (`EIS_PG_CA_FILE`).
    pub ca_file: Option<String>,
    /// Secrets Manager secret whose JSON `username`/`password` are the credentials
    /// (`EIS_DB_SECRET_ARN`), so that no password sits in the environment.
    pub secret_arn: Option<String>,
    pub connect_timeout: Duration,
    /// Upper bound on any one statement, enforced client-side.
    pub query_timeout: Duration,
    /// A shared connection left idle this long is probed with a round trip before it is
    /// handed out, and replaced if the server closed it meanwhile (`EIS_DB_IDLE_PROBE_SECS`,
    /// 60, 0..=1800; 0 probes every use). RDS Proxy closes a client connection idle for its
    /// `IdleClientTimeout` (1 800 s), typically while the Lambda is frozen.
    pub idle_probe_after: Duration,
}

impl DbConfig {
    pub fn from_env() -> Result<Self, EnvError> {
        Ok(Self {
            url: required("DATABASE_URL")?,
            ca_file: optional("EIS_PG_CA_FILE")?,
            secret_arn: optional("EIS_DB_SECRET_ARN")?,
            connect_timeout: millis("EIS_DB_CONNECT_TIMEOUT_MS", 3_000)?,
            query_timeout: millis("EIS_DB_QUERY_TIMEOUT_MS", 10_000)?,
            idle_probe_after: Duration::from_secs(within("EIS_DB_IDLE_PROBE_SECS", 60, 0, 1800)?),
        })
    }
}

/// The secrets of a least-privilege migration step (docs/deploy.md, "Database roles"): the
/// master user's (`EIS_DB_ADMIN_SECRET_ARN`), used only to create the two login users and set
/// their passwords, and the migrator's (`EIS_DB_MIGRATOR_SECRET_ARN`), which then applies the
/// migrations; the application user's is `EIS_DB_SECRET_ARN`. Unset (locally), the
/// migrations run as DATABASE_URL's user.
#[derive(Debug, Clone)]
pub struct RoleSecrets {
    pub admin_arn: String,
    pub migrator_arn: String,
    pub app_arn: String,
}

impl RoleSecrets {
    pub fn from_env() -> Result<Option<Self>, EnvError> {
        let admin = optional::<String>("EIS_DB_ADMIN_SECRET_ARN")?;
        let migrator = optional::<String>("EIS_DB_MIGRATOR_SECRET_ARN")?;
        match (admin, migrator) {
            (None, None) => Ok(None),
            (Some(admin_arn), Some(migrator_arn)) => Ok(Some(Self {
                admin_arn,
                migrator_arn,
                app_arn: required("EIS_DB_SECRET_ARN")?,
            })),
            (Some(_), None) => Err(EnvError::Missing("EIS_DB_MIGRATOR_SECRET_ARN")),
            (None, Some(_)) => Err(EnvError::Missing("EIS_DB_ADMIN_SECRET_ARN")),
        }
    }
}
