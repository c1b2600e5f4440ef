//! Erased units at the ingest (issue 27; docs/api.md, "Erased units"): with a tombstone
//! recorded through `ErasureStore::record`, a retry of an erased event is refused
//! `unit_erased`, every event of a suppressed unit `unit_suppressed`, and neither is stored,
//! handed to the queue or kept in the quarantine; other units, and the unit's events after
//! the erasure, are taken as always. The dry run answers the same. The function's copy of
//! the tombstones sees a new one once its max age has passed.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use eis_contract::{RegistryMode, UnitBinding};
use eis_handoff::message::{decode, Message};
use eis_store::erasure::UnitToErase;
use eis_store::ErasureStore;
use eis_tests::api::App;
use eis_tests::events::{seed_request, EXPERIMENT, VARIANT};
use eis_tests::TestDb;
use ingest::sender::CallerBinding;
use serde_json::{json, Value};
use tokio::time::Instant;
use uuid::Uuid;

/// The erased unit (of type `user`).
const ERASED: &str = "u-1";

/// When the tests' erasures were requested: ten minutes ago, so that events on both sides of
/// it are in the past.
fn erased_at() -> DateTime<Utc> {
    Utc::now() - chrono::Duration::minutes(10)
}

/// Before the erasure (a retry of an erased event) or after it.
fn before() -> DateTime<Utc> {
    erased_at() - chrono::Duration::minutes(5)
}

fn after() -> DateTime<Utc> {
    erased_at() + chrono::Duration::minutes(5)
}

/// Records the erasure of [`ERASED`] as requested at `at`.
async fn erase(db: &TestDb, suppress: bool, at: DateTime<Utc>) {
    let unit = UnitToErase {
        unit_type: "user".into(),
        unit_id: ERASED.into(),
        suppress,
    };
    ErasureStore::new(db.db())
        .record(&[unit], at)
        .await
        .expect("the erasure is recorded");
}

/// An event of user `unit_id` at `timestamp`, with an `event_id` of its own (as a client
/// that retries sends it), naming no experiment.
fn event(unit_id: &str, timestamp: DateTime<Utc>) -> Value {
    json!({
        "event_id": Uuid::now_v7(), "event_type": "custom", "unit_type": "user",
        "unit_id": unit_id, "timestamp": timestamp.to_rfc3339_opts(SecondsFormat::Millis, true),
    })
}

fn id_of(event: &Value) -> Uuid {
    Uuid::parse_str(event["event_id"].as_str().unwrap_or_default()).expect("the event's id")
}

