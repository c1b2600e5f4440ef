//! The invocation: which input it is, what it does, what it answers. The same function serves
//! the EventBridge schedule (one archive run), the drain workers that run starts
//! (`{"action":"drain"}`), the audit's schedule (`{"action":"audit"}`), the health job's
//! schedule (`{"action":"health"}`), and the operator's `{"action":"replay",…}` and
//! `{"action":"restore",…}` (docs/quarantine.md), and erasure's schedule and requests
//! (`{"action":"erase"[,"requests":[…]]}`, docs/privacy.md), and the tracking plan's loads
//! (`{"action":"plan","plan":{…}}`, docs/plan.md). Migrations and registry loads are the
//! migrator function's (functions/migrator).

use chrono::{DateTime, Utc};
use eis_contract::plan::PlanDocument;
use eis_store::erasure::UnitToErase;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::time::Instant;

use crate::app::Archiver;
use crate::archive::partition::{hours_between, HourPartition};
use crate::compaction::audit::{self, AuditSummary};
use crate::drain::summary::Summary;
use crate::erasure::{self, ErasureSummary};
use crate::error::ArchiveError;
use crate::health::{self, HealthSummary};
use crate::plan::{self, PlanSummary};
use crate::recovery::hour_stream::Resume;
use crate::recovery::replay::{self, Judge, ReplaySummary};
use crate::recovery::restore::{self, RestoreSummary};

#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// An EventBridge "Scheduled Event": one archive run.
    Scheduled,
    /// `{"action":"drain"}`: a drain worker started by a scheduled run's fan-out: the same
    /// run, without fanning out itself.
    Drain,
    /// `{"action":"audit"}`: compare the archive with PostgreSQL, hour by settled hour.
    Audit,
    /// `{"action":"health"}`: count new events into the experiments' health tables.
    Health,
    /// `{"action":"replay","from":…,"to":…[,"code":…]}`: judge the quarantined input of the
    /// hours `[from, to)` again and store what passes now.
    Replay {
        hours: Vec<HourPartition>,
        code: Option<String>,
        resume: Option<Resume>,
    },
    /// `{"action":"restore","from":…,"to":…}`: archived events of the hours `[from, to)` back
    /// into exp.events.
    Restore {
        hours: Vec<HourPartition>,
        resume: Option<Resume>,
    },
    /// `{"action":"erase"[,"requests":[{"unit_type":…,"unit_id":…[,"suppress":true]}, …]]}`:
    /// records the requests (if any), then carries the pending requests as far as time
    /// allows. The schedule sends it without requests.
    Erase { units: Vec<UnitToErase> },
    /// `{"action":"plan","plan":{…}}`: load (add to, or change) the tracking plan.
    Plan(PlanDocument),
}

/// Every input but EventBridge's schedule names its action. An hour range is two RFC 3339
/// instants (`to` excluded); `resume` is a previous answer's position in its `unfinished_from`
/// hour, which must then be `from`'s hour.
#[derive(Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
enum Action {
    // Struct variants: serde refuses unknown keys beside the tag only for those.
    Drain {},
    Audit {},
    Health {},
    Replay {
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        code: Option<String>,
        resume: Option<Resume>,
    },
    Restore {
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        resume: Option<Resume>,
    },
    Erase {
        #[serde(default)]
        requests: Vec<UnitToErase>,
    },
    Plan {
        plan: PlanDocument,
    },
}

/// Requests one erase input may record: a larger list is several invocations.
const MAX_ERASE_REQUESTS: usize = 1000;

/// Only the field that tells a scheduled event apart; EventBridge may add others.
#[derive(Deserialize)]
struct EventBridgeInput {
    #[serde(rename = "detail-type")]
    detail_type: String,
}

