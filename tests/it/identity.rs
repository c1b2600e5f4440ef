//! An event is its event_id: retries are stored and published once and marked duplicate,
//! resends with other content are `event_id_conflict`, inside a batch and across requests,
//! also when several function instances race on one id (real concurrent requests, each
//! instance with its own PostgreSQL connection, as Lambda containers have).

use chrono::Duration;
use eis_tests::api::{answer, App};
use eis_tests::events::{seed_event, swap_event, ts};
use eis_tests::*;
use ingest::routes::router;
use serde_json::{json, Value};
use tokio::task::JoinSet;

const ID: &str = "0193f1a2-7c3e-7a10-8b2c-3d4e5f6a7b42";

fn with_id(mut event: Value, id: &str) -> Value {
    event["event_id"] = json!(id);
    event
}

async fn stored_payload(db: &TestDb, id: &str) -> Vec<(String, String)> {
    let id: uuid::Uuid = id.parse().expect("uuid");
    db.client()
        .await
        .query(
            r#"SELECT payload::text, "timestamp"::text FROM exp.events WHERE event_id = $1"#,
            &[&id],
        )
        .await
        .expect("select")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test]
async fn a_resend_is_a_duplicate_or_a_conflict_and_the_first_stays() {
    let app = App::start().await;
    let first = with_id(seed_event(), ID);
    let (status, body) = app.post("/events", &first).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        body.get("duplicate"),
        None,
        "a new event is not marked: {body}"
    );
    let stored = stored_payload(&app.db, ID).await;

    // A faithful retry, formatted differently (key order is not content).
    let retry: Value = serde_json::from_str(&first.to_string()).expect("json");
    let (status, body) = app.post("/events", &retry).await;
    assert_eq!(
        (
            status,
            &body["event_id"],
            &body["status"],
            &body["duplicate"]
        ),
        (202, &json!(ID), &json!("accepted"), &json!(true)),
        "{body}"
    );

    let mut later = first.clone();
    later["timestamp"] = json!(ts(-Duration::minutes(5)));
    let mut edited = first.clone();
    edited["payload"]["meal_count"] = json!(8);
    for resend in [&later, &edited] {
        let (status, body) = app.post("/events", resend).await;
        assert_eq!(
            (status, &body["error"]),
            (409, &json!("event_id_conflict")),
            "{body}"
        );
    }

    let (status, body) = app
        .post("/events/batch", &json!({"events": [&first, &later]}))
        .await;
    assert_eq!(status, 207, "{body}");
    assert_eq!(
        (&body["accepted"], &body["rejected"]),
        (&json!(1), &json!(1))
    );
    assert_eq!(body["duplicates"], json!([0]));
    assert_eq!(body["errors"][0]["index"], 1);
    assert_eq!(body["errors"][0]["error"], "event_id_conflict");
    assert_eq!(body["event_ids"], json!([ID, null]));

    // The conflicting copy first, then the retry: the retry is judged against what is
    // stored, not against the batch's first copy of its id.
    let (status, body) = app
        .post("/events/batch", &json!({"events": [later, first]}))
        .await;
    assert_eq!(status, 207, "{body}");
    assert_eq!(body["duplicates"], json!([1]), "{body}");
    assert_eq!(body["errors"][0]["index"], 0);
    assert_eq!(body["errors"][0]["error"], "event_id_conflict");
    assert_eq!(body["event_ids"], json!([null, ID]));

    assert_eq!(
        stored_payload(&app.db, ID).await,
        stored,
        "the first event stays"
    );
    assert_eq!(stored_counts(&app.db).await, (1, 0));
    assert_eq!(queued_events(&app.queue, &app.queue.url).await.len(), 1);
}