/// The event ids stored in exp.events.
async fn stored(app: &App) -> BTreeSet<Uuid> {
    app.db
        .client()
        .await
        .query("SELECT event_id FROM exp.events", &[])
        .await
        .expect("stored ids")
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// What reached the queue: the ids of the events handed off, and the (batch index, code) of
/// every quarantine record. Reads each message once: call it once per test, at its end.
async fn queued(app: &App) -> (BTreeSet<Uuid>, Vec<(Option<u32>, String)>) {
    let (mut events, mut quarantined) = (BTreeSet::new(), Vec::new());
    for message in app.queue.receive_all(&app.queue.url).await {
        match decode(message.body().unwrap_or_default()).expect("a hand-off message") {
            Message::Events(batch) => events.extend(batch.iter().map(|e| e.event_id)),
            Message::Quarantined(records) => {
                quarantined.extend(records.into_iter().map(|r| (r.batch_index, r.code)))
            }
        }
    }
    (events, quarantined)
}

/// (status, code, field) of a single event's answer: (202, "", "") when stored.
fn single((status, body): (u16, Value)) -> (u16, String, String) {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    (status, text(&body["error"]), text(&body["field"]))
}

/// (index, code, field) of each error of a batch answer.
fn errors(body: &Value) -> Vec<(u64, String, String)> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| {
                    let index = e["index"].as_u64().unwrap_or(u64::MAX);
                    (index, text(&e["error"]), text(&e["field"]))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Which of a batch's events have an id in its answer.
fn answered_ids(body: &Value) -> Vec<bool> {
    body["event_ids"]
        .as_array()
        .map(|ids| ids.iter().map(Value::is_string).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn single_events_of_an_erased_unit_are_refused_by_the_rule() {
    let answer = |status, code: &str, field: &str| (status, code.to_string(), field.to_string());
    let (taken, erased) = (
        answer(202, "", ""),
        answer(400, "unit_erased", "/timestamp"),
    );
    let suppressed = answer(400, "unit_suppressed", "/unit_id");
    // (suppress, unit, timestamp, the answer)
    let cases = [
        // (a) A retry of an erased event.
        (false, ERASED, before(), erased),
        // (b) The unit's new events are taken.
        (false, ERASED, after(), taken.clone()),
        (false, "u-2", before(), taken.clone()),
        // (c) Suppression refuses every event of the unit.
        (true, ERASED, before(), suppressed.clone()),
        (true, ERASED, after(), suppressed),
        (true, "u-2", after(), taken),
    ];
    for suppress in [false, true] {
        let app = App::start().await;
        erase(&app.db, suppress, erased_at()).await;
        let mut want_stored = BTreeSet::new();
        for (_, unit, timestamp, want) in cases.iter().filter(|c| c.0 == suppress) {
            let event = event(unit, *timestamp);
            let case = format!("suppress {suppress}, {unit} at {timestamp}");
            // The dry run first: it gives the same answer, in the batch shape, and stores
            // nothing.
            let (status, body) = app
                .post("/events/validate", &json!({ "events": [event] }))
                .await;
            let want_errors = match want.0 {
                202 => vec![],
                _ => vec![(0, want.1.clone(), want.2.clone())],
            };
            let dry_status = if want.0 == 202 { 200 } else { 400 };
            assert_eq!((status, errors(&body)), (dry_status, want_errors), "{case}");

            assert_eq!(&single(app.post("/events", &event).await), want, "{case}");
            if want.0 == 202 {
                want_stored.insert(id_of(&event));
            }
        }
        assert_eq!(stored(&app).await, want_stored, "suppress {suppress}");
        let (handed_off, quarantined) = queued(&app).await;
        assert_eq!(
            handed_off, want_stored,
            "suppress {suppress}: only the stored"
        );
        assert_eq!(quarantined, [], "suppress {suppress}: nothing quarantined");
    }
}

#[tokio::test]
async fn a_batch_refuses_only_the_erased_units_events() {
    let app = App::start().await;
    erase(&app.db, false, erased_at()).await;
    let mut missing_timestamp = event("u-3", before());
    missing_timestamp
        .as_object_mut()
        .expect("an object")
        .remove("timestamp");
    let events = [
        event(ERASED, before()),
        event("u-2", before()),
        event(ERASED, after()),
        missing_timestamp,
        event("u-3", after()),
    ];
    let batch = json!({ "events": events });
    let want_errors = vec![
        (0, "unit_erased".to_string(), "/timestamp".to_string()),
        (3, "missing_timestamp".to_string(), "/timestamp".to_string()),
    ];
    let want_ids = vec![false, true, true, false, true];

    // (d) The dry run and the batch give one answer: 207, the erased event refused at its
    // index, the others taken.
    for route in ["/events/validate", "/events/batch"] {
        let (status, body) = app.post(route, &batch).await;
        assert_eq!(status, 207, "{route}: {body}");
        assert_eq!(errors(&body), want_errors, "{route}");
        assert_eq!(answered_ids(&body), want_ids, "{route}");
        assert_eq!(
            (body["accepted"].as_u64(), body["rejected"].as_u64()),
            (Some(3), Some(2)),
            "{route}"
        );
    }
    let want_stored: BTreeSet<Uuid> = [1, 2, 4].map(|i| id_of(&events[i])).into();
    assert_eq!(stored(&app).await, want_stored);
    let (handed_off, quarantined) = queued(&app).await;
    assert_eq!(handed_off, want_stored);
    // The contract's refusal is kept, the erased event is not.
    assert_eq!(quarantined, [(Some(3), "missing_timestamp".to_string())]);
}

/// EXPERIMENT registered for users since yesterday, stopped.
async fn register_stopped(db: &TestDb) {
    let doc = json!([{
        "experiment_id": EXPERIMENT, "unit_type": "user", "status": "stopped",
        "starts_at": Utc::now() - chrono::Duration::days(1),
        "variants": [{"variant_id": VARIANT}]
    }]);
    db.client()
        .await
        .execute("SELECT exp.load_experiments($1)", &[&doc])
        .await
        .expect("registered");
}

fn reject_misfits(config: &mut ingest::config::Config) {
    config.registry_mode = RegistryMode::Reject;
}

fn bind_users(config: &mut ingest::config::Config) {
    config.binding = Some(CallerBinding {
        unit: UnitBinding {
            unit_type: "user".into(),
        },
        claim: "sub".into(),
    });
}

/// A deployment (its name and settings) and the events sent to it, each with the code it is
/// refused with and whether it is kept in the quarantine.
type Deployment = (
    &'static str,
    fn(&mut ingest::config::Config),
    Vec<(Value, &'static str, bool)>,
);

#[tokio::test]
async fn erasure_is_judged_after_the_binding_and_before_the_registry() {
    // The canonical event names EXPERIMENT, registered below as stopped.
    let naming_an_experiment = |unit: &str| {
        let mut e = seed_request(unit, before());
        e["event_id"] = json!(Uuid::now_v7());
        e
    };
    let cases: [Deployment; 2] = [
        // Reject mode: the registry would refuse the erased unit's event and keep it in the
        // quarantine; the erasure is judged first, and keeps nothing. Another unit's misfit
        // is refused and kept as always.
        (
            "registry in reject mode",
            reject_misfits,
            vec![
                (naming_an_experiment(ERASED), "unit_erased", false),
                (naming_an_experiment("u-2"), "experiment_stopped", true),
            ],
        ),
        // Units bound to callers (no token here: no caller): a caller that may not write the
        // unit's events learns nothing of its erasure.
        (
            "users bound to callers",
            bind_users,
            vec![(event(ERASED, before()), "unit_not_authorized", false)],
        ),
    ];
    for (deployment, adjust, events) in cases {
        let app = App::start_with(adjust).await;
        register_stopped(&app.db).await;
        erase(&app.db, false, erased_at()).await;
        let mut want_kept = Vec::new();
        for (event, code, kept) in &events {
            let (status, body) = app.post("/events", event).await;
            assert_eq!(
                (status, body["error"].as_str()),
                (400, Some(*code)),
                "{deployment}: {body}"
            );
            if *kept {
                want_kept.push((None, code.to_string()));
            }
        }
        assert_eq!(stored(&app).await, BTreeSet::new(), "{deployment}");
        let (handed_off, quarantined) = queued(&app).await;
        assert_eq!(handed_off, BTreeSet::new(), "{deployment}");
        assert_eq!(quarantined, want_kept, "{deployment}");
    }
}

#[tokio::test]
async fn a_tombstone_recorded_after_the_copy_was_loaded_is_seen_once_the_copy_is_stale() {
    let max_age = Duration::from_secs(1);
    let app = App::start_with(|c| c.registry_max_age = max_age).await;
    let post = |event: Value| {
        let app = &app;
        async move { single(app.post("/events", &event).await).0 }
    };
    // The first event loads the copy: no unit erased yet.
    let loading = Instant::now();
    assert_eq!(post(event(ERASED, before())).await, 202);
    let loaded = Instant::now();

    erase(&app.db, false, erased_at()).await;
    // Within the max age the copy stands (the documented delay), when the machine was quick
    // enough for this request to come within it.
    let early = post(event(ERASED, before())).await;
    if loading.elapsed() < max_age {
        assert_eq!(early, 202, "the copy is still fresh");
    }

    // Once the copy is older than its max age, the next request reloads it and sees the
    // tombstone: a retry of an erased event is refused, a new event is taken.
    tokio::time::sleep_until(loaded + max_age).await;
    let retry = event(ERASED, before());
    assert_eq!(
        single(app.post("/events", &retry).await),
        (400, "unit_erased".to_string(), "/timestamp".to_string())
    );
    let new = event(ERASED, after());
    assert_eq!(post(new.clone()).await, 202);
    let stored = stored(&app).await;
    assert!(!stored.contains(&id_of(&retry)), "the retry is not stored");
    assert!(stored.contains(&id_of(&new)), "the new event is");
}