impl Input {
    pub fn parse(value: &Value) -> Result<Self, ArchiveError> {
        if value.get("action").is_some() {
            let action = Action::deserialize(value)
                .map_err(|e| ArchiveError::InvalidInput(e.to_string()))?;
            return Ok(match action {
                Action::Drain {} => Input::Drain,
                Action::Audit {} => Input::Audit,
                Action::Health {} => Input::Health,
                Action::Replay {
                    from,
                    to,
                    code,
                    resume,
                } => Input::Replay {
                    hours: hour_range(from, to, resume.as_ref())?,
                    code,
                    resume,
                },
                Action::Restore { from, to, resume } => Input::Restore {
                    hours: hour_range(from, to, resume.as_ref())?,
                    resume,
                },
                Action::Erase { requests } => Input::Erase {
                    units: checked_units(requests)?,
                },
                Action::Plan { plan } => Input::Plan(plan),
            });
        }
        match EventBridgeInput::deserialize(value) {
            Ok(e) if e.detail_type == "Scheduled Event" => Ok(Input::Scheduled),
            // The input itself is not echoed: it is not ours and could be anything.
            Ok(_) => Err(ArchiveError::InvalidInput(
                "an EventBridge event whose detail-type is not \"Scheduled Event\"".into(),
            )),
            Err(_) => Err(ArchiveError::InvalidInput(format!(
                "unrecognised {}",
                eis_contract::json_kind(value)
            ))),
        }
    }
}

/// Erasure requests name units as events do: a `unit_type` name and a non-empty `unit_id`
/// within the contract's limits (no event can have another).
fn checked_units(units: Vec<UnitToErase>) -> Result<Vec<UnitToErase>, ArchiveError> {
    let limits = eis_contract::Limits::default();
    if units.len() > MAX_ERASE_REQUESTS {
        return Err(ArchiveError::InvalidInput(format!(
            "at most {MAX_ERASE_REQUESTS} erasure requests per input"
        )));
    }
    for (i, unit) in units.iter().enumerate() {
        if !eis_contract::is_name(&unit.unit_type, limits.max_name_bytes) {
            return Err(ArchiveError::InvalidInput(format!(
                "requests[{i}].unit_type is not a unit type name"
            )));
        }
        if unit.unit_id.is_empty() || unit.unit_id.len() > limits.max_unit_id_bytes {
            return Err(ArchiveError::InvalidInput(format!(
                "requests[{i}].unit_id must hold 1 to {} bytes",
                limits.max_unit_id_bytes
            )));
        }
    }
    Ok(units)
}

/// The hours of `[from, to)`, with `resume` (if any) in the first of them.
fn hour_range(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    resume: Option<&Resume>,
) -> Result<Vec<HourPartition>, ArchiveError> {
    let hours = hours_between(from, to).map_err(ArchiveError::InvalidInput)?;
    if let (Some(r), Some(first)) = (resume, hours.first()) {
        let dir = r.key.rsplit_once('/').map_or("", |(dir, _)| dir);
        if !format!("{dir}/").ends_with(&first.folder()) {
            return Err(ArchiveError::InvalidInput(
                "`resume` is a position in `from`'s hour: pass the answer's `unfinished_from` \
                 as `from`"
                    .into(),
            ));
        }
    }
    Ok(hours)
}

/// The invocation's answer.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Output {
    Run(Summary),
    Audit(AuditSummary),
    Health(HealthSummary),
    Replay(ReplaySummary),
    Restore(RestoreSummary),
    Erase(ErasureSummary),
    Plan(PlanSummary),
}

