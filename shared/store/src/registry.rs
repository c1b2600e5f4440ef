//! Reading the experiment registry (exp.experiments, exp.experiment_variants; migration V6)
//! into the contract's [`Registry`]: one query, for the ingest function's cache.

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
