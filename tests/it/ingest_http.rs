//! The ingest API over real HTTP, served on 127.0.0.1 exactly as `make dev` serves it, with
//! the real PostgreSQL and SQS (moto) behind it: the seed's examples, retries, gzip, limits,
//! and faults (database gone, queue unreachable).

use std::io::Write;

use chrono::Duration;
use eis_tests::api::*;
use eis_tests::events::*;
use eis_tests::*;
use ingest::routes::router;
use serde_json::{json, Value};

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).expect("gzip");
    enc.finish().expect("gzip")
}

#[tokio::test]
async fn the_seed_example_is_stored_and_handed_to_sqs() {
    let app = App::start().await;
    let (status, body) = app.post("/events", &seed_event()).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "accepted");
    let id = body["event_id"].as_str().expect("event_id").to_string();
    let parsed = uuid::Uuid::parse_str(&id).expect("uuid");
    assert_eq!(
        parsed.get_version_num(),
        7,
        "assigned ids are time-ordered v7"
    );

    assert_eq!(
        stored_counts(&app.db).await,
        (1, 0),
        "stored and marked handed off"
    );
    let queued = queued_events(&app.queue, &app.queue.url).await;
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].event_id.to_string(), id);
    assert_eq!(queued[0].experiments[0].variant_id.to_string(), VARIANT);
}

#[tokio::test]
async fn the_seed_batch_of_100_with_two_bad_events_is_a_207() {
    let app = App::start().await;
    let mut events: Vec<Value> = (0..100).map(swap_event).collect();
    events[5]
        .as_object_mut()
        .expect("object")
        .remove("timestamp");
    events[12]["experiments"][0]["experiment_id"] = json!("uuid-exp");
    let (status, body) = app
        .post("/events/batch", &json!({ "events": events }))
        .await;
    assert_eq!(status, 207, "{body}");
    assert_eq!(body["accepted"], 98);
    assert_eq!(body["rejected"], 2);
    let errors = body["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 2);
    assert_eq!(
        (errors[0]["index"].as_u64(), errors[0]["error"].as_str()),
        (Some(5), Some("missing_timestamp"))
    );
    assert_eq!(
        (errors[1]["index"].as_u64(), errors[1]["error"].as_str()),
        (Some(12), Some("invalid_experiment_id"))
    );
    let ids = body["event_ids"].as_array().expect("event_ids");
    assert_eq!(ids.len(), 100);
    assert!(ids[5].is_null() && ids[12].is_null());
    assert_eq!(ids.iter().filter(|v| v.is_string()).count(), 98);

    assert_eq!(stored_counts(&app.db).await, (98, 0));
    let queued = queued_events(&app.queue, &app.queue.url).await;
    assert_eq!(queued.len(), 98);
}

#[tokio::test]
async fn all_good_is_200_all_bad_or_empty_is_400() {
    let app = App::start().await;
    let (status, body) = app
        .post(
            "/events/batch",
            &json!({"events": [swap_event(1), swap_event(2)]}),
        )
        .await;
    assert_eq!((status, body["accepted"].as_u64()), (200, Some(2)));

    let bad = json!({"events": [{"event_type": "x"}, {"unit_id": "u"}]});
    let (status, body) = app.post("/events/batch", &bad).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        (body["accepted"].as_u64(), body["rejected"].as_u64()),
        (Some(0), Some(2))
    );
    assert_eq!(body["event_ids"], json!([null, null]));

    for (body, code) in [
        (json!({"events": []}), "empty_batch"),
        (json!({"items": []}), "missing_events"),
        (
            json!({"events": [swap_event(3)], "extra": 1}),
            "unknown_field",
        ),
        (json!({}), "missing_events"),
        (json!({"events": {}}), "invalid_events"),
    ] {
        let (status, answer) = app.post("/events/batch", &body).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (400, Some(code)),
            "{body}"
        );
        assert_eq!(answer["accepted"], 0, "batch shape kept: {answer}");
    }
    assert_eq!(stored_counts(&app.db).await.0, 2);
}