/// Runs one input. A run's summary is logged (and, with `emf`, printed as CloudWatch
/// metrics in the stack's namespace) whether or not it met errors; the first error is what
/// the invocation returns.
pub async fn handle(
    archiver: &Archiver,
    input: Input,
    deadline: Instant,
    emf: bool,
) -> Result<Output, ArchiveError> {
    let namespace = &archiver.config.metrics_namespace;
    match input {
        Input::Replay {
            hours,
            code,
            resume,
        } => {
            let registry = eis_store::registry::load(&archiver.db).await?;
            let tombstones = archiver.erasure.tombstones().await?;
            let plan = plan::current(&archiver.db).await?;
            let judge = Judge {
                registry: &registry,
                tombstones: &tombstones,
                plan: &plan,
                mode: archiver.config.registry_mode,
                limits: &archiver.config.contract_limits,
                clock: Utc::now,
            };
            let code = code.as_deref();
            let summary = replay::replay(
                &archiver.replay_job(),
                &hours,
                resume,
                code,
                &judge,
                deadline,
            )
            .await?;
            tracing::info!(summary = ?summary, "replay");
            Ok(Output::Replay(summary))
        }
        Input::Restore { hours, resume } => {
            let summary = restore::restore(
                &archiver.restore_job(),
                &hours,
                resume,
                Utc::now(),
                deadline,
            )
            .await?;
            tracing::info!(summary = ?summary, "restore");
            Ok(Output::Restore(summary))
        }
        Input::Scheduled | Input::Drain => {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let drain = input == Input::Drain;
            tracing::info!(
                remaining_ms = remaining.as_millis(),
                drain,
                "archive run starting"
            );
            let outcome = if drain {
                archiver.drain(Utc::now(), deadline).await
            } else {
                archiver.run(Utc::now(), deadline).await
            };
            outcome.summary.log();
            if emf {
                println!("{}", outcome.summary.emf(namespace));
            }
            outcome.into_result().map(Output::Run)
        }
        Input::Health => {
            let (summary, rows) = health::run(
                &archiver.health,
                &archiver.config.health,
                Utc::now(),
                deadline,
            )
            .await?;
            health::log(&rows);
            if emf {
                let plan_docs = health::plan::emf_documents(&summary.plan, namespace);
                for doc in health::emf_documents(&rows, namespace)
                    .into_iter()
                    .chain(plan_docs)
                {
                    println!("{doc}");
                }
            }
            tracing::info!(summary = ?summary, "health run");
            Ok(Output::Health(summary))
        }
        Input::Plan(document) => {
            let summary = plan::load(&archiver.db, &document).await?;
            tracing::info!(summary = ?summary, "plan load");
            Ok(Output::Plan(summary))
        }
        Input::Erase { units } => {
            // Recorded before the tombstones are read: this run's rewrites leave them out.
            let recorded = archiver.erasure.record(&units, Utc::now()).await?;
            let tombstones = std::sync::Arc::new(archiver.erasure.tombstones().await?);
            let summary = erasure::run(
                &archiver.erasure_job(&tombstones),
                &recorded,
                Utc::now(),
                deadline,
            )
            .await?;
            tracing::info!(summary = ?summary, "erasure run");
            if emf {
                println!("{}", summary.emf(namespace));
            }
            Ok(Output::Erase(summary))
        }
        Input::Audit => {
            let outcome = audit::audit(&archiver.audit_job(), Utc::now(), deadline).await;
            outcome.summary.log();
            if emf {
                println!("{}", outcome.summary.emf(namespace));
            }
            outcome.into_result().map(Output::Audit)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Value {
        let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).expect(&path);
        serde_json::from_str(&text).expect("fixture is JSON")
    }

    #[test]
    fn the_fixtures_are_recognised() {
        assert_eq!(
            Input::parse(&fixture("archiver-scheduled.json")).ok(),
            Some(Input::Scheduled)
        );
        assert_eq!(
            Input::parse(&fixture("archiver-audit.json")).ok(),
            Some(Input::Audit)
        );
        assert_eq!(
            Input::parse(&fixture("archiver-drain.json")).ok(),
            Some(Input::Drain)
        );
        assert_eq!(
            Input::parse(&fixture("archiver-health.json")).ok(),
            Some(Input::Health)
        );
        assert_eq!(
            Input::parse(&fixture("archiver-erase.json")).ok(),
            Some(Input::Erase { units: vec![] })
        );
        let Ok(Input::Plan(plan)) = Input::parse(&fixture("archiver-plan.json")) else {
            panic!("archiver-plan.json is a plan load");
        };
        // The fixture is the example plan of `make plan`, and compiles.
        let example = std::fs::read_to_string(format!(
            "{}/../../infra/local/plan.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("infra/local/plan.json");
        let example: PlanDocument = serde_json::from_str(&example).expect("a plan document");
        assert_eq!(plan, example);
        let compiled = eis_contract::plan::Plan::compile(&plan).expect("compiles");
        assert_eq!(compiled.len(), 7);
        let Ok(Input::Replay { hours, code, .. }) = Input::parse(&fixture("archiver-replay.json"))
        else {
            panic!("archiver-replay.json is a replay");
        };
        assert_eq!(
            (hours.len(), code.as_deref()),
            (2, Some("future_timestamp"))
        );
        let Ok(Input::Restore { hours, resume }) = Input::parse(&fixture("archiver-restore.json"))
        else {
            panic!("archiver-restore.json is a restore");
        };
        assert_eq!((hours.len(), resume), (24, None));
    }

    #[test]
    fn a_resume_is_a_position_in_from_s_hour() {
        let key = "2026/12/02/10/events_c1_0-1.parquet";
        let input = serde_json::json!({"action": "restore", "from": "2026-12-02T10:00:00Z",
            "to": "2026-12-02T12:00:00Z", "resume": {"key": key, "row": 5000}});
        let Ok(Input::Restore { resume, .. }) = Input::parse(&input) else {
            panic!("a restore");
        };
        assert_eq!(
            resume.map(|r| (r.key, r.row)),
            Some((key.to_string(), 5000))
        );
        let elsewhere = serde_json::json!({"action": "replay", "from": "2026-12-02T11:00:00Z",
            "to": "2026-12-02T12:00:00Z",
            "resume": {"key": "rejected/2026/12/02/10/rejected_x.parquet", "row": 1}});
        let err = Input::parse(&elsewhere).expect_err("another hour");
        assert_eq!(err.code(), "invalid_input");
    }

    #[test]
    fn anything_else_is_invalid_input() {
        for value in [
            serde_json::json!({"action": "drop_everything"}),
            serde_json::json!({"action": "migrate"}),
            serde_json::json!({"action": "registry", "experiments": []}),
            serde_json::json!({"action": "drain", "fan_out": true}),
            serde_json::json!({"action": "replay", "from": "2026-12-02T10:00:00Z"}),
            serde_json::json!({"action": "restore", "from": "2026-12-02T10:00:00Z",
                               "to": "2026-12-02T11:00:00Z", "code": "invalid_json"}),
            serde_json::json!({"action": "replay", "from": "2026-12-02T11:00:00Z",
                               "to": "2026-12-02T10:00:00Z"}),
            serde_json::json!({"action": "restore", "from": "2025-12-02T11:00:00Z",
                               "to": "2026-12-02T10:00:00Z"}),
            serde_json::json!({"detail-type": "Object Created", "source": "aws.s3"}),
            serde_json::json!({"action": "erase", "requests": [{"unit_type": "User", "unit_id": "u"}]}),
            serde_json::json!({"action": "erase", "requests": [{"unit_type": "user", "unit_id": ""}]}),
            serde_json::json!({"action": "erase", "requests": [{"unit_type": "user", "unit_id": "u", "why": 1}]}),
            serde_json::json!({"action": "erase", "unit_id": "u"}),
            serde_json::json!({"action": "plan"}),
            serde_json::json!({"action": "plan", "plan": {"types": [{"event_type": "t"}]}}),
            serde_json::json!({"action": "plan", "plan": {"types": []}, "dry_run": true}),
            serde_json::json!({}),
            serde_json::json!("migrate"),
        ] {
            let err = Input::parse(&value).expect_err("invalid");
            assert_eq!(err.code(), "invalid_input", "{value}");
            assert!(!err.is_retryable());
        }
    }
}
