//! The experiment registry: the operator's load (`registry/load.rs`, the migrator's
//! `{"action":"registry"}`), and its use on the ingest path (docs/health.md, "Flags at ingest"),
//! through the API on a database of its own: flags, reject mode, a registry change reaching the
//! function within its max age, and a retry after a change staying a duplicate.

use std::time::Duration;

use chrono::Utc;
use eis_tests::api::App;
use eis_tests::events::{seed_request, EXPERIMENT, VARIANT};
use eis_tests::TestDb;
use serde_json::{json, Value};
use uuid::Uuid;

mod load;

const OTHER_VARIANT: &str = "5c0c8f5e-8b4a-4a43-b7c5-0f2f0c0b9a0f";
const UNREGISTERED: &str = "0b7e6a43-2d1e-4f55-9d7c-6f6f6b1f0aff";

/// EXPERIMENT registered for users, running since yesterday, with VARIANT only.
async fn register(db: &TestDb, status: &str) {
    let doc = json!([{
        "experiment_id": EXPERIMENT, "unit_type": "user", "status": status,
        "starts_at": Utc::now() - chrono::Duration::days(1),
        "variants": [{"variant_id": VARIANT}]
    }]);
    db.client()
        .await
        .execute("SELECT exp.load_experiments($1)", &[&doc])
        .await
        .expect("register");
}

/// The example event, changed by `edit`, with an event_id of its own.
fn request(edit: impl FnOnce(&mut Value)) -> Value {
    let mut e = seed_request("user-1", Utc::now());
    e["event_id"] = json!(Uuid::now_v7());
    edit(&mut e);
    e
}

fn in_experiment(experiment: &str, variant: &str) -> impl FnOnce(&mut Value) {
    let refs = json!([{"experiment_id": experiment, "variant_id": variant}]);
    move |e| e["experiments"] = refs
}

/// The misfits of the table: each event and the flag (or, in reject mode, code) it gets.
fn misfits() -> Vec<(Value, Option<&'static str>)> {
    vec![
        (request(|_| {}), None),
        (
            request(in_experiment(EXPERIMENT, OTHER_VARIANT)),
            Some("unknown_variant"),
        ),
        (
            request(in_experiment(UNREGISTERED, VARIANT)),
            Some("unregistered_experiment"),
        ),
        (
            request(|e| e["unit_type"] = json!("household")),
            Some("unit_type_mismatch"),
        ),
        (
            request(|e| {
                e["timestamp"] = json!((Utc::now() - chrono::Duration::days(2)).to_rfc3339())
            }),
            Some("outside_experiment_window"),
        ),
    ]
}

/// The answer's warnings (absent when there are none).
fn warnings(body: &Value) -> Value {
    match &body["warnings"] {
        Value::Null => json!([]),
        w => w.clone(),
    }
}