#[tokio::test]
async fn a_batch_repeating_an_id_stores_and_publishes_it_once() {
    let app = App::start().await;
    let a = with_id(swap_event(1), ID);
    let mut other = a.clone();
    other["payload"]["new_meal_id"] = json!("meal-other");
    let b = swap_event(2);
    let (status, body) = app
        .post("/events/batch", &json!({"events": [a, a, other, b]}))
        .await;
    assert_eq!(status, 207, "{body}");
    assert_eq!(
        (&body["accepted"], &body["rejected"]),
        (&json!(3), &json!(1))
    );
    assert_eq!(body["duplicates"], json!([1]));
    assert_eq!(body["errors"][0]["index"], 2);
    assert_eq!(body["errors"][0]["error"], "event_id_conflict");
    assert_eq!(body["event_ids"][0], json!(ID));
    assert_eq!(body["event_ids"][1], json!(ID));
    assert_eq!(body["event_ids"][2], Value::Null);

    assert_eq!(stored_counts(&app.db).await, (2, 0));
    let queued = queued_events(&app.queue, &app.queue.url).await;
    assert_eq!(queued.len(), 2, "one record per stored event");
    let first = queued
        .iter()
        .find(|e| e.event_id.to_string() == ID)
        .expect("the id is queued");
    assert_eq!(
        serde_json::to_value(&first.payload).expect("payload")["new_meal_id"],
        "meal-2",
        "the first content is the one kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_resends_from_several_instances_store_one_event() {
    const INSTANCES: usize = 4;
    const SENDS: usize = 24;
    const ROUNDS: usize = 5;
    let db = TestDb::create().await;
    let queue = TestQueue::create(5, 30).await;
    let config = ingest_config(&db, &queue.url);
    let mut servers = Vec::new();
    for _ in 0..INSTANCES {
        let state = ingest::app::state(&config).await.expect("state");
        servers.push(serve(router(state)).await);
    }
    let http = reqwest::Client::new();

    for round in 0..ROUNDS {
        let id = uuid::Uuid::now_v7().to_string();
        let base = with_id(swap_event(round), &id);
        let mut rival = base.clone();
        rival["payload"]["new_meal_id"] = json!("meal-rival");
        let mut sends = JoinSet::new();
        for n in 0..SENDS {
            let (body, single) = (if n % 2 == 0 { &base } else { &rival }, n % 3 != 0);
            let (path, body) = if single {
                ("events", body.clone())
            } else {
                ("events/batch", json!({"events": [body]}))
            };
            let request = http
                .post(format!("{}/{path}", servers[n % INSTANCES].0))
                .header("content-type", "application/json")
                .body(body.to_string());
            let variant = n % 2;
            sends.spawn(async move {
                let (status, body) = answer(request.send().await.expect("request")).await;
                (variant, single, status, body)
            });
        }
        let mut answers = Vec::new();
        while let Some(joined) = sends.join_next().await {
            answers.push(joined.expect("task"));
        }

        // Exactly one send stored it; it and every send of the same content are accepted,
        // every send of the other content is a conflict.
        let fresh: Vec<_> = answers
            .iter()
            .filter(|(_, single, status, body)| {
                let accepted = if *single {
                    *status == 202
                } else {
                    *status == 200
                };
                let marked = if *single {
                    body.get("duplicate").is_some()
                } else {
                    body.get("duplicates").is_some()
                };
                accepted && !marked
            })
            .collect();
        assert_eq!(fresh.len(), 1, "round {round}: {answers:?}");
        let winner = fresh[0].0;
        for (variant, single, status, body) in &answers {
            let expected = match (*variant == winner, *single) {
                (true, true) => 202,
                (true, false) => 200,
                (false, true) => 409,
                (false, false) => 400,
            };
            assert_eq!(*status, expected, "round {round}: {body}");
            if *variant != winner && !*single {
                assert_eq!(body["errors"][0]["error"], "event_id_conflict", "{body}");
            }
        }
        let stored = stored_payload(&db, &id).await;
        assert_eq!(stored.len(), 1, "round {round}: one row");
        let kept: Value = serde_json::from_str(&stored[0].0).expect("payload");
        let sent = if winner == 0 { &base } else { &rival };
        assert_eq!(kept, sent["payload"], "round {round}: the winner's content");
    }

    let queued = queued_events(&queue, &queue.url).await;
    assert_eq!(queued.len(), ROUNDS, "each id published once");
    for (_, server) in servers {
        server.abort();
    }
}
