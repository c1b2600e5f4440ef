//! Reading typed settings from the environment. Each function has one config struct built from
//! these pieces once at start; every error names the variable at fault.

use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("environment variable {0} is required but not set")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// The variable's value, or `None` when it is unset or empty.
pub fn optional<T>(name: &'static str) -> Result<Option<T>, EnvError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => {
            v.trim()
                .parse()
                .map(Some)
                .map_err(|e: T::Err| EnvError::Invalid {
                    name,
                    reason: e.to_string(),
                })
        }
        Ok(_) | Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(EnvError::Invalid {
            name,
            reason: "not valid UTF-8".into(),
        }),
    }
}

pub fn required<T>(name: &'static str) -> Result<T, EnvError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    optional(name)?.ok_or(EnvError::Missing(name))
}

pub fn or_default<T>(name: &'static str, default: T) -> Result<T, EnvError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    Ok(optional(name)?.unwrap_or(default))
}

/// A duration given in milliseconds.
pub fn millis(name: &'static str, default_ms: u64) -> Result<Duration, EnvError> {
    or_default(name, default_ms).map(Duration::from_millis)
}

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
}

impl DbConfig {
    pub fn from_env() -> Result<Self, EnvError> {
        Ok(Self {
            url: required("DATABASE_URL")?,
            ca_file: optional("EIS_PG_CA_FILE")?,
            secret_arn: optional("EIS_DB_SECRET_ARN")?,
            connect_timeout: millis("EIS_DB_CONNECT_TIMEOUT_MS", 3_000)?,
            query_timeout: millis("EIS_DB_QUERY_TIMEOUT_MS", 10_000)?,
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
