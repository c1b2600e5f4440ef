//! The tracking plan's storage (migration V13, eis_store::plan) on a database of its own: a
//! document stored and read back, reloads that add and change statuses, a changed schema
//! refused, and exp.load_event_schemas' own refusals for SQL used directly. Every refusal
//! writes nothing.

use eis_contract::plan::PlanDocument;
use eis_store::{plan, StoreError};
use eis_tests::TestDb;
use serde_json::{json, Value};

fn document(value: Value) -> PlanDocument {
    serde_json::from_value(value).expect("a plan document")
}

/// Two types; pantry_updated with two versions, the second deprecated and checking every part.
fn two_types() -> Value {
    json!({"unplanned": "flag", "types": [
        {"event_type": "pantry_updated", "mode": "quarantine", "versions": [
            {"version": "1-0-0", "payload": {"type": "object", "required": ["items_added"]}},
            {"version": "1-1-0", "status": "deprecated", "payload": true,
             "context": {"type": "object"}, "metrics": {"properties": {"latency_ms": {"minimum": 0}}}}]},
        {"event_type": "plan_generated", "mode": "flag", "versions": [
            {"version": "2-0-10", "payload": {"const": null}}]}]})
}

/// The stored plan with types and versions in name order, to compare with a document.
async fn stored(db: &TestDb) -> PlanDocument {
    let mut doc = plan::load(&db.db()).await.expect("the plan loads");
    doc.types.sort_by(|a, b| a.event_type.cmp(&b.event_type));
    for t in &mut doc.types {
        t.versions.sort_by(|a, b| a.version.cmp(&b.version));
    }
    doc
}

