//! `{"action":"plan","plan":{…}}` (docs/plan.md, "Loading"): an operator's load of the
//! tracking plan in AWS, the same document as `make plan PLAN=file.json`. Every schema is
//! compiled first, as the functions compile their copies: a plan that does not compile is
//! refused here with `plan_invalid` and never reaches exp.event_schemas. Also the plan that
//! replay judges by.

use eis_contract::plan::{Plan, PlanDocument};
use eis_store::Db;
use serde::Serialize;

use crate::error::ArchiveError;

/// What a load did.
#[derive(Debug, Serialize)]
pub struct PlanSummary {
    pub action: &'static str,
    /// Event types the loaded document names.
    pub types: usize,
    /// Versions added, or changed in status.
    pub changed: i32,
}

/// Compiles `document`, then loads it through exp.load_event_schemas.
pub async fn load(db: &Db, document: &PlanDocument) -> Result<PlanSummary, ArchiveError> {
    let plan = Plan::compile(document)?;
    let changed = eis_store::plan::store(db, document).await?;
    Ok(PlanSummary {
        action: "plan",
        types: plan.len(),
        changed,
    })
}

/// The plan in exp.event_schemas, compiled.
pub async fn current(db: &Db) -> Result<Plan, ArchiveError> {
    Ok(Plan::compile(&eis_store::plan::load(db).await?)?)
}
