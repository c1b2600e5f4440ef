//! The experiment registry (exp.experiments, exp.experiment_variants; migration V6): read into
//! the contract's [`Registry`] in one query, for the ingest function's cache; written by an
//! operator's load, as the migrator.

use std::collections::HashMap;

use eis_contract::{RegisteredExperiment, Registry};
use uuid::Uuid;

use crate::db::Db;
use crate::error::StoreError;

/// Ids are canonical UUID text (the tables' CHECK), so they cast.
const LOAD: &str = r#"
SELECT x.experiment_id::uuid, x.unit_type, x.status = 'stopped', x.starts_at, x.ends_at,
       array_agg(v.variant_id::uuid) FILTER (WHERE v.variant_id IS NOT NULL)
FROM exp.experiments x
LEFT JOIN exp.experiment_variants v USING (experiment_id)
GROUP BY x.experiment_id
"#;

pub async fn load(db: &Db) -> Result<Registry, StoreError> {
    let client = db.client().await?;
    let rows = db.within_timeout(client.query(LOAD, &[])).await?;
    let experiments: HashMap<Uuid, RegisteredExperiment> = rows
        .iter()
        .map(|r| {
            let variants: Option<Vec<Uuid>> = r.get(5);
            (
                r.get(0),
                RegisteredExperiment {
                    unit_type: r.get(1),
                    stopped: r.get(2),
                    starts_at: r.get(3),
                    ends_at: r.get(4),
                    variants: variants.unwrap_or_default(),
                },
            )
        })
        .collect();
    Ok(Registry::new(experiments))
}

/// Loads registry entries (the JSON array of docs/health.md, already checked by the caller)
/// through exp.load_experiments, on a connection of `db`'s own: one statement, so one
/// transaction, all of them or none. Returns how many were loaded. Only the migrator (the
/// function's owner) may run it.
pub async fn store(db: &Db, entries: &serde_json::Value) -> Result<i32, StoreError> {
    let client = db.connect().await?;
    let row = db
        .within_timeout(client.query_one("SELECT exp.load_experiments($1)", &[entries]))
        .await?;
    Ok(row.get(0))
}