#[tokio::test]
async fn a_retry_with_the_same_event_id_is_stored_and_published_once() {
    let app = App::start().await;
    let mut event = seed_event();
    let id = "0193f1a2-7c3e-7a10-8b2c-3d4e5f6a7b99";
    event["event_id"] = json!(id);
    for _ in 0..3 {
        let (status, body) = app.post("/events", &event).await;
        assert_eq!((status, body["event_id"].as_str()), (202, Some(id)));
    }
    let (status, body) = app.post("/events/batch", &json!({"events": [event]})).await;
    assert_eq!((status, body["event_ids"][0].as_str()), (200, Some(id)));
    assert_eq!(stored_counts(&app.db).await, (1, 0));
    assert_eq!(queued_events(&app.queue, &app.queue.url).await.len(), 1);
}

#[tokio::test]
async fn warnings_are_returned_and_stored() {
    let app = App::start().await;
    let mut event = swap_event(1);
    event.as_object_mut().expect("object").remove("experiments");
    event["timestamp"] = json!(ts(-Duration::days(8)));
    let (status, body) = app.post("/events", &event).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        body["warnings"],
        json!(["old_timestamp", "no_experiment_context"])
    );
    let flags: Vec<String> = app
        .db
        .client()
        .await
        .query_one("SELECT flags FROM exp.events", &[])
        .await
        .expect("row")
        .get(0);
    assert_eq!(flags, vec!["old_timestamp", "no_experiment_context"]);

    let (status, body) = app
        .post("/events/batch", &json!({"events": [swap_event(2), event]}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["warnings"],
        json!([{"index": 1, "warnings": ["old_timestamp", "no_experiment_context"]}])
    );
}

#[tokio::test]
async fn gzip_bodies_are_accepted_and_bombs_refused() {
    let app = App::start().await;
    let batch = json!({"events": (0..50).map(swap_event).collect::<Vec<_>>()});
    let (status, body) = app
        .post_bytes(
            "/events/batch",
            gzip(batch.to_string().as_bytes()),
            &[("content-encoding", "gzip")],
        )
        .await;
    assert_eq!(
        (status, body["accepted"].as_u64()),
        (200, Some(50)),
        "{body}"
    );

    // 64 MiB of spaces: valid JSON padding, ~64 KiB compressed, far over the 5 MiB limit.
    let mut bomb = b"{\"events\":[]".to_vec();
    bomb.extend(std::iter::repeat_n(b' ', 64 << 20));
    bomb.push(b'}');
    let bomb = gzip(&bomb);
    assert!(bomb.len() < 1 << 20);
    let (status, body) = app
        .post_bytes("/events/batch", bomb, &[("content-encoding", "gzip")])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (413, Some("payload_too_large"))
    );

    let (status, body) = app
        .post_bytes(
            "/events",
            b"not gzip".to_vec(),
            &[("content-encoding", "gzip")],
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_gzip"))
    );
    assert_eq!(stored_counts(&app.db).await.0, 50);
}

#[tokio::test]
async fn limits_answer_413_with_their_code() {
    let app = App::start_with(|c| {
        c.max_body_bytes = 200_000;
        c.limits.max_batch_events = 10;
    })
    .await;
    let big = vec![b' '; 200_001];
    let (status, body) = app.post_bytes("/events", big, &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (413, Some("payload_too_large"))
    );

    let eleven = json!({"events": (0..11).map(swap_event).collect::<Vec<_>>()});
    let (status, body) = app.post("/events/batch", &eleven).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (413, Some("batch_too_large"))
    );

    let mut huge = swap_event(1);
    huge["payload"]["notes"] = json!("x".repeat(70_000));
    let (status, body) = app.post("/events", &huge).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (413, Some("event_too_large"))
    );

    let (status, body) = app
        .post("/events/batch", &json!({"events": [swap_event(2), huge]}))
        .await;
    assert_eq!(status, 207, "{body}");
    assert_eq!(body["errors"][0]["index"], 1);
    assert_eq!(body["errors"][0]["error"], "event_too_large");
    assert_eq!(stored_counts(&app.db).await.0, 1);
}

