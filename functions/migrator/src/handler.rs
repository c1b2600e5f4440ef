//! One input, done: migrations, a registry load, or a custom-resource request answered to
//! CloudFormation in time.

use eis_store::{migrate, Db};
use serde::Serialize;
use tokio::time::Instant;

use crate::config::Config;
use crate::custom_resource::{
    put_timeout, work_budget, Request, RequestType, Response, Status, ANSWER_RESERVE,
};
use crate::error::MigratorError;
use crate::input::Input;
use crate::registry::{self, Experiment, RegistrySummary};
use crate::respond;

/// The invocation's answer.
#[derive(Debug, Serialize, PartialEq)]
#[serde(untagged)]
pub enum Output {
    Migrated {
        action: &'static str,
        applied: Vec<String>,
    },
    Registry(RegistrySummary),
    /// What CloudFormation was told.
    Answered {
        request_type: RequestType,
        status: Status,
        reason: String,
    },
}

impl Output {
    /// The answer for a person at a terminal: migrations as `make migrate` always printed
    /// them, anything else as JSON.
    pub fn text(&self) -> String {
        match self {
            Output::Migrated { applied, .. } => format!("migrations: {}", migrated(applied)),
            other => serde_json::to_string(other).unwrap_or_default(),
        }
    }
}

fn migrated(applied: &[String]) -> String {
    if applied.is_empty() {
        "database is up to date".into()
    } else {
        format!("applied {}", applied.join(", "))
    }
}

/// Runs one input before `deadline`. Each input's future is boxed: the migrations (three
/// secret reads, refinery) and the PUT (hyper, rustls) nest too deep for rustc's default
/// layout depth when the Lambda runtime's futures wrap them unboxed.
pub async fn handle(
    config: &Config,
    input: Input,
    deadline: Instant,
) -> Result<Output, MigratorError> {
    match input {
        Input::Migrate => {
            let applied = migrations(config).await?;
            tracing::info!(applied = ?applied, "migrations");
            Ok(Output::Migrated {
                action: "migrate",
                applied,
            })
        }
        Input::Registry(experiments) => {
            let summary = Box::pin(load_registry(config, &experiments)).await?;
            tracing::info!(summary = ?summary, "registry loaded");
            Ok(Output::Registry(summary))
        }
        Input::CustomResource(request) => Box::pin(answer(config, &request, deadline)).await,
    }
}

/// Applies the pending migrations (eis_store::migrate::deploy: login users from their secrets,
/// then the migrations as the migrator), boxed (see [`handle`]).
async fn migrations(config: &Config) -> Result<Vec<String>, MigratorError> {
    Ok(Box::pin(migrate::deploy(&config.db, config.roles.as_ref())).await?)
}

/// Loads checked registry entries as the migrator (`registry::migrator_db`), all or none.
async fn load_registry(
    config: &Config,
    experiments: &[Experiment],
) -> Result<RegistrySummary, MigratorError> {
    let db = registry::migrator_db(&config.db, config.roles.as_ref())
        .ok_or(MigratorError::MigratorOnly)?;
    let entries = serde_json::to_value(experiments)
        .map_err(|e| MigratorError::Internal(format!("registry entries as JSON: {e}")))?;
    let loaded = eis_store::registry::store(&Db::new(&db)?, &entries).await?;
    Ok(RegistrySummary::new(loaded, experiments))
}

/// Create and Update migrate, Delete does nothing; whatever happens, CloudFormation is told
/// before `deadline`: the migrations stop [`ANSWER_RESERVE`] before it (an unfinished
/// migration's transaction rolls back with its connection, the advisory lock goes with the
/// session). Only a failed PUT is an error of the invocation.
async fn answer(
    config: &Config,
    request: &Request,
    deadline: Instant,
) -> Result<Output, MigratorError> {
    let outcome = if request.migrates() {
        let budget = work_budget(deadline.saturating_duration_since(Instant::now()));
        match tokio::time::timeout(budget, migrations(config)).await {
            Ok(done) => done.map(|applied| migrated(&applied)),
            Err(_) => Err(MigratorError::OutOfTime(format!(
                "the migrations did not finish within {budget:?}, {ANSWER_RESERVE:?} before \
                 the function's timeout; nothing unfinished was kept, the next deploy \
                 (MigrationsRunId) runs them again"
            ))),
        }
    } else {
        Ok("nothing to do: the schema outlives the stack".into())
    };
    let (status, reason) = match outcome {
        Ok(reason) => (Status::Success, reason),
        Err(err) => {
            tracing::error!(code = err.code(), error = %eis_runtime::telemetry::chain(&err),
                            "migrations failed");
            (Status::Failed, err.message())
        }
    };
    let response = Response::to(request, status, &reason);
    let body = serde_json::to_vec(&response)
        .map_err(|e| MigratorError::Internal(format!("the answer as JSON: {e}")))?;
    let timeout = put_timeout(deadline.saturating_duration_since(Instant::now()));
    Box::pin(respond::put(&request.response_url, body, timeout)).await?;
    tracing::info!(request = ?request.request_type, status = ?status, reason = %response.reason,
                   "CloudFormation answered");
    Ok(Output::Answered {
        request_type: request.request_type,
        status,
        reason: response.reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_terminal_reads_what_was_applied() {
        let up_to_date = Output::Migrated {
            action: "migrate",
            applied: vec![],
        };
        assert_eq!(up_to_date.text(), "migrations: database is up to date");
        let applied = Output::Migrated {
            action: "migrate",
            applied: vec!["V1__events".into(), "V2__ids".into()],
        };
        assert_eq!(applied.text(), "migrations: applied V1__events, V2__ids");
        assert_eq!(
            serde_json::to_value(&applied).expect("json"),
            serde_json::json!({"action": "migrate", "applied": ["V1__events", "V2__ids"]})
        );
    }

    #[test]
    fn the_answer_to_cloudformation_is_reported_as_sent() {
        let out = Output::Answered {
            request_type: RequestType::Delete,
            status: Status::Success,
            reason: "nothing to do".into(),
        };
        assert_eq!(
            serde_json::to_value(&out).expect("json"),
            serde_json::json!({"request_type": "Delete", "status": "SUCCESS",
                               "reason": "nothing to do"})
        );
    }
}