/// The misfits posted as one batch: the cases, the answer's status and body.
async fn post_misfits(app: &App) -> (Vec<(Value, Option<&'static str>)>, u16, Value) {
    let cases = misfits();
    let events: Vec<Value> = cases.iter().map(|(e, _)| e.clone()).collect();
    let (status, body) = app
        .post("/events/batch", &json!({ "events": events }))
        .await;
    (cases, status, body)
}

async fn stored_flags(db: &TestDb, event_id: &Value) -> Option<Vec<String>> {
    let id = Uuid::parse_str(event_id.as_str().expect("id")).expect("uuid");
    db.client()
        .await
        .query_opt("SELECT flags FROM exp.events WHERE event_id = $1", &[&id])
        .await
        .expect("query")
        .map(|r| r.get(0))
}

#[tokio::test]
async fn events_that_do_not_fit_the_registry_are_stored_flagged() {
    let app = App::start().await;
    register(&app.db, "running").await;
    let (cases, status, body) = post_misfits(&app).await;
    assert_eq!(status, 200, "{body}");
    for (index, (event, flag)) in cases.iter().enumerate() {
        let warnings: Vec<Value> = body["warnings"]
            .as_array()
            .expect("warnings")
            .iter()
            .filter(|w| w["index"] == index)
            .flat_map(|w| w["warnings"].as_array().cloned().unwrap_or_default())
            .collect();
        let flags = stored_flags(&app.db, &event["event_id"])
            .await
            .expect("stored");
        match flag {
            None => assert!(
                warnings.is_empty() && flags.is_empty(),
                "{index}: {warnings:?} {flags:?}"
            ),
            Some(flag) => {
                assert!(warnings.contains(&json!(flag)), "{index}: {warnings:?}");
                assert!(flags.iter().any(|f| f == flag), "{index}: {flags:?}");
            }
        }
    }
}

#[tokio::test]
async fn reject_mode_answers_each_misfit_with_its_code_and_stores_none() {
    let app = App::start_with(|c| c.registry_mode = eis_contract::RegistryMode::Reject).await;
    register(&app.db, "running").await;
    let (cases, status, body) = post_misfits(&app).await;
    assert_eq!(status, 207, "{body}");
    for (index, (event, code)) in cases.iter().enumerate() {
        let error = body["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .find(|e| e["index"] == index)
            .map(|e| e["error"].clone());
        assert_eq!(error, code.map(|c| json!(c)), "{index}: {body}");
        let stored = stored_flags(&app.db, &event["event_id"]).await;
        assert_eq!(stored.is_some(), code.is_none(), "{index}");
    }
    // A single event: 400 with the code, the message naming the experiment and variant.
    let (status, body) = app
        .post(
            "/events",
            &request(in_experiment(EXPERIMENT, OTHER_VARIANT)),
        )
        .await;
    assert_eq!(
        (status, body["error"].clone()),
        (400, json!("unknown_variant")),
        "{body}"
    );
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(EXPERIMENT) && message.contains(OTHER_VARIANT),
        "{message}"
    );
}

#[tokio::test]
async fn a_registry_change_reaches_the_function_within_its_max_age_and_a_retry_stays_a_duplicate() {
    let app = App::start_with(|c| c.registry_max_age = Duration::from_secs(1)).await;
    register(&app.db, "running").await;
    let event = request(|_| {});
    let (status, body) = app.post("/events", &event).await;
    assert_eq!((status, warnings(&body)), (202, json!([])), "{body}");

    register(&app.db, "stopped").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let fresh = request(|_| {});
    let (status, body) = app.post("/events", &fresh).await;
    assert_eq!(
        (status, warnings(&body)),
        (202, json!(["experiment_stopped"])),
        "{body}"
    );

    // The first event again: flags are not content, so it is a duplicate, not a conflict.
    let (status, body) = app.post("/events", &event).await;
    assert_eq!(
        (status, body["duplicate"].clone()),
        (202, json!(true)),
        "{body}"
    );
    assert_eq!(
        stored_flags(&app.db, &event["event_id"]).await,
        Some(vec![])
    );
}

// --- Before the first load (docs/api.md, "The experiment registry") ---------------------------

/// Makes the registry's load query fail (its variants table renamed away) until restored.
async fn break_registry(db: &TestDb) {
    db.client()
        .await
        .batch_execute("ALTER TABLE exp.experiment_variants RENAME TO experiment_variants_away")
        .await
        .expect("rename away");
}

async fn restore_registry(db: &TestDb) {
    db.client()
        .await
        .batch_execute("ALTER TABLE exp.experiment_variants_away RENAME TO experiment_variants")
        .await
        .expect("rename back");
}

async fn stored_events(db: &TestDb) -> i64 {
    db.client()
        .await
        .query_one("SELECT count(*) FROM exp.events", &[])
        .await
        .expect("count")
        .get(0)
}

#[tokio::test]
async fn reject_mode_refuses_events_naming_experiments_until_the_first_load_succeeds() {
    let app = App::start_with(|c| c.registry_mode = eis_contract::RegistryMode::Reject).await;
    register(&app.db, "running").await;
    break_registry(&app.db).await;

    // The first load fails: nothing naming an experiment is taken unchecked.
    let misfit = request(in_experiment(EXPERIMENT, OTHER_VARIANT));
    let (status, body) = app.post("/events", &misfit).await;
    assert_eq!(
        (status, body["error"].clone()),
        (503, json!("registry_unavailable")),
        "{body}"
    );
    let batch = json!({"events": [request(|_| {}), {"unit_type": "user"}]});
    let (status, body) = app.post("/events/batch", &batch).await;
    assert_eq!(
        (status, body["error"].clone()),
        (503, json!("registry_unavailable")),
        "{body}"
    );
    assert_eq!(stored_events(&app.db).await, 0, "nothing stored");
    // An event naming no experiment needs no registry.
    let (status, body) = app
        .post("/events", &request(|e| e["experiments"] = json!([])))
        .await;
    assert_eq!(status, 202, "{body}");

    // Once the registry loads, the very next request is checked as always.
    restore_registry(&app.db).await;
    let (status, body) = app.post("/events", &misfit).await;
    assert_eq!(
        (status, body["error"].clone()),
        (400, json!("unknown_variant")),
        "{body}"
    );
    let (status, body) = app.post("/events", &request(|_| {})).await;
    assert_eq!((status, warnings(&body)), (202, json!([])), "{body}");
    assert_eq!(stored_events(&app.db).await, 2);
}

#[tokio::test]
async fn flag_mode_stores_events_unchecked_before_the_first_load_flagged_as_such() {
    let app = App::start().await;
    register(&app.db, "running").await;
    break_registry(&app.db).await;

    let misfit = request(in_experiment(EXPERIMENT, OTHER_VARIANT));
    let (status, body) = app.post("/events", &misfit).await;
    assert_eq!(
        (status, warnings(&body)),
        (202, json!(["registry_unavailable"])),
        "{body}"
    );
    assert_eq!(
        stored_flags(&app.db, &misfit["event_id"]).await,
        Some(vec!["registry_unavailable".to_string()])
    );

    restore_registry(&app.db).await;
    let misfit = request(in_experiment(EXPERIMENT, OTHER_VARIANT));
    let (status, body) = app.post("/events", &misfit).await;
    assert_eq!(
        (status, warnings(&body)),
        (202, json!(["unknown_variant"])),
        "{body}"
    );
}
