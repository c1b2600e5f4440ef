//! The tracking plan end to end (issue 28; docs/plan.md) against real PostgreSQL and moto:
//! the walk-through of docs/plan.md (a plan for `pantry_updated`, a client that breaks it, the
//! quarantine, a plan fix, the replay, each event stored once and stamped), a plan change
//! reaching the ingest within its max age, and an invalid plan refused before it is stored.

use std::time::Duration;

use archiver::archive::partition::hours_between;
use archiver::recovery::replay::{self, Judge};
use chrono::{SecondsFormat, Utc};
use eis_contract::plan::PlanDocument;
use eis_contract::{Limits, Registry, RegistryMode};
use eis_tests::api::{answer, App};
use eis_tests::archive::{get, keys, policy, Stack};
use eis_tests::{ingest_config, serve};
use ingest::routes::router;
use serde_json::{json, Value};
use tokio::time::Instant;
use uuid::Uuid;

/// The plan of the walk-through: `pantry_updated` in `mode`, version 1-0-0 (the seed's two
/// counts, nothing else) and, once `fixed`, 1-1-0 (an ADDITION: an optional `source`).
fn plan(mode: &str, fixed: bool) -> PlanDocument {
    let counts = json!({"type": "integer", "minimum": 0});
    let mut versions = vec![json!({"version": "1-0-0", "payload": {
        "type": "object", "required": ["items_added", "items_removed"],
        "properties": {"items_added": counts, "items_removed": counts},
        "additionalProperties": false}})];
    if fixed {
        versions.push(json!({"version": "1-1-0", "payload": {
            "type": "object", "required": ["items_added", "items_removed"],
            "properties": {"items_added": counts, "items_removed": counts,
                           "source": {"enum": ["scan", "manual"]}},
            "additionalProperties": false}}));
    }
    serde_json::from_value(json!({"types": [
        {"event_type": "pantry_updated", "mode": mode, "versions": versions}]}))
    .expect("a plan document")
}

/// A pantry_updated event of `payload`, with an id of its own.
fn pantry(payload: Value) -> Value {
    json!({
        "event_id": Uuid::now_v7(), "event_type": "pantry_updated", "unit_type": "user",
        "unit_id": "u-1", "timestamp": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        "payload": payload,
    })
}

fn id_of(event: &Value) -> Uuid {
    event["event_id"]
        .as_str()
        .and_then(|s| Uuid::parse_str(s).ok())
        .expect("an event_id")
}

/// Each stored event's id and stamp.
async fn stamps(db: &eis_tests::TestDb) -> Vec<(Uuid, Option<String>, Option<String>)> {
    db.client()
        .await
        .query(
            "SELECT event_id, schema_version, schema_violation FROM exp.events ORDER BY event_id",
            &[],
        )
        .await
        .expect("stamps")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

async fn post(url: &str, event: &Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{url}/events"))
        .header("content-type", "application/json")
        .body(event.to_string())
        .send()
        .await
        .expect("request");
    answer(response).await
}

#[tokio::test]
async fn the_walk_through_quarantines_a_broken_client_and_replays_it_after_the_fix() {
    let stack = Stack::create().await;
    let db = stack.db.db();
    let loaded = archiver::plan::load(&db, &plan("quarantine", false))
        .await
        .expect("the plan loads");
    assert_eq!((loaded.types, loaded.changed), (1, 1));
    let config = ingest_config(&stack.db, &stack.queue.url);
    let state = ingest::app::state(&config).await.expect("state");
    let (url, server) = serve(router(state)).await;

    // A client on the plan: stored, stamped 1-0-0.
    let good = pantry(json!({"items_added": 5, "items_removed": 2}));
    assert_eq!(post(&url, &good).await.0, 202);
    // A client that sends a new property: refused, kept, with where it failed.
    let broken = pantry(json!({"items_added": 5, "items_removed": 2, "source": "scan"}));
    let (status, body) = post(&url, &broken).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        (
            body["error"].as_str(),
            body["field"].as_str(),
            body["schema_path"].as_str()
        ),
        (
            Some("schema_violation"),
            Some("/payload/source"),
            Some("/payload/additionalProperties")
        ),
        "{body}"
    );
    assert_eq!(
        stamps(&stack.db).await,
        vec![(id_of(&good), Some("1-0-0".into()), None)]
    );

    // The archiver keeps it under rejected/, with every violation.
    let archiver = stack.archiver(policy()).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let run = archiver.run(Utc::now(), deadline).await;
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    let mut records = Vec::new();
    for key in keys(&stack.s3, &stack.bucket).await {
        if key.starts_with("rejected/") {
            let body = get(&stack.s3, &stack.bucket, &key).await;
            records.extend(
                archiver::archive::quarantine_parquet::decode(body).expect("a quarantine file"),
            );
        }
    }
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].code, "schema_violation");
    let paths: Vec<_> = records[0]
        .violations
        .iter()
        .map(|v| v.path.as_str())
        .collect();
    assert_eq!(paths, vec!["/payload/source"]);

    // The plan is fixed (1-1-0 added; 1-0-0 kept), and the hour replayed: the broken event
    // is stored now, stamped with the version it matches; a second replay stores nothing.
    let fixed = archiver::plan::load(&db, &plan("quarantine", true))
        .await
        .expect("the fix loads");
    assert_eq!(fixed.changed, 1, "only the new version");
    let hours = hours_between(
        Utc::now() - chrono::Duration::minutes(2),
        Utc::now() + chrono::Duration::minutes(1),
    )
    .expect("hours");
    let current = archiver::plan::current(&db).await.expect("the plan now");
    let (registry, limits) = (Registry::default(), Limits::default());
    let judge = Judge {
        registry: &registry,
        tombstones: &Default::default(),
        plan: &current,
        mode: RegistryMode::Flag,
        limits: &limits,
        clock: Utc::now,
    };
    let replay_once = || async {
        replay::replay(
            &archiver.replay_job(),
            &hours,
            None,
            Some("schema_violation"),
            &judge,
            Instant::now() + Duration::from_secs(60),
        )
        .await
        .expect("replay")
    };
    let first = replay_once().await;
    let counts = &first.by_code["schema_violation"];
    assert_eq!((counts.replayed, counts.still_invalid), (1, 0));
    let second = replay_once().await;
    assert_eq!(second.by_code["schema_violation"].already_stored, 1);
    let mut want = vec![
        (id_of(&good), Some("1-0-0".to_string()), None),
        (id_of(&broken), Some("1-1-0".to_string()), None),
    ];
    want.sort();
    assert_eq!(stamps(&stack.db).await, want, "each once, stamped");
    server.abort();
}

