//! The tracking plan at ingest (docs/plan.md): the function's compiled copy of
//! exp.event_schemas, an `AppState` field reloaded like the registry's copy (cache.rs);
//! intake.rs checks each accepted event against it with `Plan::check`.
//!
//! A plan in the database that does not compile (written by SQL around the loaders, which
//! compile first) fails the load: the function keeps its last copy, as for any failed reload.
//! Without a copy (the first load failed) no event is taken, as for the tombstones: an event
//! whose type the plan refuses must not slip into PostgreSQL unchecked.

use std::sync::Arc;

use eis_contract::plan::Plan;
use eis_store::{Db, StoreError};

use crate::cache::Load;

impl Load for Plan {
    const WHAT: &'static str = "the tracking plan";

    async fn load(db: &Arc<Db>) -> Result<Self, StoreError> {
        let document = eis_store::plan::load(db).await?;
        Plan::compile(&document)
            .map_err(|e| StoreError::other("the tracking plan does not compile").caused_by(e))
    }
}
