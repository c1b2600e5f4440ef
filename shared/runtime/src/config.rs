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

/// A number with a default that must lie in `lo..=hi`.
pub fn within<T>(name: &'static str, default: T, lo: T, hi: T) -> Result<T, EnvError>
where
    T: FromStr + PartialOrd + std::fmt::Display + Copy,
    T::Err: std::fmt::Display,
{
    let value = or_default(name, default)?;
    if value < lo || value > hi {
        return Err(EnvError::Invalid {
            name,
            reason: format!("{value} is outside {lo}..={hi}"),
        });
    }
    Ok(value)
}

/// The contract's limits a deployment sets (`EIS_MAX_EVENT_BYTES`, `EIS_MAX_BATCH_EVENTS`;
/// the others are the contract's): read by the ingest API and by the archiver's replay, which
/// must judge events with the same limits.
pub fn contract_limits() -> Result<eis_contract::Limits, EnvError> {
    let defaults = eis_contract::Limits::default();
    Ok(eis_contract::Limits {
        max_event_bytes: or_default("EIS_MAX_EVENT_BYTES", defaults.max_event_bytes)?,
        max_batch_events: or_default("EIS_MAX_BATCH_EVENTS", defaults.max_batch_events)?,
        ..defaults
    })
}

/// `EIS_REGISTRY_MODE`: what an event that does not fit the experiment registry gets, `flag`
/// (the default) or `reject`. Read by the ingest API and by the archiver's replay, which
/// must judge events as the API does.
pub fn registry_mode() -> Result<eis_contract::RegistryMode, EnvError> {
    parse_registry_mode(or_default("EIS_REGISTRY_MODE", "flag".to_string())?)
}

/// `EIS_METRICS_NAMESPACE`: the CloudWatch namespace of every EMF line (`EIS`).
pub fn metrics_namespace() -> Result<crate::telemetry::Namespace, EnvError> {
    parse_metrics_namespace(&or_default("EIS_METRICS_NAMESPACE", "EIS".to_string())?)
}

fn parse_metrics_namespace(text: &str) -> Result<crate::telemetry::Namespace, EnvError> {
    crate::telemetry::Namespace::parse(text).map_err(|reason| EnvError::Invalid {
        name: "EIS_METRICS_NAMESPACE",
        reason,
    })
}

fn parse_registry_mode(value: String) -> Result<eis_contract::RegistryMode, EnvError> {
    match value.as_str() {
        "flag" => Ok(eis_contract::RegistryMode::Flag),
        "reject" => Ok(eis_contract::RegistryMode::Reject),
        _ => Err(EnvError::Invalid {
            name: "EIS_REGISTRY_MODE",
            reason: format!("{value:?} is neither \"flag\" nor \"reject\""),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eis_contract::RegistryMode;

    #[test]
    fn the_registry_mode_is_flag_or_reject() {
        assert_eq!(
            parse_registry_mode("flag".into()).ok(),
            Some(RegistryMode::Flag)
        );
        assert_eq!(
            parse_registry_mode("reject".into()).ok(),
            Some(RegistryMode::Reject)
        );
        let err = parse_registry_mode("Reject".into()).expect_err("case matters");
        assert!(err.to_string().contains("EIS_REGISTRY_MODE"), "{err}");
    }

    #[test]
    fn a_bad_metrics_namespace_names_the_variable() {
        let namespace = parse_metrics_namespace("EIS-staging").expect("valid");
        assert_eq!(namespace.as_str(), "EIS-staging");
        let err = parse_metrics_namespace("AWS/Lambda").expect_err("AWS's own");
        assert!(err.to_string().contains("EIS_METRICS_NAMESPACE"), "{err}");
    }
}
