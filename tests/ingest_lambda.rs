//! The ingest function through the Lambda path: API Gateway v2 request events kept as files
//! under `events/` (the same files serve `cargo lambda invoke` and `sam local invoke`),
//! turned into requests by lambda_http exactly as the runtime does, answered by the router,
//! with the real PostgreSQL and SQS behind it.

use chrono::{DateTime, TimeZone, Utc};
use eis_tests::*;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// The fixtures' events happen at 2026-11-28T10:00Z; the clock reads five minutes later.
fn fixture_now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 10, 5, 0)
        .single()
        .expect("valid date")
}

async fn invoke(app: &axum::Router, fixture: &str) -> (u16, Value) {
    let path = format!("{}/../events/{fixture}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let request = lambda_http::request::from_str(&text).expect("API Gateway v2 event");
    let response = app
        .clone()
        .oneshot(request)
        .await
        .expect("infallible router");
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, body)
}

#[tokio::test]
async fn every_fixture_gets_its_answer() {
    let db = TestDb::create().await;
    let queue = TestQueue::create(5, 30).await;
    let mut state = ingest::app::state(&ingest_config(&db, &queue.url))
        .await
        .expect("state");
    state.now = fixture_now;
    let app = ingest::routes::router(state);

    let (status, body) = invoke(&app, "ingest-post-event.json").await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["event_id"], "0193f1a2-7c3e-7a10-8b2c-3d4e5f6a7b01");
    assert_eq!(body["status"], "accepted");
    assert!(
        body.get("warnings").is_none(),
        "no warnings for a complete event: {body}"
    );

    // The same request again (a client retry): same answer, nothing new stored or queued.
    let (status, again) = invoke(&app, "ingest-post-event.json").await;
    assert_eq!((status, &again["event_id"]), (202, &body["event_id"]));

    let (status, body) = invoke(&app, "ingest-post-event-base64-gzip.json").await;
    assert_eq!(status, 202, "base64 + gzip body: {body}");
    assert_eq!(body["event_id"], "0193f1a2-7c3e-7a10-8b2c-3d4e5f6a7b02");

    let (status, body) = invoke(&app, "ingest-post-event-missing-timestamp.json").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("missing_timestamp"))
    );
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));

    let (status, body) = invoke(&app, "ingest-post-event-invalid-json.json").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_json"))
    );

    let (status, body) = invoke(&app, "ingest-post-event-text-plain.json").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (415, Some("unsupported_media_type"))
    );

    let (status, body) = invoke(&app, "ingest-post-batch.json").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["accepted"].as_u64(), body["rejected"].as_u64()),
        (Some(3), Some(0))
    );

    let (status, body) = invoke(&app, "ingest-post-batch-partial.json").await;
    assert_eq!(status, 207, "{body}");
    assert_eq!(
        (body["accepted"].as_u64(), body["rejected"].as_u64()),
        (Some(98), Some(2))
    );
    let errors: Vec<(u64, &str)> = body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| {
            (
                e["index"].as_u64().unwrap_or(999),
                e["error"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        errors,
        vec![(5, "missing_timestamp"), (12, "invalid_experiment_id")]
    );

    let (status, body) = invoke(&app, "ingest-post-batch-empty.json").await;
    assert_eq!((status, body["error"].as_str()), (400, Some("empty_batch")));
    assert_eq!(body["accepted"], 0);

    let (status, body) = invoke(&app, "ingest-get-health.json").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));

    let (status, body) = invoke(&app, "ingest-get-unknown-route.json").await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));

    let (status, body) = invoke(&app, "ingest-delete-events.json").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (405, Some("method_not_allowed"))
    );

    // 1 + 1 (gzip) + 3 + 98 events stored, each once, each handed to SQS once.
    assert_eq!(stored_counts(&db).await, (103, 0));
    assert_eq!(queued_events(&queue, &queue.url).await.len(), 103);
    queue.delete().await;
    db.drop_database().await;
}