/// Every row of the plan's tables, to see that a refusal changed nothing.
async fn tables(db: &TestDb) -> Vec<String> {
    db.client()
        .await
        .query(
            "SELECT format('%s', p) FROM exp.event_plan p
             UNION ALL SELECT format('%s', t) FROM exp.event_types t
             UNION ALL SELECT format('%s', s) FROM exp.event_schemas s
             ORDER BY 1",
            &[],
        )
        .await
        .expect("the plan's rows")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn refused_with(result: Result<i32, StoreError>, needle: &str) {
    match result {
        Err(e @ StoreError::DataRefused(..)) => {
            assert!(e.to_string().contains(needle), "{e} lacks {needle:?}")
        }
        other => panic!("expected a refusal naming {needle:?}, got {other:?}"),
    }
}

#[tokio::test]
async fn a_plan_round_trips_and_reloads_add_versions_and_change_statuses_only() {
    let db = TestDb::create().await;
    let empty = plan::load(&db.db()).await.expect("the empty plan");
    assert_eq!(empty, document(json!({"unplanned": "allow", "types": []})));

    let doc = document(two_types());
    assert_eq!(plan::store(&db.db(), &doc).await.expect("stored"), 3);
    assert_eq!(stored(&db).await, doc);
    // The same document again changes nothing.
    assert_eq!(plan::store(&db.db(), &doc).await.expect("stored"), 0);

    // Only what the document names: a new version, a status and a mode change; the other
    // type, its version and `unplanned` (absent) stay.
    let change = document(json!({"types": [
        {"event_type": "pantry_updated", "mode": "flag", "versions": [
            {"version": "1-1-0", "payload": true, "context": {"type": "object"},
             "metrics": {"properties": {"latency_ms": {"minimum": 0}}}},
            {"version": "1-2-0", "payload": {"type": "object"}}]}]}));
    assert_eq!(plan::store(&db.db(), &change).await.expect("stored"), 2);
    let mut want = two_types();
    want["types"][0]["mode"] = json!("flag");
    want["types"][0]["versions"][1]["status"] = json!("active");
    want["types"][0]["versions"]
        .as_array_mut()
        .expect("versions")
        .push(json!({"version": "1-2-0", "payload": {"type": "object"}}));
    assert_eq!(stored(&db).await, document(want));

    // The parts of a version are kept as numbers in the table too.
    let parts: (i32, i32, i32) = {
        let r = db
            .client()
            .await
            .query_one(
                "SELECT model, revision, addition FROM exp.event_schemas WHERE version = '2-0-10'",
                &[],
            )
            .await
            .expect("a version");
        (r.get(0), r.get(1), r.get(2))
    };
    assert_eq!(parts, (2, 0, 10));
}

#[tokio::test]
async fn a_loaded_version_keeps_its_schemas_and_a_refused_load_writes_nothing() {
    let db = TestDb::create().await;
    plan::store(&db.db(), &document(two_types()))
        .await
        .expect("stored");
    let before = tables(&db).await;
    // Also a mode change and a new version: none of it may be written.
    let changed = document(json!({"unplanned": "reject", "types": [
        {"event_type": "plan_generated", "mode": "reject", "versions": [
            {"version": "3-0-0", "payload": true}]},
        {"event_type": "pantry_updated", "mode": "quarantine", "versions": [
            {"version": "1-1-0", "status": "deprecated", "payload": true,
             "context": {"type": "object"}}]}]}));
    refused_with(
        plan::store(&db.db(), &changed).await,
        "pantry_updated 1-1-0 is already loaded with another schema: a changed schema is a new version",
    );
    assert_eq!(tables(&db).await, before);
    // Key order and number spelling are not changes.
    let same = document(
        json!({"types": [{"event_type": "pantry_updated", "mode": "quarantine",
        "versions": [{"payload": {"required": ["items_added"], "type": "object"}, "version": "1-0-0"},
                     {"version": "1-1-0", "status": "deprecated", "payload": true,
                      "context": {"type": "object"},
                      "metrics": {"properties": {"latency_ms": {"minimum": 0.0}}}}]}]}),
    );
    assert_eq!(plan::store(&db.db(), &same).await.expect("stored"), 0);
}

#[tokio::test]
async fn the_sql_loader_refuses_what_is_not_a_plan_and_writes_nothing() {
    let db = TestDb::create().await;
    plan::store(&db.db(), &document(two_types()))
        .await
        .expect("stored");
    let before = tables(&db).await;
    let client = db.client().await;
    let ty = |t: Value| json!({"types": [t]});
    let version = |v: Value| ty(json!({"event_type": "a", "mode": "flag", "versions": [v]}));
    let cases = [
        (json!([]), "the plan document must be a JSON object"),
        (
            json!({"typo": []}),
            "the plan document has unknown keys: typo",
        ),
        (
            json!({"unplanned": "warn"}),
            "unplanned must be allow, flag or reject",
        ),
        (json!({"types": {}}), "types must be an array"),
        (ty(json!("a")), "types[0] must be an object"),
        (
            ty(json!({"event_type": "Pantry", "mode": "flag"})),
            "event_type \"Pantry\" is not an event type name",
        ),
        (
            ty(json!({"event_type": "a".repeat(65), "mode": "flag"})),
            "is not an event type name",
        ),
        (
            ty(json!({"event_type": "a", "mode": "warn"})),
            "a: mode must be flag, quarantine or reject",
        ),
        (
            ty(json!({"event_type": "a", "mode": "flag", "owner": "x"})),
            "a: unknown keys: owner",
        ),
        (
            ty(json!({"event_type": "a", "mode": "flag", "versions": {}})),
            "a: versions must be an array",
        ),
        (
            json!({"types": [{"event_type": "a", "mode": "flag"}, {"event_type": "a", "mode": "reject"}]}),
            "a is given twice",
        ),
        (
            version(json!({"version": "1-0", "payload": true})),
            "version \"1-0\" is not MODEL-REVISION-ADDITION",
        ),
        (
            version(json!({"version": "0-1-0", "payload": true})),
            "is not MODEL-REVISION-ADDITION",
        ),
        (
            version(json!({"version": "1-01-0", "payload": true})),
            "is not MODEL-REVISION-ADDITION",
        ),
        (
            version(json!({"version": "1-0-1234567890", "payload": true})),
            "is not MODEL-REVISION-ADDITION",
        ),
        (
            version(json!({"version": "1-0-0", "payload": true, "status": "retired"})),
            "a 1-0-0: status must be active or deprecated",
        ),
        (
            version(json!({"version": "1-0-0"})),
            "a 1-0-0: the payload schema must be a JSON object or a boolean",
        ),
        (
            version(json!({"version": "1-0-0", "payload": "string"})),
            "the payload schema must be",
        ),
        (
            version(json!({"version": "1-0-0", "payload": true, "metrics": [1]})),
            "a 1-0-0: the metrics schema must be a JSON object, a boolean or null",
        ),
        (
            version(json!({"version": "1-0-0", "payload": true, "schema": true})),
            "a 1-0-0: unknown keys: schema",
        ),
        (
            ty(json!({"event_type": "a", "mode": "flag", "versions": [
            {"version": "1-0-0", "payload": true}, {"version": "1-0-0", "payload": false}]})),
            "a: version 1-0-0 is given twice",
        ),
    ];
    for (doc, needle) in cases {
        let err = client
            .query_one("SELECT exp.load_event_schemas($1)", &[&doc])
            .await
            .expect_err(needle);
        let db_error = err.as_db_error().expect("a database error");
        assert_eq!(db_error.code().code(), "22023", "{doc}");
        assert!(
            db_error.message().contains(needle),
            "{doc}: {}",
            db_error.message()
        );
    }
    assert_eq!(tables(&db).await, before);
}
