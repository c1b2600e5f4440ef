//! A shared connection that the server closed while the function was frozen (RDS Proxy closes
//! a client connection idle for its IdleClientTimeout, 1 800 s). The next request probes it,
//! replaces it and stores its event once. The probe threshold is zero here rather than a long
//! sleep. `pg_terminate_backend` closes the server side on demand; the test's runtime (a
//! current-thread one) is blocked meanwhile, as a frozen Lambda's is, so the client cannot
//! notice the close before the request.

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;
use uuid::Uuid;

use eis_store::DbConfig;

use super::*;

/// The function's connections carry this name, so that the test finds their backend.
const FUNCTION: &str = "eis_frozen_function";

/// The ingest router on `db`, its connections named [`FUNCTION`], probed after `idle_probe`.
fn router(db: &TestDb, idle_probe: Duration) -> axum::Router {
    let separator = if db.url.contains('?') { '&' } else { '?' };
    let config = DbConfig {
        url: format!("{}{separator}application_name={FUNCTION}", db.url),
        idle_probe_after: idle_probe,
        ..db.config()
    };
    ingest::routes::router(api_state(&config, unreachable_publisher()))
}

async fn post(router: &axum::Router, event: &Value) -> (u16, Value) {
    let request = Request::post("/events")
        .header("content-type", "application/json")
        .body(Body::from(event.to_string()))
        .expect("request");
    let response = router.clone().oneshot(request).await.expect("infallible");
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn new_event() -> Value {
    let mut e = eis_tests::events::seed_request("user-1", Utc::now());
    e["event_id"] = json!(Uuid::now_v7());
    e
}

/// Terminates the function's one backend and returns once it is gone, from a thread and
/// runtime of its own: the caller's runtime does not run meanwhile.
fn terminate_while_frozen(url: &str) {
    let url = url.to_string();
    let killer = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let client = connect(&url).await;
            // With a timeout, pg_terminate_backend waits until the backend has exited.
            let rows = client
                .query(
                    "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity
                     WHERE datname = current_database() AND application_name = $1",
                    &[&FUNCTION],
                )
                .await
                .expect("terminate");
            let ended: Vec<bool> = rows.iter().map(|r| r.get(0)).collect();
            assert_eq!(ended, [true], "the function's one backend ended");
        });
    });
    killer.join().expect("the terminating thread");
}

async fn stored(db: &TestDb, event: &Value) -> i64 {
    let id = Uuid::parse_str(event["event_id"].as_str().expect("id")).expect("uuid");
    db.client()
        .await
        .query_one(
            "SELECT count(*) FROM exp.events WHERE event_id = $1",
            &[&id],
        )
        .await
        .expect("count")
        .get(0)
}

#[tokio::test]
async fn a_connection_closed_while_frozen_is_replaced_before_the_next_request() {
    let db = TestDb::create().await;
    let app = router(&db, Duration::ZERO);
    let first = new_event();
    let (status, body) = post(&app, &first).await;
    assert_eq!(status, 202, "{body}");

    terminate_while_frozen(&db.url);
    let second = new_event();
    let (status, body) = post(&app, &second).await;
    assert_eq!(status, 202, "{body}");
    // Stored now, not found already stored: the insert ran once, on the new connection.
    assert_eq!(
        (body["status"].clone(), body.get("duplicate")),
        (json!("accepted"), None),
        "{body}"
    );
    assert_eq!(
        (stored(&db, &first).await, stored(&db, &second).await),
        (1, 1)
    );
}

/// The same fault without the probe (a threshold the test never reaches): the request is sent
/// on the dead socket and fails, so the test above shows the probe's work, not luck.
#[tokio::test]
async fn without_the_probe_the_same_fault_fails_the_request() {
    let db = TestDb::create().await;
    let app = router(&db, Duration::from_secs(1800));
    let (status, body) = post(&app, &new_event()).await;
    assert_eq!(status, 202, "{body}");

    terminate_while_frozen(&db.url);
    let second = new_event();
    let (status, body) = post(&app, &second).await;
    assert_eq!(
        (status, body["error"].clone()),
        (503, json!("storage_unavailable")),
        "{body}"
    );
    assert_eq!(stored(&db, &second).await, 0);
    // The broken connection was dropped: the next request opens a new one.
    let (status, body) = post(&app, &second).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(stored(&db, &second).await, 1);
}
