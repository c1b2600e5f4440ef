//! The tracking plan (exp.event_plan, exp.event_types, exp.event_schemas; migration V13): read
//! into the contract's [`PlanDocument`] in one query, for the functions' compiled copies;
//! written by a load through exp.load_event_schemas, which keeps every loaded version as it is.

use eis_contract::plan::PlanDocument;

use crate::db::Db;
use crate::error::StoreError;

/// The whole plan as the document's JSON, built by the database in one round trip: a context
/// or metrics schema that is NULL comes as JSON null, which the document reads as absent.
const LOAD: &str = r#"
SELECT jsonb_build_object(
    'unplanned', (SELECT unplanned FROM exp.event_plan),
    'types', coalesce((
        SELECT jsonb_agg(jsonb_build_object(
                   'event_type', t.event_type, 'mode', t.mode,
                   'versions', coalesce(v.versions, '[]'::jsonb)))
        FROM exp.event_types t
        LEFT JOIN LATERAL (
            SELECT jsonb_agg(jsonb_build_object(
                       'version', s.version, 'status', s.status, 'payload', s.payload_schema,
                       'context', s.context_schema, 'metrics', s.metrics_schema)) AS versions
            FROM exp.event_schemas s WHERE s.event_type = t.event_type
        ) v ON true
    ), '[]'::jsonb))
"#;

/// The plan as stored (versions in no particular order). An empty plan (no types) checks
/// nothing.
pub async fn load(db: &Db) -> Result<PlanDocument, StoreError> {
    let client = db.client().await?;
    let row = db.within_timeout(client.query_one(LOAD, &[])).await?;
    serde_json::from_value(row.get(0)).map_err(|e| {
        StoreError::other("the tracking plan in the database is not a plan document").caused_by(e)
    })
}

/// Loads `document` (already compiled by the caller: `Plan::compile`) through
/// exp.load_event_schemas, on a connection of `db`'s own: one statement, so one transaction,
/// all of it or none. Returns how many versions were added or had their status changed. A
/// version already loaded with other schemas is refused (`StoreError::DataRefused`, whose
/// message names it): a changed schema is a new version.
pub async fn store(db: &Db, document: &PlanDocument) -> Result<i32, StoreError> {
    let doc = serde_json::to_value(document)
        .map_err(|e| StoreError::other("the plan document cannot be written").caused_by(e))?;
    let client = db.connect().await?;
    let row = db
        .within_timeout(client.query_one("SELECT exp.load_event_schemas($1)", &[&doc]))
        .await?;
    Ok(row.get(0))
}