#[tokio::test]
async fn a_plan_change_reaches_the_ingest_within_its_max_age() {
    let max_age = Duration::from_secs(1);
    let app = App::start_with(|c| c.registry_max_age = max_age).await;
    let db = app.db.db();
    archiver::plan::load(&db, &plan("reject", false))
        .await
        .expect("the plan loads");
    let broken = || pantry(json!({"items_added": 1, "items_removed": 0, "source": "manual"}));

    // The first request loads the copy: refused, not stored.
    let loading = Instant::now();
    let (status, body) = app.post("/events", &broken()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("schema_violation"))
    );
    let loaded = Instant::now();

    archiver::plan::load(&db, &plan("reject", true))
        .await
        .expect("the fix loads");
    // Within the max age the copy stands, when this request comes within it.
    let early = app.post("/events", &broken()).await.0;
    if loading.elapsed() < max_age {
        assert_eq!(early, 400, "the copy is still fresh");
    }
    // Once it is older than its max age, the next request reloads it: stored, stamped 1-1-0.
    tokio::time::sleep_until(loaded + max_age).await;
    let event = broken();
    let (status, body) = app.post("/events", &event).await;
    assert_eq!(status, 202, "{body}");
    let stamped = stamps(&app.db).await;
    assert!(
        stamped.contains(&(id_of(&event), Some("1-1-0".into()), None)),
        "{stamped:?}"
    );
}

#[tokio::test]
async fn flag_mode_stores_the_violation_and_an_invalid_plan_never_reaches_the_table() {
    let app = App::start().await;
    let db = app.db.db();
    archiver::plan::load(&db, &plan("flag", false))
        .await
        .expect("the plan loads");
    let broken = pantry(json!({"items_added": "5", "items_removed": 0}));
    let (status, body) = app.post("/events", &broken).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        body["warnings"],
        json!(["no_experiment_context", "schema_violation"])
    );
    assert_eq!(
        stamps(&app.db).await,
        vec![(
            id_of(&broken),
            Some("1-0-0".into()),
            Some("/payload/items_added".into())
        )]
    );

    // A schema that does not compile: refused whole with plan_invalid, nothing of it stored.
    let mut invalid = plan("flag", true);
    invalid.types[0].versions[1].payload = json!({"type": "strnig"});
    let err = archiver::plan::load(&db, &invalid)
        .await
        .expect_err("refused");
    assert_eq!(err.code(), "plan_invalid");
    let stored = eis_store::plan::load(&db).await.expect("the plan");
    let versions: Vec<_> = stored.types[0]
        .versions
        .iter()
        .map(|v| v.version.as_str())
        .collect();
    assert_eq!(versions, vec!["1-0-0"]);
}