#[tokio::test]
async fn bad_requests_get_json_errors() {
    let app = App::start().await;
    let (status, body) = app
        .post_bytes("/events", b"{\"event_type\":".to_vec(), &[])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_json"))
    );

    let response = app
        .http
        .post(format!("{}/events", app.url))
        .header("content-type", "text/plain")
        .body(seed_event().to_string())
        .send()
        .await
        .expect("request");
    let (status, body) = answer(response).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (415, Some("unsupported_media_type"))
    );

    let response = app
        .http
        .get(format!("{}/nowhere", app.url))
        .send()
        .await
        .expect("request");
    assert_eq!(
        answer(response).await,
        (
            404,
            json!({"error": "not_found", "message": "no such route"})
        )
    );
    let response = app
        .http
        .get(format!("{}/events", app.url))
        .send()
        .await
        .expect("request");
    let (status, body) = answer(response).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (405, Some("method_not_allowed"))
    );

    let (status, body) = app.post("/events", &json!({"event_type": "plan_generated", "unit_type": "user", "unit_id": "u", "timestamp": ts(Duration::hours(1))})).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("future_timestamp"))
    );
    assert_eq!(
        stored_counts(&app.db).await.0,
        0,
        "bad input stores nothing"
    );
}

#[tokio::test]
async fn database_gone_is_503_with_retry_after_and_recovers() {
    let db = TestDb::create().await;
    let queue = TestQueue::create(5, 30).await;
    let (proxy, proxied_url) = FaultyProxy::before_database(&db.url).await;
    let mut config = ingest_config(&db, &queue.url);
    config.db.url = proxied_url;
    let state = ingest::app::state(&config).await.expect("state");
    let (url, server) = serve(router(state)).await;
    let http = reqwest::Client::new();
    let post = |body: Value| {
        http.post(format!("{url}/events/batch"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };

    let (status, _) = answer(
        post(json!({"events": [swap_event(1)]}))
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, 200);

    proxy.cut();
    let response = post(json!({"events": [swap_event(2), swap_event(3)]}))
        .await
        .expect("request");
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("5")
    );
    assert_eq!(answer(response).await.1["error"], "storage_unavailable");
    let health = http
        .get(format!("{url}/health"))
        .send()
        .await
        .expect("request");
    assert_eq!(health.status().as_u16(), 503);

    proxy.restore();
    let (status, _) = answer(
        post(json!({"events": [swap_event(4)]}))
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, 200, "recovers without a restart");
    let health = http
        .get(format!("{url}/health"))
        .send()
        .await
        .expect("request");
    assert_eq!(health.status().as_u16(), 200);
    // Nothing half-written: the refused batch left no row.
    assert_eq!(stored_counts(&db).await.0, 2);
    server.abort();
    drop(proxy);
}

#[tokio::test]
async fn queue_unreachable_still_accepts_and_leaves_events_for_the_sweep() {
    let db = TestDb::create().await;
    let publisher = unreachable_publisher();
    let state = api_state(&db.config(), publisher);
    let (url, server) = serve(router(state)).await;
    let response = reqwest::Client::new()
        .post(format!("{url}/events/batch"))
        .header("content-type", "application/json")
        .body(json!({"events": [swap_event(1), swap_event(2), swap_event(3)]}).to_string())
        .send()
        .await
        .expect("request");
    let (status, body) = answer(response).await;
    assert_eq!(
        (status, body["accepted"].as_u64()),
        (200, Some(3)),
        "{body}"
    );
    assert_eq!(
        stored_counts(&db).await,
        (3, 3),
        "all stored, none handed off"
    );
    server.abort();
}
